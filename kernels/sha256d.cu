/*
 * Double SHA-256 nonce scan for CUDA (cuda-python NVRTC, pycuda, nvcc, and the
 * CPU host shim kernels/sha256d_shim.h all compile this same file).
 *
 * One thread = one nonce: nonce = job.nonce_base + global thread index. The
 * host precomputes everything that does not depend on the nonce
 * (miner/backends/gpu_common.py; layout in kernels/sha256d_job.h), so a thread does rounds 3..63
 * of the header's second block and rounds 0..60 of the second hash, which is
 * all that word 7 of the final hash needs. Word 7 is the most significant 32
 * bits of the hash as the little-endian integer compared with the target:
 * when it alone exceeds the target's top word the nonce is rejected (valid
 * for any target); otherwise sha256d_full_check() recomputes the whole hash
 * and compares all 256 bits, so every nonce written to `found` meets the
 * target exactly. The host re-checks each one with the C core regardless.
 *
 * found buffer contract: found[0] is a hit counter that runs on across
 * launches (atomic; the host passes its value before the launch as
 * job.found_base, so no reset is needed between launches); this launch's
 * i-th hit (i < found_cap) goes to found[1 + i], in no particular order.
 * Hits past found_cap are still counted, so the host sees the overflow.
 */
typedef unsigned int sha_u32;
#define SHA256_U32 sha_u32
#define SHA256_CONST static __constant__ const
#include "sha256_common.h"

/* Rotations as single funnel shifts (SHF.R.W); the shift-or form is usually
 * recognised too, but this does not depend on it. */
#undef SHA256_ROTR
#define SHA256_ROTR(x, n) __funnelshift_r((x), (x), (n))

#define BSWAP32(x) __byte_perm((x), 0u, 0x0123u)

#include "sha256d_job.h" /* the job layout, shared with sha256d.cl and the host */

/* Round i on state array s, names rotating with i (constant after unrolling). */
#define RND(s, i, wv)                                                          \
    SHA256_ROUND(s[(0 - (i)) & 7], s[(1 - (i)) & 7], s[(2 - (i)) & 7],          \
                 s[(3 - (i)) & 7], s[(4 - (i)) & 7], s[(5 - (i)) & 7],          \
                 s[(6 - (i)) & 7], s[(7 - (i)) & 7], SHA256_K[i], wv)

/* Rare path: the full 256-bit hash of one nonce against the target. */
static __device__ __noinline__ bool sha256d_full_check(const sha256d_job &job, sha_u32 nonce)
{
    sha_u32 w[16], s[8], h1[8];
#pragma unroll
    for (int i = 0; i < 3; i++) w[i] = job.w[i];
    w[3] = BSWAP32(nonce);
    w[4] = 0x80000000u;
#pragma unroll
    for (int i = 5; i < 15; i++) w[i] = 0u;
    w[15] = 640u;
#pragma unroll
    for (int i = 0; i < 8; i++) s[i] = job.midstate[i];
#pragma unroll
    for (int i = 0; i < 64; i++) {
        if (i >= 16) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
#pragma unroll
    for (int i = 0; i < 8; i++) h1[i] = s[i] + job.midstate[i];
    /* after 64 rounds the names have come back to s[0..7] = a..h */
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = h1[i];
    w[8] = 0x80000000u;
#pragma unroll
    for (int i = 9; i < 15; i++) w[i] = 0u;
    w[15] = 256u;
    const sha_u32 H[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                          SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
#pragma unroll
    for (int i = 0; i < 8; i++) s[i] = H[i];
#pragma unroll
    for (int i = 0; i < 64; i++) {
        if (i >= 16) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
#pragma unroll
    for (int i = 7; i >= 0; i--) {
        sha_u32 v = BSWAP32(s[i] + H[i]);
        if (v != job.target[i]) return v < job.target[i];
    }
    return true;
}

/* __grid_constant__ lets the rare path take the job by reference without a
 * per-thread local copy of the 144-byte parameter (sm_70+, CUDA 11.7+). */
extern "C" __global__ void __launch_bounds__(256)
sha256d_scan(const __grid_constant__ sha256d_job job, sha_u32 *found)
{
    const sha_u32 gid = blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= job.count) return;  /* the last work-group may stick out of the range */
    const sha_u32 nonce = job.nonce_base + gid;
    const sha_u32 w3 = BSWAP32(nonce);
    sha_u32 w[16], s[8];

#include "sha256d_nonce.h"
    if (top > job.target[7]) return;
    /* Equal top words (always the case for a hit on a target < 2^224, whose
     * top word is 0) are decided by the lower words: rare, so recompute. */
    if (top == job.target[7] && !sha256d_full_check(job, nonce)) return;
    sha_u32 slot = atomicAdd(found, 1u) - job.found_base;
    if (slot < job.found_cap) found[1 + slot] = nonce;
}
