/*
 * x86 SHA extensions (SHA256RNDS2 / SHA256MSG1 / SHA256MSG2), 1, 2, 3 or 4
 * nonces interleaved so that independent lanes fill the latency of each
 * round instruction. Every function here carries target("sha,sse4.1"); the
 * dispatcher calls them only after CPUID reports SHA, SSSE3 and SSE4.1.
 * sha256_shani_vex.c builds the same code a second time for CPUs with AVX
 * (target("sha,avx"), function names ending in _vex).
 *
 * State layout (the instructions' own): S0 = ABEF (dword 3..0 = A, B, E, F),
 * S1 = CDGH. SHA256RNDS2 does two rounds with K+W from the low 64 bits of its
 * message operand.
 *
 * Per nonce: first hash rounds 4..63 (rounds 0-3 precomputed per job, the
 * nonce added to round 3's a and e by one vector add), 12 schedule groups of
 * which groups 4-7 are partly constant (group 4 needs no SHA256MSG2, group 5
 * nothing but its SHA256MSG2, group 7 no SHA256MSG1); second hash rounds
 * 0..61 only, since word 7 of its result (the top 32 bits of the
 * little-endian hash) is e after round 60 = F of ABEF after the 31st
 * SHA256RNDS2. 61 SHA256RNDS2 per nonce.
 */
#include "impl.h"
#if defined(MINER_X86)
#include <immintrin.h>
#include <string.h>
#define SHA256_U32 uint32_t
#include "sha256_common.h"

/* csrc/sha256_shani_vex.c compiles this file again with SHANI_VEX: the same
 * code with the non-SHA instructions VEX-encoded (three operands), for CPUs
 * with AVX. */
#ifdef SHANI_VEX
#define SHANI_TARGET "sha,avx"
#define SHANI_FN(name) name##_vex
#else
#define SHANI_TARGET "sha,sse4.1"
#define SHANI_FN(name) name
#endif
#define SHANI_ATTR __attribute__((target(SHANI_TARGET)))
#define SHANI_INLINE static inline __attribute__((always_inline, target(SHANI_TARGET)))

typedef struct {
    __m128i h1_abef2;           /* first hash ABEF after rounds 0-1 (= CDGH after round 3) */
    __m128i h1_abef3;           /* ABEF after rounds 0-3 with W3 = 0, less W0 in B and F (SHANI_NONCE_VEC) */
    __m128i h1_mid_abef, h1_mid_cdgh; /* midstate, for the feed-forward */
    __m128i h1_m0;              /* W0..W3 with W3 = 0 */
    __m128i h1_kw[4];           /* K + W for groups 1..3 (constant padding) */
    __m128i h1_g1;              /* schedule group 1 (group 2 is zero, group 3 = W15 only) */
    __m128i h1_c4;              /* group 4 = msg1(group 0, group 1) + h1_c4 */
    __m128i h1_x5;              /* group 5 = msg2(h1_x5, group 4) */
    __m128i h1_msg1_23, h1_msg1_34; /* msg1 terms of groups 6 and 7 (constant) */
    __m128i h2_iv_abef, h2_iv_cdgh;
    __m128i h2_kw[4];           /* K + W for groups 2..3 of the second hash */
    __m128i h2_g2, h2_g3, h2_align32, h2_msg1_23;
    __m128i k[16];              /* K grouped by four */
} shani_pre;

SHANI_INLINE __m128i abef(const uint32_t s[8]) { return _mm_set_epi32((int)s[0], (int)s[1], (int)s[4], (int)s[5]); }
SHANI_INLINE __m128i cdgh(const uint32_t s[8]) { return _mm_set_epi32((int)s[2], (int)s[3], (int)s[6], (int)s[7]); }
SHANI_INLINE __m128i words(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
    return _mm_set_epi32((int)w3, (int)w2, (int)w1, (int)w0);
}

SHANI_INLINE void shani_prepare(const miner_work *w, shani_pre *p) {
    static const uint32_t iv[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                                   SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
    uint32_t s[8];
    memcpy(s, w->midstate, sizeof s);
    p->h1_mid_abef = abef(s);
    p->h1_mid_cdgh = cdgh(s);
    /* Rounds 0 and 1 in scalar code: they depend on W0 and W1 only. */
    {
        uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
        SHA256_ROUND(a, b, c, d, e, f, g, h, SHA256_K[0], w->tail[0]);
        SHA256_ROUND(h, a, b, c, d, e, f, g, SHA256_K[1], w->tail[1]);
        uint32_t t[8] = {g, h, a, b, c, d, e, f};
        p->h1_abef2 = abef(t);
        /* Rounds 2 and 3 with W3 = 0: the nonce enters round 3's T1 as a plain
         * term, so it adds to the new a and the new e and to nothing else. Each
         * nonce then starts at round 4 from one vector add (SHANI_NONCE_VEC)
         * instead of a SHA256RNDS2: one fewer on every hash's dependency chain. */
        SHA256_ROUND(g, h, a, b, c, d, e, f, SHA256_K[2], w->tail[2]);
        SHA256_ROUND(f, g, h, a, b, c, d, e, SHA256_K[3], 0);
        uint32_t u[8] = {e, f - w->tail[0], g, h, a, b - w->tail[0], c, d};
        p->h1_abef3 = abef(u);
    }
    for (int i = 0; i < 16; i++)
        p->k[i] = words(SHA256_K[4 * i], SHA256_K[4 * i + 1], SHA256_K[4 * i + 2], SHA256_K[4 * i + 3]);
    p->h1_m0 = words(w->tail[0], w->tail[1], w->tail[2], 0);
    p->h1_g1 = words(0x80000000u, 0, 0, 0);
    {
        /* Schedule groups 4-7 of the first hash see the nonce (W3) only through
         * a few words; what does not depend on it is folded into constants:
         *  - group 4: W16, W17 do not see W3, and W18, W19 see it only through
         *    msg1(group 0, group 1) (W2 + s0(W3), W3 + s0(W4)) plus s1(W16),
         *    s1(W17); so group 4 = that msg1 + a constant, without SHA256MSG2;
         *  - group 5: msg1(group 1, group 2) and alignr(group 4, group 3) =
         *    W13..W16 are constant, so only its SHA256MSG2 is left;
         *  - group 7: msg1(group 3, group 4) reads W12..W16, all constant. */
        const __m128i z = _mm_setzero_si128(), g3 = words(0, 0, 0, 640);
        const __m128i m1_01 = _mm_sha256msg1_epu32(p->h1_m0, p->h1_g1);
        const __m128i g4 = _mm_sha256msg2_epu32(_mm_add_epi32(m1_01, _mm_alignr_epi8(g3, z, 4)), g3);
        p->h1_c4 = _mm_sub_epi32(g4, m1_01);
        p->h1_x5 = _mm_add_epi32(_mm_sha256msg1_epu32(p->h1_g1, z), _mm_alignr_epi8(g4, g3, 4));
        p->h1_msg1_23 = _mm_sha256msg1_epu32(z, g3);
        p->h1_msg1_34 = _mm_sha256msg1_epu32(g3, g4);
        p->h1_kw[3] = _mm_add_epi32(g3, p->k[3]);
    }
    p->h1_kw[1] = _mm_add_epi32(p->h1_g1, p->k[1]);
    p->h1_kw[2] = p->k[2];
    p->h2_iv_abef = abef(iv);
    p->h2_iv_cdgh = cdgh(iv);
    p->h2_g2 = words(0x80000000u, 0, 0, 0);
    p->h2_g3 = words(0, 0, 0, 256);
    p->h2_kw[2] = _mm_add_epi32(p->h2_g2, p->k[2]);
    p->h2_kw[3] = _mm_add_epi32(p->h2_g3, p->k[3]);
    p->h2_align32 = _mm_alignr_epi8(p->h2_g3, p->h2_g2, 4);
    p->h2_msg1_23 = _mm_sha256msg1_epu32(p->h2_g2, p->h2_g3);
}

/* Every loop below runs over lanes or schedule groups with constant bounds; fully
 * unrolled, the arrays become registers and the lanes interleave. */
#define UNROLL _Pragma("GCC unroll 16")

/* The nonce's share of ABEF after round 3, from schedule group 0 (W0, W1, W2,
 * W3 = nonce): W3 in the A and E slots; the B and F slots get W0, which
 * h1_abef3 has subtracted. h1_abef3 + this = ABEF after round 3. */
#define SHANI_NONCE_VEC(g0) _mm_shuffle_epi32((g0), 0xCC)

/* Two rounds into S1 then two into S0 (the pairs alternate roles). */
#define RND4(L, kw)                                                            \
    do {                                                                       \
        UNROLL for (int l = 0; l < (L); l++) S1[l] = _mm_sha256rnds2_epu32(S1[l], S0[l], kw[l]); \
        UNROLL for (int l = 0; l < (L); l++) kw[l] = _mm_shuffle_epi32(kw[l], 0x0E);  \
        UNROLL for (int l = 0; l < (L); l++) S0[l] = _mm_sha256rnds2_epu32(S0[l], S1[l], kw[l]); \
    } while (0)
/* Group g of the schedule from groups g-4..g-1 held in G[.][g & 3]; m1 is msg1(g-4, g-3). */
#define SCHED(L, gi, m1)                                                       \
    do {                                                                       \
        UNROLL for (int l = 0; l < (L); l++)                                          \
            G[l][(gi) & 3] = _mm_sha256msg2_epu32(                             \
                _mm_add_epi32(m1, _mm_alignr_epi8(G[l][((gi) - 1) & 3], G[l][((gi) - 2) & 3], 4)), \
                G[l][((gi) - 1) & 3]);                                         \
    } while (0)

/* One schedule group and its four rounds for one lane, all in registers: w4
 * (group g-4, dead after this) becomes group g from w3, w2, w1 (groups g-3,
 * g-2, g-1); K+W goes to xmm0 for SHA256RNDS2. Written out because the
 * compiler, left to the intrinsics, adds a register copy for almost every
 * two-operand instruction: 10 instructions per group here (8 VEX-encoded),
 * about 14 from the compiler. last_ = 1 runs rounds 4g, 4g+1 only. */
#ifdef SHANI_VEX
#define SHANI_GRP_ALIGN "vpalignr $4, %[w2], %[w1], %[t]\n\t"
#define SHANI_GRP_KW "vpaddd %[kk], %[w4], %%xmm0\n\t"
#else
#define SHANI_GRP_ALIGN "movdqa %[w1], %[t]\n\tpalignr $4, %[w2], %[t]\n\t"
#define SHANI_GRP_KW "movdqa %[w4], %%xmm0\n\tpaddd %[kk], %%xmm0\n\t"
#endif
#define SHANI_GRP(s0_, s1_, w4_, w3_, w2_, w1_, k_, last_)                     \
    do {                                                                       \
        __m128i t_;                                                            \
        __asm__("sha256msg1 %[w3], %[w4]\n\t"                                  \
                SHANI_GRP_ALIGN                                                \
                "paddd %[t], %[w4]\n\t"                                        \
                "sha256msg2 %[w1], %[w4]\n\t"                                  \
                SHANI_GRP_KW                                                   \
                "sha256rnds2 %%xmm0, %[a], %[c]\n\t"                           \
                ".if " #last_ " == 0\n\t"                                      \
                "pshufd $0x0e, %%xmm0, %%xmm0\n\t"                             \
                "sha256rnds2 %%xmm0, %[c], %[a]\n\t"                           \
                ".endif"                                                       \
                : [a] "+x"(s0_), [c] "+x"(s1_), [w4] "+x"(w4_), [t] "=&x"(t_)   \
                : [w3] "x"(w3_), [w2] "x"(w2_), [w1] "x"(w1_), [kk] "m"(k_)    \
                : "xmm0");                                                     \
    } while (0)

/* Four rounds of one lane with K+W = w + k (k in memory), summed straight
 * into xmm0: left to the intrinsics, with two lanes in flight the compiler
 * makes the sum and the shuffled upper half in other registers and copies
 * each into xmm0 (6 instructions a group instead of 4). */
#ifdef SHANI_VEX
#define SHANI_RND4_ADD_KW "vpaddd %[kk], %[w], %%xmm0\n\t"
#else
#define SHANI_RND4_ADD_KW "movdqa %[w], %%xmm0\n\tpaddd %[kk], %%xmm0\n\t"
#endif
#define SHANI_RND4_ADD(s0_, s1_, w_, k_)                                       \
    __asm__(SHANI_RND4_ADD_KW                                                  \
            "sha256rnds2 %%xmm0, %[a], %[c]\n\t"                               \
            "pshufd $0x0e, %%xmm0, %%xmm0\n\t"                                 \
            "sha256rnds2 %%xmm0, %[c], %[a]"                                   \
            : [a] "+x"(s0_), [c] "+x"(s1_)                                     \
            : [w] "x"(w_), [kk] "m"(k_)                                        \
            : "xmm0")

/* The second hash of L lanes whose first hash ended in S0/S1 (after the
 * feed-forward), schedule window in registers: 6 registers a lane, so for one
 * or two lanes. F[l] receives lane l's last CDGH: its dword 0 plus IV7 is word
 * 7 of the result (shani_h7). */
SHANI_INLINE void shani_hash2_f(const shani_pre *p, const __m128i *A, const __m128i *C, __m128i *F,
                                const int L) {
    __m128i S0[4], S1[4], G[4][4], kw[4], m1[4];
    UNROLL for (int l = 0; l < L; l++) {
        G[l][0] = _mm_shuffle_epi32(_mm_unpackhi_epi64(C[l], A[l]), 0x1B); /* A B C D */
        G[l][1] = _mm_shuffle_epi32(_mm_unpacklo_epi64(C[l], A[l]), 0x1B); /* E F G H */
        G[l][2] = p->h2_g2;
        G[l][3] = p->h2_g3;
        S0[l] = p->h2_iv_abef;
        S1[l] = p->h2_iv_cdgh;
    }
    UNROLL for (int gi = 0; gi < 2; gi++) {
        UNROLL for (int l = 0; l < L; l++) SHANI_RND4_ADD(S0[l], S1[l], G[l][gi], p->k[gi]);
    }
    UNROLL for (int gi = 2; gi < 4; gi++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->h2_kw[gi];
        RND4(L, kw);
    }
    UNROLL for (int gi = 4; gi < 16; gi++) {
        if (gi == 5 || gi >= 7) {
            UNROLL for (int l = 0; l < L; l++) {
                if (gi < 15) /* rounds 60-61 only in group 15: F of the new ABEF is e after round 60 */
                    SHANI_GRP(S0[l], S1[l], G[l][gi & 3], G[l][(gi + 1) & 3], G[l][(gi + 2) & 3],
                              G[l][(gi + 3) & 3], p->k[gi], 0);
                else
                    SHANI_GRP(S0[l], S1[l], G[l][gi & 3], G[l][(gi + 1) & 3], G[l][(gi + 2) & 3],
                              G[l][(gi + 3) & 3], p->k[gi], 1);
            }
            continue;
        }
        UNROLL for (int l = 0; l < L; l++)
            m1[l] = gi == 6 ? p->h2_msg1_23 : _mm_sha256msg1_epu32(G[l][gi & 3], G[l][(gi + 1) & 3]);
        if (gi == 4) {
            UNROLL for (int l = 0; l < L; l++)
                G[l][0] = _mm_sha256msg2_epu32(_mm_add_epi32(m1[l], p->h2_align32), G[l][3]);
        } else {
            SCHED(L, gi, m1[l]);
        }
        UNROLL for (int l = 0; l < L; l++) SHANI_RND4_ADD(S0[l], S1[l], G[l][gi & 3], p->k[gi]);
    }
    UNROLL for (int l = 0; l < L; l++) F[l] = S1[l];
}

SHANI_INLINE void shani_h7(const __m128i *F, uint32_t *h7, const int L) {
    UNROLL for (int l = 0; l < L; l++) h7[l] = (uint32_t)_mm_cvtsi128_si32(F[l]) + SHA256_H7;
}

/* Candidate lanes (bit l = lane l, L <= 4) when the target's top limb is 0,
 * as at every difficulty of 1 or more: then a candidate has word 7 = 0, i.e.
 * its last CDGH's dword 0 = -IV7. One compare in the vector unit replaces the
 * per-lane add, byte swap and compare of miner_h7_mask (16 scalar
 * instructions for two lanes, 5 here). */
SHANI_INLINE uint64_t shani_mask0(const __m128i *F, const int L) {
    if (L == 1) return (uint32_t)_mm_cvtsi128_si32(F[0]) == 0u - SHA256_H7;
    __m128i x = _mm_unpacklo_epi32(F[0], F[1]);
    if (L > 2) x = _mm_unpacklo_epi64(x, _mm_unpacklo_epi32(F[2], F[L - 1]));
    x = _mm_cmpeq_epi32(x, _mm_set1_epi32((int)(0u - SHA256_H7)));
    return (uint64_t)(_mm_movemask_ps(_mm_castsi128_ps(x)) & ((1 << L) - 1));
}

SHANI_INLINE void shani_lanes_f(const shani_pre *p, uint32_t n0, __m128i *F, const int L) {
    __m128i S0[4], S1[4], G[4][4], kw[4], m1[4];

    /* ---- First hash: rounds 0-3 from the job's constants and one add (SHANI_NONCE_VEC). ---- */
    UNROLL for (int l = 0; l < L; l++) {
        uint32_t wn = __builtin_bswap32(n0 + (uint32_t)l);
        G[l][0] = _mm_insert_epi32(p->h1_m0, (int)wn, 3);
        S0[l] = _mm_add_epi32(p->h1_abef3, SHANI_NONCE_VEC(G[l][0]));
        S1[l] = p->h1_abef2; /* CDGH after round 3 = ABEF after round 1 */
    }
    /* Rounds 4-15: constant K + W. */
    UNROLL for (int gi = 1; gi < 4; gi++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->h1_kw[gi];
        RND4(L, kw);
    }
    /* Rounds 16-63 with the schedule; groups 4-7 partly constant (shani_prepare).
     * Groups 1-3 are never in registers: only these constants read them. */
    UNROLL for (int gi = 4; gi < 16; gi++) {
        if (gi >= 8) {
            UNROLL for (int l = 0; l < L; l++)
                SHANI_GRP(S0[l], S1[l], G[l][gi & 3], G[l][(gi + 1) & 3], G[l][(gi + 2) & 3],
                          G[l][(gi + 3) & 3], p->k[gi], 0);
            continue;
        }
        if (gi == 4) {
            UNROLL for (int l = 0; l < L; l++)
                G[l][0] = _mm_add_epi32(_mm_sha256msg1_epu32(G[l][0], p->h1_g1), p->h1_c4);
        } else if (gi == 5) {
            UNROLL for (int l = 0; l < L; l++) G[l][1] = _mm_sha256msg2_epu32(p->h1_x5, G[l][0]);
        } else {
            UNROLL for (int l = 0; l < L; l++) m1[l] = gi == 6 ? p->h1_msg1_23 : p->h1_msg1_34;
            SCHED(L, gi, m1[l]);
        }
        UNROLL for (int l = 0; l < L; l++) SHANI_RND4_ADD(S0[l], S1[l], G[l][gi & 3], p->k[gi]);
    }
    /* Feed-forward; the digest is the second hash's W0..W7. */
    UNROLL for (int l = 0; l < L; l++) {
        S0[l] = _mm_add_epi32(S0[l], p->h1_mid_abef);
        S1[l] = _mm_add_epi32(S1[l], p->h1_mid_cdgh);
    }
    shani_hash2_f(p, S0, S1, F, L);
}

SHANI_INLINE void shani_lanes(const shani_pre *p, uint32_t n0, uint32_t *h7, const int L) {
    __m128i F[2];
    shani_lanes_f(p, n0, F, L);
    shani_h7(F, h7, L);
}

SHANI_INLINE uint64_t shani_lanes_mask0(const shani_pre *p, uint32_t n0, const int L) {
    __m128i F[2];
    shani_lanes_f(p, n0, F, L);
    return shani_mask0(F, L);
}

/* ------------------------------------------------------------------------
 * Register-planned lanes ("m" code): 3 or 4 nonces without spills, and
 * several header versions sharing the first hash's schedule.
 *
 * Sixteen XMM registers cannot hold, for 3-4 lanes, the state (2 each), the
 * four-group schedule window and K+W, and SHA256RNDS2 takes K+W in xmm0
 * only. So the register plan is fixed by hand:
 *  - the first hash's schedule depends on the nonce only (not on the state
 *    nor the version): it is made first, one lane at a time (its window in
 *    registers), and its K+W go to memory;
 *  - the rounds then read K+W from memory straight into xmm0, the upper half
 *    by a 64-bit load instead of a shuffle;
 *  - in the second hash, each lane keeps only its state and its newest
 *    schedule group in registers (3 per lane, 12 for 4 lanes); older groups
 *    are memory operands of SHA256MSG1 / PALIGNR, and K+W is stored and its
 *    upper half reloaded as above.
 * The inline assembly blocks fix which values live in registers; GCC only
 * names them. xmm0 is clobbered by every block and holds nothing across them.
 * ------------------------------------------------------------------------ */

/* Per-version values (the midstate and rounds 0-1 depend on the version). */
typedef struct {
    __m128i mid_abef, mid_cdgh, abef2, abef3;
} shani_ver;

SHANI_INLINE void shani_ver_from(const shani_pre *p, shani_ver *v) {
    v->mid_abef = p->h1_mid_abef;
    v->mid_cdgh = p->h1_mid_cdgh;
    v->abef2 = p->h1_abef2;
    v->abef3 = p->h1_abef3;
}

/* The job's values from version 0 into pre, and each version's own into vs. */
SHANI_INLINE void shani_prepare_versions(const miner_work *w, int nv, shani_pre *pre, shani_ver *vs) {
    shani_prepare(&w[0], pre);
    shani_ver_from(pre, &vs[0]);
    for (int v = 1; v < nv; v++) {
        shani_pre pv;
        shani_prepare(&w[v], &pv);
        shani_ver_from(&pv, &vs[v]);
    }
}

/* One lane's first-hash K+W: kw[4..15] groups 4..15; kw[0] is the nonce's
 * share of ABEF after round 3 (SHANI_NONCE_VEC), added to each version's abef3. */
typedef struct {
    __m128i kw[16];
} shani_kw1;

/* The upper half of a __m128i in memory, as an asm operand (64-bit load). */
typedef uint64_t shani_u64a __attribute__((may_alias));
#define SHANI_HI(x) (((shani_u64a *)&(x))[1])

/* Rounds 4g..4g+3 with K+W at kw (16 bytes in memory). */
#define SHANI_RND4_M(s0, s1, kw)                                               \
    __asm__("movdqa %[k], %%xmm0\n\t"                                          \
            "sha256rnds2 %%xmm0, %[a], %[c]\n\t"                               \
            "movq %[kh], %%xmm0\n\t"                                           \
            "sha256rnds2 %%xmm0, %[c], %[a]"                                   \
            : [a] "+x"(s0), [c] "+x"(s1)                                       \
            : [k] "m"(kw), [kh] "m"(SHANI_HI(kw))                              \
            : "xmm0")

/* Step j (0..12) of the first hash's schedule of one nonce (header word wn =
 * bswap(nonce)) into o: step 0 sets up W0 and the nonce's share of round 3,
 * step j >= 1 makes group j + 3 and its K+W (groups 4-7 partly constant, see
 * shani_prepare). W is the lane's window (only constant indices, so it lives
 * in registers). */
#define SHANI_SCHED1_STEP(p, W, wn, o, j)                                      \
    do {                                                                       \
        if ((j) == 0) {                                                        \
            W[0] = _mm_insert_epi32((p)->h1_m0, (int)(wn), 3);                 \
            (o)->kw[0] = SHANI_NONCE_VEC(W[0]);                                \
        } else {                                                               \
            const int g_ = (j) + 3;                                            \
            if (g_ == 4)                                                       \
                W[4] = _mm_add_epi32(_mm_sha256msg1_epu32(W[0], (p)->h1_g1), (p)->h1_c4); \
            else if (g_ == 5)                                                  \
                W[5] = _mm_sha256msg2_epu32((p)->h1_x5, W[4]);                 \
            else                                                               \
                W[g_] = _mm_sha256msg2_epu32(                                  \
                    _mm_add_epi32(g_ == 6   ? (p)->h1_msg1_23                  \
                                  : g_ == 7 ? (p)->h1_msg1_34                  \
                                            : _mm_sha256msg1_epu32(W[g_ - 4], W[g_ - 3]), \
                                  _mm_alignr_epi8(W[g_ - 1], W[g_ - 2], 4)),   \
                    W[g_ - 1]);                                                \
            (o)->kw[g_] = _mm_add_epi32(W[g_], (p)->k[g_]);                    \
        }                                                                      \
    } while (0)
#define SHANI_SCHED1_STEPS 13

SHANI_INLINE void shani_sched1(const shani_pre *p, uint32_t wn, shani_kw1 *o) {
    __m128i W[16];
    UNROLL for (int j = 0; j < SHANI_SCHED1_STEPS; j++) SHANI_SCHED1_STEP(p, W, wn, o, j);
}

#ifdef SHANI_VEX
#define SHANI_ALIGN_U "vpalignr $4, %[w2], %[w1], %[u]\n\t"
#define SHANI_KW_X0 "vpaddd %[kk], %[t], %%xmm0\n\t"
#else
#define SHANI_ALIGN_U "movdqa %[w1], %[u]\n\tpalignr $4, %[w2], %[u]\n\t"
#define SHANI_KW_X0 "movdqa %[t], %%xmm0\n\tpaddd %[kk], %%xmm0\n\t"
#endif
/* Second hash, group g >= 4 of one lane: the new schedule group from w1 (the
 * newest, in a register) and w[g-2..g-4] (memory), stored to w[g]; then its
 * four rounds, K+W stored to kwt so its upper half is a load. Returns the
 * new group. Group 15 runs only its first two rounds (rounds 60-61). */
#define SHANI_SCHED_RND4(s0_, s1_, wprev_, wa_, g_, k_, kwt_, last_)                       \
    ({                                                                         \
        __m128i t_, u_;                                                        \
        __asm__("movdqa %[w4], %[t]\n\t"                                       \
                "sha256msg1 %[w3], %[t]\n\t"                                   \
                SHANI_ALIGN_U                                                  \
                "paddd %[u], %[t]\n\t"                                         \
                "sha256msg2 %[w1], %[t]\n\t"                                   \
                "movdqa %[t], %[wo]\n\t"                                       \
                SHANI_KW_X0                                                    \
                "sha256rnds2 %%xmm0, %[a], %[c]\n\t"                           \
                ".if " #last_ " == 0\n\t"                                       \
                "pshufd $0x0e, %%xmm0, %%xmm0\n\t"                              \
                "sha256rnds2 %%xmm0, %[c], %[a]\n\t"                           \
                ".endif"                                                       \
                : [a] "+x"(s0_), [c] "+x"(s1_), [t] "=&x"(t_), [u] "=&x"(u_),    \
                  [wo] "=m"((wa_)[g_]), [kwo] "+m"(kwt_), [kwh] "+m"(SHANI_HI(kwt_)) \
                : [w1] "x"(wprev_), [w2] "m"((wa_)[(g_)-2]), [w3] "m"((wa_)[(g_)-3]),    \
                  [w4] "m"((wa_)[(g_)-4]), [kk] "m"(k_)                            \
                : "xmm0");                                                     \
        t_;                                                                    \
    })

/* Second hash, groups 0-1 of one lane: K+W = group + K, stored and reloaded. */
#define SHANI_ADDK_RND4(s0, s1, wv, k, kwt)                                    \
    __asm__("movdqa %[wi], %%xmm0\n\t"                                         \
            "paddd %[kk], %%xmm0\n\t"                                          \
            "sha256rnds2 %%xmm0, %[a], %[c]\n\t"                               \
            "pshufd $0x0e, %%xmm0, %%xmm0\n\t"                                  \
            "sha256rnds2 %%xmm0, %[c], %[a]"                                   \
            : [a] "+x"(s0), [c] "+x"(s1), [kwo] "+m"(kwt), [kwh] "+m"(SHANI_HI(kwt)) \
            : [wi] "x"(wv), [kk] "m"(k)                                        \
            : "xmm0")

/*
 * L nonces n0.. under nv versions vs[0..nv-1]: h7[v * L + l] receives word 7
 * of the second hash of nonce n0 + l under version v. cur holds the first
 * hash's K+W of these nonces (made once for all versions); the schedule of
 * the next L nonces (n0 + L ..) is made into nxt during the first version's
 * first-hash rounds, one lane after another: those rounds keep only the eight
 * state registers busy and wait on SHA256RNDS2, while the schedule waits on
 * SHA256MSG2, so the two fill each other's gaps (software pipelining).
 */
SHANI_INLINE void shani_lanes_m(const shani_pre *p, const shani_ver *vs, int nv, uint32_t n0,
                                uint32_t *h7, __m128i *F, const shani_kw1 *cur, shani_kw1 *nxt, const int L) {
    __m128i w2[4][16], kwt[4], Wx[16];
    for (int v = 0; v < nv; v++) {
        const shani_ver *q = &vs[v];
        __m128i S0[4], S1[4], Wn[4];
        /* ---- First hash: the state after round 3 (one add), then groups 1-15 from memory. ---- */
        UNROLL for (int g = 0; g < 16; g++) {
            UNROLL for (int l = 0; l < L; l++) {
                if (g == 0) {
                    S0[l] = _mm_add_epi32(q->abef3, cur[l].kw[0]);
                    S1[l] = q->abef2; /* CDGH after round 3 = ABEF after round 1 */
                } else {
                    SHANI_RND4_M(S0[l], S1[l], *(g < 4 ? &p->h1_kw[g] : &cur[l].kw[g]));
                }
            }
            if (v == 0) {
                UNROLL for (int j = g * SHANI_SCHED1_STEPS * L / 16;
                            j < (g + 1) * SHANI_SCHED1_STEPS * L / 16; j++)
                    SHANI_SCHED1_STEP(p, Wx, __builtin_bswap32(n0 + (uint32_t)(L + j / SHANI_SCHED1_STEPS)),
                                      &nxt[j / SHANI_SCHED1_STEPS], j % SHANI_SCHED1_STEPS);
            }
        }
        /* ---- Feed-forward; the digest is the second hash's W0..W7. ---- */
        UNROLL for (int l = 0; l < L; l++) {
            __m128i a = _mm_add_epi32(S0[l], q->mid_abef), c = _mm_add_epi32(S1[l], q->mid_cdgh);
            w2[l][0] = _mm_shuffle_epi32(_mm_unpackhi_epi64(c, a), 0x1B); /* A B C D */
            w2[l][1] = _mm_shuffle_epi32(_mm_unpacklo_epi64(c, a), 0x1B); /* E F G H */
            w2[l][2] = p->h2_g2;
            w2[l][3] = p->h2_g3;
            S0[l] = p->h2_iv_abef;
            S1[l] = p->h2_iv_cdgh;
            SHANI_ADDK_RND4(S0[l], S1[l], w2[l][0], p->k[0], kwt[l]);
        }
        UNROLL for (int l = 0; l < L; l++) SHANI_ADDK_RND4(S0[l], S1[l], w2[l][1], p->k[1], kwt[l]);
        UNROLL for (int g = 2; g < 4; g++)
            UNROLL for (int l = 0; l < L; l++) SHANI_RND4_M(S0[l], S1[l], p->h2_kw[g]);
        UNROLL for (int l = 0; l < L; l++) Wn[l] = p->h2_g3;
        UNROLL for (int g = 4; g < 15; g++)
            UNROLL for (int l = 0; l < L; l++)
                Wn[l] = SHANI_SCHED_RND4(S0[l], S1[l], Wn[l], w2[l], g, p->k[g], kwt[l], 0);
        /* Rounds 60-61 only: F of the new ABEF is e after round 60. */
        UNROLL for (int l = 0; l < L; l++) {
            (void)SHANI_SCHED_RND4(S0[l], S1[l], Wn[l], w2[l], 15, p->k[15], kwt[l], 1);
            if (F) /* for shani_mask0 */
                F[v * L + l] = S1[l];
            else
                h7[v * L + l] = (uint32_t)_mm_cvtsi128_si32(S1[l]) + SHA256_H7;
        }
    }
}

/* The first group's schedule, before the scan loop; each call then makes the next one's. */
#define SHANI_M_PROLOGUE(L)                                                    \
    shani_kw1 kwb_[2][4];                                                      \
    int cur_ = 0;                                                              \
    UNROLL for (int l = 0; l < (L); l++)                                       \
        shani_sched1(&pre, __builtin_bswap32(start + (uint32_t)l), &kwb_[0][l])
#define SHANI_M_CALL(vs, nv, n0, h7, L)                                        \
    (shani_lanes_m(&pre, vs, nv, n0, h7, NULL, kwb_[cur_], kwb_[cur_ ^ 1], L), cur_ ^= 1)
/* At targets whose top limb is 0: bit l set when some version of nonce n0 + l
 * has word 7 = 0, by one vector compare per version (shani_mask0) instead of
 * nv * L words 7 tested one by one in the scan loop. */
#define SHANI_M_ANY0(vs, nv, n0, L)                                            \
    ({                                                                         \
        __m128i f_[4 * MINER_MAX_VERSIONS];                                    \
        uint64_t any_ = 0;                                                     \
        shani_lanes_m(&pre, vs, nv, n0, NULL, f_, kwb_[cur_], kwb_[cur_ ^ 1], L); \
        cur_ ^= 1;                                                             \
        for (int v_ = 0; v_ < (nv); v_++) any_ |= shani_mask0(f_ + v_ * (L), L); \
        any_;                                                                  \
    })

#define SHANI_M_SCAN(name, L)                                                  \
    SHANI_ATTR int name(const miner_work *w, uint32_t start, uint64_t count,   \
                        uint32_t *out, int cap, uint64_t *next,                \
                        const volatile int *abort) {                           \
        shani_pre pre;                                                         \
        shani_ver ver;                                                         \
        shani_prepare(w, &pre);                                                \
        shani_ver_from(&pre, &ver);                                            \
        SHANI_M_PROLOGUE(L);                                                   \
        if (w->target[7] == 0)                                                 \
            MINER_SCAN_LOOP_MASK(L, SHANI_M_ANY0(&ver, 1, (uint32_t)n_, L));   \
        MINER_SCAN_LOOP(L, SHANI_M_LANES_##L);                                 \
    }
#define SHANI_M_LANES_3(n0, h7) SHANI_M_CALL(&ver, 1, n0, h7, 3)
#define SHANI_M_LANES_4(n0, h7) SHANI_M_CALL(&ver, 1, n0, h7, 4)
/* With two lanes the older statement-interleaved code (shani_lanes) is as
 * fast: its registers suffice. */
SHANI_M_SCAN(SHANI_FN(miner_scan_shani3), 3)
SHANI_M_SCAN(SHANI_FN(miner_scan_shani4), 4)

/* Several versions (1..MINER_MAX_VERSIONS) of one header, L nonces at a time;
 * the contract of miner_scan_versions_fn (impl.h). */
#define SHANI_M_VSCAN(name, L)                                                 \
    SHANI_ATTR int name(const miner_work *w, int nv, uint32_t start, uint64_t count, \
                        uint32_t *out, int cap, uint64_t *next,                \
                        const volatile int *abort) {                           \
        shani_pre pre;                                                         \
        shani_ver vs[MINER_MAX_VERSIONS];                                      \
        shani_prepare_versions(w, nv, &pre, vs);                               \
        SHANI_M_PROLOGUE(L);                                                   \
        int top0_ = 1;                                                         \
        for (int v_ = 0; v_ < nv; v_++) top0_ &= w[v_].target[7] == 0;         \
        if (top0_) MINER_SCAN_VERSIONS_LOOP_ANY(L, nv, SHANI_M_ANY0(vs, nv, (uint32_t)n_, L)); \
        MINER_SCAN_VERSIONS_LOOP(L, nv, SHANI_M_CALL(vs, nv, (uint32_t)n_, h7_, L)); \
    }
SHANI_M_VSCAN(SHANI_FN(miner_scan_shani3_versions), 3)
SHANI_M_VSCAN(SHANI_FN(miner_scan_shani4_versions), 4)

/* ------------------------------------------------------------------------
 * Versions as the lanes ("2-lane, shared K+W"): one nonce at a time, its
 * versions hashed side by side.
 *
 * Every version of one nonce has the same first-hash message schedule, so
 * the same K+W in every round: loaded into xmm0 once per two rounds, it
 * feeds the SHA256RNDS2 of up to four versions (four independent chains,
 * one RNDS2 a cycle on a core with a 4-cycle latency), at 2.5 instructions
 * per group and hash instead of 4. The second hashes differ per version and
 * run two at a time in the register-window code of the 2-lane scan. Fewer
 * instructions per hash than any other SHA-NI path here, for cores whose
 * front end is shared with a busy SMT sibling.
 * ------------------------------------------------------------------------ */

/* The first hash of one nonce (K+W in kw) under versions q[0..CH-1]; A/C
 * receive each version's state after the feed-forward. */
SHANI_INLINE void shani_h1_shared(const shani_pre *p, const shani_ver *q, const shani_kw1 *kw, __m128i *A,
                                  __m128i *C, const int CH) {
    __m128i S0[4], S1[4], k;
    UNROLL for (int c = 0; c < CH; c++) {
        S0[c] = _mm_add_epi32(q[c].abef3, kw->kw[0]); /* state after round 3 */
        S1[c] = q[c].abef2;
    }
    UNROLL for (int g = 1; g < 16; g++) {
        k = g < 4 ? p->h1_kw[g] : kw->kw[g];
        UNROLL for (int c = 0; c < CH; c++) S1[c] = _mm_sha256rnds2_epu32(S1[c], S0[c], k);
        k = _mm_shuffle_epi32(k, 0x0E);
        UNROLL for (int c = 0; c < CH; c++) S0[c] = _mm_sha256rnds2_epu32(S0[c], S1[c], k);
    }
    UNROLL for (int c = 0; c < CH; c++) {
        A[c] = _mm_add_epi32(S0[c], q[c].mid_abef);
        C[c] = _mm_add_epi32(S1[c], q[c].mid_cdgh);
    }
}

/* Versions v0..v0+CH-1 of the nonce whose schedule is kw: F[c] receives each
 * one's last CDGH (shani_hash2_f). */
SHANI_INLINE void shani_vchunk_f(const shani_pre *p, const shani_ver *vs, int v0, const shani_kw1 *kw,
                                 __m128i *F, const int CH) {
    __m128i A[4], C[4];
    shani_h1_shared(p, vs + v0, kw, A, C, CH);
    UNROLL for (int c = 0; c < CH; c += 2) shani_hash2_f(p, A + c, C + c, F + c, CH - c < 2 ? 1 : 2);
}

/* Versions v0..v0+CH-1 of the nonce whose schedule is kw. MASK0 = 0: h7[v]
 * for each, returns 0. MASK0 = 1 (targets whose top limb is 0): returns 1 if
 * some version of the chunk has word 7 = 0, by one compare of all CH
 * (shani_mask0), and writes no h7. */
SHANI_INLINE uint64_t shani_vchunk(const shani_pre *p, const shani_ver *vs, int v0, const shani_kw1 *kw,
                                   uint32_t *h7, const int CH, const int MASK0) {
    __m128i F[4];
    shani_vchunk_f(p, vs, v0, kw, F, CH);
    if (MASK0) return shani_mask0(F, CH) != 0;
    shani_h7(F, h7 + v0, CH);
    return 0;
}

/* Every version of nonce n: h7[v] (MASK0 = 0), or whether any is a candidate
 * at a target whose top limb is 0 (MASK0 = 1; each is then confirmed), which
 * spares the scan loop nv words 7 tested one by one (about 7 scalar
 * instructions each). */
SHANI_INLINE uint64_t shani_vshared(const shani_pre *p, const shani_ver *vs, int nv, uint32_t n, uint32_t *h7,
                                    const int MASK0) {
    shani_kw1 kw;
    uint64_t any = 0;
    shani_sched1(p, __builtin_bswap32(n), &kw);
    int v = 0;
    for (; v + 4 <= nv; v += 4) any |= shani_vchunk(p, vs, v, &kw, h7, 4, MASK0);
    if (v + 2 <= nv) {
        any |= shani_vchunk(p, vs, v, &kw, h7, 2, MASK0);
        v += 2;
    }
    if (v < nv) any |= shani_vchunk(p, vs, v, &kw, h7, 1, MASK0);
    return any;
}

/* Fewer than 4 versions: the schedule, made per nonce, is shared by too few
 * hashes to pay for itself (2 versions: 0.78x the plain 2-lane scan's rate),
 * so each version runs the plain 2-lane code, two nonces at a time. */
SHANI_ATTR static int shani2_versions_few(MINER_SCAN_VERSIONS_PARAMS) {
    shani_pre pre[3];
    int top0 = 1;
    for (int v = 0; v < nv; v++) {
        shani_prepare(&w[v], &pre[v]);
        top0 &= w[v].target[7] == 0;
    }
    /* Difficulty 1 and up: each version's pair compare (shani_mask0), ORed into one bit per nonce. */
    if (top0)
        MINER_SCAN_VERSIONS_LOOP_ANY(2, nv, ({
                                         uint64_t any_ = 0;
                                         for (int v_ = 0; v_ < nv; v_++)
                                             any_ |= shani_lanes_mask0(&pre[v_], (uint32_t)n_, 2);
                                         any_;
                                     }));
    MINER_SCAN_VERSIONS_LOOP(2, nv, for (int v_ = 0; v_ < nv; v_++) shani_lanes(&pre[v_], (uint32_t)n_, h7_ + 2 * v_, 2));
}

SHANI_ATTR int SHANI_FN(miner_scan_shani2_versions)(MINER_SCAN_VERSIONS_PARAMS) {
    if (nv < 4) return shani2_versions_few(w, nv, start, count, out, cap, next, abort);
    shani_pre pre;
    shani_ver vs[MINER_MAX_VERSIONS];
    shani_prepare_versions(w, nv, &pre, vs);
    int top0 = 1;
    for (int v = 0; v < nv; v++) top0 &= w[v].target[7] == 0;
    if (top0) MINER_SCAN_VERSIONS_LOOP_ANY(1, nv, shani_vshared(&pre, vs, nv, (uint32_t)n_, NULL, 1));
    MINER_SCAN_VERSIONS_LOOP(1, nv, shani_vshared(&pre, vs, nv, (uint32_t)n_, h7_, 0));
}

#define SHANI_SCAN(name, L)                                                    \
    SHANI_ATTR int name(const miner_work *w, uint32_t start, uint64_t count,   \
                        uint32_t *out, int cap, uint64_t *next,                \
                        const volatile int *abort) {                           \
        shani_pre pre;                                                         \
        shani_prepare(w, &pre);                                                \
        if (w->target[7] == 0)                                                 \
            MINER_SCAN_LOOP_MASK(L, shani_lanes_mask0(&pre, (uint32_t)n_, L)); \
        MINER_SCAN_LOOP(L, SHANI_LANES_##L);                                   \
    }
#define SHANI_LANES_1(n0, h7) shani_lanes(&pre, n0, h7, 1)
#define SHANI_LANES_2(n0, h7) shani_lanes(&pre, n0, h7, 2)

SHANI_SCAN(SHANI_FN(miner_scan_shani1), 1)
SHANI_SCAN(SHANI_FN(miner_scan_shani2), 2)
#endif
