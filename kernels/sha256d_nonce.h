/*
 * The per-nonce work of kernels/sha256d.cl and kernels/sha256d.cu, written
 * once: a code fragment each kernel includes inside its body (so both compile
 * the same statements, with no call or copy of the job between them). Before
 * the include the kernel has declared
 *     job        its sha256d_job, by value
 *     w3         the nonce as header word 3 (byte-swapped)
 *     w[16], s[8] SHA256_U32 arrays
 * and defined RND and BSWAP32; the fragment declares
 *     top        byte-swapped word 7 of the second hash: the top 32 bits of
 *                the hash as the little-endian integer compared with targets.
 * It does rounds 3..63 of the header's second block (the host precomputed
 * rounds 0..2, round 3 up to W3 and W16..W19 up to their nonce terms) and
 * rounds 0..60 of the second hash, all that word 7 needs.
 * miner/backends/gpu_common.kernel_source() inlines it like sha256_common.h.
 */
    /* ---- hash 1, block 2, rounds 3..63 ---- */
    /* st holds a..h after round 2; round i finds a at s[(0-i)&7], so load rotated. */
#pragma unroll
    for (int k = 0; k < 8; k++) s[(k - 3) & 7] = job.st[k];
    {   /* round 3 with T1 and T2 precomputed up to W3 */
        SHA256_U32 t1 = job.p3 + w3;
        s[(3 - 3) & 7] += t1;            /* d += T1 */
        s[(7 - 3) & 7] = t1 + job.t2_3;  /* h = T1 + T2 */
    }
    w[0] = job.w16;
    w[1] = job.w17;
    w[2] = job.w18_base + SHA256_SSIG0(w3);
    w[3] = job.w19_base + w3;
    w[4] = 0x80000000u;
#pragma unroll
    for (int i = 5; i < 15; i++) w[i] = 0u;
    w[15] = 640u;
#pragma unroll
    for (int i = 4; i < 16; i++) RND(s, i, i == 4 ? 0x80000000u : (i == 15 ? 640u : 0u));
#pragma unroll
    for (int i = 16; i < 64; i++) {
        if (i >= 20) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = s[i] + job.midstate[i];

    /* ---- hash 2, rounds 0..60 (constant padding words fold at compile time) ---- */
    w[8] = 0x80000000u;
#pragma unroll
    for (int i = 9; i < 15; i++) w[i] = 0u;
    w[15] = 256u;
    s[0] = SHA256_H0; s[1] = SHA256_H1; s[2] = SHA256_H2; s[3] = SHA256_H3;
    s[4] = SHA256_H4; s[5] = SHA256_H5; s[6] = SHA256_H6; s[7] = SHA256_H7;
#pragma unroll
    for (int i = 0; i < 61; i++) {
        if (i >= 16) SHA256_SCHED(w, i);
        RND(s, i, w[i & 15]);
    }
    /* Round 60 wrote its new e into s[(3-60)&7] = s[7]; after rounds 61..63
     * that value is h, so final word 7 = s[7] + H7. */
    const SHA256_U32 top = BSWAP32(s[7] + SHA256_H7);
