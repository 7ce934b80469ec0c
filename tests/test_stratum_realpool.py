"""Against a real third-party pool: stratum-pool-sha256 (npm), which validates every share itself.

Needs node and ``npm ci --prefix tests/pool`` (the real_pool fixture says so when missing).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from fakepool import mine_share
from miner.sha256 import sha256d
from miner.stratum import PoolConfig, PoolManager, Timeouts
from miner.stratum.session import Endpoint, StratumSession

T = Timeouts(connect=5.0, handshake=10.0, reply=10.0, silence=120.0)


def arun(coro, timeout: float = 90.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(cond, timeout: float = 30.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_our_shares_are_valid_for_the_real_pool(real_pool, caplog):
    caplog.set_level(logging.DEBUG)
    jobs, events = [], []

    async def go():
        mgr = PoolManager([PoolConfig(real_pool.url, real_pool.user, real_pool.password)], on_job=jobs.append,
                          on_event=lambda k, d: events.append((k, d)), timeouts=T)
        task = asyncio.create_task(mgr.run())
        await until(lambda: jobs, what="a job from the pool")
        job = jobs[-1]
        # The pool answers mining.configure with {}: no version rolling, 5-param submits.
        assert job.version_mask == 0 and job.difficulty == real_pool.difficulty and job.clean
        assert len(job.merkle_branch) == 2 and job.extranonce2_size == 4
        for counter in range(3):
            share = await asyncio.to_thread(mine_share, job, counter)
            mgr.submit(share)
        accepted = lambda: [d for k, d in events if k == "share" and d["result"] == "accepted"]
        await until(lambda: len(accepted()) == 3, what="3 accepted shares")
        snap = mgr.snapshots()[0]
        assert (snap.accepted, snap.rejected, snap.stale) == (3, 0, 0)
        assert snap.difficulty_accepted == 3 * real_pool.difficulty
        await mgr.close()
        await task

    arun(go())
    verdicts = real_pool.wait_shares(3)
    assert [v["valid"] for v in verdicts] == [True, True, True], verdicts
    assert all(v["worker"] == real_pool.user for v in verdicts)
    assert real_pool.password not in caplog.text


def test_corrupted_share_is_rejected_by_the_real_pool(real_pool):
    jobs = []

    async def go():
        s = StratumSession(0, Endpoint("127.0.0.1", real_pool.port, False), real_pool.user, real_pool.password,
                           on_job=jobs.append, on_event=lambda k, d: None, agent="miner-test/1",
                           version_rolling=True, version_mask=0x1FFFE000, suggest_difficulty=None,
                           extranonce_subscribe=False, ssl_context=None, timeouts=T)
        await s.start()
        await until(lambda: jobs, what="a job")
        job = jobs[-1]
        good = await asyncio.to_thread(mine_share, job, 7)
        # One bit of the nonce flipped: the header no longer meets the share target.
        bad_nonce = good.nonce ^ 0x80000000
        h = sha256d(job.header(good.extranonce2, good.ntime, bad_nonce, good.version))
        bad = replace(good, nonce=bad_nonce, hash=h)
        ok_bad, reason = await s.submit(bad)
        ok_good, _ = await s.submit(good)
        await s.close()
        return ok_bad, reason, ok_good

    ok_bad, reason, ok_good = arun(go())
    assert ok_bad is False and "low difficulty" in reason and reason.endswith("(23)")
    assert ok_good is True
    verdicts = real_pool.wait_shares(2)
    assert [v["valid"] for v in verdicts] == [False, True]
    assert "low difficulty" in verdicts[0]["error"]


def test_new_block_makes_old_shares_stale_not_sent(real_pool):
    jobs, events = [], []

    async def go():
        mgr = PoolManager([PoolConfig(real_pool.url, real_pool.user, real_pool.password)], on_job=jobs.append,
                          on_event=lambda k, d: events.append((k, d)), timeouts=T)
        task = asyncio.create_task(mgr.run())
        await until(lambda: jobs, what="a job")
        old = jobs[-1]
        share = await asyncio.to_thread(mine_share, old, 3)
        real_pool.stub.new_block()
        await until(lambda: len(jobs) >= 2, what="the new block's job")
        new = jobs[-1]
        assert new.clean and new.prevhash != old.prevhash
        mgr.submit(share)
        await until(lambda: [d for k, d in events if k == "share"], what="a share event")
        assert [d["result"] for k, d in events if k == "share"] == ["stale"]
        mgr.submit(await asyncio.to_thread(mine_share, new, 4))
        await until(lambda: mgr.snapshots()[0].accepted == 1, what="the new job's share accepted")
        await mgr.close()
        await task

    arun(go())
    verdicts = real_pool.wait_shares(1)
    assert [v["valid"] for v in verdicts] == [True]     # the stale share never reached the pool


def test_fixture_without_node_modules_says_how_to_install(tmp_path, monkeypatch):
    import pytest

    import conftest
    monkeypatch.setattr(conftest, "POOL_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="run: npm ci --prefix tests/pool"):
        conftest.start_real_pool()


def test_pool_process_group_is_gone_after_stop():
    import os

    import conftest
    pool = conftest.start_real_pool()
    pid = pool.proc.pid
    pool.stop()
    assert pool.proc.poll() is not None
    try:
        os.killpg(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_tls_against_the_real_pools_plain_port_fails_fast_with_the_reason(real_pool):
    """The pool resets a connection that opens with a TLS ClientHello; the reason said nothing (blank)."""
    import time
    from miner.stratum.config import make_ssl_context
    from miner.errors import PoolError

    async def go():
        s = StratumSession(0, Endpoint("127.0.0.1", real_pool.port, True), real_pool.user, real_pool.password,
                           on_job=lambda j: None, on_event=lambda k, d: None, agent="miner-test/1",
                           version_rolling=False, version_mask=0, suggest_difficulty=None,
                           extranonce_subscribe=False, ssl_context=make_ssl_context(None, False), timeouts=T)
        t0 = time.monotonic()
        try:
            await s.start()
        except PoolError as e:
            return str(e), time.monotonic() - t0
        raise AssertionError("TLS to a plain-TCP port connected")

    reason, took = arun(go())
    assert took < 3.0, took
    assert "TLS failed: " in reason and "use stratum+tcp://" in reason, reason
