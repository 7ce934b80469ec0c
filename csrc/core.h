/*
 * The cffi boundary of the double-SHA-256 core: a handful of functions taking
 * bytes and counts. No structs cross it. Every buffer size is stated.
 * csrc/build_core.py hands the declarations below to cffi as they stand (minus
 * the preprocessor lines), so this file is the only declaration of the ABI.
 */
#ifndef MINER_CORE_H
#define MINER_CORE_H
#include <stddef.h>
#include <stdint.h>

/* Number of compiled implementations (usable or not on this CPU). */
int miner_impl_count(void);
/* Name of implementation i, e.g. "portable", "shani(4-lane)"; NULL if out of range. */
const char *miner_impl_name(int i);
/* 1 if implementation i runs on this CPU (CPUID + OS state) and passed its
 * known-answer self-test, else 0. The self-test runs once, on first ask. */
int miner_impl_usable(int i);

/* Double SHA-256 of len bytes at data into out (32 bytes). Portable code. */
void miner_sha256d(const uint8_t *data, size_t len, uint8_t *out);

/* The genesis block header (block 0, 80 bytes, nonce field 2083236893) that
 * the known-answer self-tests use, copied into out (80 bytes); the one copy of
 * it in the project (miner.core.GENESIS_HEADER reads it from here). */
void miner_genesis_header(uint8_t *out);

/*
 * Scan nonces start .. start+count-1 (start+count <= 2^32) of header (80 bytes,
 * nonce field ignored) with implementation impl. target is 32 bytes, a
 * little-endian 256-bit integer. Writes each nonce whose hash, read as a
 * little-endian integer, is <= target into out, in ascending order, up to cap
 * entries. Returns how many were written. *next receives the first nonce not
 * scanned (start+count when the range is done; less when out filled up).
 * abort may be NULL; when it points to a non-zero int the scan stops early and
 * *next says where.
 */
int miner_scan(int impl, const uint8_t *header, uint32_t start, uint64_t count,
               const uint8_t *target, uint32_t *out, int cap, uint64_t *next,
               const volatile int *abort);

/* How many header versions miner_scan_versions takes per call with
 * implementation i (8), or 0 when i has no multi-version code or is unusable. */
int miner_impl_versions(int i);
/*
 * Like miner_scan for nver (1..8) versions of header: versions[v] replaces
 * the header's version field (bytes 0-3) for version index v. The first hash's
 * message schedule is shared between versions. out receives (nonce, version
 * index) pairs, ascending by nonce then index: 2 * cap uint32_t, cap >= 256
 * pairs. A call may stop early, at a lane-group boundary (32 nonces or fewer),
 * when fewer than (group size) * nver free pairs remain; *next is then where to continue, and every
 * version of every nonce below it has been scanned. Returns the number of
 * pairs, -1 for bad arguments, -2 when implementation impl has no
 * multi-version code (see miner_impl_versions).
 */
int miner_scan_versions(int impl, const uint8_t *header, const uint32_t *versions, int nver,
                        uint32_t start, uint64_t count, const uint8_t *target,
                        uint32_t *out, int cap, uint64_t *next, const volatile int *abort);
#endif
