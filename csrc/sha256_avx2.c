/*
 * x86 AVX2: eight nonces per call, one per 32-bit lane of a __m256i, from
 * csrc/sha256d_lanes.h. Every function here carries target("avx2"); the
 * dispatcher calls them only after CPUID and XGETBV say AVX2 state is on.
 */
#include "impl.h"
#if defined(MINER_X86)
#include <immintrin.h>
#define SHA256_U32 uint32_t
#include "sha256_common.h"

#define AVX2_ATTR __attribute__((target("avx2")))
#define LV __m256i
#define LV_ADD(x, y) _mm256_add_epi32(x, y)
#define LV_XOR(x, y) _mm256_xor_si256(x, y)
#define LV_AND(x, y) _mm256_and_si256(x, y)
#define LV_OR(x, y) _mm256_or_si256(x, y)
#define LV_SHR(x, n) _mm256_srli_epi32(x, n)
#define LV_SHL(x, n) _mm256_slli_epi32(x, n)
#define LV_ROTR(x, n) LV_OR(LV_SHR(x, n), LV_SHL(x, 32 - (n)))
#define LV_SET1(x) _mm256_set1_epi32((int)(x))
#define LANES_FN sha256d_h7_avx2
#define LANES_VERSIONS_FN sha256d_h7v_avx2
#define LANES_ATTR static inline __attribute__((always_inline, target("avx2")))
#include "sha256d_lanes.h"

/* Nonces n0..n0+7 as header words (byte-swapped), then word 7 of each hash. */
static inline __attribute__((always_inline, target("avx2")))
void avx2_lanes(const miner_pre *pre, uint32_t n0, uint32_t h7[8]) {
    const __m256i bswap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
                                          12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m256i n = _mm256_add_epi32(_mm256_set1_epi32((int)n0), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    __m256i r = sha256d_h7_avx2(pre, _mm256_shuffle_epi8(n, bswap));
    _mm256_storeu_si256((__m256i *)h7, r);
}

#define AVX2_LANES(n0, h7) avx2_lanes(&pre, n0, h7)

AVX2_ATTR int miner_scan_avx2(const miner_work *w, uint32_t start, uint64_t count,
                              uint32_t *out, int cap, uint64_t *next, const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    MINER_SCAN_LOOP(8, AVX2_LANES);
}

/* Up to MINER_MAX_VERSIONS versions of the header per 8 nonces, sharing the
 * first hash's schedule (LANES_VERSIONS_FN in sha256d_lanes.h). */
static inline __attribute__((always_inline, target("avx2")))
void avx2_lanes_versions(const miner_pre *pre, int nv, uint32_t n0, uint32_t *h7) {
    const __m256i bswap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
                                          12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m256i n = _mm256_add_epi32(_mm256_set1_epi32((int)n0), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    __m256i r[MINER_MAX_VERSIONS];
    sha256d_h7v_avx2(pre, nv, _mm256_shuffle_epi8(n, bswap), r);
    for (int v = 0; v < nv; v++) _mm256_storeu_si256((__m256i *)(h7 + 8 * v), r[v]);
}

AVX2_ATTR int miner_scan_avx2_versions(const miner_work *w, int nv, uint32_t start, uint64_t count,
                                       uint32_t *out, int cap, uint64_t *next, const volatile int *abort) {
    miner_pre pre[MINER_MAX_VERSIONS];
    for (int v = 0; v < nv; v++) miner_precompute(&w[v], &pre[v]);
    MINER_SCAN_VERSIONS_LOOP(8, nv, avx2_lanes_versions(pre, nv, (uint32_t)n_, h7_));
}
#endif
