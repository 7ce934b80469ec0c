/*
 * x86 AVX-512 (F + VL): sixteen nonces per call, one per 32-bit lane of a
 * __m512i, from csrc/sha256d_lanes.h, with the native rotate (VPRORD) and
 * three-input logic (VPTERNLOGD) for the XOR triples, Ch and Maj. Every
 * function here carries target("avx512f"); the dispatcher calls them only
 * after CPUID and XGETBV say the OS saves the ZMM state.
 */
#include "impl.h"
#if defined(MINER_X86)
#include <immintrin.h>
#define SHA256_U32 uint32_t
#include "sha256_common.h"

#define LV __m512i
#define LV_ADD(x, y) _mm512_add_epi32(x, y)
#define LV_XOR(x, y) _mm512_xor_si512(x, y)
#define LV_AND(x, y) _mm512_and_si512(x, y)
#define LV_OR(x, y) _mm512_or_si512(x, y)
#define LV_SHR(x, n) _mm512_srli_epi32(x, n)
#define LV_SHL(x, n) _mm512_slli_epi32(x, n)
#define LV_ROTR(x, n) _mm512_ror_epi32(x, n)
#define LV_SET1(x) _mm512_set1_epi32((int)(x))
/* Truth tables: 0x96 = x^y^z, 0xCA = x ? y : z (Ch), 0xE8 = majority. */
#define LV_XOR3(x, y, z) _mm512_ternarylogic_epi32(x, y, z, 0x96)
#define LV_CH(e, f, g) _mm512_ternarylogic_epi32(e, f, g, 0xCA)
#define LV_MAJ(a, b, c) _mm512_ternarylogic_epi32(a, b, c, 0xE8)
#define LANES_FN sha256d_h7_avx512
#define LANES_ATTR static inline __attribute__((always_inline, target("avx512f")))
#include "sha256d_lanes.h"

static inline __attribute__((always_inline, target("avx512f")))
void avx512_lanes(const miner_pre *pre, uint32_t n0, uint32_t h7[16]) {
    __m512i n = _mm512_add_epi32(_mm512_set1_epi32((int)n0),
                                 _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    /* Byte swap each lane: rotate by 8 and 24 then merge the right bytes. */
    __m512i sw = _mm512_or_si512(
        _mm512_and_si512(_mm512_ror_epi32(n, 8), _mm512_set1_epi32((int)0xff00ff00u)),
        _mm512_and_si512(_mm512_rol_epi32(n, 8), _mm512_set1_epi32(0x00ff00ff)));
    _mm512_storeu_si512((void *)h7, sha256d_h7_avx512(pre, sw));
}

#define AVX512_LANES(n0, h7) avx512_lanes(&pre, n0, h7)

__attribute__((target("avx512f"))) int miner_scan_avx512(
    const miner_work *w, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    MINER_SCAN_LOOP(16, AVX512_LANES);
}

/*
 * 32 nonces per call: the same code over a pair of __m512i, so two
 * independent dependency chains interleave instruction by instruction
 * (32 ZMM registers leave room for both states).
 */
typedef struct {
    __m512i x, y;
} zmm2;
#define Z2 static inline __attribute__((always_inline, target("avx512f"))) zmm2
Z2 z2_add(zmm2 a, zmm2 b) { return (zmm2){_mm512_add_epi32(a.x, b.x), _mm512_add_epi32(a.y, b.y)}; }
Z2 z2_xor(zmm2 a, zmm2 b) { return (zmm2){_mm512_xor_si512(a.x, b.x), _mm512_xor_si512(a.y, b.y)}; }
Z2 z2_and(zmm2 a, zmm2 b) { return (zmm2){_mm512_and_si512(a.x, b.x), _mm512_and_si512(a.y, b.y)}; }
Z2 z2_or(zmm2 a, zmm2 b) { return (zmm2){_mm512_or_si512(a.x, b.x), _mm512_or_si512(a.y, b.y)}; }
Z2 z2_set1(uint32_t v) {
    __m512i t = _mm512_set1_epi32((int)v);
    return (zmm2){t, t};
}
#define Z2_EACH(expr_x, expr_y) ((zmm2){expr_x, expr_y})
#define Z2_TERN(a, b, c, imm) \
    Z2_EACH(_mm512_ternarylogic_epi32((a).x, (b).x, (c).x, imm), _mm512_ternarylogic_epi32((a).y, (b).y, (c).y, imm))

#undef LV
#undef LV_ADD
#undef LV_XOR
#undef LV_AND
#undef LV_OR
#undef LV_SHR
#undef LV_SHL
#undef LV_ROTR
#undef LV_SET1
#undef LV_XOR3
#undef LV_CH
#undef LV_MAJ
#undef LANES_FN
#undef LANES_ATTR
#define LV zmm2
#define LV_ADD(a, b) z2_add(a, b)
#define LV_XOR(a, b) z2_xor(a, b)
#define LV_AND(a, b) z2_and(a, b)
#define LV_OR(a, b) z2_or(a, b)
#define LV_SHR(a, n) Z2_EACH(_mm512_srli_epi32((a).x, n), _mm512_srli_epi32((a).y, n))
#define LV_SHL(a, n) Z2_EACH(_mm512_slli_epi32((a).x, n), _mm512_slli_epi32((a).y, n))
#define LV_ROTR(a, n) Z2_EACH(_mm512_ror_epi32((a).x, n), _mm512_ror_epi32((a).y, n))
#define LV_SET1(v) z2_set1(v)
#define LV_XOR3(a, b, c) Z2_TERN(a, b, c, 0x96)
#define LV_CH(e, f, g) Z2_TERN(e, f, g, 0xCA)
#define LV_MAJ(a, b, c) Z2_TERN(a, b, c, 0xE8)
#define LANES_EARLY_SCHEDULE 1
#define LANES_FN sha256d_h7_avx512x2
#define LANES_ATTR static inline __attribute__((always_inline, target("avx512f")))
#include "sha256d_lanes.h"

static inline __attribute__((always_inline, target("avx512f")))
__m512i avx512_nonce_words(uint32_t n0) {
    __m512i n = _mm512_add_epi32(_mm512_set1_epi32((int)n0),
                                 _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    return _mm512_or_si512(_mm512_and_si512(_mm512_ror_epi32(n, 8), _mm512_set1_epi32((int)0xff00ff00u)),
                           _mm512_and_si512(_mm512_rol_epi32(n, 8), _mm512_set1_epi32(0x00ff00ff)));
}

static inline __attribute__((always_inline, target("avx512f")))
void avx512x2_lanes(const miner_pre *pre, uint32_t n0, uint32_t h7[32]) {
    zmm2 r = sha256d_h7_avx512x2(pre, (zmm2){avx512_nonce_words(n0), avx512_nonce_words(n0 + 16)});
    _mm512_storeu_si512((void *)h7, r.x);
    _mm512_storeu_si512((void *)(h7 + 16), r.y);
}

#define AVX512X2_LANES(n0, h7) avx512x2_lanes(&pre, n0, h7)

__attribute__((target("avx512f"))) int miner_scan_avx512x2(
    const miner_work *w, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    MINER_SCAN_LOOP(32, AVX512X2_LANES);
}
#endif
