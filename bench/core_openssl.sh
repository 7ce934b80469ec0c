#!/bin/sh
# The issue's OpenSSL ratio measured in one process: OpenSSL's SHA-256 (libcrypto's
# EVP digest over 16 KiB, the work of `openssl speed -evp sha256 -bytes 16384`, with
# its own SHA-NI or AVX2 code) and this project's scans (csrc/, built with the
# package's flags, through the public miner_scan), called alternately, single
# threaded. Each round times one 16 KiB digest batch and one scan call of every
# implementation (and, for the codes that can, one call hashing 8 header versions
# per nonce, BIP 310 rolling, with as many hashes); the figure per implementation is the paired median, over the
# rounds, of (OpenSSL TSC per compression) / (scan TSC per hash), i.e. hashes per
# second over OpenSSL compressions per second, measured a few milliseconds apart.
# `openssl speed` in another process (bench/core_bench.py) is a second opinion that
# a shared host's swings between the two processes disturb more.
#   bench/core_openssl.sh [ROUNDS] [OUT_DIR]        (needs libssl-dev)
set -eu
ROUNDS=${1:-41}
OUT=${2:-/tmp/core_openssl}
HERE=$(cd "$(dirname "$0")/.." && pwd)
OBJS=$("$HERE/bench/core_objects.sh" "$OUT")   # also makes OUT_DIR
cat > "$OUT/ossl.c" <<'EOF'
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include "core.h"
static int cmp(const void *x, const void *y) { double u = *(const double *)x, v = *(const double *)y; return (u > v) - (u < v); }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 41;
    enum { BUF = 16384, BATCH = 256, MAXI = 32 };   /* 256 digests of 16 KiB: 65,536 compressions a batch */
    const uint32_t N = 1u << 16;                     /* 65,536 nonces a scan call */
    static unsigned char buf[BUF];
    for (int i = 0; i < BUF; i++) buf[i] = (unsigned char)(i * 7);
    uint8_t header[80], target[32] = {0};
    miner_genesis_header(header);
    target[26] = 0xff; target[27] = 0xff;            /* difficulty 1 (nbits 1d00ffff) */
    /* Each usable code but portable, then (nv[k] = 8) each one that can hash 8 header versions per nonce. */
    int impl[MAXI], nv[MAXI], ni = 0;
    for (int v = 1; v <= 8; v += 7)
        for (int i = 0; i < miner_impl_count() && ni < MAXI; i++)
            if (miner_impl_usable(i) && strcmp(miner_impl_name(i), "portable") != 0 &&
                (v == 1 || miner_impl_versions(i) >= 8)) {
                impl[ni] = i;
                nv[ni++] = v;
            }
    const uint32_t versions[8] = {0x20000000, 0x20002000, 0x20004000, 0x20006000,
                                  0x20008000, 0x2000a000, 0x2000c000, 0x2000e000};
    static uint32_t vout[2 * 256];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = EVP_sha256();
    unsigned char dig[32];
    double *ossl = calloc((size_t)rounds, sizeof *ossl), *t = calloc((size_t)rounds * MAXI, sizeof *t);
    double *q = calloc((size_t)rounds, sizeof *q);
    uint32_t out[64]; uint64_t next;
    for (int r = 0; r < rounds; r++) {
        unsigned long long c = __rdtsc();
        for (int b = 0; b < BATCH; b++) {
            EVP_DigestInit_ex(ctx, md, NULL);
            EVP_DigestUpdate(ctx, buf, BUF);
            EVP_DigestFinal_ex(ctx, dig, NULL);
        }
        /* 16 KiB plus padding is 257 compressions per digest. */
        ossl[r] = (double)(__rdtsc() - c) / (BATCH * (BUF / 64 + 1));
        for (int i = 0; i < ni; i++) {
            c = __rdtsc();
            if (nv[i] == 1)
                miner_scan(impl[i], header, (uint32_t)r * N, N, target, out, 64, &next, NULL);
            else  /* as many hashes as the plain call: N / 8 nonces under 8 versions */
                miner_scan_versions(impl[i], header, versions, 8, (uint32_t)r * N, N / 8, target, vout, 256, &next, NULL);
            t[i * rounds + r] = (double)(__rdtsc() - c) / N;
        }
    }
    double *om = calloc((size_t)rounds, sizeof *om);  /* scratch for the medians (median() sorts) */
    memcpy(om, ossl, sizeof *ossl * (size_t)rounds);
    printf("%d rounds; OpenSSL (%s) median %.1f TSC per compression\n", rounds, OpenSSL_version(OPENSSL_VERSION), median(om, rounds));
    for (int i = 0; i < ni; i++) {
        for (int r = 0; r < rounds; r++) q[r] = ossl[r] / t[i * rounds + r];
        double lo = 1e9, hi = 0;
        for (int r = 0; r < rounds; r++) { lo = q[r] < lo ? q[r] : lo; hi = q[r] > hi ? q[r] : hi; }
        double qm = median(q, rounds);
        for (int r = 0; r < rounds; r++) om[r] = t[i * rounds + r];
        char label[64];
        snprintf(label, sizeof label, "%s%s", miner_impl_name(impl[i]), nv[i] == 8 ? " x8 versions" : "");
        printf("%-32s median %6.1f TSC/hash | hashes/s over OpenSSL compressions/s, paired median %.3f (%.3f-%.3f)\n",
               label, median(om, rounds), qm, lo, hi);
    }
    EVP_MD_CTX_free(ctx);
    free(om); free(q); free(t); free(ossl);
    return 0;
}
EOF
# shellcheck disable=SC2086
gcc -O2 -I"$HERE/csrc" -o "$OUT/ossl" "$OUT/ossl.c" $OBJS -lcrypto
"$OUT/ossl" "$ROUNDS"
