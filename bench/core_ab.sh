#!/bin/sh
# Two builds of the SHA-NI (or AVX-512) code in one process, alternated call by call: the
# paired time ratio per hash (B over A), median over the rounds. On a shared
# host this is the comparison the host's spread disturbs least.
#   bench/core_ab.sh REV_A:BUILD REV_B:BUILD [ROUNDS] [OUT_DIR]
# REV is a git revision of this repository (or WORK for the working tree),
# BUILD is sse (csrc/sha256_shani.c), vex (csrc/sha256_shani_vex.c) or avx512
# (csrc/sha256_avx512.c; both sides must be avx512). E.g.
#   bench/core_ab.sh c1a50b7:sse WORK:vex 41      # the VEX build against the SSE code before it
#   bench/core_ab.sh WORK:vex WORK:vex 41         # the harness's own noise (A/A)
#   bench/core_ab.sh 73635f2:avx512 WORK:avx512 41  # AVX-512 no-regress check (its scan loops share impl.h)
# The SHA-NI rows include the 2-lane version scan at 8 and at 3 versions where both revisions have it.
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
        avx512) file=sha256_avx512.c ;;
        *) echo "BUILD must be sse, vex or avx512, not $build" >&2; exit 2 ;;
    esac
    gcc -O3 -std=gnu11 -c -I"$src/csrc" -I"$src/kernels" -o "$OUT/$1.o" "$src/csrc/$file"
    args=$(nm "$OUT/$1.o" | awk -v p="$1" '$2=="T" && $3 ~ /^miner_scan_(shani|avx512)/ {n=$3; sub(/_vex$/,"",n); printf " --redefine-sym %s=%s_%s", $3, p, n}')
    # shellcheck disable=SC2086
    objcopy $args "$OUT/$1.o" "$OUT/$1.renamed.o"
}
side a "$A"
side b "$B"
case "${A##*:}${B##*:}" in
    avx512avx512) KIND=avx512 ;;
    *avx512*) echo "avx512 is paired only with avx512" >&2; exit 2 ;;
    *) KIND=shani ;;
esac
OBJS=$("$HERE/bench/core_objects.sh" "$OUT")
cat > "$OUT/ab.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include "impl.h"
#ifdef AB_AVX512
#define SIDE(p) int p##_miner_scan_avx512(MINER_SCAN_PARAMS); int p##_miner_scan_avx512x2(MINER_SCAN_PARAMS); \
    int p##_miner_scan_avx512_versions(MINER_SCAN_VERSIONS_PARAMS);
#define SCAN2 miner_scan_avx512
#define SCAN3 miner_scan_avx512x2
#define CALL4(p) CAT(p, miner_scan_avx512_versions)(w, 4, s, N / 4, out, 256, &next, &stop)
#define SCANV miner_scan_avx512_versions
#define HAVE_V2(p) 0
static const char *names[] = {"avx512(16-way)", "avx512(32-way)", "16-way x4 versions", "16-way x8 versions", "", ""};
#else
#define SCAN2 miner_scan_shani2
#define SCAN3 miner_scan_shani3
#define CALL4(p) CAT(p, miner_scan_shani4)(w, s, N, out, 16, &next, &stop)
#define SCANV miner_scan_shani3_versions
#define HAVE_V2(p) p##_miner_scan_shani2_versions
static const char *names[] = {"2-lane", "3-lane", "4-lane", "3-lane x8 versions", "2-lane x8 versions",
                              "2-lane x3 versions"};
/* The 2-lane version scan is weak: revisions before it have none, and its row is left out. */
#define SIDE(p) int p##_miner_scan_shani2(MINER_SCAN_PARAMS); int p##_miner_scan_shani3(MINER_SCAN_PARAMS); \
    int p##_miner_scan_shani4(MINER_SCAN_PARAMS); int p##_miner_scan_shani3_versions(MINER_SCAN_VERSIONS_PARAMS); \
    __attribute__((weak)) int p##_miner_scan_shani2_versions(MINER_SCAN_VERSIONS_PARAMS);
#endif
#define CAT_(p, f) p##_##f
#define CAT(p, f) CAT_(p, f)
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
    const int cells = HAVE_V2(a) && HAVE_V2(b) ? 12 : 8;
    double *t = calloc((size_t)12 * (size_t)rounds, sizeof *t);
    uint32_t out[512]; uint64_t next; volatile int stop = 0;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < cells; i++) {
            uint32_t s = (uint32_t)r * N;
            unsigned long long c = __rdtsc();
            switch (i) {
            case 0: CAT(a, SCAN2)(w, s, N, out, 16, &next, &stop); break;
            case 1: CAT(b, SCAN2)(w, s, N, out, 16, &next, &stop); break;
            case 2: CAT(a, SCAN3)(w, s, N, out, 16, &next, &stop); break;
            case 3: CAT(b, SCAN3)(w, s, N, out, 16, &next, &stop); break;
            case 4: CALL4(a); break;
            case 5: CALL4(b); break;
            case 6: CAT(a, SCANV)(w, 8, s, N / 8, out, 256, &next, &stop); break;
            case 7: CAT(b, SCANV)(w, 8, s, N / 8, out, 256, &next, &stop); break;
#ifndef AB_AVX512
            case 8: a_miner_scan_shani2_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            case 9: b_miner_scan_shani2_versions(w, 8, s, N / 8, out, 256, &next, &stop); break;
            /* Fewer than 4 versions: the 2-lane code per version (shani2_versions_few). */
            case 10: a_miner_scan_shani2_versions(w, 3, s, N / 3, out, 256, &next, &stop); break;
            case 11: b_miner_scan_shani2_versions(w, 3, s, N / 3, out, 256, &next, &stop); break;
#endif
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
DEF=; [ "$KIND" = avx512 ] && DEF=-DAB_AVX512
# shellcheck disable=SC2086
gcc -O2 -std=gnu11 $DEF -I"$HERE/csrc" -o "$OUT/ab" "$OUT/ab.c" "$OUT/a.renamed.o" "$OUT/b.renamed.o" $OBJS
echo "A = $A, B = $B, $ROUNDS rounds of 256 Ki nonces each"
"$OUT/ab" "$ROUNDS"
