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
 * becomes non-zero (checked at least every 64 Ki nonces).
 */
typedef struct {
    uint32_t midstate[8];
    uint32_t tail[3];
    uint32_t target[8];
} miner_work;

typedef int (*miner_scan_fn)(const miner_work *w, uint32_t start, uint64_t count,
                             uint32_t *out, int cap, uint64_t *next,
                             const volatile int *abort);

/* Portable building blocks, used by every implementation for setup and checks. */
void miner_sha256_compress_portable(uint32_t state[8], const uint32_t block[16]);
/* Full hash of one nonce from the work: out8 = state words of the second hash. */
void miner_hash_nonce_portable(const miner_work *w, uint32_t nonce, uint32_t out8[8]);
/* 1 if the final state words s[8] (big-endian word order of the digest) meet target. */
int miner_meets_target(const uint32_t s[8], const uint32_t target[8]);

int miner_scan_portable(const miner_work *w, uint32_t start, uint64_t count,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort);

static inline uint32_t miner_bswap32(uint32_t x) { return __builtin_bswap32(x); }
#endif
