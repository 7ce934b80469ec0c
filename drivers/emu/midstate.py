"""SHA-256 from a midstate, the emulated chips' side: what Icarus sticks and the BM1397 are given
instead of a header.

The host side needs one compression per job (the midstate of header bytes
0..63: miner.sha256.midstate); the emulators need the rest of the double hash
for many nonces, in the order the chip walks them. miner.core.scan takes whole headers and walks
nonces in little-endian order, so it cannot serve a device that only knows a
midstate; this module does, vectorised with numpy (0.44 MH/s per CPU-second in
the Icarus emulator's batches, docs/benchmarks/asic.md) and falling back to
plain Python (3 kH/s) when numpy is absent.
"""
from __future__ import annotations

import hashlib
import struct

from miner.sha256 import H_INIT as _IV, K as _K, MASK as _M, compress

try:  # optional: only the emulators of midstate chips use it
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only without numpy
    _np = None


_PAD80 = b"\x80" + b"\x00" * 39 + struct.pack(">Q", 640)  # after header bytes 64..79


def hash_from_midstate(mid: tuple[int, ...], tail: bytes) -> bytes:
    """sha256d of a header given its midstate and bytes 64..79 (tail: 16 bytes). Digest as hashlib gives it."""
    first = compress(mid, bytes(tail) + _PAD80)
    return hashlib.sha256(struct.pack(">8I", *first)).digest()


if _np is not None:
    _KN = _np.array(_K, dtype=_np.uint32)
    _PAD32 = [0x80000000] + [0] * 6 + [256]  # second hash: 32 bytes of digest, then padding

    def _rotr_np(x, n):
        return (x >> _np.uint32(n)) | (x << _np.uint32(32 - n))

    def _compress_np(state, w):
        """Vectorised compression: state is 8 arrays (or scalars), w is 16 arrays/scalars."""
        w = list(w)
        for i in range(16, 64):
            x, y = w[i - 15], w[i - 2]
            s0 = _rotr_np(x, 7) ^ _rotr_np(x, 18) ^ (x >> _np.uint32(3))
            s1 = _rotr_np(y, 17) ^ _rotr_np(y, 19) ^ (y >> _np.uint32(10))
            w.append(w[i - 16] + s0 + w[i - 7] + s1)
        a, b, c, d, e, f, g, h = state
        for i in range(64):
            t1 = h + (_rotr_np(e, 6) ^ _rotr_np(e, 11) ^ _rotr_np(e, 25)) + ((e & f) ^ (~e & g)) + _KN[i] + w[i]
            t2 = (_rotr_np(a, 2) ^ _rotr_np(a, 13) ^ _rotr_np(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
            a, b, c, d, e, f, g, h = t1 + t2, a, b, c, d + t1, e, f, g
        return [x + y for x, y in zip(state, (a, b, c, d, e, f, g, h))]


def scan_midstate(mid: tuple[int, ...], tail12: bytes, nonce_words: list[int] | range, target: int) -> list[int]:
    """Header nonce words (bytes 76..79 read big-endian, the order Icarus counters walk) whose
    double hash, as a little-endian integer, is <= target. Results keep the input order."""
    if _np is None:
        hits = []
        for word in nonce_words:
            h = hash_from_midstate(mid, tail12 + word.to_bytes(4, "big"))
            if int.from_bytes(h, "little") <= target:
                hits.append(word)
        return hits
    if isinstance(nonce_words, range):
        words = _np.arange(nonce_words.start, nonce_words.stop, nonce_words.step, dtype=_np.uint64).astype(_np.uint32)
    else:
        words = _np.array(list(nonce_words), dtype=_np.uint32)
    if words.size == 0:
        return []
    with _np.errstate(over="ignore"):
        t = struct.unpack(">3I", bytes(tail12))
        block = [_np.uint32(t[0]), _np.uint32(t[1]), _np.uint32(t[2]), words] + \
            [_np.uint32(v) for v in struct.unpack(">12I", _PAD80)]
        st = [_np.uint32(v) for v in mid]
        first = _compress_np(st, block)
        second = _compress_np([_np.uint32(v) for v in _IV], first + [_np.uint32(v) for v in _PAD32])
    # The digest's little-endian integer: word 7 (byte-swapped) is the most significant.
    # Filter on the top 32 bits first, then check the survivors exactly.
    top = second[7].byteswap()
    limit = min(target >> 224, _M)
    cand = _np.nonzero(top <= _np.uint32(limit))[0]
    hits = []
    for i in cand.tolist():
        digest = struct.pack(">8I", *(int(second[j][i]) for j in range(8)))
        if int.from_bytes(digest, "little") <= target:
            hits.append(int(words[i]))
    return hits
