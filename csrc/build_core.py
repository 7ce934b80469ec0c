"""cffi build script for the double-SHA-256 core (miner.core._sha256d).

Referenced from setup.py (setuptools refuses cffi_modules in pyproject.toml).
No -march=native: each instruction-set file carries its own target
attributes, so a wheel built here runs on any x86-64 CPU and picks its code
at run time.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int miner_impl_count(void);
    const char *miner_impl_name(int i);
    int miner_impl_usable(int i);
    void miner_sha256d(const uint8_t *data, size_t len, uint8_t *out);
    int miner_scan(int impl, const uint8_t *header, uint32_t start, uint64_t count,
                   const uint8_t *target, uint32_t *out, int cap, uint64_t *next,
                   const volatile int *abort);
    int miner_impl_versions(int i);
    int miner_scan_versions(int impl, const uint8_t *header, const uint32_t *versions, int nver,
                            uint32_t start, uint64_t count, const uint8_t *target,
                            uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
    """
)

SOURCES = ["dispatch.c", "sha256_portable.c", "sha256_avx2.c", "sha256_shani.c", "sha256_avx512.c", "sha256_armv8.c"]

ffibuilder.set_source(
    "miner.core._sha256d",
    '#include "core.h"',
    sources=[os.path.relpath(os.path.join(HERE, s), ROOT) for s in SOURCES],
    include_dirs=[os.path.relpath(p, ROOT) for p in (HERE, os.path.join(ROOT, "kernels"))],
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
