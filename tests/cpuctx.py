"""A DeviceContext for running the real CPUDevice loop outside the engine (tests and bench/cpu_slices.py)."""
from __future__ import annotations

from miner.engine.backend import Work
from miner.engine.job import Job


class Ctx:
    """Hands out consecutive slices of one job's nonce range, then stops; records hashes and submits.

    chunk: the nonces a slice holds at most; None gives the device the count it asks for (its own
    chunk sizing, as the engine does)."""

    stopping = False
    generation = 1

    def __init__(self, job: Job, start: int, count: int, chunk: int | None = None) -> None:
        self.job, self.pos, self.end, self.chunk = job, start, start + count, chunk
        self.en2 = b"\x00\x00\x00\x01"
        self.root = job.merkle_root(self.en2)
        self.header = job.header(self.en2, merkle_root=self.root)
        self.hashed = 0
        self.calls = 0   # hashes() reports: one per C call of the device
        self.submitted: list[tuple[int, int | None]] = []

    def next_work(self, nonce_count=1 << 32, *, timeout=None, version_rolling=False):
        if self.pos >= self.end:
            return None
        n = min(nonce_count if self.chunk is None else self.chunk, self.end - self.pos)
        mask = self.job.version_mask if version_rolling else 0
        w = Work(self.job, self.en2, self.job.ntime, self.job.version, self.pos, n, 1, self.root, self.header,
                 device_version_mask=mask)
        self.pos += n
        return w

    def submit(self, work, nonce, *, version=None, claimed_target=None):
        self.submitted.append((nonce, version))
        return True

    def hashes(self, n):
        self.hashed += n
        self.calls += 1

    def add_generation_listener(self, fn):
        pass
