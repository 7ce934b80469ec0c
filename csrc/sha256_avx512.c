/*
 * x86 AVX-512 (F + BW): sixteen nonces per call, one per 32-bit lane of a
 * __m512i, from csrc/sha256d_lanes.h, with the native rotate (VPRORD) and
 * three-input logic (VPTERNLOGD) for the XOR triples, Ch and Maj. Every
 * function here carries target("avx512f") (plus "avx512bw" where the candidate
 * test shuffles bytes); the dispatcher calls them only after CPUID and XGETBV
 * say the CPU has both and the OS saves the ZMM state.
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
#define LANES_VERSIONS_FN sha256d_h7v_avx512
#define LANES_ATTR static inline __attribute__((always_inline, target("avx512f")))
#include "sha256d_lanes.h"

/* Nonces n0..n0+15 as header words: byte-swap each lane with two rotates and a merge. */
static inline __attribute__((always_inline, target("avx512f")))
__m512i avx512_nonce_words(uint32_t n0) {
    __m512i n = _mm512_add_epi32(_mm512_set1_epi32((int)n0),
                                 _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    return _mm512_or_si512(_mm512_and_si512(_mm512_ror_epi32(n, 8), _mm512_set1_epi32((int)0xff00ff00u)),
                           _mm512_and_si512(_mm512_rol_epi32(n, 8), _mm512_set1_epi32(0x00ff00ff)));
}

/* Candidate lanes (miner_h7_candidate) as a mask: byte-swap h7 with VPSHUFB and
 * compare unsigned against target word 7 in the vector unit, so the common
 * no-candidate case costs three instructions instead of a scalar loop. */
static inline __attribute__((always_inline, target("avx512f,avx512bw")))
uint64_t avx512_candidates(__m512i h7, __m512i target7) {
    const __m512i bswap = _mm512_set_epi8(
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    return _mm512_cmple_epu32_mask(_mm512_shuffle_epi8(h7, bswap), target7);
}

#define AVX512_MASK(n0) avx512_candidates(sha256d_h7_avx512(&pre, avx512_nonce_words(n0)), t7)

/* BW is for VPSHUFB on ZMM in the candidate test; the dispatcher checks it. */
__attribute__((target("avx512f,avx512bw"))) int miner_scan_avx512(
    const miner_work *w, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    const __m512i t7 = _mm512_set1_epi32((int)w->target[7]);
    MINER_SCAN_LOOP_MASK(16, AVX512_MASK((uint32_t)n_));
}

/* The body of a version scan: each version's per-job data (pre[v]), target
 * word 7 broadcast (t7), then the scan loop. HASH_MASKS hashes the group at
 * n_ and fills m_[v] with the candidate lanes of version v (one compare each,
 * avx512_candidates); the loop ORs them, and every version of a marked nonce
 * whose own bit is set is confirmed. */
#define AVX512_VERSIONS_LOOP(LANES, HASH_MASKS)                                \
    do {                                                                       \
        miner_pre pre[MINER_MAX_VERSIONS];                                     \
        for (int v = 0; v < nv; v++) miner_precompute(&w[v], &pre[v]);         \
        const __m512i t7 = _mm512_set1_epi32((int)w[0].target[7]);             \
        uint64_t m_[MINER_MAX_VERSIONS];                                       \
        MINER_SCAN_VERSIONS_LOOP_(LANES, nv, ({                                \
            HASH_MASKS;                                                        \
            uint64_t a_ = 0;                                                   \
            for (int v = 0; v < nv; v++) a_ |= m_[v];                          \
            a_;                                                                \
        }), (m_[v_] >> l_ & 1));                                               \
    } while (0)

/* Up to MINER_MAX_VERSIONS versions of the header per 16 nonces, sharing the
 * first hash's schedule (see LANES_VERSIONS_FN in sha256d_lanes.h). */
__attribute__((target("avx512f,avx512bw"))) int miner_scan_avx512_versions(
    const miner_work *w, int nv, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    AVX512_VERSIONS_LOOP(16, {
        __m512i h7[MINER_MAX_VERSIONS];
        sha256d_h7v_avx512(pre, nv, avx512_nonce_words((uint32_t)n_), h7);
        for (int v = 0; v < nv; v++) m_[v] = avx512_candidates(h7[v], t7);
    });
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
#undef LANES_VERSIONS_FN
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
#define LANES_VERSIONS_FN sha256d_h7v_avx512x2
#define LANES_ATTR static inline __attribute__((always_inline, target("avx512f")))
#include "sha256d_lanes.h"

static inline __attribute__((always_inline, target("avx512f,avx512bw")))
uint64_t avx512x2_candidates(const miner_pre *pre, uint32_t n0, __m512i target7) {
    zmm2 r = sha256d_h7_avx512x2(pre, (zmm2){avx512_nonce_words(n0), avx512_nonce_words(n0 + 16)});
    return avx512_candidates(r.x, target7) | avx512_candidates(r.y, target7) << 16;
}

__attribute__((target("avx512f,avx512bw"))) int miner_scan_avx512x2(
    const miner_work *w, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    const __m512i t7 = _mm512_set1_epi32((int)w->target[7]);
    MINER_SCAN_LOOP_MASK(32, avx512x2_candidates(&pre, (uint32_t)n_, t7));
}

/* The version scan over the same pair of chains. Where one 16-lane chain is
 * bound by its own latency (AMD Zen 5: 70 TSC ticks a hash, against 53 for
 * two chains), the 16-way version scan is slower than the plain 32-way scan,
 * and rolling versions through it would cost hash rate instead of saving it. */
__attribute__((target("avx512f,avx512bw"))) int miner_scan_avx512x2_versions(
    const miner_work *w, int nv, uint32_t start, uint64_t count, uint32_t *out, int cap, uint64_t *next,
    const volatile int *abort) {
    AVX512_VERSIONS_LOOP(32, {
        zmm2 h7[MINER_MAX_VERSIONS];
        uint32_t n0 = (uint32_t)n_;
        sha256d_h7v_avx512x2(pre, nv, (zmm2){avx512_nonce_words(n0), avx512_nonce_words(n0 + 16)}, h7);
        for (int v = 0; v < nv; v++)
            m_[v] = avx512_candidates(h7[v].x, t7) | avx512_candidates(h7[v].y, t7) << 16;
    });
}
#endif
