#!/bin/sh
# What the SHA-NI instructions cost on this CPU, in TSC ticks (reference
# cycles, not core cycles: a VM cannot count those), to explain the SHA-NI
# figures in docs/benchmarks/core.md:
#   - SHA256RNDS2's latency along SHA-256's own chain (each result is the next
#     instruction's ABEF operand and the one after's CDGH operand), and through
#     each operand alone;
#   - its throughput (8 independent chains), and SHA256MSG1's and SHA256MSG2's;
#   - what other instructions cost next to RNDS2 at full throughput: ticks added
#     to 8 RNDS2 by 4 and by 8 independent PSHUFD, PALIGNR, PADDD, PSLLQ, MOVQ
#     loads, SHA256MSG1 or SHA256MSG2 (0 = free: another pipe).
# Each figure is also given in core cycles: a chain of dependent register-register adds (one
# core cycle each; the fastest of five, about 1 ms) is timed right after every measurement, so the
# conversion uses the clock of that moment (a shared host's turbo clock moves by 10-15% within minutes; bench/core_clock.sh).
# Every timed value stays in a register: the loops are fully unrolled over
# named lanes and the script refuses a build whose timed SHA instructions read
# or write memory (an earlier version kept its chains in a stack array, and
# the store/reload went into its figures).
#   bench/core_rnds2.sh [OUT_DIR]
set -eu
OUT=${1:-/tmp/core_rnds2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
cat > "$OUT/rnds2.c" <<'EOF'
#include <immintrin.h>
#include <stdio.h>
#include <x86intrin.h>
#include "add_chain.h"
#define N 4000000L
#define UNROLL _Pragma("GCC unroll 8")
#define KEEP8(a) __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]))
#define KEEP4(c) __asm__ volatile("" : "+x"(c[0]), "+x"(c[1]), "+x"(c[2]), "+x"(c[3]))
#define ATTR __attribute__((target("sha,avx"), noinline))
static double per(unsigned long long t0, long n, int k) { return (double)(__rdtsc() - t0) / n / k; }
/* TSC ticks per core cycle now (add_chain.h), the fastest of 5 chains. */
static double tick(void) { return tsc_per_cycle(5); }
static void say(const char *label, double tsc, const char *unit) {
    printf("%s: %.2f TSC%s (%.2f core cycles)\n", label, tsc, unit, tsc / tick());
}

/* One dependent chain: x = expr, 8 times a pass; y is the operand that stays put. */
#define CHAIN(label, x, y, expr)                                                        \
    do {                                                                                \
        unsigned long long t_ = __rdtsc();                                              \
        for (long n = 0; n < N; n++) {                                                  \
            UNROLL for (int i = 0; i < 8; i++) x = (expr);                              \
            __asm__ volatile("" : "+x"(x), "+x"(y));                                    \
        }                                                                               \
        say(label, per(t_, N, 8), "");                                                  \
    } while (0)

ATTR static void latency(void) {
    __m128i a = _mm_set1_epi32(1), c = _mm_set1_epi32(2), d = _mm_set1_epi32(3), k = _mm_set1_epi32(5);
    unsigned long long t = __rdtsc();
    for (long n = 0; n < N; n++) {
        UNROLL for (int i = 0; i < 4; i++) { c = _mm_sha256rnds2_epu32(c, a, k); a = _mm_sha256rnds2_epu32(a, c, k); }
        __asm__ volatile("" : "+x"(a), "+x"(c));
    }
    say("sha256rnds2 latency, SHA-256's alternating chain", per(t, N, 8), "");
    CHAIN("sha256rnds2 latency, through the ABEF (source) operand", a, d, _mm_sha256rnds2_epu32(d, a, k));
    CHAIN("sha256rnds2 latency, through the CDGH (destination) operand", a, d, _mm_sha256rnds2_epu32(a, d, k));
    /* The schedule's own chain: group g = msg2(msg1(g-4, g-3) + alignr(g-1, g-2), g-1). */
    __m128i w1 = _mm_set1_epi32(4), w2 = _mm_set1_epi32(6), m = _mm_set1_epi32(8);
    t = __rdtsc();
    for (long n = 0; n < N; n++) {
        UNROLL for (int i = 0; i < 8; i++) {
            __m128i g = _mm_sha256msg2_epu32(_mm_add_epi32(m, _mm_alignr_epi8(w1, w2, 4)), w1);
            w2 = w1;
            w1 = g;
        }
        __asm__ volatile("" : "+x"(w1), "+x"(w2));
    }
    say("schedule group latency (palignr, paddd, sha256msg2)", per(t, N, 8), "");
    CHAIN("sha256msg2 latency, through its first operand", w1, m, _mm_sha256msg2_epu32(w1, m));
    CHAIN("sha256msg2 latency, through its second operand", w1, m, _mm_sha256msg2_epu32(m, w1));
    CHAIN("sha256msg1 latency", w1, m, _mm_sha256msg1_epu32(w1, m));
}

#define THROUGHPUT(name, expr)                                                          \
    ATTR static void tp_##name(void) {                                                  \
        __m128i a[8], b = _mm_set1_epi32(7), k = _mm_set1_epi32(5);                     \
        UNROLL for (int i = 0; i < 8; i++) a[i] = _mm_set1_epi32(i);                    \
        unsigned long long t = __rdtsc();                                               \
        for (long n = 0; n < N; n++) { UNROLL for (int i = 0; i < 8; i++) a[i] = (expr); KEEP8(a); } \
        say(#name " throughput, 8 independent chains", per(t, N, 8), "/instruction"); \
        (void)k;                                                                        \
    }
THROUGHPUT(sha256rnds2, _mm_sha256rnds2_epu32(a[i], b, k))
THROUGHPUT(sha256msg1, _mm_sha256msg1_epu32(a[i], b))
THROUGHPUT(sha256msg2, _mm_sha256msg2_epu32(a[i], b))

/* 8 RNDS2 (independent chains) and X other instructions on 4 independent chains. */
static const __m128i mem[4] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
#define BESIDE(name, X, expr)                                                           \
    ATTR static double bs_##name##_##X(void) {                                          \
        __m128i a[8], c[4], b = _mm_set1_epi32(7), k = _mm_set1_epi32(5);               \
        UNROLL for (int i = 0; i < 8; i++) a[i] = _mm_set1_epi32(i);                    \
        UNROLL for (int i = 0; i < 4; i++) c[i] = _mm_set1_epi32(9 * i);                \
        unsigned long long t = __rdtsc();                                               \
        for (long n = 0; n < N; n++) {                                                  \
            UNROLL for (int i = 0; i < 8; i++) a[i] = _mm_sha256rnds2_epu32(a[i], b, k); \
            /* KEEP4 after every 4: the compiler may not fold two ops on one c[i] into one. */ \
            UNROLL for (int j = 0; j < (X); j++) { c[j & 3] = (expr); if ((j & 3) == 3) KEEP4(c); } \
            KEEP4(c); KEEP8(a);                                                         \
        }                                                                               \
        return per(t, N, 1);                                                            \
    }
#define OPS(name, expr) BESIDE(name, 0, expr) BESIDE(name, 4, expr) BESIDE(name, 8, expr)
OPS(pshufd, _mm_shuffle_epi32(c[j & 3], 0x0E))
OPS(palignr, _mm_alignr_epi8(c[j & 3], b, 4))
OPS(paddd, _mm_add_epi32(c[j & 3], b))
OPS(psllq, _mm_slli_epi64(c[j & 3], 32))
OPS(movq_load, _mm_add_epi32(c[j & 3], _mm_loadl_epi64((const __m128i *)&mem[j & 3])))
OPS(sha256msg1, _mm_sha256msg1_epu32(c[j & 3], b))
OPS(sha256msg2, _mm_sha256msg2_epu32(c[j & 3], b))
#define ROW(name)                                                                       \
    do {                                                                                \
        double z = bs_##name##_0(), f = bs_##name##_4(), e = bs_##name##_8();           \
        printf("8 sha256rnds2 %.2f TSC; + 4 %-10s +%.2f, + 8 +%.2f (%.2f, %.2f TSC each)\n", \
               z, #name, f - z, e - z, (f - z) / 4, (e - z) / 8);                       \
    } while (0)

int main(void) {
    double c = tick();
    printf("core clock: %.3f TSC ticks per cycle (a dependent register add)\n", c);
    latency();
    tp_sha256rnds2(); tp_sha256msg1(); tp_sha256msg2();
    ROW(pshufd); ROW(palignr); ROW(paddd); ROW(psllq); ROW(movq_load); ROW(sha256msg1); ROW(sha256msg2);
    return 0;
}
EOF
gcc -O2 -I"$HERE/bench" -o "$OUT/rnds2" "$OUT/rnds2.c"
# The timed SHA instructions must work on registers only.
if objdump -d "$OUT/rnds2" | grep -E 'sha256(rnds2|msg1|msg2) .*\(' >/dev/null; then
    echo "core_rnds2.sh: the compiler put a timed SHA instruction's operand in memory; figures would be wrong" >&2
    exit 1
fi
"$OUT/rnds2"
