/*
 * Word-sliced double SHA-256 of one job for several nonces at once, written
 * once over an abstract lane type and instantiated by csrc/sha256_portable.c
 * (one uint32_t), csrc/sha256_avx2.c (eight lanes in a __m256i) and
 * csrc/sha256_avx512.c (sixteen lanes in a __m512i).
 *
 * The includer defines, before including:
 *   LV            the lane vector type
 *   LV_ADD(a, b), LV_XOR, LV_AND, LV_OR    lane-wise 32-bit operations
 *   LV_SHR(x, n), LV_SHL(x, n)             shifts by a constant
 *   LV_ROTR(x, n)                          rotate right by a constant
 *   LV_SET1(x)                             broadcast a uint32_t
 *   LANES_FN                               the name of the function to define
 *   LANES_ATTR                             attributes for it (target, inline)
 * and optionally LV_XOR3, LV_CH, LV_MAJ (three-input forms) and
 * LANES_EARLY_SCHEDULE (see L_BLOCKS).
 * and gets
 *   LANES_ATTR LV LANES_FN(const miner_pre *p, LV nonce)
 * which returns word 7 of the second hash's final state (the digest's last
 * four bytes, big-endian) for each lane's nonce; and, when the includer also
 * defines LANES_VERSIONS_FN,
 *   LANES_ATTR void LANES_VERSIONS_FN(const miner_pre *p, int nv, LV nonce, LV *out)
 * which does the same for nv versions of the header (p[0..nv-1], out[0..nv-1])
 * with the first hash's schedule made once.
 *
 * Work per nonce: rounds 3..63 of the first hash (0-2 and the constant part of
 * round 3 come from miner_pre), rounds 0..60 of the second hash (word 7 of the
 * result is e after round 60, so rounds 61-63 are skipped), and only the
 * schedule terms that depend on the nonce (FIPS 180-4 section 6.2.2, with
 * the zero padding words dropped).
 */
/* Optional: three-input XOR, Ch and Maj where the ISA has one instruction for them. */
#ifndef LV_XOR3
#define LV_XOR3(x, y, z) LV_XOR(LV_XOR(x, y), z)
#endif
#ifndef LV_CH
#define LV_CH(e, f, g) LV_XOR(g, LV_AND(e, LV_XOR(f, g)))
#endif
#ifndef LV_MAJ
#define LV_MAJ(a, b, c) LV_OR(LV_AND(a, b), LV_AND(c, LV_OR(a, b)))
#endif
#define L_S0(x) LV_XOR3(LV_ROTR(x, 2), LV_ROTR(x, 13), LV_ROTR(x, 22))
#define L_S1(x) LV_XOR3(LV_ROTR(x, 6), LV_ROTR(x, 11), LV_ROTR(x, 25))
#define L_s0(x) LV_XOR3(LV_ROTR(x, 7), LV_ROTR(x, 18), LV_SHR(x, 3))
#define L_s1(x) LV_XOR3(LV_ROTR(x, 17), LV_ROTR(x, 19), LV_SHR(x, 10))
#define L_CH(e, f, g) LV_CH(e, f, g)
#define L_MAJ(a, b, c) LV_MAJ(a, b, c)

/* One round; kw is K[i] + W[i]. Only d and h change (the caller rotates names). */
#define L_ROUND(a, b, c, d, e, f, g, h, kw)                                    \
    do {                                                                       \
        LV t1_ = LV_ADD(LV_ADD(LV_ADD(h, L_S1(e)), L_CH(e, f, g)), kw);         \
        LV t2_ = LV_ADD(L_S0(a), L_MAJ(a, b, c));                              \
        d = LV_ADD(d, t1_);                                                    \
        h = LV_ADD(t1_, t2_);                                                  \
    } while (0)

/* The e half of a round: d += T1, h left stale (its value is never read). */
#define L_ROUND_E(a, b, c, d, e, f, g, h, kw)                                  \
    do {                                                                       \
        d = LV_ADD(d, LV_ADD(LV_ADD(LV_ADD(h, L_S1(e)), L_CH(e, f, g)), kw));   \
    } while (0)

#define L_ROUNDS8(kw, i)                                                       \
    do {                                                                       \
        L_ROUND(a, b, c, d, e, f, g, h, kw[(i) + 0]);                          \
        L_ROUND(h, a, b, c, d, e, f, g, kw[(i) + 1]);                          \
        L_ROUND(g, h, a, b, c, d, e, f, kw[(i) + 2]);                          \
        L_ROUND(f, g, h, a, b, c, d, e, kw[(i) + 3]);                          \
        L_ROUND(e, f, g, h, a, b, c, d, kw[(i) + 4]);                          \
        L_ROUND(d, e, f, g, h, a, b, c, kw[(i) + 5]);                          \
        L_ROUND(c, d, e, f, g, h, a, b, kw[(i) + 6]);                          \
        L_ROUND(b, c, d, e, f, g, h, a, kw[(i) + 7]);                          \
    } while (0)

/* Eight-round blocks from round `from` to `to`; schedule words >= `sched`
 * (and their K + W) are made just before the block that needs them, or all
 * up front when the includer defines LANES_EARLY_SCHEDULE (better where the
 * lanes already give enough independent work, e.g. two interleaved chains). */
#undef L_BLOCKS /* this header may be included more than once per file */
#ifdef LANES_EARLY_SCHEDULE
#define L_BLOCKS(W, kw, from, to, sched)                                       \
    do {                                                                       \
        for (int j_ = (sched); j_ < (to); j_++) {                              \
            L_SCHED(W, j_);                                                    \
            kw[j_] = LV_ADD(W[j_], LV_SET1(SHA256_K[j_]));                     \
        }                                                                      \
        for (int i_ = (from); i_ < (to); i_ += 8) L_ROUNDS8(kw, i_);           \
    } while (0)
#else
#define L_BLOCKS(W, kw, from, to, sched)                                       \
    do {                                                                       \
        _Pragma("GCC unroll 8") for (int i_ = (from); i_ < (to); i_ += 8) {    \
            _Pragma("GCC unroll 8") for (int j_ = i_; j_ < i_ + 8; j_++) {     \
                if (j_ >= (sched)) {                                           \
                    L_SCHED(W, j_);                                            \
                    kw[j_] = LV_ADD(W[j_], LV_SET1(SHA256_K[j_]));             \
                }                                                              \
            }                                                                  \
            L_ROUNDS8(kw, i_);                                                 \
        }                                                                      \
    } while (0)
#endif

/* General schedule word i from W[i-2], W[i-7], W[i-15], W[i-16]. */
#define L_SCHED(W, i)                                                          \
    (W[i] = LV_ADD(LV_ADD(L_s1(W[(i)-2]), W[(i)-7]), LV_ADD(L_s0(W[(i)-15]), W[(i)-16])))

/* ---- First hash, block 2, the part shared by every version of a header:
 * W0-2 tail, W3 nonce, W4 pad, W15 = 640; the schedule head and K + W of
 * rounds 4-32 (the rest is made by the first L_FIRST_ROUNDS). ---- */
#define L_FIRST_HEAD(p, nonce)                                                 \
    do {                                                                       \
        W[3] = nonce;                                                          \
        W[16] = LV_SET1((p)->w16);                                             \
        W[17] = LV_SET1((p)->w17);                                             \
        W[18] = LV_ADD(LV_SET1((p)->c18), L_s0(nonce));                        \
        W[19] = LV_ADD(LV_SET1((p)->c19), nonce);                              \
        W[20] = LV_ADD(L_s1(W[18]), LV_SET1(0x80000000u));                     \
        W[21] = L_s1(W[19]);                                                   \
        W[22] = LV_ADD(L_s1(W[20]), LV_SET1(640));                             \
        W[23] = LV_ADD(L_s1(W[21]), W[16]);                                    \
        W[24] = LV_ADD(L_s1(W[22]), W[17]);                                    \
        W[25] = LV_ADD(L_s1(W[23]), W[18]);                                    \
        W[26] = LV_ADD(L_s1(W[24]), W[19]);                                    \
        W[27] = LV_ADD(L_s1(W[25]), W[20]);                                    \
        W[28] = LV_ADD(L_s1(W[26]), W[21]);                                    \
        W[29] = LV_ADD(L_s1(W[27]), W[22]);                                    \
        W[30] = LV_ADD(LV_ADD(L_s1(W[28]), W[23]), LV_SET1((p)->c30));         \
        W[31] = LV_ADD(LV_ADD(L_s1(W[29]), W[24]), LV_SET1((p)->c31));         \
        W[32] = LV_ADD(LV_ADD(L_s1(W[30]), W[25]), LV_SET1((p)->c32));         \
        for (int i_ = 4; i_ < 16; i_++) kw[i_] = LV_SET1((p)->kw1[i_]);        \
        for (int i_ = 16; i_ < 33; i_++) kw[i_] = LV_ADD(W[i_], LV_SET1(SHA256_K[i_])); \
    } while (0)

/* Rounds 3-63 of the first hash from one version's state after rounds 0-2
 * (q->st2, q->r3_*), then the feed-forward with its midstate into W2[0..7].
 * Schedule words from `sched` on are made here (33 the first time for a
 * nonce group; 64, none, when an earlier version already made them all). */
#define L_FIRST_ROUNDS(q, nonce, sched)                                        \
    do {                                                                       \
        /* Names are rotated so round 3 sits at position 3 of an eight-round   \
         * block: round 3 works on (f, g, h, a, b, c, d, e). */                \
        f = LV_SET1((q)->st2[0]); g = LV_SET1((q)->st2[1]); h = LV_SET1((q)->st2[2]); \
        a = LV_SET1((q)->st2[3]); b = LV_SET1((q)->st2[4]); c = LV_SET1((q)->st2[5]); \
        d = LV_SET1((q)->st2[6]); e = LV_SET1((q)->st2[7]);                    \
        /* Round 3: d' = d + T1, h' = T1 + T2 in that rotation are a and e. */ \
        {                                                                      \
            LV t1_ = LV_ADD(LV_SET1((q)->r3_t1), nonce);                       \
            a = LV_ADD(a, t1_);                                                \
            e = LV_ADD(t1_, LV_SET1((q)->r3_t2));                              \
        }                                                                      \
        L_ROUND(e, f, g, h, a, b, c, d, kw[4]);                                \
        L_ROUND(d, e, f, g, h, a, b, c, kw[5]);                                \
        L_ROUND(c, d, e, f, g, h, a, b, kw[6]);                                \
        L_ROUND(b, c, d, e, f, g, h, a, kw[7]);                                \
        /* The general schedule words are computed block by block, just      \
         * before the rounds that use them, so they fill issue slots the      \
         * round chain leaves free. */                                        \
        L_BLOCKS(W, kw, 8, 64, sched);                                         \
        /* Feed-forward: the first digest is the second hash's W0..W7. */     \
        W2[0] = LV_ADD(a, LV_SET1((q)->mid[0]));                               \
        W2[1] = LV_ADD(b, LV_SET1((q)->mid[1]));                               \
        W2[2] = LV_ADD(c, LV_SET1((q)->mid[2]));                               \
        W2[3] = LV_ADD(d, LV_SET1((q)->mid[3]));                               \
        W2[4] = LV_ADD(e, LV_SET1((q)->mid[4]));                               \
        W2[5] = LV_ADD(f, LV_SET1((q)->mid[5]));                               \
        W2[6] = LV_ADD(g, LV_SET1((q)->mid[6]));                               \
        W2[7] = LV_ADD(h, LV_SET1((q)->mid[7]));                               \
    } while (0)

/* The second hash of W2[0..7] (W8 pad, W9-14 zero, W15 = 256) up to word 7
 * of its result, into `out`. Its constants are the same for every job. */
#define L_SECOND(p, out)                                                       \
    do {                                                                       \
        W2[16] = LV_ADD(L_s0(W2[1]), W2[0]);                                   \
        W2[17] = LV_ADD(LV_ADD(L_s0(W2[2]), W2[1]), LV_SET1((p)->h2_c17));     \
        W2[18] = LV_ADD(LV_ADD(L_s1(W2[16]), L_s0(W2[3])), W2[2]);             \
        W2[19] = LV_ADD(LV_ADD(L_s1(W2[17]), L_s0(W2[4])), W2[3]);             \
        W2[20] = LV_ADD(LV_ADD(L_s1(W2[18]), L_s0(W2[5])), W2[4]);             \
        W2[21] = LV_ADD(LV_ADD(L_s1(W2[19]), L_s0(W2[6])), W2[5]);             \
        W2[22] = LV_ADD(LV_ADD(L_s1(W2[20]), L_s0(W2[7])), LV_ADD(W2[6], LV_SET1(256))); \
        W2[23] = LV_ADD(LV_ADD(L_s1(W2[21]), W2[16]), LV_ADD(W2[7], LV_SET1((p)->h2_c23))); \
        W2[24] = LV_ADD(LV_ADD(L_s1(W2[22]), W2[17]), LV_SET1(0x80000000u));   \
        W2[25] = LV_ADD(L_s1(W2[23]), W2[18]);                                 \
        W2[26] = LV_ADD(L_s1(W2[24]), W2[19]);                                 \
        W2[27] = LV_ADD(L_s1(W2[25]), W2[20]);                                 \
        W2[28] = LV_ADD(L_s1(W2[26]), W2[21]);                                 \
        W2[29] = LV_ADD(L_s1(W2[27]), W2[22]);                                 \
        W2[30] = LV_ADD(LV_ADD(L_s1(W2[28]), W2[23]), LV_SET1((p)->h2_c30));   \
        W2[31] = LV_ADD(LV_ADD(L_s1(W2[29]), W2[24]), LV_ADD(L_s0(W2[16]), LV_SET1(256))); \
        for (int i_ = 1; i_ < 8; i_++) kw2[i_] = LV_ADD(W2[i_], LV_SET1(SHA256_K[i_])); \
        for (int i_ = 8; i_ < 16; i_++) kw2[i_] = LV_SET1((p)->kw2[i_]);       \
        for (int i_ = 16; i_ < 32; i_++) kw2[i_] = LV_ADD(W2[i_], LV_SET1(SHA256_K[i_])); \
        /* Round 0 from the constant IV: d' = IV3 + T1, h' = T1 + T2. */       \
        a = LV_SET1(SHA256_H0); b = LV_SET1(SHA256_H1); c = LV_SET1(SHA256_H2); \
        e = LV_SET1(SHA256_H4); f = LV_SET1(SHA256_H5); g = LV_SET1(SHA256_H6); \
        {                                                                      \
            LV t1_ = LV_ADD(LV_SET1((p)->h2_r0_t1), W2[0]);                    \
            d = LV_ADD(LV_SET1(SHA256_H3), t1_);                               \
            h = LV_ADD(t1_, LV_SET1((p)->h2_r0_t2));                           \
        }                                                                      \
        L_ROUND(h, a, b, c, d, e, f, g, kw2[1]);                               \
        L_ROUND(g, h, a, b, c, d, e, f, kw2[2]);                               \
        L_ROUND(f, g, h, a, b, c, d, e, kw2[3]);                               \
        L_ROUND(e, f, g, h, a, b, c, d, kw2[4]);                               \
        L_ROUND(d, e, f, g, h, a, b, c, kw2[5]);                               \
        L_ROUND(c, d, e, f, g, h, a, b, kw2[6]);                               \
        L_ROUND(b, c, d, e, f, g, h, a, kw2[7]);                               \
        L_BLOCKS(W2, kw2, 8, 56, 32);                                          \
        for (int i_ = 56; i_ < 61; i_++) {                                     \
            L_SCHED(W2, i_);                                                   \
            kw2[i_] = LV_ADD(W2[i_], LV_SET1(SHA256_K[i_]));                   \
        }                                                                      \
        L_ROUND(a, b, c, d, e, f, g, h, kw2[56]);                              \
        /* Rounds 57-59: their new a values would only feed rounds 61+, so    \
         * only the e half (d += T1) is computed. */                          \
        L_ROUND_E(h, a, b, c, d, e, f, g, kw2[57]);                            \
        L_ROUND_E(g, h, a, b, c, d, e, f, kw2[58]);                            \
        L_ROUND_E(f, g, h, a, b, c, d, e, kw2[59]);                            \
        /* Round 60 sits at position 4, (e, f, g, h, a, b, c, d): its new e   \
         * is h + T1, which becomes h after round 63; H7 = IV7 + that. */     \
        {                                                                      \
            LV t1_ = LV_ADD(LV_ADD(LV_ADD(d, L_S1(a)), L_CH(a, b, c)), kw2[60]); \
            out = LV_ADD(LV_ADD(h, t1_), LV_SET1(SHA256_H7));                  \
        }                                                                      \
    } while (0)

LANES_ATTR LV LANES_FN(const miner_pre *p, LV nonce) {
    LV W[64], kw[64], W2[64], kw2[64], r;
    LV a, b, c, d, e, f, g, h;
    L_FIRST_HEAD(p, nonce);
    L_FIRST_ROUNDS(p, nonce, 33);
    L_SECOND(p, r);
    return r;
}

#ifdef LANES_VERSIONS_FN
/* W and kw of rounds 33-63 are written by the first pass of the loop below
 * (sched 33) and only read by the later ones (sched 64); GCC cannot see that
 * through the run-time sched and would warn on every read. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/* The same for nv (1..MINER_MAX_VERSIONS) versions of one header, p[v]
 * prepared from version v: the first hash's message schedule depends only
 * on the header tail and the nonce, so it is made once and every version
 * after the first runs its rounds on it (BIP 310 version rolling as a
 * saving, the idea behind "overt ASICBoost"). */
LANES_ATTR void LANES_VERSIONS_FN(const miner_pre *p, int nv, LV nonce, LV *out) {
    LV W[64], kw[64], W2[64], kw2[64];
    LV a, b, c, d, e, f, g, h;
    L_FIRST_HEAD(p, nonce);
    /* One copy of the rounds for every version, the schedule words skipped
     * by a branch after the first: two copies (about 40 KB of AVX-512 code)
     * overflow the L1 instruction cache and cost more than the saving. */
    for (int v = 0; v < nv; v++) {
        L_FIRST_ROUNDS(p + v, nonce, v ? 64 : 33);
        L_SECOND(p, out[v]);
    }
}
#pragma GCC diagnostic pop
#endif
