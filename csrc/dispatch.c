/*
 * Implementation table, run-time selection support and the exported entry
 * points of csrc/core.h. Each instruction-set file is compiled with only its
 * own target attributes; this file is plain C and calls them only after the
 * CPU and OS checks pass.
 */
#include <string.h>
#include "core.h"
#include "impl.h"
#define SHA256_U32 uint32_t
#include "sha256_common.h"

typedef struct {
    const char *name;
    miner_scan_fn scan;
    int (*cpu_ok)(void); /* CPUID and OS checks; NULL means always */
} miner_impl;

static int always(void) { return 1; }

static const miner_impl IMPLS[] = {
    {"portable", miner_scan_portable, always},
};
#define N_IMPLS ((int)(sizeof IMPLS / sizeof IMPLS[0]))

/* 0 = not yet tested, 1 = usable, -1 = unusable. Written once per slot; a race
 * between two first callers only repeats the (idempotent) self-test. */
static volatile int usable_state[N_IMPLS];

int miner_impl_count(void) { return N_IMPLS; }

const char *miner_impl_name(int i) { return (i >= 0 && i < N_IMPLS) ? IMPLS[i].name : NULL; }

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void prepare(miner_work *w, const uint8_t *header, const uint8_t *target) {
    static const uint32_t iv[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                                   SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
    uint32_t block[16];
    for (int i = 0; i < 16; i++) block[i] = load_be32(header + 4 * i);
    memcpy(w->midstate, iv, sizeof iv);
    miner_sha256_compress_portable(w->midstate, block);
    for (int i = 0; i < 3; i++) w->tail[i] = load_be32(header + 64 + 4 * i);
    for (int i = 0; i < 8; i++) {
        const uint8_t *p = target + 4 * i;
        w->target[i] = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                       ((uint32_t)p[3] << 24);
    }
}

/*
 * Known-answer self-test: the genesis block header at its real nonce, at its
 * real target and at one below the hash (must miss), plus a dense scan at an
 * easy target compared hit-for-hit with the portable code. The easy target
 * (> 2^224) catches a wrong early exit.
 */
static int self_test(const miner_impl *impl) {
    static const uint8_t genesis[80] = {
        0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3b, 0xa3, 0xed, 0xfd, 0x7a, 0x7b, 0x12, 0xb2,
        0x7a, 0xc7, 0x2c, 0x3e, 0x67, 0x76, 0x8f, 0x61, 0x7f, 0xc8, 0x1b, 0xc3, 0x88, 0x8a,
        0x51, 0x32, 0x3a, 0x9f, 0xb8, 0xaa, 0x4b, 0x1e, 0x5e, 0x4a, 0x29, 0xab, 0x5f, 0x49,
        0xff, 0xff, 0x00, 0x1d, 0x1d, 0xac, 0x2b, 0x7c};
    const uint32_t nonce = 2083236893u;
    uint8_t target[32] = {0};
    /* nbits 1d00ffff: 0xffff << 208, i.e. bytes 26 and 27 of the LE integer. */
    target[26] = 0xff;
    target[27] = 0xff;
    miner_work w;
    prepare(&w, genesis, target);
    uint32_t out[64];
    uint64_t next;
    int n = impl->scan(&w, nonce - 37, 100, out, 64, &next, NULL);
    if (n != 1 || out[0] != nonce || next != (uint64_t)nonce - 37 + 100) return 0;
    /* The genesis hash is 0x...19d6689c...: a target just below it must miss. */
    uint32_t s[8];
    miner_hash_nonce_portable(&w, nonce, s);
    uint32_t limbs[8];
    for (int i = 0; i < 8; i++) limbs[i] = miner_bswap32(s[i]);
    memcpy(w.target, limbs, sizeof limbs);
    n = impl->scan(&w, nonce, 1, out, 64, &next, NULL);
    if (n != 1) return 0; /* exactly on the target meets it */
    for (int i = 0; i < 8 && limbs[i]-- == 0; i++) { } /* target = hash - 1 */
    memcpy(w.target, limbs, sizeof limbs);
    n = impl->scan(&w, nonce, 1, out, 64, &next, NULL);
    if (n != 0) return 0;
    /* Easy target 2^252: about 1 hit in 16. Odd start and count exercise lane tails. */
    memset(w.target, 0xff, sizeof w.target);
    w.target[7] = 0x0fffffffu;
    uint32_t ref[64], got[64];
    uint64_t ref_next, got_next;
    int nr = miner_scan_portable(&w, 1001, 999, ref, 64, &ref_next, NULL);
    int ng = impl->scan(&w, 1001, 999, got, 64, &got_next, NULL);
    if (nr != ng || ref_next != got_next) return 0;
    return memcmp(ref, got, sizeof(uint32_t) * (size_t)nr) == 0;
}

int miner_impl_usable(int i) {
    if (i < 0 || i >= N_IMPLS) return 0;
    if (usable_state[i] == 0) {
        int ok = (IMPLS[i].cpu_ok ? IMPLS[i].cpu_ok() : 1) && self_test(&IMPLS[i]);
        usable_state[i] = ok ? 1 : -1;
    }
    return usable_state[i] == 1;
}

int miner_scan(int impl, const uint8_t *header, uint32_t start, uint64_t count,
               const uint8_t *target, uint32_t *out, int cap, uint64_t *next,
               const volatile int *abort) {
    *next = start;
    if (!miner_impl_usable(impl) || cap <= 0 || count == 0) return 0;
    if ((uint64_t)start + count > ((uint64_t)1 << 32)) return -1;
    miner_work w;
    prepare(&w, header, target);
    return IMPLS[impl].scan(&w, start, count, out, cap, next, abort);
}

/* Generic-length SHA-256 for miner_sha256d; not on the mining hot path. */
static void sha256_bytes(const uint8_t *data, size_t len, uint8_t out[32]) {
    uint32_t st[8] = {SHA256_H0, SHA256_H1, SHA256_H2, SHA256_H3,
                      SHA256_H4, SHA256_H5, SHA256_H6, SHA256_H7};
    uint32_t block[16];
    uint8_t buf[128];
    size_t off = 0;
    for (; len - off >= 64; off += 64) {
        for (int i = 0; i < 16; i++) block[i] = load_be32(data + off + 4 * i);
        miner_sha256_compress_portable(st, block);
    }
    size_t rem = len - off, padded = rem < 56 ? 64 : 128;
    memset(buf, 0, sizeof buf);
    memcpy(buf, data + off, rem);
    buf[rem] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[padded - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t b = 0; b < padded; b += 64) {
        for (int i = 0; i < 16; i++) block[i] = load_be32(buf + b + 4 * i);
        miner_sha256_compress_portable(st, block);
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

void miner_sha256d(const uint8_t *data, size_t len, uint8_t *out) {
    uint8_t first[32];
    sha256_bytes(data, len, first);
    sha256_bytes(first, 32, out);
}
