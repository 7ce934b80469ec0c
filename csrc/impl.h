/* Internal interface between the dispatcher and each instruction-set file. */
#ifndef MINER_IMPL_H
#define MINER_IMPL_H
#include <stdint.h>

/*
 * Per-job inputs, derived once by the dispatcher from the 80-byte header:
 *   midstate[8]  SHA-256 state after header bytes 0..63
 *   tail[3]      header bytes 64..75 as big-endian words (merkle tail, ntime, nbits)
 *   target[8]    the target as little-endian limbs, target[7] most significant
 * An implementation scans nonces [start, start+count), writes hits into out
 * (ascending, at most cap), stores the first unscanned nonce in *next and
 * returns the number of hits. It must stop early once out is full or *abort
 * becomes non-zero (checked at least every 8 Ki nonces).
 */
typedef struct {
    uint32_t midstate[8];
    uint32_t tail[3];
    uint32_t target[8];
} miner_work;

typedef int (*miner_scan_fn)(const miner_work *w, uint32_t start, uint64_t count,
                             uint32_t *out, int cap, uint64_t *next,
                             const volatile int *abort);

/*
 * Nonce-independent values of one job for the word-sliced implementations
 * (portable, avx2); see csrc/sha256d_lanes.h for where each one is used.
 * First hash (block 2 of the header): rounds 0-2 done, round 3 split into its
 * constant part plus the nonce, schedule words 16/17 and the constant parts of
 * 18, 19, 30, 31, 32. Second hash: the constant parts of round 0 and of
 * schedule words 17, 23.
 */
typedef struct {
    uint32_t mid[8];     /* midstate, for the feed-forward of the first hash */
    uint32_t st2[8];     /* a..h after rounds 0-2 of the first hash */
    uint32_t r3_t1;      /* round 3: T1 without W3 */
    uint32_t r3_t2;      /* round 3: T2 */
    uint32_t w16, w17, c18, c19, c30, c31, c32;
    uint32_t kw1[16];    /* K[i] + W[i] of the first hash for i = 4..15 (index i) */
    uint32_t kw2[16];    /* K[i] + W[i] of the second hash for i = 8..15 (index i) */
    uint32_t h2_r0_t1;   /* second hash round 0: T1 without W0 */
    uint32_t h2_r0_t2;   /* second hash round 0: T2 */
    uint32_t h2_c17, h2_c23, h2_c30;
} miner_pre;

/*
 * Several versions of one header (BIP 310 version rolling) in one pass, where
 * an implementation can share work between them: w[0..nv-1] differ only in
 * their midstate (version), 1 <= nv <= MINER_MAX_VERSIONS. Hits go to out as
 * (nonce, version index) pairs, ascending by nonce then index; cap counts
 * pairs and must be at least MINER_VERSIONS_MIN_CAP. The scan stops at a
 * lane-group boundary when fewer free pairs remain than one group could
 * fill, so *next always means "every version of every nonce below it done".
 */
#define MINER_MAX_VERSIONS 8
/* The widest lane group of a version scan (avx512(32-way)); a call must have
 * room for one whole group of every version. */
#define MINER_VERSIONS_MAX_LANES 32
#define MINER_VERSIONS_MIN_CAP (MINER_VERSIONS_MAX_LANES * MINER_MAX_VERSIONS)
typedef int (*miner_scan_versions_fn)(const miner_work *w, int nv, uint32_t start, uint64_t count,
                                      uint32_t *out, int cap, uint64_t *next,
                                      const volatile int *abort);

/* Fill p from w (portable C, a few hundred instructions per job). */
void miner_precompute(const miner_work *w, miner_pre *p);

/* Portable building blocks, used by every implementation for setup and checks. */
void miner_sha256_compress_portable(uint32_t state[8], const uint32_t block[16]);
/* Full hash of one nonce from the work: out8 = state words of the second hash.
 * The plain two-compression reference; implementations use it to confirm each
 * candidate, and the self-test compares every implementation against it. */
void miner_hash_nonce_portable(const miner_work *w, uint32_t nonce, uint32_t out8[8]);
/* 1 if the final state words s[8] (big-endian word order of the digest) meet target. */
int miner_meets_target(const uint32_t s[8], const uint32_t target[8]);

/*
 * Word 7 of the second hash decides the top 32 bits of the little-endian hash
 * value: limb 7 = bswap(H7). A nonce is a candidate when that limb is <= the
 * target's limb 7 (for every target below 2^224 that means H7 == 0); each
 * candidate is then confirmed with the full 256-bit comparison, so this early
 * filter is exact for every target.
 */
static inline int miner_h7_candidate(uint32_t h7, uint32_t target7) {
    return __builtin_bswap32(h7) <= target7;
}
/* Confirm a candidate nonce with the reference hash and the exact compare. */
int miner_confirm(const miner_work *w, uint32_t nonce);

int miner_scan_portable(const miner_work *w, uint32_t start, uint64_t count,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(MINER_PORTABLE_ONLY)
/* MINER_PORTABLE_ONLY: build as a non-x86 target would (portable code only). */
#define MINER_X86 1
int miner_scan_avx2(const miner_work *w, uint32_t start, uint64_t count,
                    uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
int miner_scan_avx512(const miner_work *w, uint32_t start, uint64_t count,
                      uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
int miner_scan_avx512x2(const miner_work *w, uint32_t start, uint64_t count,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
int miner_scan_avx512_versions(const miner_work *w, int nv, uint32_t start, uint64_t count,
                               uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
int miner_scan_avx512x2_versions(const miner_work *w, int nv, uint32_t start, uint64_t count,
                                 uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
/* SHA-NI, 1-4 lanes, and several versions per nonce (miner_scan_versions_fn) at 2,
 * 3 and 4 lanes: the SSE build (sha256_shani.c, no suffix) and the same code
 * VEX-encoded (sha256_shani_vex.c, suffix _vex) for CPUs with AVX too. */
#define MINER_SCAN_PARAMS const miner_work *w, uint32_t start, uint64_t count, \
                          uint32_t *out, int cap, uint64_t *next, const volatile int *abort
#define MINER_SCAN_VERSIONS_PARAMS const miner_work *w, int nv, uint32_t start, uint64_t count, \
                                   uint32_t *out, int cap, uint64_t *next, const volatile int *abort
#define MINER_SHANI_DECLS(sfx)                                                  \
    int miner_scan_shani1##sfx(MINER_SCAN_PARAMS);                               \
    int miner_scan_shani2##sfx(MINER_SCAN_PARAMS);                               \
    int miner_scan_shani3##sfx(MINER_SCAN_PARAMS);                               \
    int miner_scan_shani4##sfx(MINER_SCAN_PARAMS);                               \
    int miner_scan_shani2_versions##sfx(MINER_SCAN_VERSIONS_PARAMS);             \
    int miner_scan_shani3_versions##sfx(MINER_SCAN_VERSIONS_PARAMS);             \
    int miner_scan_shani4_versions##sfx(MINER_SCAN_VERSIONS_PARAMS);
MINER_SHANI_DECLS()
MINER_SHANI_DECLS(_vex)
int miner_scan_avx2_versions(const miner_work *w, int nv, uint32_t start, uint64_t count,
                             uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
#endif

#if defined(__aarch64__) && (defined(__linux__) || defined(__APPLE__)) && !defined(MINER_PORTABLE_ONLY)
/* 64-bit ARM with a way to ask the OS for the SHA2 feature. */
#define MINER_ARMV8 1
int miner_scan_armv8_1(const miner_work *w, uint32_t start, uint64_t count,
                       uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
int miner_scan_armv8_2(const miner_work *w, uint32_t start, uint64_t count,
                       uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
#endif

/* Candidate lanes of an h7 array as a bit mask (bit l = lane l). */
static inline uint64_t miner_h7_mask(const uint32_t *h7, int lanes, uint32_t target7) {
    uint64_t m = 0;
    for (int l = 0; l < lanes; l++) m |= (uint64_t)miner_h7_candidate(h7[l], target7) << l;
    return m;
}

/*
 * The scan loop every implementation shares: LANES (at most 64) nonces per
 * evaluation of MASK_OF, an expression over the current first nonce n_ whose
 * value has bit l set when nonce n_ + l is a candidate (miner_h7_candidate).
 * The abort flag is read every 8 Ki nonces (a clean job must reach every
 * thread within a millisecond or so); candidates are confirmed in ascending
 * order and the output cap is honoured exactly. Lanes past the end of the
 * range (the nonce wraps past 2^32-1) are computed and ignored. It is the
 * whole body of a miner_scan_fn and uses that function's parameter names
 * (w, start, count, out, cap, next, abort).
 *
 * Candidates are rare (one in 2^32 nonces at difficulty 1), so the common
 * path is one mask test per call; an implementation that can compare in its
 * vector unit (AVX-512's VPCMPUD into a mask register) skips the per-lane
 * scalar loop of miner_h7_mask, which cost it 3-5% of its speed.
 */
#define MINER_SCAN_LOOP_MASK(LANES, MASK_OF)                                   \
    do {                                                                       \
        int found_ = 0;                                                        \
        uint64_t n_ = start, end_ = (uint64_t)start + count;                   \
        while (n_ < end_) {                                                    \
            if (abort && *abort) break;                                        \
            uint64_t stop_ = end_ - n_ > 8192 ? n_ + 8192 : end_;              \
            for (; n_ < stop_; n_ += (LANES)) {                                \
                uint64_t m_ = (MASK_OF);                                       \
                while (m_) {                                                   \
                    int l_ = __builtin_ctzll(m_);                              \
                    m_ &= m_ - 1;                                              \
                    if (n_ + (uint64_t)l_ < end_ &&                            \
                        miner_confirm(w, (uint32_t)(n_ + (uint64_t)l_))) {     \
                        out[found_++] = (uint32_t)(n_ + (uint64_t)l_);         \
                        if (found_ >= cap) {                                   \
                            *next = n_ + (uint64_t)l_ + 1;                     \
                            return found_;                                     \
                        }                                                      \
                    }                                                          \
                }                                                              \
            }                                                                  \
        }                                                                      \
        *next = n_ < end_ ? n_ : end_;                                         \
        return found_;                                                         \
    } while (0)

/* The same loop over HASH_LANES(n0, h7), which fills h7[0..LANES-1] with word
 * 7 of the second hash of nonces n0, n0+1, ... */
#define MINER_SCAN_LOOP(LANES, HASH_LANES)                                      \
    do {                                                                       \
        uint32_t h7_[LANES];                                                   \
        MINER_SCAN_LOOP_MASK(LANES, (HASH_LANES((uint32_t)n_, h7_),            \
                                     miner_h7_mask(h7_, LANES, w->target[7]))); \
    } while (0)

/*
 * The scan loop of a multi-version implementation (miner_scan_versions_fn):
 * HASH_LANES fills h7_[v * LANES + l] with word 7 of the second hash of
 * nonce n_ + l under version v, for NV versions. Pairs are reported by
 * nonce, then version index; the call stops at a lane-group boundary when
 * fewer than LANES * NV free pairs remain.
 *
 * MINER_SCAN_VERSIONS_LOOP_ANY is the same loop over ANY_OF, an expression
 * whose value has bit l set when some version of nonce n_ + l may be a
 * candidate (an implementation that tests all versions at once in its vector
 * unit); every version of such a nonce is then confirmed. A spurious bit
 * costs only those confirmations, so ANY_OF may over-report, never miss.
 */
#define MINER_SCAN_VERSIONS_LOOP_(LANES, NV, ANY_OF, MAYBE)                    \
    do {                                                                       \
        int found_ = 0;                                                        \
        uint64_t n_ = start, end_ = (uint64_t)start + count;                   \
        while (n_ < end_) {                                                    \
            if (abort && *abort) break;                                        \
            uint64_t stop_ = end_ - n_ > 8192 ? n_ + 8192 : end_;              \
            for (; n_ < stop_; n_ += (LANES)) {                                \
                if (cap - found_ < (LANES) * (NV)) {                           \
                    *next = n_;                                                \
                    return found_;                                             \
                }                                                              \
                uint64_t any_ = (ANY_OF);                                      \
                while (any_) {                                                 \
                    int l_ = __builtin_ctzll(any_);                            \
                    any_ &= any_ - 1;                                          \
                    for (int v_ = 0; v_ < (NV); v_++) {                        \
                        uint64_t x_ = n_ + (uint64_t)l_;                       \
                        if (x_ < end_ && (MAYBE) && miner_confirm(&w[v_], (uint32_t)x_)) { \
                            out[2 * found_] = (uint32_t)x_;                    \
                            out[2 * found_ + 1] = (uint32_t)v_;                \
                            found_++;                                          \
                        }                                                      \
                    }                                                          \
                }                                                              \
            }                                                                  \
        }                                                                      \
        *next = n_ < end_ ? n_ : end_;                                         \
        return found_;                                                         \
    } while (0)

static inline uint64_t miner_h7_mask_versions(const uint32_t *h7, int lanes, int nv, const miner_work *w) {
    uint64_t any = 0;
    for (int v = 0; v < nv; v++) any |= miner_h7_mask(h7 + v * lanes, lanes, w[v].target[7]);
    return any;
}

#define MINER_SCAN_VERSIONS_LOOP(LANES, NV, HASH_LANES)                        \
    do {                                                                       \
        uint32_t h7_[(LANES) * MINER_MAX_VERSIONS];                            \
        MINER_SCAN_VERSIONS_LOOP_(LANES, NV, ({ HASH_LANES; miner_h7_mask_versions(h7_, LANES, NV, w); }), \
                                  miner_h7_candidate(h7_[v_ * (LANES) + l_], w[v_].target[7])); \
    } while (0)

#define MINER_SCAN_VERSIONS_LOOP_ANY(LANES, NV, ANY_OF) MINER_SCAN_VERSIONS_LOOP_(LANES, NV, ANY_OF, 1)

static inline uint32_t miner_bswap32(uint32_t x) { return __builtin_bswap32(x); }
#endif
