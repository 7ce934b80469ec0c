"""The engine with real CPU devices (the C core) and devices that misbehave.

The pool side here is a recording stand-in for the pool client: these tests are
about dispatch. The engine against the real third-party pool is in
test_end_to_end.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time

import pytest

from miner import core
from miner.engine.backend import Device
from miner.backends.cpu import CPUDevice
from miner.engine import Engine
from miner.errors import DeviceError
from miner.engine.job import Job
from miner.sha256 import sha256d
from miner.stratum.codec import swap_words
from miner.engine.difficulty import hash_value


def make_job(job_id: str, difficulty: float = 0.00005, clean: bool = True, en1: bytes = b"\x08\x00\x00\x02",
             prev: str = "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000") -> Job:
    return Job(job_id, swap_words(bytes.fromhex(prev)), bytes.fromhex("01000000010000" + job_id.encode().hex()),
               bytes.fromhex("ffffffff0100f2052a01000000"), (sha256d(job_id.encode()),), 0x20000000,
               0x1D00FFFF, 0x504E86B9, clean, en1, 4, difficulty)


class RecordingPools:
    """Stands in for the pool client: records what the engine would send."""

    def __init__(self) -> None:
        self.submitted = []
        self.stale = []
        self.closed = False
        self.active_pool_id = 0

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def close(self, timeout: float = 5.0) -> None:
        self.closed = True

    def submit(self, share) -> None:
        self.submitted.append((time.perf_counter(), share))

    def discard_stale(self, share, why: str) -> None:
        self.stale.append((share, why))

    def snapshots(self):
        return []


class EngineThread:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main():
            self.loop = asyncio.get_running_loop()
            await self.engine.run()
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.loop is not None)
        return self

    def call(self, fn, *args):
        """Run fn on the loop thread and wait for it (as the pool client would call the engine)."""
        done = threading.Event()
        self.loop.call_soon_threadsafe(lambda: (fn(*args), done.set()))
        assert done.wait(5)

    def __exit__(self, *exc):
        self.engine.stop("test over")
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error


def wait_for(cond, timeout: float = 10.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def test_clean_job_moves_every_device_and_old_shares_are_not_sent():
    pools = RecordingPools()
    engine = Engine([CPUDevice("cpu0"), CPUDevice("cpu1")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("a1"))
        wait_for(lambda: {s.device for _, s in pools.submitted} == {"cpu0", "cpu1"})
        switch_at = [0.0]
        job2 = make_job("b2", prev="00" * 32)

        def switch():
            switch_at[0] = time.perf_counter()
            engine.on_job(job2)
        et.call(switch)
        wait_for(lambda: {s.device for t, s in pools.submitted if s.job is job2} == {"cpu0", "cpu1"})
    after = [s for t, s in pools.submitted if t >= switch_at[0]]
    assert after and all(s.job is job2 for s in after), "a share of the replaced job was sent after clean_jobs"
    # every sent share was re-checked on the host and meets its job's target
    for _, s in pools.submitted:
        assert hash_value(sha256d(s.job.header(s.extranonce2, s.ntime, s.nonce, s.version))) <= s.job.share_target
    assert len(engine.switch_latencies) >= 2
    # devices never hash the same header: distinct extranonce2 per device per job
    per_job = {}
    for _, s in pools.submitted:
        per_job.setdefault((s.job.job_id, s.extranonce2), set()).add(s.device)
    assert all(len(devs) == 1 for devs in per_job.values())


def test_non_clean_job_is_picked_up_and_old_job_shares_still_count():
    pools = RecordingPools()
    engine = Engine([CPUDevice("cpu0")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("j1"))
        wait_for(lambda: len(pools.submitted) >= 3)
        j2 = make_job("j2", clean=False)
        et.call(engine.on_job, j2)
        wait_for(lambda: any(s.job is j2 for _, s in pools.submitted))
    assert engine.snapshot().stale == 0


class LyingDevice(Device):
    """Claims random nonces meet the share target: every one is a hardware error."""
    kind = "asic"

    def run(self, ctx):
        rng = random.Random(1)
        while not ctx.stopping:
            work = ctx.next_work(1 << 20, timeout=0.5)
            if work is None:
                continue
            ctx.submit(work, rng.getrandbits(32))
            time.sleep(0.005)


def test_wrong_nonces_are_hardware_errors_never_submitted_and_device_is_disabled():
    pools = RecordingPools()
    engine = Engine([LyingDevice("liar"), CPUDevice("cpu0")], pools, hw_error_limit=10)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("x1", difficulty=1.0))  # random nonces essentially never meet diff 1
        wait_for(lambda: engine.snapshot().devices[0].status == "disabled")
        snap = engine.snapshot()
        time.sleep(0.3)
        assert engine.snapshot().devices[1].hashrate["av"] > 0
    liar = snap.devices[0]
    assert liar.hw_errors >= 10
    assert not any(s.device == "liar" for _, s in pools.submitted)


class CrashingDevice(Device):
    kind = "asic"
    runs = 0

    def run(self, ctx):
        CrashingDevice.runs += 1
        ctx.next_work(1 << 16, timeout=1)
        raise DeviceError("board reported a fatal fault")


def test_a_failing_device_is_retried_then_isolated_while_others_mine():
    pools = RecordingPools()
    CrashingDevice.runs = 0
    engine = Engine([CrashingDevice("bad"), CPUDevice("cpu0")], pools, device_retries=1)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("c1"))
        wait_for(lambda: engine.snapshot().devices[0].status == "dead")
        n = len(pools.submitted)
        wait_for(lambda: len(pools.submitted) > n + 3)  # cpu0 still finds shares
    assert CrashingDevice.runs == 2  # first try + one retry


def test_device_failures_follow_the_one_reconnect_policy():
    from miner.engine.backend import RECONNECT, ReconnectPolicy
    assert [RECONNECT.delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    policy = ReconnectPolicy(first_delay_s=0.05, max_delay_s=0.1, retries=2)
    pools = RecordingPools()
    CrashingDevice.runs = 0
    engine = Engine([CrashingDevice("bad"), CPUDevice("cpu0")], pools, reconnect=policy)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("c2"))
        wait_for(lambda: engine.snapshot().devices[0].status == "dead")
    assert CrashingDevice.runs == 3  # first try + policy.retries


class PrecheckedDevice(Device):
    """Finds nonces with the C core and hands the engine its own host check, as the ASIC drivers do."""
    kind = "asic"

    def run(self, ctx):
        from miner.engine.job import recheck
        lies = 3
        while not ctx.stopping:
            work = ctx.next_work(1 << 16, timeout=0.5)
            if work is None:
                continue
            for n in core.scan(work.header, work.nonce_start, work.nonce_count, work.target):
                ctx.submit(work, n, check=recheck(work.header, n, work.version))
            if lies:  # a check that is not this nonce's: the engine must hash the nonce itself
                lies -= 1
                bad = work.nonce_start
                ctx.submit(work, bad, check=recheck(work.header, bad, work.version ^ 1))


def test_a_nonce_checked_by_the_driver_is_not_hashed_again(hashed_headers):
    headers = hashed_headers
    pools = RecordingPools()
    engine = Engine([PrecheckedDevice("pre")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("h1"))
        wait_for(lambda: len(pools.submitted) >= 3 and engine.snapshot().hw_errors >= 3)
    # Each header hashed once: by the device's own check, or, where that check was for another
    # version, by the engine (a mismatched check is never trusted).
    assert len(headers) == len(set(headers))
    assert sum(int.from_bytes(h[:4], "little") == 0x20000001 for h in headers) == 3
    assert all(s.device == "pre" and hash_value(s.hash) <= s.job.share_target for _, s in pools.submitted)


def test_pause_stops_hashing_and_resume_restarts_within_a_second():
    pools = RecordingPools()
    engine = Engine([CPUDevice("cpu0")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("p1"))
        wait_for(lambda: engine._meter.total > 0)
        engine.pause("test window")
        time.sleep(0.3)  # let the aborted chunk report
        before = engine._meter.total
        time.sleep(0.5)
        assert engine._meter.total == before, "still hashing while paused"
        assert engine.snapshot().paused and engine.snapshot().pause_reason == "test window"
        t0 = time.monotonic()
        engine.resume("test window")
        wait_for(lambda: engine._meter.total > before, timeout=1.0)
        assert time.monotonic() - t0 < 1.0
        assert not pools.closed  # pool session untouched by the pause


def test_version_rolling_devices_get_the_mask_and_host_checks_rolled_versions():
    seen = []

    class Roller(Device):
        kind = "asic"

        def run(self, ctx):
            work = ctx.next_work(1 << 32, version_rolling=True, timeout=2)
            seen.append(work)
            # a version outside the mask must be a hardware error, not a share
            ctx.submit(work, 0, version=work.version ^ 0x1, claimed_target=(1 << 256) - 1)
            while not ctx.stopping:
                time.sleep(0.01)

    pools = RecordingPools()
    job = dataclasses.replace(make_job("v1"), version_mask=0x1FFFE000)
    engine = Engine([Roller("roller")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, job)
        wait_for(lambda: engine.snapshot().devices[0].hw_errors == 1)
    assert seen[0].device_version_mask == 0x1FFFE000


def test_cpu_device_hashes_several_versions_when_the_pool_allows_rolling():
    from miner import core
    pools = RecordingPools()
    job = dataclasses.replace(make_job("r1"), version_mask=0x1FFFE000)
    engine = Engine([CPUDevice("cpu0")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, job)
        wait_for(lambda: len(pools.submitted) >= 40)
    shares = [s for _, s in pools.submitted]
    for s in shares:
        # re-hashed here too: each share's own (rolled) version makes the header that meets the target
        assert hash_value(sha256d(job.header(s.extranonce2, s.ntime, s.nonce, s.version))) <= job.share_target
        assert (s.version ^ job.version) & ~job.version_mask == 0
    assert len({(s.extranonce2, s.version, s.nonce) for s in shares}) == len(shares)
    versions = {s.version for s in shares}
    if core.max_versions() >= 2:
        # the versions share each nonce's schedule: shares come from several of them
        from miner.engine.job import spread_bits
        assert len(versions) > 1
        assert versions <= {job.rolled_version(spread_bits(i, job.version_mask)) for i in range(core.max_versions())}
    assert engine.snapshot().devices[0].hw_errors == 0


def test_cpu_device_keeps_the_pool_version_without_rolling():
    pools = RecordingPools()
    job = make_job("p1")
    engine = Engine([CPUDevice("cpu0")], pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, job)
        wait_for(lambda: len(pools.submitted) >= 10)
    assert {s.version for _, s in pools.submitted} == {job.version}


@pytest.mark.parametrize("bits,mask,expect", [(1, 0x1FFFE000, 0x2000), (3, 0x1FFFE000, 0x6000), (1, 0, None)])
def test_spread_bits(bits, mask, expect):
    from miner.engine.job import spread_bits
    assert spread_bits(bits, mask) == expect


def test_rate_meter_windows_are_right_during_warm_up_and_decay_after_a_stop():
    from miner.engine.stats import RateMeter
    m = RateMeter(now=0.0)
    t = 0.0
    for _ in range(20):          # 10 s at a steady 1000 H/s, reported every 0.5 s
        t += 0.5
        m.add(500)
        m.rates(now=t)
    r = m.rates(now=t)
    for k in ("5s", "1m", "5m", "15m", "av"):
        assert abs(r[k] - 1000) < 1e-6 * 1000 + 1e-9, (k, r[k])
    for _ in range(20):          # then 10 s of nothing: the 5 s window falls fastest
        t += 0.5
        m.rates(now=t)
    r = m.rates(now=t)
    assert r["5s"] < 0.2 * 1000 and r["5s"] < r["1m"] < r["5m"] < r["15m"] < 1000
    assert abs(r["av"] - 500) < 1e-6


def test_exit_reasons_are_values_and_the_first_one_wins():
    from miner.cli.mine import EXIT_CODES
    from miner.engine.engine import ExitReason
    from miner.errors import NoSuchDevice

    class Missing(Device):
        kind = "asic"
        opens = 0

        def open(self):
            Missing.opens += 1
            raise NoSuchDevice("no such port /dev/ttyNOPE")

        def run(self, ctx):  # pragma: no cover - never opened
            raise AssertionError

    engine = Engine([Missing("bm1370:/dev/ttyNOPE")], RecordingPools(), device_retries=3)
    t0 = time.monotonic()
    asyncio.run(engine.run(30))
    assert engine.exit_reason is ExitReason.DEVICES_FAILED and EXIT_CODES[engine.exit_reason] == 1
    assert Missing.opens == 1 and time.monotonic() - t0 < 5  # no such port: no retries with back-off
    assert engine.failed_devices() == [("bm1370:/dev/ttyNOPE", "no such port /dev/ttyNOPE")]

    engine = Engine([CPUDevice("cpu0")], None, benchmark_job=make_job("t1"))
    asyncio.run(engine.run(0.5))
    assert engine.exit_reason is ExitReason.TIME_LIMIT and engine.exit_reason not in EXIT_CODES
    engine.stop("late stop", ExitReason.NO_POOL)  # after the run: does not rename why it ended
    assert engine.exit_reason is ExitReason.TIME_LIMIT and engine.exit_detail == "time limit of 0.5 s reached"


def test_attach_pools_is_the_one_way_to_wire_a_pool_client():
    engine = Engine([CPUDevice("cpu0")])
    pools = RecordingPools()
    engine.attach_pools(pools)
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("a1"))
        wait_for(lambda: len(pools.submitted) > 0)
        with pytest.raises(Exception, match="after run"):
            engine.attach_pools(RecordingPools())


def test_rate_meter_counts_hashes_added_since_its_last_fold():
    # The meter folds its windows at most every 0.5 s. A reader between two folds must still see the
    # hashes added since the last one: right after start the last fold had seen none, and an MQTT
    # state showed 0 H/s beside two accepted shares.
    from miner.engine.stats import RateMeter
    m = RateMeter(now=0.0)
    assert m.rates(now=0.6)["5s"] == 0.0            # a fold at 0.6 s with nothing hashed yet
    m.add(400)                                      # 0.4 s of 1000 H/s
    r = m.rates(now=1.0)                            # 0.4 s after that fold: none is due yet
    assert r["5s"] > 0 and r["1m"] > 0
    # The same figures whether or not a fold happened at the moment of reading.
    folded = RateMeter(now=0.0)
    folded.rates(now=0.6)
    folded.add(400)
    folded._fold(1.0)
    assert abs(folded.rates(now=1.0)["5s"] - r["5s"]) < 1e-9
