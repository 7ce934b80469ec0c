"""SHA-256 on the host, one entry point per purpose.

- sha256d(data): the double hash of whole messages (merkle roots, the host
  re-check of every device nonce in miner.engine.job.recheck). hashlib, so the
  re-check never depends on the C core or a kernel it is checking.
- compress() / midstate(): plain-Python compression for per-job set-up work:
  the midstates sent to Icarus sticks and the BM1397, and the
  nonce-independent rounds handed to GPU kernels.

Mining itself never runs here (the C core miner.core, the kernels and the
chips do that); one compression here takes about 100 us. Constants: FIPS 180-4
sections 4.2.2 and 5.3.3, the same table as kernels/sha256_common.h.
"""
from __future__ import annotations

import hashlib
import struct

MASK = 0xFFFFFFFF

K = (
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
)
H_INIT = (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)


def sha256d(data: bytes) -> bytes:
    """SHA-256 applied twice, digest in hashlib's byte order (the header hash, read little-endian, is its value)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & MASK


def bsig0(x: int) -> int:
    return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22)


def bsig1(x: int) -> int:
    return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25)


def ssig0(x: int) -> int:
    return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)


def ssig1(x: int) -> int:
    return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10)


def ch(x: int, y: int, z: int) -> int:
    return z ^ (x & (y ^ z))


def maj(x: int, y: int, z: int) -> int:
    return (x & y) | (z & (x | y))


def sha_round(s: list[int], k: int, w: int) -> list[int]:
    """One round on the working variables [a..h]; returns the new [a..h]."""
    a, b, c, d, e, f, g, h = s
    t1 = (h + bsig1(e) + ch(e, f, g) + k + w) & MASK
    t2 = (bsig0(a) + maj(a, b, c)) & MASK
    return [(t1 + t2) & MASK, a, b, c, (d + t1) & MASK, e, f, g]


def compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """One SHA-256 compression of a 64-byte block into ``state`` (8 words)."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        w.append((ssig1(w[i - 2]) + w[i - 7] + ssig0(w[i - 15]) + w[i - 16]) & MASK)
    s = list(state)
    for i in range(64):
        s = sha_round(s, K[i], w[i])
    return tuple((x + y) & MASK for x, y in zip(state, s))


def midstate(header: bytes) -> tuple[int, ...]:
    """SHA-256 state words h0..h7 after header bytes 0..63."""
    return compress(H_INIT, bytes(header[:64]))
