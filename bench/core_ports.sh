#!/bin/sh
# Microbenchmarks behind "Where the AVX-512 code stands against the hardware"
# in docs/benchmarks/core.md, in TSC ticks (this VM has no cycle counters):
#  - the core clock against the TSC, from a chain of 3-cycle IMULs;
#  - 512-bit VPADDD / VPTERNLOGD / VPRORD throughput, and whether register
#    moves next to VPTERNLOGD cost issue slots (move elimination);
#  - SHA256RNDS2 alone, and next to live 512-bit state (the SSE/AVX-512
#    transition cost that keeps SHA-NI and AVX-512 code in separate threads);
#  - the vector operation mix of the compiled AVX-512 scan (objdump of the
#    installed core), the count the section quotes.
#   bench/core_ports.sh [OUT_DIR]
set -eu
OUT=${1:-/tmp/core_ports}
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
cat > "$OUT/ports.c" <<'EOF'
#include <immintrin.h>
#include <stdio.h>
#include <x86intrin.h>
#define N 20000000L
#define REP4(x) x x x x
#define SINK8(a) __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]))
static double per_iter(unsigned long long t) { return (double)(__rdtsc() - t) / N; }
__attribute__((target("sha,sse4.1,avx512f"))) int main(void) {
    unsigned long long t;
    long x = 3;
    t = __rdtsc();
    for (long n = 0; n < N; n++) __asm__ volatile(".rept 16\n imul %0, %0\n.endr\n" : "+r"(x));
    printf("TSC per core cycle (16 dependent IMULs of 3 cycles): %.3f\n", per_iter(t) / 48);
#define ZLOOP(label, body)                                                           \
    t = __rdtsc();                                                                   \
    for (long n = 0; n < N; n++) __asm__ volatile(body ::: "xmm3", "xmm4", "xmm5", "xmm6"); \
    printf("%-44s %6.2f TSC\n", label, per_iter(t));
    ZLOOP("16 independent VPADDD zmm", ".rept 4\n vpaddd %%zmm1, %%zmm2, %%zmm3\n vpaddd %%zmm1, %%zmm2, %%zmm4\n vpaddd %%zmm1, %%zmm2, %%zmm5\n vpaddd %%zmm1, %%zmm2, %%zmm6\n.endr\n")
    ZLOOP("16 VPTERNLOGD zmm (4 chains)", ".rept 4\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm3\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm4\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm5\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm6\n.endr\n")
    ZLOOP("16 VPTERNLOGD zmm + 16 VMOVDQA32", ".rept 4\n vmovdqa32 %%zmm1, %%zmm3\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm3\n vmovdqa32 %%zmm1, %%zmm4\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm4\n vmovdqa32 %%zmm1, %%zmm5\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm5\n vmovdqa32 %%zmm1, %%zmm6\n vpternlogd $0x96, %%zmm1, %%zmm2, %%zmm6\n.endr\n")
    ZLOOP("16 independent VPRORD zmm", ".rept 4\n vprord $3, %%zmm1, %%zmm3\n vprord $3, %%zmm1, %%zmm4\n vprord $3, %%zmm1, %%zmm5\n vprord $3, %%zmm1, %%zmm6\n.endr\n")
    __m128i a[8], b[8], k = _mm_set1_epi32(5);
    for (int i = 0; i < 8; i++) { a[i] = _mm_set1_epi32(i); b[i] = _mm_set1_epi32(3 * i); }
    _mm256_zeroupper();
    t = __rdtsc();
    for (long n = 0; n < N / 100; n++) { for (int i = 0; i < 8; i++) a[i] = _mm_sha256rnds2_epu32(a[i], b[i], k); SINK8(a); }
    printf("%-44s %6.2f TSC\n", "8 SHA256RNDS2, clean upper state", (double)(__rdtsc() - t) / (N / 100));
    /* Make the upper ZMM state dirty and keep it live across the SHA-NI loop. */
    __m512i z = _mm512_set1_epi32((int)x);
    __asm__ volatile("" : "+v"(z));
    t = __rdtsc();
    for (long n = 0; n < N / 1000; n++) { for (int i = 0; i < 8; i++) a[i] = _mm_sha256rnds2_epu32(a[i], b[i], k); SINK8(a); __asm__ volatile("" : "+v"(z)); }
    printf("%-44s %6.2f TSC\n", "8 SHA256RNDS2, live 512-bit state", (double)(__rdtsc() - t) / (N / 1000));
    int s = _mm512_reduce_add_epi32(z);
    for (int i = 0; i < 8; i++) s += _mm_cvtsi128_si32(a[i]);
    return s == 12345;
}
EOF
gcc -O2 -o "$OUT/ports" "$OUT/ports.c"
"$OUT/ports"
# The vector operation mix of one 16-nonce body of the installed AVX-512 scan.
SO=$(python3 -c 'import miner.core._sha256d as m; print(m.__file__)' 2>/dev/null || true)
if [ -n "$SO" ]; then
    echo "miner_scan_avx512 in $SO:"
    objdump -d --no-show-raw-insn "$SO" | awk '/<miner_scan_avx512>:/,/^$/' | awk '{print $2}' \
        | grep -E '^(vpaddd|vpternlogd|vprord|vprold|vpsrld|vmovdqa32)$' | sort | uniq -c | sort -rn
fi
