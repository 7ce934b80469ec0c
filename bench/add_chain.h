/* The core clock without perf counters, for the bench/ programs that give TSC figures in core
   cycles (core_rnds2.sh, core_clock.sh): a chain of dependent register-register adds runs at one
   add per core cycle on every x86 core this project has met. Register-register on purpose:
   Golden Cove (Sapphire Rapids) folds a chain of add-immediate at rename and ran it at 6.1 adds
   per TSC tick in run O, 4 per core cycle, which read as a clock is 16 GHz.
   TSC ticks per core cycle: the fastest of `tries` chains of 800,000 adds (about 0.2 ms each;
   a chain the host interrupts only reads slower). */
#include <x86intrin.h>
static double tsc_per_cycle(int tries) {
    unsigned long x = 1, y = 3;
    double best = 1e9;
    for (int r = 0; r < tries; r++) {
        unsigned long long t = __rdtsc();
        for (int i = 0; i < 200000; i++)
            __asm__ volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0" : "+r"(x) : "r"(y));
        double d = (double)(__rdtsc() - t) / 800000.0;
        best = d < best ? d : best;
    }
    return best;
}
