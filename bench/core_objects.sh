#!/bin/sh
# The C core's objects built as the package builds them (csrc/build_core.py's flags), for the
# benchmark programs that link the core directly: prints their paths on one line.
#   bench/core_objects.sh OUT_DIR
set -eu
OUT=${1:?usage: $0 OUT_DIR}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
objs=
for f in dispatch sha256_portable sha256_avx2 sha256_shani sha256_shani_vex sha256_avx512 sha256_armv8; do
    gcc -O3 -std=gnu11 -Wall -Wno-unused-function -c -I"$HERE/csrc" -I"$HERE/kernels" -o "$OUT/$f.o" "$HERE/csrc/$f.c"
    objs="$objs $OUT/$f.o"
done
echo $objs
