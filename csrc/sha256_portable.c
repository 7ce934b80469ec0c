/*
 * Portable C implementation: the reference compression, the per-job
 * precompute shared with the AVX2 code, and a one-lane scan built from
 * csrc/sha256d_lanes.h.
 */
#include <string.h>
#include "impl.h"
#define SHA256_U32 uint32_t
#include "sha256_common.h"

void miner_sha256_compress_portable(uint32_t state[8], const uint32_t block[16]) {
    uint32_t w[16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    memcpy(w, block, sizeof w);
    for (int i = 0; i < 64; i += 8) {
        if (i >= 16) {
            for (int j = 0; j < 8; j++) SHA256_SCHED(w, i + j);
        }
        SHA256_ROUND(a, b, c, d, e, f, g, h, SHA256_K[i + 0], w[(i + 0) & 15]);
        SHA256_ROUND(h, a, b, c, d, e, f, g, SHA256_K[i + 1], w[(i + 1) & 15]);
        SHA256_ROUND(g, h, a, b, c, d, e, f, SHA256_K[i + 2], w[(i + 2) & 15]);
        SHA256_ROUND(f, g, h, a, b, c, d, e, SHA256_K[i + 3], w[(i + 3) & 15]);
        SHA256_ROUND(e, f, g, h, a, b, c, d, SHA256_K[i + 4], w[(i + 4) & 15]);
        SHA256_ROUND(d, e, f, g, h, a, b, c, SHA256_K[i + 5], w[(i + 5) & 15]);
        SHA256_ROUND(c, d, e, f, g, h, a, b, SHA256_K[i + 6], w[(i + 6) & 15]);
        SHA256_ROUND(b, c, d, e, f, g, h, a, SHA256_K[i + 7], w[(i + 7) & 15]);
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

void miner_hash_nonce_portable(const miner_work *w, uint32_t nonce, uint32_t out8[8]) {
    uint32_t block[16] = {0};
    uint32_t st[8];
    memcpy(st, w->midstate, sizeof st);
    block[0] = w->tail[0];
    block[1] = w->tail[1];
    block[2] = w->tail[2];
    block[3] = miner_bswap32(nonce); /* nonce is stored little-endian in the header */
    block[4] = 0x80000000u;
    block[15] = 640; /* 80 bytes in bits */
    miner_sha256_compress_portable(st, block);

    uint32_t block2[16] = {0};
    memcpy(block2, st, sizeof st);
    block2[8] = 0x80000000u;
    block2[15] = 256;
    uint32_t st2[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                       SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
    miner_sha256_compress_portable(st2, block2);
    memcpy(out8, st2, sizeof st2);
}

int miner_meets_target(const uint32_t s[8], const uint32_t target[8]) {
    /* Digest bytes are BE(s0)..BE(s7); as a little-endian integer, limb i is bswap(s[i]). */
    for (int i = 7; i >= 0; i--) {
        uint32_t limb = miner_bswap32(s[i]);
        if (limb < target[i]) return 1;
        if (limb > target[i]) return 0;
    }
    return 1; /* equal: a hash exactly on the target meets it */
}

int miner_confirm(const miner_work *w, uint32_t nonce) {
    uint32_t s[8];
    miner_hash_nonce_portable(w, nonce, s);
    return miner_meets_target(s, w->target);
}

#define ssig0(x) SHA256_SSIG0(x)
#define ssig1(x) SHA256_SSIG1(x)

void miner_precompute(const miner_work *w, miner_pre *p) {
    uint32_t a, b, c, d, e, f, g, h;
    const uint32_t w0 = w->tail[0], w1 = w->tail[1], w2 = w->tail[2];
    memcpy(p->mid, w->midstate, sizeof p->mid);
    a = w->midstate[0]; b = w->midstate[1]; c = w->midstate[2]; d = w->midstate[3];
    e = w->midstate[4]; f = w->midstate[5]; g = w->midstate[6]; h = w->midstate[7];
    /* Rounds 0-2 use only the tail words. */
    SHA256_ROUND(a, b, c, d, e, f, g, h, SHA256_K[0], w0);
    SHA256_ROUND(h, a, b, c, d, e, f, g, SHA256_K[1], w1);
    SHA256_ROUND(g, h, a, b, c, d, e, f, SHA256_K[2], w2);
    /* After three rounds the names have rotated: a..h now live in f,g,h,a,b,c,d,e. */
    p->st2[0] = f; p->st2[1] = g; p->st2[2] = h; p->st2[3] = a;
    p->st2[4] = b; p->st2[5] = c; p->st2[6] = d; p->st2[7] = e;
    /* Round 3 on (a..h) = st2: T1 = h + S1(e) + Ch(e,f,g) + K3 + W3. */
    {
        const uint32_t *s = p->st2;
        p->r3_t1 = s[7] + SHA256_BSIG1(s[4]) + SHA256_CH(s[4], s[5], s[6]) + SHA256_K[3];
        p->r3_t2 = SHA256_BSIG0(s[0]) + SHA256_MAJ(s[0], s[1], s[2]);
    }
    /* Schedule of the first hash: W4 = 0x80000000, W5..W14 = 0, W15 = 640. */
    p->w16 = ssig0(w1) + w0;
    p->w17 = ssig1(640u) + ssig0(w2) + w1;
    p->c18 = ssig1(p->w16) + w2;                 /* + s0(W3) */
    p->c19 = ssig1(p->w17) + ssig0(0x80000000u); /* + W3 */
    p->c30 = ssig0(640u);
    p->c31 = ssig0(p->w16) + 640u;
    p->c32 = ssig0(p->w17) + p->w16;
    for (int i = 0; i < 16; i++) p->kw1[i] = SHA256_K[i];
    p->kw1[4] += 0x80000000u;
    p->kw1[15] += 640u;
    /* Second hash: W8 = 0x80000000, W9..W14 = 0, W15 = 256, state = IV. */
    for (int i = 0; i < 16; i++) p->kw2[i] = SHA256_K[i];
    p->kw2[8] += 0x80000000u;
    p->kw2[15] += 256u;
    p->h2_r0_t1 = SHA256_H7 + SHA256_BSIG1(SHA256_H4) +
                  SHA256_CH(SHA256_H4, SHA256_H5, SHA256_H6) + SHA256_K[0];
    p->h2_r0_t2 = SHA256_BSIG0(SHA256_H0) + SHA256_MAJ(SHA256_H0, SHA256_H1, SHA256_H2);
    p->h2_c17 = ssig1(256u);
    p->h2_c23 = ssig0(0x80000000u);
    p->h2_c30 = ssig0(256u);
}

/* One lane in a plain uint32_t. */
#define LV uint32_t
#define LV_ADD(x, y) ((x) + (y))
#define LV_XOR(x, y) ((x) ^ (y))
#define LV_AND(x, y) ((x) & (y))
#define LV_OR(x, y) ((x) | (y))
#define LV_SHR(x, n) ((x) >> (n))
#define LV_SHL(x, n) ((x) << (n))
#define LV_ROTR(x, n) SHA256_ROTR(x, n)
#define LV_SET1(x) ((uint32_t)(x))
#define LANES_FN sha256d_h7_portable
#define LANES_ATTR static inline
#include "sha256d_lanes.h"

#define PORTABLE_LANES(n0, h7) ((h7)[0] = sha256d_h7_portable(&pre, miner_bswap32(n0)))

int miner_scan_portable(const miner_work *w, uint32_t start, uint64_t count,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort) {
    miner_pre pre;
    miner_precompute(w, &pre);
    MINER_SCAN_LOOP(1, PORTABLE_LANES);
}
