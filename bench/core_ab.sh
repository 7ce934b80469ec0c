#!/bin/sh
# Two builds of the SHA-NI code in one process, alternated call by call: the
# paired time ratio per hash (B over A), median over the rounds. On a shared
# host this is the comparison the host's spread disturbs least.
#   bench/core_ab.sh REV_A:BUILD REV_B:BUILD [ROUNDS] [OUT_DIR]
# REV is a git revision of this repository (or WORK for the working tree),
# BUILD is sse (csrc/sha256_shani.c) or vex (csrc/sha256_shani_vex.c). E.g.
#   bench/core_ab.sh c1a50b7:sse WORK:vex 41      # the VEX build against the SSE code before it
#   bench/core_ab.sh WORK:vex WORK:vex 41         # the harness's own noise (A/A)
# Each side's scan functions are renamed (objcopy) to a_/b_; the rest of the
# core (reference hashing, confirm) comes from the working tree.
set -eu
A=${1:?usage: $0 REV_A:BUILD REV_B:BUILD [ROUNDS] [OUT_DIR]}
B=${2:?usage: $0 REV_A:BUILD REV_B:BUILD [ROUNDS] [OUT_DIR]}
ROUNDS=${3:-31}
OUT=${4:-/tmp/core_ab}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
side() {  # side PREFIX REV:BUILD
    rev=${2%%:*}; build=${2##*:}
    src="$OUT/$1"
    rm -rf "$src"; mkdir -p "$src"
    if [ "$rev" = WORK ]; then cp -r "$HERE/csrc" "$HERE/kernels" "$src/"
    else git -C "$HERE" archive "$rev" csrc kernels | tar -x -C "$src"; fi
    case $build in
        sse) file=sha256_shani.c ;;
        vex) file=sha256_shani_vex.c ;;
        *) echo "BUILD must be sse or vex, not $build" >&2; exit 2 ;;
    esac
    gcc -O3 -std=gnu11 -c -I"$src/csrc" -I"$src/kernels" -o "$OUT/$1.o" "$src/csrc/$file"
    args=$(nm "$OUT/$1.o" | awk -v p="$1" '$2=="T" && $3 ~ /^miner_scan_shani/ {n=$3; sub(/_vex$/,"",n); printf " --redefine-sym %s=%s_%s", $3, p, n}')
    # shellcheck disable=SC2086
    objcopy $args "$OUT/$1.o" "$OUT/$1.renamed.o"
}
side a "$A"
side b "$B"
for f in dispatch sha256_portable sha256_avx2 sha256_shani sha256_shani_vex sha256_avx512 sha256_armv8; do
    gcc -O3 -std=gnu11 -c -I"$HERE/csrc" -I"$HERE/kernels" -o "$OUT/$f.o" "$HERE/csrc/$f.c"
done
cat > "$OUT/ab.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include "impl.h"
/* The 2-lane version scan is weak: revisions before it have none, and its row is left out. */
#define SIDE(p) int p##_miner_scan_shani2(MINER_SCAN_PARAMS); int p##_miner_scan_shani3(MINER_SCAN_PARAMS); \
    int p##_miner_scan_shani4(MINER_SCAN_PARAMS); int p##_miner_scan_shani3_versions(MINER_SCAN_VERSIONS_PARAMS); \
    __attribute__((weak)) int p##_miner_scan_shani2_versions(MINER_SCAN_VERSIONS_PARAMS);
SIDE(a)
SIDE(b)
static int cmp(const void *x, const void *y) { double u = *(const double *)x, v = *(const double *)y; return (u > v) - (u < v); }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 31;
    const uint32_t N = 1u << 18;
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    miner_work w[8];
    for (int v = 0; v < 8; v++) {  /* 8 versions of one header: only word 0 of block 1 differs */
        uint32_t blk[16];
        for (int i = 0; i < 16; i++) blk[i] = 0x01020304u * (uint32_t)(i + 1) ^ (i == 0 ? (uint32_t)v << 13 : 0);
        memcpy(w[v].midstate, iv, sizeof iv);
        miner_sha256_compress_portable(w[v].midstate, blk);
        for (int i = 0; i < 3; i++) w[v].tail[i] = 0x11223344u * (uint32_t)(i + 3);
        memset(w[v].target, 0, sizeof w[v].target);
        w[v].target[6] = 0xffff;
    }
    const char *names[] = {"2-lane", "3-lane", "4-lane", "3-lane x8 versions", "2-lane x8 versions"};
    const int cells = a_miner_scan_shani2_versions && b_miner_scan_shani2_versions ? 10 : 8;
    double *t = calloc((size_t)10 * (size_t)rounds, sizeof *t);
    uint32_t out[512]; uint64_t next; volatile int stop = 0;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < cells; i++) {
            uint32_t s = (uint32_t)r * N;
            unsigned long long c = __rdtsc();
            switch (i) {
            case 0: a_miner_scan_shani2(w, s, N, out, 16, &next, &stop); break;
            case 1: b_miner_scan_shani2(w, s, N, out, 16, &next, &stop); break;
            case 2: a_miner_scan_shani3(w, s, N, out, 16, &next, &stop); break;
            case 3: b_miner_scan_shani3(w, s, N, out, 16, &next, &stop); break;
            case 4: a_miner_scan_shani4(w, s, N, out, 16, &next, &stop); break;
            case 5: b_miner_scan_shani4(w, s, N, out, 16, &next, &stop); break;
            case 6: a_miner_scan_shani3_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            case 7: b_miner_scan_shani3_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            case 8: a_miner_scan_shani2_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            case 9: b_miner_scan_shani2_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            }
            t[i * rounds + r] = (double)(__rdtsc() - c) / N;  /* TSC per hash */
        }
    for (int i = 0; i < cells; i += 2) {
        double *q = malloc(sizeof *q * (size_t)rounds);
        for (int r = 0; r < rounds; r++) q[r] = t[(i + 1) * rounds + r] / t[i * rounds + r];
        qsort(q, (size_t)rounds, sizeof *q, cmp);
        qsort(t + i * rounds, (size_t)rounds, sizeof *t, cmp);
        qsort(t + (i + 1) * rounds, (size_t)rounds, sizeof *t, cmp);
        printf("%-19s A median %6.1f min %6.1f | B median %6.1f min %6.1f TSC/hash | B/A time, paired median %.3f\n",
               names[i / 2], t[i * rounds + rounds / 2], t[i * rounds], t[(i + 1) * rounds + rounds / 2],
               t[(i + 1) * rounds], q[rounds / 2]);
        free(q);
    }
    return 0;
}
EOF
gcc -O2 -std=gnu11 -I"$HERE/csrc" -o "$OUT/ab" "$OUT/ab.c" "$OUT/a.renamed.o" "$OUT/b.renamed.o" \
    "$OUT/dispatch.o" "$OUT/sha256_portable.o" "$OUT/sha256_avx2.o" "$OUT/sha256_shani.o" \
    "$OUT/sha256_shani_vex.o" "$OUT/sha256_avx512.o" "$OUT/sha256_armv8.o"
echo "A = $A, B = $B, $ROUNDS rounds of 256 Ki nonces each"
"$OUT/ab" "$ROUNDS"
