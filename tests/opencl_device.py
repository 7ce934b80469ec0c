"""The OpenCL device the OpenCL tests run on: the first one that can build a kernel on this host.

A PoCL build carries its own LLVM, and an LLVM older than the CPU does not know its model name:
the pip wheel's PoCL 3.0 (LLVM 14) fails every build on an AMD Zen 5 core with "unknown target
CPU 'generic'", while the distribution's PoCL 3.1 (LLVM 15) builds there for a feature-matched
target. Both can be installed at once, in either platform order, so the tests ask each device
instead of assuming platform 0.
"""
from __future__ import annotations

import functools

SKIP_REASON = ("no OpenCL device here can build a kernel (a PoCL whose LLVM predates this CPU fails with "
               "'unknown target CPU'; install the distribution's PoCL: apt-get install pocl-opencl-icd)")


def builds(spec: str) -> bool:
    """Whether a one-line kernel builds on the detected device "opencl:P:D"."""
    import pyopencl as cl

    _, p, d = spec.split(":")
    device = cl.get_platforms()[int(p)].get_devices()[int(d)]
    try:
        cl.Program(cl.Context([device]), "__kernel void k(__global uint *a) { a[0] = 1; }").build(devices=[device])
    except cl.Error:
        return False
    return True


@functools.lru_cache(maxsize=1)
def working_spec() -> str | None:
    """"opencl:P:D" of the first detected device that builds a kernel, or None."""
    from miner.backends.opencl import OpenCLBackend

    return next((found.spec for found in OpenCLBackend.detect() if builds(found.spec)), None)
