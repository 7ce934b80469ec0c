/*
 * Test driver for the ARMv8 SHA-256 code, cross-compiled with the C core and
 * run under qemu-aarch64 by tests/test_core_armv8.py. Reads lines of
 *     IMPL_NAME HEADER_HEX START COUNT TARGET_HEX_LE
 * and prints "next=N hits=a,b,..." for each, or "unusable" when the named
 * implementation is missing or failed its self-test. A first line "list"
 * prints every implementation with its usable flag.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "core.h"

static int unhex(const char *s, uint8_t *out, size_t n) {
    if (strlen(s) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return 0;
        out[i] = (uint8_t)v;
    }
    return 1;
}

int main(void) {
    char line[512], name[64], hhex[161], thex[65];
    unsigned long long start, count;
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "list", 4) == 0) {
            for (int i = 0; i < miner_impl_count(); i++)
                printf("%s %d\n", miner_impl_name(i), miner_impl_usable(i));
            fflush(stdout);
            continue;
        }
        uint8_t header[80], target[32];
        if (sscanf(line, "%63s %160s %llu %llu %64s", name, hhex, &start, &count, thex) != 5 ||
            !unhex(hhex, header, 80) || !unhex(thex, target, 32)) {
            printf("bad line\n");
            continue;
        }
        int impl = -1;
        for (int i = 0; i < miner_impl_count(); i++)
            if (strcmp(miner_impl_name(i), name) == 0) impl = i;
        if (impl < 0 || !miner_impl_usable(impl)) {
            printf("unusable\n");
            continue;
        }
        uint32_t out[4096];
        uint64_t next;
        int n = miner_scan(impl, header, (uint32_t)start, count, target, out, 4096, &next, NULL);
        printf("next=%llu hits=", (unsigned long long)next);
        for (int i = 0; i < n; i++) printf(i ? ",%u" : "%u", out[i]);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
