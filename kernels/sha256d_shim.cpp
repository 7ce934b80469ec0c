/*
 * CPU launcher for kernels/sha256d.cu under the host shim: walks the grid
 * one thread at a time, exactly as the GPU would cover it.
 */
#include <string.h>
#include "sha256d_shim.h"
#include "sha256d.cu"

/* job_words: the 38-word job of gpu_common.py; found: 1 + job.found_cap words.
 * Runs ceil(count / block) blocks of `block` threads, like a CUDA launch
 * (threads past `count` are not launched: the host sizes grids exactly). */
extern "C" int sha256d_shim_launch(const unsigned int *job_words, unsigned int count,
                                   unsigned int block, unsigned int *found)
{
    sha256d_job job;
    if (sizeof job != 38 * sizeof(unsigned int) || block == 0) return -1;
    memcpy(&job, job_words, sizeof job);
    blockDim.x = block;
    for (unsigned int b = 0; (unsigned long long)b * block < count; b++) {
        blockIdx.x = b;
        for (unsigned int t = 0; t < block && (unsigned long long)b * block + t < count; t++) {
            threadIdx.x = t;
            sha256d_scan(job, found);
        }
    }
    return 0;
}
