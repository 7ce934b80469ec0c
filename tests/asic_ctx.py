"""A DeviceContext for driving ASIC drivers in tests without the engine.

Hands out Work built from the real Stratum session in tests/vectors/stratum_session.json
and re-checks every submitted nonce with hashlib, as the engine does: a nonce
missing the claimed target is a hardware error and never becomes a share.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from miner.engine.backend import Work
from miner.engine.difficulty import hash_value, target_from_difficulty
from miner.engine.job import Job, NonceCheck, Share
from miner.sha256 import sha256d
from miner.stratum.codec import swap_words

VECTORS = Path(__file__).parent / "vectors"


def session_job(difficulty: float = 1e-4, version_mask: int = 0x1FFFE000, job_id: str | None = None) -> Job:
    lines = json.loads((VECTORS / "stratum_session.json").read_text())["lines"]
    sub = next(x["json"] for x in lines if x["dir"] == "in" and x["json"].get("id") == 1)
    notify = next(x["json"]["params"] for x in lines if x["json"].get("method") == "mining.notify")
    jid, prev, c1, c2, branch, ver, nbits, ntime, clean = notify[:9]
    return Job(job_id=job_id or jid, prevhash=swap_words(bytes.fromhex(prev)), coinb1=bytes.fromhex(c1),
               coinb2=bytes.fromhex(c2), merkle_branch=tuple(bytes.fromhex(b) for b in branch),
               version=int(ver, 16), nbits=int(nbits, 16), ntime=int(ntime, 16), clean=clean,
               extranonce1=bytes.fromhex(sub["result"][1]), extranonce2_size=sub["result"][2],
               difficulty=difficulty, version_mask=version_mask)


class TestContext:
    """Thread-safe DeviceContext; counts what the engine would count."""

    __test__ = False  # a helper, not a pytest test class

    def __init__(self, job: Job | None = None) -> None:
        self.job = job or session_job()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gen = 1
        self._en2 = 0
        self.works: list[Work] = []
        self.submitted: list[tuple[Work, int, int | None, bool]] = []
        self.shares: list[Share] = []
        self.hw_errors = 0
        self.bad_version = 0
        self.hash_count = 0
        self.checks: list[NonceCheck | None] = []  # the driver's own host check handed with each nonce
        self.work_requests: list[float] = []

    # -- DeviceContext --------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def generation(self) -> int:
        return self._gen

    def next_work(self, nonce_count: int = 1 << 32, *, timeout: float | None = None,
                  version_rolling: bool = False) -> Work | None:
        if self.stopping:
            return None
        with self._lock:
            en2 = self.job.extranonce2_bytes(self._en2)
            self._en2 += 1
            root = self.job.merkle_root(en2)
            header = self.job.header(en2, merkle_root=root)
            w = Work(self.job, en2, self.job.ntime, self.job.version, 0, nonce_count, self._gen, root, header,
                     self.job.version_mask if version_rolling else 0)
            self.works.append(w)
            self.work_requests.append(time.monotonic())
            return w

    def wait_generation(self, generation: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._gen != generation:
                return True
            time.sleep(0.01)
        return False

    def submit(self, work: Work, nonce: int, *, version: int | None = None,
               claimed_target: int | None = None, check: NonceCheck | None = None) -> bool:
        v = work.version if version is None else version
        claimed = work.target if claimed_target is None else claimed_target
        ok_version = (v ^ work.version) & ~work.device_version_mask == 0
        h = sha256d(work.job.header(work.extranonce2, work.ntime, nonce, v, work.merkle_root))
        with self._lock:
            self.checks.append(check)
            if not ok_version:
                self.bad_version += 1
                self.hw_errors += 1
                self.submitted.append((work, nonce, version, False))
                return False
            if hash_value(h) > claimed:
                self.hw_errors += 1
                self.submitted.append((work, nonce, version, False))
                return False
            self.submitted.append((work, nonce, version, True))
            if hash_value(h) <= work.job.share_target:
                self.shares.append(Share(work.job, work.extranonce2, work.ntime, nonce, v, h))
                return True
            return False

    def hashes(self, n: int) -> None:
        with self._lock:
            self.hash_count += n

    # -- test controls ------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def new_generation(self) -> None:
        with self._lock:
            self._gen += 1

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def all_shares_valid(self) -> bool:
        """Every share really meets its job's share target (re-hashed from scratch)."""
        for s in self.shares:
            h = sha256d(s.job.header(s.extranonce2, s.ntime, s.nonce, s.version))
            if h != s.hash or hash_value(h) > s.job.share_target:
                return False
        return True


def run_device(device, ctx: TestContext) -> threading.Thread:
    """Run device.run(ctx) on its own thread, as the engine does; errors are kept on the thread object."""
    def target():
        try:
            device.run(ctx)
        except BaseException as exc:  # surfaced by the test through thread.error
            t.error = exc
    t = threading.Thread(target=target, daemon=True, name=f"dev-{device.name}")
    t.error = None
    t.start()
    return t


__all__ = ["TestContext", "session_job", "run_device", "target_from_difficulty"]


def mine_until(device, ctx: TestContext, cond, timeout: float) -> threading.Thread:
    """Run ``device`` (run_device) until cond() holds, failing with its info() if it does not in time;
    then stop it. Returns the finished thread (its ``error`` set if run() raised)."""
    t = run_device(device, ctx)
    try:
        assert ctx.wait_for(cond, timeout), device.info()
    finally:
        ctx.stop()
        t.join(5)
    return t
