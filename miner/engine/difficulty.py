"""Difficulty and target arithmetic, exact at the boundary.

A hash meets a target when int.from_bytes(hash, "little") <= target. Targets
are computed with exact fractions: a float comparison would reject a share that
sits exactly on the boundary.
"""
from __future__ import annotations

import math
from fractions import Fraction

from miner.errors import ProtocolError

DIFF1_TARGET = 0xFFFF << 208  # difficulty 1, "pool difficulty" convention (bdiff)
MAX_TARGET = (1 << 256) - 1


def check_difficulty(d: object) -> Fraction:
    """Validate a pool difficulty: a finite number > 0. Raises ProtocolError otherwise."""
    if isinstance(d, bool) or not isinstance(d, (int, float, Fraction)):
        raise ProtocolError(f"difficulty must be a number, got {d!r}")
    if isinstance(d, float) and not math.isfinite(d):
        raise ProtocolError(f"difficulty must be finite, got {d!r}")
    if d <= 0:
        raise ProtocolError(f"difficulty must be positive, got {d!r}")
    return Fraction(d)


MAX_SHARE_DIFFICULTY = DIFF1_TARGET   # above it floor(diff1 / d) is 0, a target no hash can meet


def target_from_difficulty(d: int | float | Fraction) -> int:
    """Share target for pool difficulty d: floor(diff1 / d), within 1 .. 2^256-1.

    A difficulty above MAX_SHARE_DIFFICULTY (a pool sending 1e300) gets target 1, the smallest
    there is, rather than 0, which no hash meets; the session warns about such a difficulty."""
    f = check_difficulty(d)
    return max(1, min(MAX_TARGET, (DIFF1_TARGET * f.denominator) // f.numerator))


def difficulty_from_target(target: int) -> float:
    return DIFF1_TARGET / target if target > 0 else math.inf


def hash_value(h: bytes) -> int:
    """A 32-byte sha256d digest as the little-endian integer compared with targets."""
    return int.from_bytes(h, "little")


def difficulty_from_hash(h: bytes) -> float:
    """Share difficulty of a hash: diff1 / value (inf for an all-zero hash)."""
    v = hash_value(h)
    return DIFF1_TARGET / v if v else math.inf


def target_from_nbits(nbits: int) -> int:
    """Network target from the compact nbits field: mantissa * 256^(exponent-3)."""
    mantissa = nbits & 0xFFFFFF
    exponent = nbits >> 24
    if mantissa & 0x800000:  # sign bit: negative targets do not exist on the network
        return 0
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return min(MAX_TARGET, mantissa << (8 * (exponent - 3)))


def network_difficulty(nbits: int) -> float:
    t = target_from_nbits(nbits)
    return DIFF1_TARGET / t if t else math.inf
