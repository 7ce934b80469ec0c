"""Immutable mining jobs and shares.

A Job is built once per mining.notify (plus the session's extranonce1, sizes,
difficulty and version mask) and derives everything up front: coinbase parts,
merkle branch, header template, share target and network target. Devices get
headers from it; nothing mutates it, so it crosses threads freely.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from miner.engine.difficulty import difficulty_from_hash, hash_value, target_from_difficulty, target_from_nbits
from miner.sha256 import sha256d


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    prevhash: bytes          # 32 bytes, header (internal) order
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool
    extranonce1: bytes
    extranonce2_size: int
    difficulty: float
    version_mask: int = 0    # negotiated BIP 310 mask; 0 = no rolling
    pool_id: int = 0
    received_at: float = 0.0
    share_target: int = field(init=False)
    network_target: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "share_target", target_from_difficulty(self.difficulty))
        object.__setattr__(self, "network_target", target_from_nbits(self.nbits))

    # -- derived values -------------------------------------------------
    def coinbase(self, extranonce2: bytes) -> bytes:
        if len(extranonce2) != self.extranonce2_size:
            raise ValueError(f"extranonce2 must be {self.extranonce2_size} bytes, got {len(extranonce2)}")
        return self.coinb1 + self.extranonce1 + extranonce2 + self.coinb2

    def merkle_root(self, extranonce2: bytes) -> bytes:
        root = sha256d(self.coinbase(extranonce2))
        for branch in self.merkle_branch:
            root = sha256d(root + branch)
        return root

    def header(self, extranonce2: bytes, ntime: int | None = None, nonce: int = 0,
               version: int | None = None, merkle_root: bytes | None = None) -> bytes:
        """The 80-byte header. version defaults to the job's; ntime to the job's."""
        root = merkle_root if merkle_root is not None else self.merkle_root(extranonce2)
        return b"".join((
            (self.version if version is None else version).to_bytes(4, "little"),
            self.prevhash,
            root,
            (self.ntime if ntime is None else ntime).to_bytes(4, "little"),
            self.nbits.to_bytes(4, "little"),
            (nonce & 0xFFFFFFFF).to_bytes(4, "little"),
        ))

    def rolled_version(self, bits: int) -> int:
        """Job version with the mask's bits replaced by ``bits`` (BIP 310)."""
        return (self.version & ~self.version_mask) | (bits & self.version_mask)

    def extranonce2_bytes(self, counter: int) -> bytes:
        """The counter-th extranonce2 of this job (big-endian, wraps at its size)."""
        return (counter % (1 << (8 * self.extranonce2_size))).to_bytes(self.extranonce2_size, "big")


@dataclass(frozen=True, slots=True)
class Share:
    """A nonce the host has re-hashed and found to meet the job's share target."""
    job: Job
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int            # full header version used
    hash: bytes             # sha256d of the header
    device: str = ""

    @property
    def share_difficulty(self) -> float:
        """The difficulty this share's hash achieved (at least the job's target_difficulty,
        usually more). Only for best-share figures: pools credit the job's difficulty."""
        return difficulty_from_hash(self.hash)

    @property
    def is_block(self) -> bool:
        return hash_value(self.hash) <= self.job.network_target

    @property
    def key(self) -> tuple:
        """Identity for duplicate detection."""
        return (self.job.pool_id, self.job.job_id, self.extranonce2, self.ntime, self.nonce, self.version)

    def submit_params(self, worker: str) -> list[str]:
        params = [worker, self.job.job_id, self.extranonce2.hex(), f"{self.ntime:08x}", f"{self.nonce:08x}"]
        if self.job.version_mask:  # BIP 310: always sent once rolling is negotiated
            params.append(f"{self.version & self.job.version_mask:08x}")
        return params


@dataclass(frozen=True, slots=True)
class NonceCheck:
    """A device's nonce re-hashed on the host (recheck): the header it names and that header's hash."""
    nonce: int              # masked to 32 bits
    version: int            # full header version the nonce was hashed with
    hash: bytes             # sha256d of the header, hashlib's byte order
    value: int              # the hash as a little-endian integer: compare with targets

    def meets(self, target: int) -> bool:
        return self.value <= target


def recheck(header: bytes, nonce: int, version: int) -> NonceCheck:
    """The one host re-check of a device's nonce: put ``nonce`` and ``version`` into ``header``
    (80 bytes, or the first 76; its own nonce and version fields are ignored) and hash it.

    Every nonce from every device goes through here exactly once: an ASIC driver
    checks it to blame the right chip and hands the result to ctx.submit, so the
    engine does not hash it again (miner.engine.engine; drivers/base.py).
    """
    nonce &= 0xFFFFFFFF
    version &= 0xFFFFFFFF
    h = sha256d(version.to_bytes(4, "little") + bytes(header[4:76]) + nonce.to_bytes(4, "little"))
    return NonceCheck(nonce, version, h, hash_value(h))


def spread_bits(n: int, mask: int) -> int | None:
    """Place the bits of n into the set bits of mask (lowest first); None if n does not fit.

    How the engine (host rolling) and the CPU device (its own versions) pick
    the version bits for roll number n within a BIP 310 mask.
    """
    out = 0
    bit = 0
    while n and mask >> bit:
        if (mask >> bit) & 1:
            out |= (n & 1) << bit
            n >>= 1
        bit += 1
    return None if n else out
