/*
 * Host shim: compiles kernels/sha256d.cu with g++ on a CPU so the CUDA
 * kernel's logic is tested without a GPU.
 *
 * Built by tests/test_cuda.py: g++ -O2 -shared -fPIC sha256d_shim.cpp (which
 * includes this header, then sha256d.cu, then defines the launcher).
 * The CUDA built-ins the kernel uses are given CPU meanings here; the grid
 * is walked one thread at a time by sha256d_shim_launch(), so atomicAdd
 * needs no real atomicity.
 */
#ifndef MINER_SHA256D_SHIM_H
#define MINER_SHA256D_SHIM_H

#define __global__
#define __device__
#define __constant__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __grid_constant__

struct shim_dim3 { unsigned int x, y, z; };
static shim_dim3 threadIdx, blockIdx, blockDim;

static inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi, unsigned int n)
{
    n &= 31u;
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned int)(v >> n);
}

/* Only the selector 0x0123 (byte reverse) is used by the kernel. */
static inline unsigned int __byte_perm(unsigned int x, unsigned int, unsigned int sel)
{
    return sel == 0x0123u ? __builtin_bswap32(x) : 0xdeadbeefu;
}

static inline unsigned int atomicAdd(unsigned int *p, unsigned int v)
{
    unsigned int old = *p;
    *p = old + v;
    return old;
}

#endif
