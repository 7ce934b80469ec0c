/*
 * Double SHA-256 nonce scan for OpenCL (miner/backends/opencl.py; PoCL in CI).
 *
 * Same algorithm and job layout as kernels/sha256d.cu: one work-item = one
 * nonce (job->nonce_base + global id); the host precomputes the midstate,
 * block-2 rounds 0..2, round 3 up to W3 and W16..W19 up to their nonce terms
 * (miner/backends/gpu_common.py). A work-item does rounds 3..63 of block 2
 * and rounds 0..60 of the second hash, rejects on the hash's top 32 bits,
 * and settles ties on the top word with a full 256-bit recompute, so every
 * nonce written to `found` meets the target. The host re-checks them anyway.
 *
 * found buffer contract: found[0] is a hit counter that runs on across
 * launches (the host passes its prior value as job.found_base, so nothing
 * is reset between launches); this launch's i-th hit (i < found_cap) goes to
 * found[1 + i]. Hits past found_cap are still counted: the host relaunches.
 * The job is passed by value: no buffer write between launches either.
 */
#define SHA256_U32 uint
#define SHA256_CONST __constant
#include "sha256_common.h"

/* Rotations stay in the shared header's shift-or form, which LLVM-based
 * OpenCL compilers turn into one rotate (fshr). The rotate() builtin is not
 * used: PoCL 3.0 compiles it to a library call per rotation, 20x slower. */
#define BSWAP32(x) (((x) >> 24) | (((x) >> 8) & 0xff00u) | (((x) << 8) & 0xff0000u) | ((x) << 24))

#include "sha256d_job.h" /* the job layout, shared with sha256d.cu and the host */

/* Round i on state array s, names rotating with i (constant after unrolling). */
#define RND(s, i, wv)                                                          \
    SHA256_ROUND(s[(0 - (i)) & 7], s[(1 - (i)) & 7], s[(2 - (i)) & 7],          \
                 s[(3 - (i)) & 7], s[(4 - (i)) & 7], s[(5 - (i)) & 7],          \
                 s[(6 - (i)) & 7], s[(7 - (i)) & 7], SHA256_K[i], wv)

/* Rare path: the full 256-bit hash of one nonce against the target. */
static bool sha256d_full_check(const sha256d_job *job, uint nonce)
{
    uint w[16], s[8], h1[8];
    const uint H[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                       SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
    for (int i = 0; i < 3; i++) w[i] = job->w[i];
    w[3] = BSWAP32(nonce);
    w[4] = 0x80000000u;
    for (int i = 5; i < 15; i++) w[i] = 0u;
    w[15] = 640u;
    for (int i = 0; i < 8; i++) s[i] = job->midstate[i];
#pragma unroll
    for (int i = 0; i < 64; i++) {
        if (i >= 16) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
    for (int i = 0; i < 8; i++) h1[i] = s[i] + job->midstate[i];
    for (int i = 0; i < 8; i++) w[i] = h1[i];
    w[8] = 0x80000000u;
    for (int i = 9; i < 15; i++) w[i] = 0u;
    w[15] = 256u;
    for (int i = 0; i < 8; i++) s[i] = H[i];
#pragma unroll
    for (int i = 0; i < 64; i++) {
        if (i >= 16) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
    for (int i = 7; i >= 0; i--) {
        uint v = BSWAP32(s[i] + H[i]);
        if (v != job->target[i]) return v < job->target[i];
    }
    return true;
}

__kernel void sha256d_scan(const sha256d_job job, volatile __global uint *found)
{
    const uint gid = (uint)get_global_id(0);
    if (gid >= job.count) return;  /* the last work-group may stick out of the range */
    const uint nonce = job.nonce_base + gid;
    const uint w3 = BSWAP32(nonce);
    uint w[16], s[8];

#include "sha256d_nonce.h"
    if (top > job.target[7]) return;
    /* Equal top words (always the case for a hit on a target < 2^224, whose
     * top word is 0) are decided by the lower words: rare, so recompute. */
    if (top == job.target[7] && !sha256d_full_check(&job, nonce)) return;
    uint slot = atomic_inc(&found[0]) - job.found_base;
    if (slot < job.found_cap) found[1 + slot] = nonce;
}
