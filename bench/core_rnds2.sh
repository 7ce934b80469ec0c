#!/bin/sh
# Throughput and latency of SHA256RNDS2 / SHA256MSG1 / SHA256MSG2 on this CPU,
# in TSC ticks (reference cycles), to explain the SHA-NI figures in
# docs/benchmarks/core.md: a nonce needs 62 RNDS2, so RNDS2's reciprocal
# throughput bounds shani(N-lane) from below, however many lanes interleave.
#   bench/core_rnds2.sh [OUT_DIR]
set -eu
OUT=${1:-/tmp/core_rnds2}
mkdir -p "$OUT"
cat > "$OUT/rnds2.c" <<'EOF'
#include <immintrin.h>
#include <stdio.h>
#include <x86intrin.h>
#define N 10000000L
#define SINK8(a) __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]))
__attribute__((target("sha,sse4.1"))) int main(void) {
    __m128i a[8], b[8], k = _mm_set1_epi32(5);
    for (int i = 0; i < 8; i++) { a[i] = _mm_set1_epi32(i); b[i] = _mm_set1_epi32(3 * i); }
    unsigned long long t = __rdtsc();
    for (long n = 0; n < N; n++) { for (int i = 0; i < 8; i++) a[i] = _mm_sha256rnds2_epu32(a[i], b[i], k); SINK8(a); }
    printf("sha256rnds2, 8 independent chains: %.2f TSC/instruction\n", (double)(__rdtsc() - t) / N / 8);
    t = __rdtsc();
    for (long n = 0; n < N; n++) { for (int i = 0; i < 8; i++) a[0] = _mm_sha256rnds2_epu32(a[0], b[0], k); SINK8(a); }
    printf("sha256rnds2, one dependent chain: %.2f TSC/instruction\n", (double)(__rdtsc() - t) / N / 8);
    t = __rdtsc();
    for (long n = 0; n < N; n++) { for (int i = 0; i < 8; i++) a[i] = _mm_sha256msg1_epu32(a[i], b[i]); SINK8(a); }
    printf("sha256msg1, 8 independent chains: %.2f TSC/instruction\n", (double)(__rdtsc() - t) / N / 8);
    t = __rdtsc();
    for (long n = 0; n < N; n++) { for (int i = 0; i < 8; i++) a[i] = _mm_sha256msg2_epu32(a[i], b[i]); SINK8(a); }
    printf("sha256msg2, 8 independent chains: %.2f TSC/instruction\n", (double)(__rdtsc() - t) / N / 8);
    int s = 0;
    for (int i = 0; i < 8; i++) s += _mm_cvtsi128_si32(a[i]);
    return s == 12345;
}
EOF
gcc -O2 -o "$OUT/rnds2" "$OUT/rnds2.c"
"$OUT/rnds2"
