/*
 * ARMv8 SHA-256 extension (SHA256H / SHA256H2 / SHA256SU0 / SHA256SU1), one or
 * two nonces interleaved. Every function here carries the crypto target
 * attribute; the dispatcher calls them only after the OS reports the SHA2
 * feature (Linux AT_HWCAP, or any arm64 Mac, all of which have it).
 *
 * State layout (the instructions' own): ABCD and EFGH as four 32-bit lanes in
 * natural order, message words likewise, so the first digest is the second
 * hash's W0..W7 with no shuffles. SHA256H + SHA256H2 do four rounds with K+W
 * from a whole vector.
 *
 * Per nonce: of the first hash's rounds 0-3 only "+ W3" remains (rounds 0-2
 * and the rest of round 3 come from miner_precompute, and W3 enters the new a
 * and the new e as a plain sum), so the vector rounds start at round 4 with
 * constant K+W until round 15; 15 four-round groups and 12 schedule groups per
 * hash, plus 16 groups for the second hash, whose last group needs only its
 * EFGH half (H7 = IV7 + h after round 63 = e after round 60).
 */
#include "impl.h"
#if defined(MINER_ARMV8)
#include <arm_neon.h>
#define SHA256_U32 uint32_t
#include "sha256_common.h"

#if defined(__clang__)
#define ARMV8_TARGET "sha2"
#else
#define ARMV8_TARGET "+crypto"
#endif
#define ARMV8_ATTR __attribute__((target(ARMV8_TARGET)))
#define ARMV8_INLINE static inline __attribute__((always_inline, target(ARMV8_TARGET)))

typedef struct {
    uint32x4_t abcd4, efgh4;     /* state after round 3 without the nonce term */
    uint32x4_t mid_abcd, mid_efgh; /* midstate, for the feed-forward */
    uint32x4_t m0;               /* W0..W3 with W3 = 0 (the nonce is inserted per lane) */
    uint32x4_t m1, m2, m3;       /* W4..W15: padding, zero, length */
    uint32x4_t kw1[4];           /* K + W for groups 1..3 of the first hash */
    uint32x4_t iv_abcd, iv_efgh;
    uint32x4_t h2_m2, h2_m3, h2_kw[4]; /* second hash: padding groups and their K + W */
    uint32x4_t k[16];
} armv8_pre;

ARMV8_INLINE uint32x4_t v4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    const uint32_t t[4] = {a, b, c, d};
    return vld1q_u32(t);
}

ARMV8_INLINE void armv8_prepare(const miner_work *w, armv8_pre *p) {
    miner_pre q;
    miner_precompute(w, &q);
    /* After round 3: a' = T1 + T2 and e' = d + T1, where only T1 sees W3. */
    p->abcd4 = v4(q.r3_t1 + q.r3_t2, q.st2[0], q.st2[1], q.st2[2]);
    p->efgh4 = v4(q.st2[3] + q.r3_t1, q.st2[4], q.st2[5], q.st2[6]);
    p->mid_abcd = vld1q_u32(w->midstate);
    p->mid_efgh = vld1q_u32(w->midstate + 4);
    for (int i = 0; i < 16; i++) p->k[i] = vld1q_u32(SHA256_K + 4 * i);
    p->m0 = v4(w->tail[0], w->tail[1], w->tail[2], 0);
    p->m1 = v4(0x80000000u, 0, 0, 0);
    p->m2 = vdupq_n_u32(0);
    p->m3 = v4(0, 0, 0, 640);
    p->kw1[1] = vaddq_u32(p->m1, p->k[1]);
    p->kw1[2] = p->k[2];
    p->kw1[3] = vaddq_u32(p->m3, p->k[3]);
    p->iv_abcd = v4(SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3);
    p->iv_efgh = v4(SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7);
    p->h2_m2 = v4(0x80000000u, 0, 0, 0);
    p->h2_m3 = v4(0, 0, 0, 256);
    p->h2_kw[2] = vaddq_u32(p->h2_m2, p->k[2]);
    p->h2_kw[3] = vaddq_u32(p->h2_m3, p->k[3]);
}

#define UNROLL _Pragma("GCC unroll 16")

/* Four rounds on every lane; ABCD's old value feeds SHA256H2. */
#define RND4(L, kw)                                                            \
    do {                                                                       \
        UNROLL for (int l = 0; l < (L); l++) {                                 \
            uint32x4_t t_ = A[l];                                              \
            A[l] = vsha256hq_u32(A[l], E[l], kw[l]);                           \
            E[l] = vsha256h2q_u32(E[l], t_, kw[l]);                            \
        }                                                                      \
    } while (0)
/* Schedule group g from groups g-4..g-1 held in M[l][g & 3]. */
#define SCHED(L, g)                                                            \
    do {                                                                       \
        UNROLL for (int l = 0; l < (L); l++)                                   \
            M[l][(g) & 3] = vsha256su1q_u32(vsha256su0q_u32(M[l][(g) & 3], M[l][((g) + 1) & 3]), \
                                            M[l][((g) + 2) & 3], M[l][((g) + 3) & 3]); \
    } while (0)

ARMV8_INLINE void armv8_lanes(const armv8_pre *p, uint32_t n0, uint32_t *h7, const int L) {
    uint32x4_t A[2], E[2], M[2][4], kw[2];

    /* ---- First hash: state after round 3 is a constant plus W3 in lanes a and e. ---- */
    UNROLL for (int l = 0; l < L; l++) {
        uint32_t wn = __builtin_bswap32(n0 + (uint32_t)l);
        uint32x4_t add = vsetq_lane_u32(wn, vdupq_n_u32(0), 0);
        A[l] = vaddq_u32(p->abcd4, add);
        E[l] = vaddq_u32(p->efgh4, add);
        M[l][0] = vsetq_lane_u32(wn, p->m0, 3);
        M[l][1] = p->m1;
        M[l][2] = p->m2;
        M[l][3] = p->m3;
    }
    /* Rounds 4-15: constant K + W. */
    UNROLL for (int g = 1; g < 4; g++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->kw1[g];
        RND4(L, kw);
    }
    /* Rounds 16-63 with the schedule. */
    UNROLL for (int g = 4; g < 16; g++) {
        SCHED(L, g);
        UNROLL for (int l = 0; l < L; l++) kw[l] = vaddq_u32(M[l][g & 3], p->k[g]);
        RND4(L, kw);
    }
    /* Feed-forward: the digest words are the second hash's W0..W7 as they stand. */
    UNROLL for (int l = 0; l < L; l++) {
        M[l][0] = vaddq_u32(A[l], p->mid_abcd);
        M[l][1] = vaddq_u32(E[l], p->mid_efgh);
        M[l][2] = p->h2_m2;
        M[l][3] = p->h2_m3;
        A[l] = p->iv_abcd;
        E[l] = p->iv_efgh;
    }
    /* ---- Second hash. ---- */
    UNROLL for (int g = 0; g < 2; g++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = vaddq_u32(M[l][g], p->k[g]);
        RND4(L, kw);
    }
    UNROLL for (int g = 2; g < 4; g++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->h2_kw[g];
        RND4(L, kw);
    }
    UNROLL for (int g = 4; g < 16; g++) {
        SCHED(L, g);
        UNROLL for (int l = 0; l < L; l++) kw[l] = vaddq_u32(M[l][g & 3], p->k[g]);
        if (g < 15) {
            RND4(L, kw);
        } else {
            /* Rounds 60-63: only the new EFGH is read. */
            UNROLL for (int l = 0; l < L; l++) E[l] = vsha256h2q_u32(E[l], A[l], kw[l]);
        }
    }
    UNROLL for (int l = 0; l < L; l++) h7[l] = vgetq_lane_u32(E[l], 3) + SHA256_H7;
}

#define ARMV8_SCAN(name, L)                                                    \
    ARMV8_ATTR int name(const miner_work *w, uint32_t start, uint64_t count,   \
                        uint32_t *out, int cap, uint64_t *next,                \
                        const volatile int *abort) {                           \
        armv8_pre pre;                                                         \
        armv8_prepare(w, &pre);                                                \
        MINER_SCAN_LOOP(L, ARMV8_LANES_##L);                                   \
    }
#define ARMV8_LANES_1(n0, h7) armv8_lanes(&pre, n0, h7, 1)
#define ARMV8_LANES_2(n0, h7) armv8_lanes(&pre, n0, h7, 2)

ARMV8_SCAN(miner_scan_armv8_1, 1)
ARMV8_SCAN(miner_scan_armv8_2, 2)
#endif
