"""cffi build script for the double-SHA-256 core (miner.core._sha256d).

Referenced from setup.py (setuptools refuses cffi_modules in pyproject.toml).
The ABI is declared once, in csrc/core.h: its declarations go to cdef() as
they stand, minus the preprocessor lines cffi does not parse (the include
guard and includes; cffi knows the stdint types) and the comments.
No -march=native: each instruction-set file carries its own target
attributes, so a wheel built here runs on any x86-64 CPU and picks its code
at run time.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def core_declarations(path: str = os.path.join(HERE, "core.h")) -> str:
    """csrc/core.h as cdef() text: comments and preprocessor lines removed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(core_declarations())

SOURCES = ["dispatch.c", "sha256_portable.c", "sha256_avx2.c", "sha256_shani.c", "sha256_shani_vex.c", "sha256_avx512.c", "sha256_armv8.c"]

ffibuilder.set_source(
    "miner.core._sha256d",
    '#include "core.h"',
    sources=[os.path.relpath(os.path.join(HERE, s), ROOT) for s in SOURCES],
    include_dirs=[os.path.relpath(p, ROOT) for p in (HERE, os.path.join(ROOT, "kernels"))],
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wno-unused-function"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
