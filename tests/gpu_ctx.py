"""A DeviceContext for timing GPU devices without the engine (tests/test_cuda.py, bench/gpu_bench.py).

One endless difficulty-1 job, so hits are as rare as in real mining and a run
measures hashing; consecutive slices, moving to the next extranonce2 after
2^32 nonces; every submitted nonce re-checked with the C core.
"""
from __future__ import annotations

import threading
import time

from miner import core
from miner.engine.backend import Work
from miner.engine.job import Job
from miner.sha256 import sha256d


class TimedContext:
    """Hands out slices of one job until ``seconds`` have passed; counts hashes and good/bad nonces."""

    __test__ = False  # a helper, not a pytest test class

    def __init__(self, seconds: float) -> None:
        self.job = Job("bench", sha256d(b"p"), b"\x01" * 50, b"\x02" * 40, (), 0x20000000, 0x1D00FFFF,
                       0x65000000, True, b"\x00\x00\x00\x01", 4, 1)
        self.deadline = time.perf_counter() + seconds
        self.en2 = self.pos = self.hashed = self.good = self.bad = 0
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return time.perf_counter() >= self.deadline

    generation = 1

    def next_work(self, nonce_count=1 << 32, *, timeout=None, version_rolling=False):
        if self.stopping:
            return None
        with self._lock:
            if self.pos >= 1 << 32:
                self.en2, self.pos = self.en2 + 1, 0
            en2 = self.job.extranonce2_bytes(self.en2)
            root = self.job.merkle_root(en2)
            n = min(nonce_count, (1 << 32) - self.pos)
            w = Work(self.job, en2, self.job.ntime, self.job.version, self.pos, n, 1, root,
                     self.job.header(en2, merkle_root=root))
            self.pos += n
            return w

    def wait_generation(self, generation, timeout):
        time.sleep(timeout)
        return False

    def submit(self, work, nonce, *, version=None, claimed_target=None, check=None):
        h = core.sha256d(work.header[:76] + nonce.to_bytes(4, "little"))
        ok = int.from_bytes(h, "little") <= work.target
        with self._lock:
            self.good += ok
            self.bad += not ok
        return ok

    def hashes(self, n: int) -> None:
        with self._lock:
            self.hashed += n

    def add_generation_listener(self, fn) -> None:
        pass
