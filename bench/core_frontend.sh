#!/bin/sh
# Is the spread of the SHA-NI rates on a shared core the SHA unit, the clock,
# or the front end? Round by round, a loop of 4 independent SHA256RNDS2 chains
# with one MSG1/MSG2 per 8 RNDS2 (13 instructions per group, about 1.6 per
# cycle), and the same loop padded with independent integer and vector ALU
# instructions to 21 and 29 instructions per group, each in a small (8-group)
# and a large (64-128-group, 6-19 KB) body; TSC ticks per group. If the other
# hardware thread took the SHA unit, the plain loop would slow down in the
# busy spells; if the clock dropped, all would; if front-end or dispatch
# capacity is taken, the padded loops slow down and the plain one does not
# (docs/benchmarks/core.md, run G).
#   bench/core_frontend.sh [ROUNDS] [OUT_DIR]
set -eu
ROUNDS=${1:-20}
OUT=${2:-/tmp/core_frontend}
mkdir -p "$OUT"
cat > "$OUT/frontend.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>
#define G0 "movdqa 16(%[m]), %%xmm0\n\t"                                        \
    "sha256rnds2 %%xmm0, %%xmm1, %%xmm2\n\t" "sha256rnds2 %%xmm0, %%xmm3, %%xmm4\n\t" \
    "sha256rnds2 %%xmm0, %%xmm5, %%xmm6\n\t" "sha256rnds2 %%xmm0, %%xmm7, %%xmm8\n\t" \
    "movq 40(%[m]), %%xmm0\n\t"                                                   \
    "sha256rnds2 %%xmm0, %%xmm2, %%xmm1\n\t" "sha256rnds2 %%xmm0, %%xmm4, %%xmm3\n\t" \
    "sha256rnds2 %%xmm0, %%xmm6, %%xmm5\n\t" "sha256rnds2 %%xmm0, %%xmm8, %%xmm7\n\t" \
    "sha256msg1 0x120(%[m]), %%xmm9\n\t" "paddd 0x140(%[m]), %%xmm10\n\t"         \
    "sha256msg2 %%xmm10, %%xmm11\n\t" "movdqa %%xmm11, 0x160(%[m])\n\t"
#define PAD "paddd %%xmm12, %%xmm13\n\t" "add $1, %%r8\n\t" "pxor %%xmm14, %%xmm15\n\t" "add $1, %%r9\n\t" \
    "paddd %%xmm12, %%xmm14\n\t" "add $1, %%r10\n\t" "por %%xmm13, %%xmm15\n\t" "add $1, %%r11\n\t"
static __attribute__((aligned(64))) char mem[4096];
#define LOOP(name, BODY, REP)                                                   \
    static __attribute__((noinline, target("sha,sse4.1"))) void name(long n) {  \
        __asm__ volatile("1:\n\t.rept " #REP "\n\t" BODY ".endr\n\tdec %[n]\n\tjnz 1b\n\t" \
                         : [n] "+r"(n) : [m] "r"(mem)                          \
                         : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
                           "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", \
                           "r8", "r9", "r10", "r11", "memory");                \
    }
LOOP(plain8, G0, 8) LOOP(plain128, G0, 128) LOOP(pad8, G0 PAD, 8) LOOP(pad128, G0 PAD, 128)
LOOP(pad2_8, G0 PAD PAD, 8) LOOP(pad2_64, G0 PAD PAD, 64)
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    const long groups = 1L << 21;
    void (*fs[])(long) = {plain8, plain128, pad8, pad128, pad2_8, pad2_64};
    const int reps[] = {8, 128, 8, 128, 8, 64};
    printf("round  13i x8  13i x128  21i x8  21i x128  29i x8  29i x64   (TSC per group)\n");
    for (int r = 0; r < rounds; r++) {
        printf("%5d", r);
        for (int i = 0; i < 6; i++) {
            unsigned long long c = __rdtsc();
            fs[i](groups / reps[i]);
            printf(" %8.2f", (double)(__rdtsc() - c) / groups);
        }
        printf("\n");
    }
    return 0;
}
EOF
gcc -O2 -o "$OUT/frontend" "$OUT/frontend.c"
"$OUT/frontend" "$ROUNDS"
