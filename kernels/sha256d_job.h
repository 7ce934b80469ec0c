/*
 * The job one GPU launch gets, passed to the kernel by value: 38 32-bit words
 * (152 bytes), little-endian on the host. The one declaration of the layout:
 * kernels/sha256d.cl and kernels/sha256d.cu include it, and the host side
 * (miner/backends/gpu_common.py, JOB_FIELDS) reads the field list from this
 * file, so the two cannot drift apart.
 *
 * The includer defines SHA256_U32 (uint, unsigned int). One field per line,
 * `SHA256_U32 name;` or `SHA256_U32 name[N];`, in layout order.
 *
 * word  field                                                               */
typedef struct {
    SHA256_U32 midstate[8]; /*  0  H after block 1 (header bytes 0..63)        */
    SHA256_U32 st[8];       /*  8  a..h after block-2 rounds 0..2               */
    SHA256_U32 w[3];        /* 16  block-2 words 0..2 (merkle tail, ntime, nbits) */
    SHA256_U32 w16;         /* 19  schedule word 16 (nonce independent)         */
    SHA256_U32 w17;         /* 20  schedule word 17 (nonce independent)         */
    SHA256_U32 w18_base;    /* 21  W18 - sigma0(W3)                             */
    SHA256_U32 w19_base;    /* 22  W19 - W3                                     */
    SHA256_U32 p3;          /* 23  round 3's T1 without W3                      */
    SHA256_U32 t2_3;        /* 24  round 3's T2                                 */
    SHA256_U32 nonce_base;  /* 25  first nonce of this launch                   */
    SHA256_U32 target[8];   /* 26  share target, little-endian 32-bit chunks,
                                   [7] most significant                         */
    SHA256_U32 found_cap;   /* 34  slots in the found buffer after the count    */
    SHA256_U32 count;       /* 35  nonces in this launch; the grid is rounded up
                                   to whole groups and threads past it return   */
    SHA256_U32 found_base;  /* 36  found[0] before this launch: the counter is
                                   never reset, a launch's hits are its
                                   increments                                   */
    SHA256_U32 pad;         /* 37  zero                                         */
} sha256d_job;
