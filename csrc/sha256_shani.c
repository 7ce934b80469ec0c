/*
 * x86 SHA extensions (SHA256RNDS2 / SHA256MSG1 / SHA256MSG2), 1, 2, 3 or 4
 * nonces interleaved so that independent lanes fill the latency of each
 * round instruction. Every function here carries target("sha,sse4.1"); the
 * dispatcher calls them only after CPUID reports SHA, SSSE3 and SSE4.1.
 *
 * State layout (the instructions' own): S0 = ABEF (dword 3..0 = A, B, E, F),
 * S1 = CDGH. SHA256RNDS2 does two rounds with K+W from the low 64 bits of its
 * message operand.
 *
 * Per nonce: first hash rounds 2..63 (rounds 0-1 precomputed per job: they
 * see only the tail words), 15 schedule groups of which two msg1 terms are
 * constant; second hash rounds 0..61 only, since word 7 of its result (the
 * top 32 bits of the little-endian hash) is e after round 60 = F of ABEF
 * after the 31st SHA256RNDS2.
 */
#include "impl.h"
#if defined(MINER_X86)
#include <immintrin.h>
#include <string.h>
#define SHA256_U32 uint32_t
#include "sha256_common.h"

#define SHANI_ATTR __attribute__((target("sha,sse4.1")))
#define SHANI_INLINE static inline __attribute__((always_inline, target("sha,sse4.1")))

typedef struct {
    __m128i h1_abef2, h1_cdgh2; /* first hash state after rounds 0-1 */
    __m128i h1_mid_abef, h1_mid_cdgh; /* midstate, for the feed-forward */
    __m128i h1_m0;              /* W0..W3 with W3 = 0 */
    __m128i h1_kw23;            /* low qword: K2 + W2, K3 (nonce added per lane) */
    __m128i h1_kw[4];           /* K + W for groups 1..3 (constant padding) */
    __m128i h1_g1, h1_g3;       /* schedule groups 1 and 3 (group 2 is zero) */
    __m128i h1_msg1_12, h1_msg1_23;
    __m128i h2_iv_abef, h2_iv_cdgh;
    __m128i h2_kw[4];           /* K + W for groups 2..3 of the second hash */
    __m128i h2_g2, h2_g3, h2_align32, h2_msg1_23;
    __m128i k[16];              /* K grouped by four */
} shani_pre;

static inline __m128i abef(const uint32_t s[8]) { return _mm_set_epi32((int)s[0], (int)s[1], (int)s[4], (int)s[5]); }
static inline __m128i cdgh(const uint32_t s[8]) { return _mm_set_epi32((int)s[2], (int)s[3], (int)s[6], (int)s[7]); }
static inline __m128i words(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
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
        p->h1_cdgh2 = cdgh(t);
    }
    for (int i = 0; i < 16; i++)
        p->k[i] = words(SHA256_K[4 * i], SHA256_K[4 * i + 1], SHA256_K[4 * i + 2], SHA256_K[4 * i + 3]);
    p->h1_m0 = words(w->tail[0], w->tail[1], w->tail[2], 0);
    p->h1_kw23 = words(w->tail[2] + SHA256_K[2], SHA256_K[3], 0, 0);
    p->h1_g1 = words(0x80000000u, 0, 0, 0);
    p->h1_g3 = words(0, 0, 0, 640);
    p->h1_kw[1] = _mm_add_epi32(p->h1_g1, p->k[1]);
    p->h1_kw[2] = p->k[2];
    p->h1_kw[3] = _mm_add_epi32(p->h1_g3, p->k[3]);
    p->h1_msg1_12 = _mm_sha256msg1_epu32(p->h1_g1, _mm_setzero_si128());
    p->h1_msg1_23 = _mm_sha256msg1_epu32(_mm_setzero_si128(), p->h1_g3);
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

SHANI_INLINE void shani_lanes(const shani_pre *p, uint32_t n0, uint32_t *h7, const int L) {
    __m128i S0[4], S1[4], G[4][4], kw[4], m1[4];

    /* ---- First hash. Rounds 2-3: the only ones before the schedule that see the nonce. ---- */
    UNROLL for (int l = 0; l < L; l++) {
        uint32_t wn = __builtin_bswap32(n0 + (uint32_t)l);
        G[l][0] = _mm_insert_epi32(p->h1_m0, (int)wn, 3);
        G[l][1] = p->h1_g1;
        G[l][2] = _mm_setzero_si128();
        G[l][3] = p->h1_g3;
        kw[l] = _mm_insert_epi32(p->h1_kw23, (int)(wn + SHA256_K[3]), 1);
        S0[l] = p->h1_mid_abef; /* CDGH after rounds 0-1 = ABEF before them */
        S1[l] = p->h1_abef2;
    }
    UNROLL for (int l = 0; l < L; l++) S0[l] = _mm_sha256rnds2_epu32(S0[l], S1[l], kw[l]);
    /* Rounds 4-15: constant K + W. */
    UNROLL for (int gi = 1; gi < 4; gi++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->h1_kw[gi];
        RND4(L, kw);
    }
    /* Rounds 16-63 with the schedule. */
    UNROLL for (int gi = 4; gi < 16; gi++) {
        UNROLL for (int l = 0; l < L; l++) {
            if (gi == 5) m1[l] = p->h1_msg1_12;
            else if (gi == 6) m1[l] = p->h1_msg1_23;
            else m1[l] = _mm_sha256msg1_epu32(G[l][gi & 3], G[l][(gi + 1) & 3]);
        }
        SCHED(L, gi, m1[l]);
        UNROLL for (int l = 0; l < L; l++) kw[l] = _mm_add_epi32(G[l][gi & 3], p->k[gi]);
        RND4(L, kw);
    }
    /* Feed-forward, then the digest as the second hash's W0..W7. */
    UNROLL for (int l = 0; l < L; l++) {
        S0[l] = _mm_add_epi32(S0[l], p->h1_mid_abef);
        S1[l] = _mm_add_epi32(S1[l], p->h1_mid_cdgh);
        G[l][0] = _mm_shuffle_epi32(_mm_unpackhi_epi64(S1[l], S0[l]), 0x1B); /* A B C D */
        G[l][1] = _mm_shuffle_epi32(_mm_unpacklo_epi64(S1[l], S0[l]), 0x1B); /* E F G H */
        G[l][2] = p->h2_g2;
        G[l][3] = p->h2_g3;
        S0[l] = p->h2_iv_abef;
        S1[l] = p->h2_iv_cdgh;
    }
    /* ---- Second hash. ---- */
    UNROLL for (int gi = 0; gi < 2; gi++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = _mm_add_epi32(G[l][gi], p->k[gi]);
        RND4(L, kw);
    }
    UNROLL for (int gi = 2; gi < 4; gi++) {
        UNROLL for (int l = 0; l < L; l++) kw[l] = p->h2_kw[gi];
        RND4(L, kw);
    }
    UNROLL for (int gi = 4; gi < 16; gi++) {
        UNROLL for (int l = 0; l < L; l++)
            m1[l] = gi == 6 ? p->h2_msg1_23 : _mm_sha256msg1_epu32(G[l][gi & 3], G[l][(gi + 1) & 3]);
        if (gi == 4) {
            UNROLL for (int l = 0; l < L; l++)
                G[l][0] = _mm_sha256msg2_epu32(_mm_add_epi32(m1[l], p->h2_align32), G[l][3]);
        } else {
            SCHED(L, gi, m1[l]);
        }
        UNROLL for (int l = 0; l < L; l++) kw[l] = _mm_add_epi32(G[l][gi & 3], p->k[gi]);
        if (gi < 15) {
            RND4(L, kw);
        } else {
            /* Rounds 60-61 only: F of the new ABEF is e after round 60. */
            UNROLL for (int l = 0; l < L; l++) S1[l] = _mm_sha256rnds2_epu32(S1[l], S0[l], kw[l]);
        }
    }
    UNROLL for (int l = 0; l < L; l++) h7[l] = (uint32_t)_mm_cvtsi128_si32(S1[l]) + SHA256_H7;
}

#define SHANI_SCAN(name, L)                                                    \
    SHANI_ATTR int name(const miner_work *w, uint32_t start, uint64_t count,   \
                        uint32_t *out, int cap, uint64_t *next,                \
                        const volatile int *abort) {                           \
        shani_pre pre;                                                         \
        shani_prepare(w, &pre);                                                \
        MINER_SCAN_LOOP(L, SHANI_LANES_##L);                                   \
    }
#define SHANI_LANES_1(n0, h7) shani_lanes(&pre, n0, h7, 1)
#define SHANI_LANES_2(n0, h7) shani_lanes(&pre, n0, h7, 2)
#define SHANI_LANES_3(n0, h7) shani_lanes(&pre, n0, h7, 3)
#define SHANI_LANES_4(n0, h7) shani_lanes(&pre, n0, h7, 4)

SHANI_SCAN(miner_scan_shani1, 1)
SHANI_SCAN(miner_scan_shani2, 2)
/* Three lanes: fewer spills than four with only 16 XMM registers. */
SHANI_SCAN(miner_scan_shani3, 3)
SHANI_SCAN(miner_scan_shani4, 4)
#endif
