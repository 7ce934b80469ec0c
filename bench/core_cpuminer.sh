#!/bin/sh
# Build two small drivers around cpuminer-opt's own sha256d scan loops, for the
# back-to-back comparison in bench/core_bench.py. Nothing of cpuminer-opt is
# kept in this repository: point this at a checkout of it (tested with v26.1,
# https://github.com/JayDDee/cpuminer-opt) and the binaries land in OUT.
#
#   bench/core_cpuminer.sh /tmp/cpuminer-opt /tmp/cpm
#   python bench/core_bench.py --compare "cpuminer-opt avx512=/tmp/cpm/cpm_avx512" \
#                              --compare "cpuminer-opt sha=/tmp/cpm/cpm_sha"
#
# cpm_avx512 is built with -march=native, which on an AVX-512 CPU selects its
# 16-way AVX-512 code (what its own build.sh produces here); cpm_sha adds
# -mno-avx512f, which selects its SHA-NI code (2 nonces interleaved), the path
# it uses on SHA-NI CPUs without AVX-512. Each driver runs N threads for S
# seconds, calling the scanhash function over 1 Mi-nonce ranges in benchmark
# mode (as `cpuminer --benchmark` does), and prints "<name> threads=N <rate> H/s".
# h2h_avx512 / h2h_sha / h2h_avx2 (its AVX2 8-way path) link cpuminer-opt's scan loop and this project's csrc/
# (built with the package's flags) into one process and alternate 1 Mi-hash
# calls of each, single-threaded, printing median and minimum TSC ticks per
# hash: the fairest comparison on a shared, busy machine (`h2h_avx512 31`).
# Rows "x4/x8 versions" hash 4 or 8 header versions per nonce (miner_scan_versions,
# what the miner does when the pool allows BIP 310 version rolling).
# Needs: gcc, autoconf/automake (to configure a fresh checkout), libcurl/jansson/gmp/openssl
# development headers (apt-get install autoconf automake libcurl4-openssl-dev libjansson-dev
# libgmp-dev libssl-dev zlib1g-dev).
set -eu
SRC=${1:?usage: $0 CPUMINER_OPT_SRC [OUT]}
OUT=${2:-/tmp/cpm}
mkdir -p "$OUT"
# A fresh checkout lacks the generated cpuminer-config.h its sources include.
if [ ! -f "$SRC/cpuminer-config.h" ]; then
    (cd "$SRC" && ./autogen.sh && ./configure CFLAGS="-O3 -march=native") > "$OUT/configure.log" 2>&1
fi
cat > "$OUT/driver.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "miner.h"
#include "algo/sha/sha256d-4way.h"
/* The few symbols the scan loops reference from cpu-miner.c / util.c. */
bool opt_benchmark = true;
struct work_restart *work_restart;
static struct work_restart restart[64];
bool valid_hash(const void *a, const void *b) { (void)a; (void)b; return false; }
bool submit_solution(struct work *w, const void *h, struct thr_info *t) { (void)w; (void)h; (void)t; return true; }
typedef int (*scan_fn)(struct work *, uint32_t, uint64_t *, struct thr_info *);
#if defined(SHA256D_16WAY)
extern int scanhash_sha256d_16way(struct work *, uint32_t, uint64_t *, struct thr_info *);
static const scan_fn fn = scanhash_sha256d_16way; static const char *name = "cpuminer-opt sha256d 16way";
#elif defined(SHA256D_SHA)
extern int scanhash_sha256d_sha(struct work *, uint32_t, uint64_t *, struct thr_info *);
static const scan_fn fn = scanhash_sha256d_sha; static const char *name = "cpuminer-opt sha256d sha";
#else
#error "neither the AVX-512 nor the SHA-NI path was selected"
#endif
static double seconds;
static uint64_t done_by[64];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void *worker(void *arg) {
    long id = (long)arg;
    struct thr_info thr; memset(&thr, 0, sizeof thr); thr.id = (int)id;
    struct work w; memset(&w, 0, sizeof w);
    for (int i = 0; i < 20; i++) w.data[i] = 0x01020304u * (uint32_t)(i + 1);
    w.target[7] = 0x0000ffff;
    uint32_t base = (uint32_t)id << 28;
    uint64_t total = 0;
    double t0 = now();
    while (now() - t0 < seconds) {
        uint64_t hd = 0;
        w.data[19] = base;
        fn(&w, base + (1u << 20), &hd, &thr);
        total += hd;
    }
    done_by[id] = total;
    return NULL;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    seconds = argc > 2 ? atof(argv[2]) : 5;
    if (n < 1 || n > 64) return 2;
    work_restart = restart;
    pthread_t th[64];
    double t0 = now();
    for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) { pthread_join(th[i], NULL); sum += done_by[i]; }
    printf("%s threads=%d %.0f H/s\n", name, n, (double)sum / (now() - t0));
    return 0;
}
EOF
FILES="$SRC/algo/sha/sha256d-4way.c $SRC/algo/sha/sha256-hash-4way.c $SRC/algo/sha/sha256-hash.c $SRC/simd-utils/simd-constants.c"
gcc -O3 -march=native -I"$SRC" -Wno-pointer-sign -o "$OUT/cpm_avx512" "$OUT/driver.c" $FILES -lpthread
gcc -O3 -march=native -mno-avx512f -I"$SRC" -Wno-pointer-sign -o "$OUT/cpm_sha" "$OUT/driver.c" $FILES -lpthread
cat > "$OUT/h2h.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include "miner.h"
#include "algo/sha/sha256d-4way.h"
#include "core.h"
bool opt_benchmark = true;
struct work_restart *work_restart;
static struct work_restart restart[4];
bool valid_hash(const void *a, const void *b) { (void)a; (void)b; return false; }
bool submit_solution(struct work *w, const void *h, struct thr_info *t) { (void)w; (void)h; (void)t; return true; }
#if defined(SHA256D_16WAY)
extern int scanhash_sha256d_16way(struct work *, uint32_t, uint64_t *, struct thr_info *);
#define THEIRS scanhash_sha256d_16way
#define THEIR_NAME "cpuminer-opt 16way"
#elif defined(SHA256D_SHA)
extern int scanhash_sha256d_sha(struct work *, uint32_t, uint64_t *, struct thr_info *);
#define THEIRS scanhash_sha256d_sha
#define THEIR_NAME "cpuminer-opt sha"
#else
extern int scanhash_sha256d_8way(struct work *, uint32_t, uint64_t *, struct thr_info *);
#define THEIRS scanhash_sha256d_8way
#define THEIR_NAME "cpuminer-opt 8way"
#endif
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 31;
    const uint32_t N = 1u << 20;
    work_restart = restart;
    struct thr_info thr; memset(&thr, 0, sizeof thr);
    struct work w; memset(&w, 0, sizeof w);
    uint8_t hdr[80], tgt[32] = {0};
    for (int i = 0; i < 20; i++) w.data[i] = 0x01020304u * (uint32_t)(i + 1);
    memcpy(hdr, w.data, 80);
    w.target[6] = 0xffff; tgt[26] = 0xff; tgt[27] = 0xff; /* the same nbits-1d00ffff target */
    int K = miner_impl_count();
    /* Slots 0..K-1: ours; K: theirs; K+1+i and 2K+1+i: ours hashing 4 and 8
     * header versions per nonce (miner_scan_versions, what the miner does when
     * the pool allows BIP 310 version rolling), per hash. */
    double *t = calloc((size_t)(3 * K + 1) * (size_t)rounds, sizeof *t);
    uint32_t out[2 * 256]; uint64_t next, hd;
    uint32_t vers[8];
    for (int v = 0; v < 8; v++) vers[v] = w.data[0] ^ ((uint32_t)v << 13);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < 3 * K + 1; i++) {
            int impl = i > K ? (i - K - 1) % K : i, nv = i > 2 * K ? 8 : 4;
            if (i != K && (!miner_impl_usable(impl) || !strcmp(miner_impl_name(impl), "portable"))) continue;
            if (i > K && miner_impl_versions(impl) < nv) continue;
            unsigned long long c = __rdtsc();
            if (i < K) miner_scan(i, hdr, (uint32_t)r * N, N, tgt, out, 16, &next, NULL);
            else if (i == K) { w.data[19] = (uint32_t)r * N; THEIRS(&w, (uint32_t)r * N + N, &hd, &thr); }
            else miner_scan_versions(impl, hdr, vers, nv, (uint32_t)r * N, N / nv, tgt, out, 256, &next, NULL);
            t[i * rounds + r] = (double)(__rdtsc() - c) / N;
        }
    /* Speed against theirs, round by round (their time / ours in the same round,
     * both measured within a few hundred ms of each other), then the median:
     * the ratio a shared host disturbs least. */
    double *q = calloc((size_t)(3 * K + 1) * (size_t)rounds, sizeof *q);
    for (int i = 0; i < 3 * K + 1; i++)
        for (int r = 0; r < rounds; r++)
            q[i * rounds + r] = t[i * rounds + r] > 0 ? t[K * rounds + r] / t[i * rounds + r] : 0;
    for (int i = 0; i < 3 * K + 1; i++) {
        int impl = i > K ? (i - K - 1) % K : i, nv = i > 2 * K ? 8 : 4;
        if (i != K && (!miner_impl_usable(impl) || !strcmp(miner_impl_name(impl), "portable"))) continue;
        if (i > K && miner_impl_versions(impl) < nv) continue;
        qsort(t + i * rounds, (size_t)rounds, sizeof *t, cmp);
        qsort(q + i * rounds, (size_t)rounds, sizeof *q, cmp);
        char label[64];
        snprintf(label, sizeof label, "%s%s", i == K ? THEIR_NAME : miner_impl_name(impl),
                 i > 2 * K ? " x8 versions" : i > K ? " x4 versions" : "");
        printf("%-30s TSC/hash median %6.1f  min %6.1f", label, t[i * rounds + rounds / 2], t[i * rounds]);
        if (i != K) printf("  speed vs theirs, paired median %.3fx", q[i * rounds + rounds / 2]);
        printf("\n");
    }
    return 0;
}
EOF
HERE=$(cd "$(dirname "$0")/.." && pwd)
# The project's core with the package's own flags (no -march=native).
for f in dispatch sha256_portable sha256_avx2 sha256_shani sha256_shani_vex sha256_avx512 sha256_armv8; do
    gcc -O3 -std=gnu11 -c -I"$HERE/csrc" -I"$HERE/kernels" -o "$OUT/$f.o" "$HERE/csrc/$f.c"
done
OBJS="$OUT/dispatch.o $OUT/sha256_portable.o $OUT/sha256_avx2.o $OUT/sha256_shani.o $OUT/sha256_shani_vex.o $OUT/sha256_avx512.o $OUT/sha256_armv8.o"
gcc -O3 -march=native -I"$SRC" -I"$HERE/csrc" -Wno-pointer-sign -o "$OUT/h2h_avx512" "$OUT/h2h.c" $OBJS $FILES
gcc -O3 -march=native -mno-avx512f -I"$SRC" -I"$HERE/csrc" -Wno-pointer-sign -o "$OUT/h2h_sha" "$OUT/h2h.c" $OBJS $FILES
gcc -O3 -march=native -mno-avx512f -mno-sha -I"$SRC" -I"$HERE/csrc" -Wno-pointer-sign -o "$OUT/h2h_avx2" "$OUT/h2h.c" $OBJS $FILES
echo "built $OUT/cpm_avx512 $OUT/cpm_sha $OUT/h2h_avx512 $OUT/h2h_sha $OUT/h2h_avx2"
