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
    int (*cpu_ok)(void); /* CPUID and OS checks */
    miner_scan_versions_fn scan_versions; /* NULL: no multi-version code */
} miner_impl;

static int always(void) { return 1; }

#if defined(MINER_X86)
#include <cpuid.h>

/* XCR0 via XGETBV; only called after CPUID says OSXSAVE is set. */
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void cpuid_regs(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    if (__get_cpuid_max(0, NULL) < leaf) return;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

/* SHA extensions: CPUID.7.0:EBX[29], plus SSSE3 (1:ECX[9]) and SSE4.1 (1:ECX[19])
 * for the shuffles around them. XMM state is always enabled on x86-64 OSes. */
static int cpu_shani(void) {
    uint32_t r1[4], r7[4];
    cpuid_regs(1, 0, r1);
    cpuid_regs(7, 0, r7);
    return (r1[2] >> 9 & 1) && (r1[2] >> 19 & 1) && (r7[1] >> 29 & 1);
}

/* AVX: 1:ECX[28] with OSXSAVE (1:ECX[27]) and the OS saving XMM and YMM state
 * (XCR0 bits 1 and 2). The VEX-encoded SHA-NI code needs only AVX's 128-bit
 * forms, but the OS must still enable the AVX state for them to run. */
static int cpu_avx(void) {
    uint32_t r1[4];
    cpuid_regs(1, 0, r1);
    return (r1[2] >> 27 & 1) && (r1[2] >> 28 & 1) && (xgetbv0() & 6) == 6;
}

static int cpu_shani_vex(void) { return cpu_shani() && cpu_avx(); }

/* AVX2: CPUID.7.0:EBX[5], AVX (1:ECX[28]) and OSXSAVE (1:ECX[27]), and the OS
 * must have enabled XMM and YMM state in XCR0 (bits 1 and 2). */
static int cpu_avx2(void) {
    uint32_t r7[4];
    if (!cpu_avx()) return 0;
    cpuid_regs(7, 0, r7);
    return r7[1] >> 5 & 1;
}

/* AVX-512 F and BW: CPUID.7.0:EBX[16] and [30] with OSXSAVE, and XCR0 bits
 * 1, 2 (XMM, YMM) and 5-7 (opmask, ZMM0-15 upper halves, ZMM16-31) enabled by
 * the OS. BW is for the byte shuffle in the candidate test; only Xeon Phi
 * has F without it. */
static int cpu_avx512(void) {
    uint32_t r1[4], r7[4];
    cpuid_regs(1, 0, r1);
    if (!(r1[2] >> 27 & 1)) return 0;
    if ((xgetbv0() & 0xe6) != 0xe6) return 0;
    cpuid_regs(7, 0, r7);
    return (r7[1] >> 16 & 1) && (r7[1] >> 30 & 1);
}
#endif

#if defined(MINER_ARMV8)
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6) /* arch/arm64/include/uapi/asm/hwcap.h */
#endif
/* SHA256H and friends: the kernel reports them in AT_HWCAP (ID_AA64ISAR0_EL1.SHA2). */
static int cpu_armv8_sha2(void) { return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0; }
#else
/* Every arm64 Mac (Apple M1 and later) has the SHA-256 instructions. */
static int cpu_armv8_sha2(void) { return 1; }
#endif
#endif

/* In preference order, fastest first on the CPUs measured (docs/benchmarks/core.md):
 * SHA extensions with most lanes, then the widest SIMD, then portable C, which
 * stays last. implementations() lists the usable ones in this order and a short
 * name ("shani") means the first usable entry of that family; the automatic
 * choice is measured among them (miner/core/__init__.py). */
static const miner_impl IMPLS[] = {
#if defined(MINER_X86)
    /* The VEX builds first: on a CPU with AVX they are the same code with
     * fewer instructions, and the automatic choice skips the SSE build of a
     * lane count whose VEX build is usable (miner/core/__init__.py). */
    {"shani(4-lane,vex)", miner_scan_shani4_vex, cpu_shani_vex, miner_scan_shani4_versions_vex},
    {"shani(3-lane,vex)", miner_scan_shani3_vex, cpu_shani_vex, miner_scan_shani3_versions_vex},
    {"shani(2-lane,vex)", miner_scan_shani2_vex, cpu_shani_vex, miner_scan_shani2_versions_vex},
    {"shani(1-lane,vex)", miner_scan_shani1_vex, cpu_shani_vex},
    {"shani(4-lane)", miner_scan_shani4, cpu_shani, miner_scan_shani4_versions},
    {"shani(3-lane)", miner_scan_shani3, cpu_shani, miner_scan_shani3_versions},
    {"shani(2-lane)", miner_scan_shani2, cpu_shani, miner_scan_shani2_versions},
    {"shani(1-lane)", miner_scan_shani1, cpu_shani},
#endif
#if defined(MINER_ARMV8)
    {"armv8(2-lane)", miner_scan_armv8_2, cpu_armv8_sha2},
    {"armv8(1-lane)", miner_scan_armv8_1, cpu_armv8_sha2},
#endif
#if defined(MINER_X86)
    {"avx512(32-way)", miner_scan_avx512x2, cpu_avx512, miner_scan_avx512x2_versions},
    {"avx512(16-way)", miner_scan_avx512, cpu_avx512, miner_scan_avx512_versions},
    {"avx2(8-way)", miner_scan_avx2, cpu_avx2, miner_scan_avx2_versions},
#endif
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

/* Reference scan: the plain two-compression hash of every nonce. */
static int reference_scan(const miner_work *w, uint32_t start, uint64_t count,
                          uint32_t *out, int cap, uint64_t *next) {
    int found = 0;
    uint64_t n = start, end = (uint64_t)start + count;
    while (n < end) {
        int hit = miner_confirm(w, (uint32_t)n);
        n++;
        if (hit) {
            out[found++] = (uint32_t)(n - 1);
            if (found >= cap) break;
        }
    }
    *next = n;
    return found;
}

/* impl->scan and the reference agree on hits and *next for this range and cap. */
static int agrees(const miner_impl *impl, const miner_work *w, uint32_t start, uint64_t count, int cap) {
    uint32_t ref[64], got[64];
    uint64_t ref_next, got_next;
    int nr = reference_scan(w, start, count, ref, cap, &ref_next);
    int ng = impl->scan(w, start, count, got, cap, &got_next, NULL);
    return nr == ng && ref_next == got_next && memcmp(ref, got, sizeof(uint32_t) * (size_t)nr) == 0;
}

static const uint8_t GENESIS[80] = {
    0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3b, 0xa3, 0xed, 0xfd, 0x7a, 0x7b, 0x12, 0xb2,
    0x7a, 0xc7, 0x2c, 0x3e, 0x67, 0x76, 0x8f, 0x61, 0x7f, 0xc8, 0x1b, 0xc3, 0x88, 0x8a,
    0x51, 0x32, 0x3a, 0x9f, 0xb8, 0xaa, 0x4b, 0x1e, 0x5e, 0x4a, 0x29, 0xab, 0x5f, 0x49,
    0xff, 0xff, 0x00, 0x1d, 0x1d, 0xac, 0x2b, 0x7c};

void miner_genesis_header(uint8_t *out) { memcpy(out, GENESIS, sizeof GENESIS); }

/* First known answer: sha256d of the genesis header (block 0), whose hash as
 * displayed by explorers is 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f. */
static const uint8_t GENESIS_HASH_LE[32] = {
    0x6f, 0xe2, 0x8c, 0x0a, 0xb6, 0xf1, 0xb3, 0x72, 0xc1, 0xa6, 0xa2, 0x46, 0xae, 0x63, 0xf7, 0x4f,
    0x93, 0x1e, 0x83, 0x65, 0xe1, 0x5a, 0x08, 0x9c, 0x68, 0xd6, 0x19, 0x00, 0x00, 0x00, 0x00, 0x00};

/*
 * Known-answer self-test of one implementation:
 *  - the genesis header at its real nonce and its real target (nbits 1d00ffff)
 *    finds exactly that nonce in a window around it, in every lane position;
 *  - a target equal to the hash meets it, one below misses;
 *  - dense scans at easy targets (above 2^224, so the early filter must not
 *    reject real hits) from odd starts with odd counts, which leave partial
 *    lane groups, compared hit-for-hit with the reference scan; also with a
 *    small output cap (the *next contract) and at the end of the nonce range.
 */
static int self_test(const miner_impl *impl) {
    const uint32_t nonce = 2083236893u;
    uint8_t target[32] = {0};
    /* nbits 1d00ffff: 0xffff << 208, i.e. bytes 26 and 27 of the LE integer. */
    target[26] = 0xff;
    target[27] = 0xff;
    miner_work w;
    prepare(&w, GENESIS, target);
    uint32_t out[64];
    uint64_t next;
    /* From four starts, so the nonce falls in every lane of a 2-, 3- or 4-lane group
     * (codes may test a group's lanes at once at such targets). */
    for (uint32_t back = 34; back <= 37; back++) {
        int n = impl->scan(&w, nonce - back, 100, out, 64, &next, NULL);
        if (n != 1 || out[0] != nonce || next != (uint64_t)nonce - back + 100) return 0;
    }
    /* The hash itself as the target: exactly on it meets, one below misses. */
    uint32_t limbs[8];
    for (int i = 0; i < 8; i++) {
        const uint8_t *q = GENESIS_HASH_LE + 4 * i;
        limbs[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    memcpy(w.target, limbs, sizeof limbs);
    if (impl->scan(&w, nonce - 1, 3, out, 64, &next, NULL) != 1 || out[0] != nonce) return 0;
    for (int i = 0; i < 8 && limbs[i]-- == 0; i++) { } /* target = hash - 1 */
    memcpy(w.target, limbs, sizeof limbs);
    if (impl->scan(&w, nonce - 1, 3, out, 64, &next, NULL) != 0) return 0;
    /* Easy targets. 2^252: about 1 hit in 16. */
    memset(w.target, 0xff, sizeof w.target);
    w.target[7] = 0x0fffffffu;
    if (!agrees(impl, &w, 1001, 999, 64)) return 0;
    if (!agrees(impl, &w, 7, 13, 64)) return 0;
    if (!agrees(impl, &w, 1001, 999, 3)) return 0;             /* cap reached mid-group */
    if (!agrees(impl, &w, 0xffffffffu - 40, 41, 64)) return 0; /* range ends at 2^32 */
    if (!agrees(impl, &w, 0xffffffffu, 1, 64)) return 0;
    /* Limb 7 exactly on the boundary with the lower limbs deciding. */
    w.target[7] = 0x00ffffffu;
    for (int i = 0; i < 7; i++) w.target[i] = 0x80000000u;
    if (!agrees(impl, &w, 5, 1000, 64)) return 0;
    /* Everything meets 2^256-1: every nonce, in order, cap respected. */
    memset(w.target, 0xff, sizeof w.target);
    if (!agrees(impl, &w, 3, 29, 64)) return 0;
    if (!agrees(impl, &w, 3, 100, 17)) return 0;
    /* A second, unrelated header (a byte pattern) at 2^252 with an odd start. */
    uint8_t hdr[80];
    for (int i = 0; i < 80; i++) hdr[i] = (uint8_t)(i * 37 + 11);
    memset(target, 0xff, sizeof target);
    target[31] = 0x0f;
    prepare(&w, hdr, target);
    return agrees(impl, &w, 123457, 777, 64);
}

/* Sets the version field (bytes 0-3, little-endian) of an 80-byte header copy. */
static void with_version(uint8_t h[80], const uint8_t *header, uint32_t version) {
    memcpy(h, header, 80);
    for (int i = 0; i < 4; i++) h[i] = (uint8_t)(version >> (8 * i));
}

/* impl->scan_versions against the reference hash of every (nonce, version),
 * in (nonce, version index) order; cap in pairs. */
static int versions_agree(const miner_impl *impl, const uint8_t *header, const uint32_t *vers, int nv,
                          const uint8_t *target, uint32_t start, uint64_t count, int cap) {
    miner_work w[MINER_MAX_VERSIONS];
    uint8_t h[80];
    uint32_t got[2 * 512];
    uint64_t next;
    for (int v = 0; v < nv; v++) {
        with_version(h, header, vers[v]);
        prepare(&w[v], h, target);
    }
    int n = impl->scan_versions(w, nv, start, count, got, cap, &next, NULL);
    if (n < 0 || n > cap) return 0;
    int k = 0;
    for (uint64_t x = start; x < next; x++)
        for (int v = 0; v < nv; v++)
            if (miner_confirm(&w[v], (uint32_t)x)) {
                if (k >= n || got[2 * k] != (uint32_t)x || got[2 * k + 1] != (uint32_t)v) return 0;
                k++;
            }
    if (k != n) return 0;
    /* Complete unless the cap stopped it at a group boundary short of room for a group. */
    return next == (uint64_t)start + count || (next > start && cap - n < MINER_VERSIONS_MAX_LANES * nv);
}

/* The multi-version scan: the genesis block's real nonce found only under its
 * real version among others (with 3 versions, and in every slot of 4-8),
 * dense scans at 2^252 with 1-8 versions, and the cap (every pair a hit at
 * 2^256-1). */
static int self_test_versions(const miner_impl *impl) {
    const uint32_t nonce = 2083236893u;
    uint8_t target[32] = {0};
    target[26] = 0xff;
    target[27] = 0xff;
    miner_work w[3];
    uint8_t h[80];
    const uint32_t vers[MINER_MAX_VERSIONS] = {0x20000000u, 1u, 0x3fffe000u, 0x20002000u,
                                               0x20004000u, 0x20006000u, 0x20008000u, 0x2000a000u};
    for (int v = 0; v < 3; v++) {
        with_version(h, GENESIS, vers[v]);
        prepare(&w[v], h, target);
    }
    uint32_t out[2 * MINER_VERSIONS_MIN_CAP];
    uint64_t next;
    if (impl->scan_versions(w, 3, nonce - 37, 100, out, MINER_VERSIONS_MIN_CAP, &next, NULL) != 1 || out[0] != nonce || out[1] != 1 ||
        next != (uint64_t)nonce - 37 + 100)
        return 0;
    /* The same at 4-8 versions, the real one (1) in every slot among decoys:
     * codes may test all versions of a nonce at once at such targets. */
    for (int nv = 4; nv <= MINER_MAX_VERSIONS; nv++)
        for (int slot = 0; slot < nv; slot++) {
            miner_work wv[MINER_MAX_VERSIONS];
            for (int v = 0; v < nv; v++) {
                with_version(h, GENESIS, v == slot ? 1u : 0x20000000u + 0x2000u * (uint32_t)v);
                prepare(&wv[v], h, target);
            }
            /* The start moves with the slot: the nonce in each lane of a 4-lane group too. */
            if (impl->scan_versions(wv, nv, nonce - 5 - (uint32_t)(slot & 3), 11, out, MINER_VERSIONS_MIN_CAP, &next,
                                    NULL) != 1 ||
                out[0] != nonce || out[1] != (uint32_t)slot)
                return 0;
        }
    memset(target, 0xff, sizeof target);
    target[31] = 0x0f;
    for (int nv = 1; nv <= MINER_MAX_VERSIONS; nv++)
        if (!versions_agree(impl, GENESIS, vers, nv, target, 1001, 203, 512)) return 0;
    if (!versions_agree(impl, GENESIS, vers, 2, target, 0xffffffffu - 40, 41, 512)) return 0;
    memset(target, 0xff, sizeof target);
    return versions_agree(impl, GENESIS, vers, 8, target, 7, 100, MINER_VERSIONS_MIN_CAP);
}

int miner_impl_usable(int i) {
    if (i < 0 || i >= N_IMPLS) return 0;
    if (usable_state[i] == 0) {
        int ok = (IMPLS[i].cpu_ok ? IMPLS[i].cpu_ok() : 1) && self_test(&IMPLS[i]) &&
                 (!IMPLS[i].scan_versions || self_test_versions(&IMPLS[i]));
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

int miner_impl_versions(int i) {
    return miner_impl_usable(i) && IMPLS[i].scan_versions ? MINER_MAX_VERSIONS : 0;
}

int miner_scan_versions(int impl, const uint8_t *header, const uint32_t *versions, int nver,
                        uint32_t start, uint64_t count, const uint8_t *target,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort) {
    *next = start;
    if (!miner_impl_versions(impl)) return -2;
    if (nver < 1 || nver > MINER_MAX_VERSIONS || cap < MINER_VERSIONS_MIN_CAP) return -1;
    if ((uint64_t)start + count > ((uint64_t)1 << 32)) return -1;
    if (count == 0) return 0;
    miner_work w[MINER_MAX_VERSIONS];
    uint8_t h[80];
    for (int v = 0; v < nver; v++) {
        with_version(h, header, versions[v]);
        prepare(&w[v], h, target);
    }
    return IMPLS[impl].scan_versions(w, nver, start, count, out, cap, next, abort);
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
