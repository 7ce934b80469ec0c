/*
 * SHA-256 building blocks shared by the C core (csrc/), the OpenCL kernel
 * (kernels/sha256d.cl) and the CUDA kernel (kernels/sha256d.cu), so that one
 * algorithm is written once and tested three ways.
 *
 * Only macros and a constant table: no function definitions, because the
 * three compilers disagree on qualifiers (static inline / __device__ / none).
 * The includer defines SHA256_U32 (uint32_t, uint, unsigned int) and, where it
 * needs one, SHA256_CONST for the address space of the K table.
 *
 * Source of the constants: FIPS 180-4, section 4.2.2 and 5.3.3.
 */
#ifndef MINER_SHA256_COMMON_H
#define MINER_SHA256_COMMON_H

#ifndef SHA256_CONST
#define SHA256_CONST static const
#endif

#define SHA256_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define SHA256_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define SHA256_MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define SHA256_BSIG0(x) (SHA256_ROTR(x, 2) ^ SHA256_ROTR(x, 13) ^ SHA256_ROTR(x, 22))
#define SHA256_BSIG1(x) (SHA256_ROTR(x, 6) ^ SHA256_ROTR(x, 11) ^ SHA256_ROTR(x, 25))
#define SHA256_SSIG0(x) (SHA256_ROTR(x, 7) ^ SHA256_ROTR(x, 18) ^ ((x) >> 3))
#define SHA256_SSIG1(x) (SHA256_ROTR(x, 17) ^ SHA256_ROTR(x, 19) ^ ((x) >> 10))

/* One round on working variables a..h with schedule word w and constant k. */
#define SHA256_ROUND(a, b, c, d, e, f, g, h, k, w)                              \
    do {                                                                       \
        SHA256_U32 t1_ = (h) + SHA256_BSIG1(e) + SHA256_CH(e, f, g) + (k) + (w); \
        SHA256_U32 t2_ = SHA256_BSIG0(a) + SHA256_MAJ(a, b, c);                \
        (d) += t1_;                                                            \
        (h) = t1_ + t2_;                                                       \
    } while (0)

/* Schedule word i (16 <= i < 64) from the previous sixteen, in place mod 16. */
#define SHA256_SCHED(w, i)                                                     \
    ((w)[(i)&15] += SHA256_SSIG1((w)[((i)-2) & 15]) + (w)[((i)-7) & 15] +     \
                    SHA256_SSIG0((w)[((i)-15) & 15]))

#define SHA256_H0 0x6a09e667u
#define SHA256_H1 0xbb67ae85u
#define SHA256_H2 0x3c6ef372u
#define SHA256_H3 0xa54ff53au
#define SHA256_H4 0x510e527fu
#define SHA256_H5 0x9b05688cu
#define SHA256_H6 0x1f83d9abu
#define SHA256_H7 0x5be0cd19u

SHA256_CONST SHA256_U32 SHA256_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u,
    0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u,
    0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,
    0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au,
    0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

#endif
