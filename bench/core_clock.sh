#!/bin/sh
# The core clock while each scan runs, in core cycles per TSC tick, on a VM where `perf stat -e
# cycles` is not supported (every figure in docs/benchmarks/core.md is in TSC ticks; this turns
# them into core cycles, and shows whether a code lowers the clock, as AVX-512 can on Intel).
# A chain of dependent register-register adds (bench/add_chain.h) runs at one add per core cycle,
# so adds per TSC tick is the clock over the TSC rate.
# Each round, for every usable code but portable: one scan call of 256 Ki nonces, then the chain
# (about 0.2 ms, "right after"), then 3 ms of a scalar spin, then the chain again ("3 ms later").
# Medians over the rounds; the TSC rate comes from clock_gettime over 50 ms.
#   bench/core_clock.sh [ROUNDS] [OUT_DIR]
set -eu
ROUNDS=${1:-21}
OUT=${2:-/tmp/core_clock}
HERE=$(cd "$(dirname "$0")/.." && pwd)
OBJS=$("$HERE/bench/core_objects.sh" "$OUT")   # also makes OUT_DIR
cat > "$OUT/clock.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>
#include "core.h"
#include "add_chain.h"
/* One chain, right after a scan: its clock, not the fastest of several. */
static double adds_per_tick(void) { return 1.0 / tsc_per_cycle(1); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double u = *(const double *)a, v = *(const double *)b; return (u > v) - (u < v); }
static double med(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 21;
    const uint32_t n = 1u << 18;
    double t0 = now(); unsigned long long c0 = __rdtsc();
    while (now() - t0 < 0.05) ;
    double tsc_hz = (double)(__rdtsc() - c0) / (now() - t0);
    unsigned long long spin = (unsigned long long)(tsc_hz * 0.003);
    uint8_t header[80], target[32] = {0};
    miner_genesis_header(header);
    target[26] = target[27] = 0xff;
    uint32_t out[64]; uint64_t next;
    int ni = miner_impl_count();
    double *a = calloc((size_t)ni * rounds, sizeof *a), *b = calloc((size_t)ni * rounds, sizeof *b);
    double *idle = calloc((size_t)rounds, sizeof *idle);
    for (int r = 0; r < rounds; r++) {
        idle[r] = adds_per_tick();
        for (int i = 0; i < ni; i++) {
            if (!miner_impl_usable(i) || !strcmp(miner_impl_name(i), "portable")) continue;
            miner_scan(i, header, (uint32_t)r * n, n, target, out, 64, &next, NULL);
            a[i * rounds + r] = adds_per_tick();
            unsigned long long c = __rdtsc();
            while (__rdtsc() - c < spin) ;
            b[i * rounds + r] = adds_per_tick();
        }
    }
    double im = med(idle, rounds);
    printf("%d rounds; TSC %.1f MHz; scalar code: %.3f core cycles per TSC tick (%.2f GHz)\n",
           rounds, tsc_hz / 1e6, im, im * tsc_hz / 1e9);
    for (int i = 0; i < ni; i++) {
        if (!miner_impl_usable(i) || !strcmp(miner_impl_name(i), "portable")) continue;
        double *x = a + i * rounds, lo, hi, m, later;
        m = med(x, rounds); lo = x[0]; hi = x[rounds - 1];
        later = med(b + i * rounds, rounds);
        printf("%-20s right after its scan %.3f cycles/tick (%.2f GHz; %.3f-%.3f) | 3 ms later %.3f\n",
               miner_impl_name(i), m, m * tsc_hz / 1e9, lo, hi, later);
    }
    return 0;
}
EOF
# shellcheck disable=SC2086
gcc -O2 -I"$HERE/csrc" -I"$HERE/bench" -o "$OUT/clock" "$OUT/clock.c" $OBJS
"$OUT/clock" "$ROUNDS"
