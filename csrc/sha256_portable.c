/* Portable C implementation: plain rounds from kernels/sha256_common.h. */
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

int miner_scan_portable(const miner_work *w, uint32_t start, uint64_t count,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort) {
    int found = 0;
    uint64_t n = start, end = (uint64_t)start + count;
    while (n < end) {
        if (((n - start) & 0xffff) == 0 && abort && *abort) break;
        uint32_t s[8];
        miner_hash_nonce_portable(w, (uint32_t)n, s);
        n++;
        if (miner_meets_target(s, w->target)) {
            out[found++] = (uint32_t)(n - 1);
            if (found >= cap) break;
        }
    }
    *next = n;
    return found;
}
