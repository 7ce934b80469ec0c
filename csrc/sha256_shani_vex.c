/*
 * The SHA-NI code of sha256_shani.c compiled for CPUs that also have AVX:
 * the SHA instructions exist only in their SSE encoding, but everything
 * around them (the K+W additions, PALIGNR, the shuffles, the feed-forward)
 * takes the VEX three-operand form, which drops the register copies that the
 * two-operand SSE forms need. That is 10-20% fewer instructions per nonce,
 * and on a core whose front end is shared with a busy SMT sibling the
 * instruction count, not the SHA unit, sets the rate (docs/CORE.md).
 * Separate functions (suffix _vex) with target("sha,avx"); the dispatcher
 * calls them only after CPUID and XCR0 report AVX as well as SHA.
 */
#define SHANI_VEX 1
#include "sha256_shani.c"
