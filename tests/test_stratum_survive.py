"""Sessions that must survive a hostile, hung or flaky pool, each case followed by valid work.

Every test checks that shares keep flowing, that none is lost, duplicated or invalid, and that the
miner's counts are the pool's own (tests/fakepool.py judges every share with hashlib; the real
third-party pool, stratum-pool-sha256, judges them itself).
"""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import tempfile

import pytest

from fakepool import FakePool, mine_share
from miner.stratum import PoolConfig, PoolManager, Timeouts
from test_stratum_session import D, Harness, arun, no_tracebacks

QUICK = Timeouts(connect=2.0, handshake=2.0, reply=0.4, probe=0.6, give_up=30.0, drain=2.0, silence=30.0)


def snap(h: Harness, i: int = 0):
    return h.mgr.snapshots()[i]


async def mine(job, counter: int = 0, **kw):
    return await asyncio.to_thread(mine_share, job, counter, **kw)


async def connected(h: Harness, n: int = 1) -> None:
    """The job comes before the authorize reply: wait until the n-th session is authorized."""
    await h.wait(lambda: len(h.pool_events("connected")) + len(h.pool_events("switched")) >= n)


# -- 1. client.reconnect --------------------------------------------------------------------------
def test_foreign_reconnect_is_refused_with_one_warning_and_the_session_keeps_mining(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        foreign = {"id": None, "method": "client.reconnect", "params": ["evil.example", 3333, 0]}
        pool.after_authorize = lambda c: (c.send(foreign), c.send(foreign))
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            await connected(h)
            await pool.wait(lambda: pool.client.received and pool.client.authorized)
            for n in range(3):
                h.mgr.submit(await mine(job, n))
            await h.wait(lambda: len(h.shares("accepted")) == 3)
            await asyncio.sleep(0.3)
            assert len(pool.clients) == 1 and not pool.client.closed         # one session throughout
            assert (snap(h).accepted, snap(h).rejected, snap(h).stale) == (len(pool.accepted), 0, 0) == (3, 0, 0)
            assert not pool.rejected
        await pool.stop()

    arun(go())
    warnings = [r for r in caplog.records if "another host" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "evil.example" in warnings[0].getMessage() and "staying on this session" in warnings[0].getMessage()


def test_same_host_reconnect_loop_is_rate_limited_by_the_capped_backoff(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        # Empty host = this host, wait 0: a pool that moves us on every connection.
        pool.after_authorize = lambda c: c.send({"id": None, "method": "client.reconnect", "params": []})
        loop = asyncio.get_running_loop()
        async with Harness([pool.url], backoff_base=0.4, backoff_cap=1.6) as h:
            await h.wait_jobs(1)
            t0 = loop.time()
            await asyncio.sleep(4.0)
            n = len(pool.clients)
            # Back-off 0.2-0.4, 0.4-0.8, 0.8-1.6, then capped at 0.8-1.6 s: at most 7 connections in 4 s
            # (a loop without back-off makes hundreds).
            assert 2 <= n <= 7, n
            pool.after_authorize = None           # the pool settles: the next session stays
            await pool.wait(lambda: len(pool.clients) > n and pool.client.authorized, timeout=5)
            await connected(h, len(pool.clients))
            job = h.jobs[-1]
            h.mgr.submit(await mine(job))
            await pool.wait(lambda: pool.accepted)
            await h.wait(lambda: h.shares("accepted"))
            assert loop.time() - t0 < 20         # mining resumed soon after the pool settled
            assert (snap(h).accepted, snap(h).rejected) == (len(pool.accepted), 0) == (1, 0)
        await pool.stop()

    arun(go())
    assert "reconnect requests in a row" in caplog.text


def test_same_host_reconnect_reads_the_replies_in_flight_before_closing(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url], timeouts=QUICK) as h:
            job = await h.wait_jobs(1)
            await connected(h)
            shares = [await mine(job, n) for n in range(3)]
            pool.submit_delay = 0.3              # judged at once, answered 0.3 s later
            for s in shares:
                h.mgr.submit(s)
            await pool.wait(lambda: len(pool.client.requests("mining.submit")) == 3)
            first = pool.client
            first.send({"id": None, "method": "client.reconnect", "params": ["127.0.0.1", pool.port, 0]})
            await h.wait(lambda: len(h.shares("accepted")) == 3)
            assert snap(h).stale == 0
            pool.submit_delay = 0.0
            await pool.wait(lambda: len(pool.clients) == 2 and pool.client.authorized)
            await connected(h, 2)
            assert first.closed
            job2 = h.jobs[-1]
            h.mgr.submit(await mine(job2, 9))
            await h.wait(lambda: len(h.shares("accepted")) == 4)
            assert (snap(h).accepted, snap(h).rejected, snap(h).stale) == (len(pool.accepted), 0, 0) == (4, 0, 0)
        await pool.stop()

    arun(go())
    assert "reading the replies to 3 share(s) in flight first" in caplog.text


def test_real_pool_reconnect_with_replies_in_flight_loses_no_share():
    """stratum-pool-sha256 sends client.reconnect after every 2nd submit it answers; the replies to the
    submits behind it are already on the wire and must be read, not counted stale."""
    import conftest

    real = conftest.start_real_pool(0.001, extra_args=("--reconnect-every", "2"))
    jobs, events = [], []

    async def go():
        t = Timeouts(connect=5.0, handshake=10.0, reply=10.0, silence=120.0)
        mgr = PoolManager([PoolConfig(real.url, real.user, real.password)], on_job=jobs.append,
                          on_event=lambda k, d: events.append((k, d)), timeouts=t, backoff_base=0.1)
        task = asyncio.create_task(mgr.run())
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while not [d for k, d in events if k == "pool" and d["state"] == "connected"]:
            assert loop.time() < end, "no session with the real pool"
            await asyncio.sleep(0.02)
        job = jobs[-1]
        shares = [await mine(job, n) for n in range(6)]
        for s in shares:                      # one burst: several submits in flight at each reconnect
            mgr.submit(s)
        results = lambda: [d["result"] for k, d in events if k == "share"]
        while len(results()) < 6:
            assert loop.time() < end, results()
            await asyncio.sleep(0.02)
        # valid work after the move: a share on the new session's job
        while len([d for k, d in events if k == "pool" and d["state"] == "connected"]) < 2:
            assert loop.time() < end, "no second session"
            await asyncio.sleep(0.02)
        mgr.submit(await mine(jobs[-1], 7))
        while len(results()) < 7:
            assert loop.time() < end, results()
            await asyncio.sleep(0.02)
        s = mgr.snapshots()[0]
        await mgr.close()
        await task
        return results(), s

    try:
        results, s = arun(go(), timeout=60)
        verdicts = real.wait_shares(7)
        reconnects = [e for e in real.events if e.get("event") == "reconnect"]
    finally:
        real.stop()
    assert results == ["accepted"] * 7, results
    assert [v["valid"] for v in verdicts] == [True] * 7
    assert (s.accepted, s.rejected, s.stale) == (7, 0, 0)
    assert len(reconnects) >= 3                  # after submits 2, 4, 6: replies 3-6 were behind one


# -- 2. a hung pool -------------------------------------------------------------------------------
def test_hung_pool_is_probed_then_reconnected_and_the_held_share_resubmitted(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url], timeouts=QUICK) as h:
            job = await h.wait_jobs(1)
            await connected(h)
            h.mgr.submit(await mine(job, 0))
            await h.wait(lambda: h.shares("accepted"))
            pool.hung = True                     # socket open, nothing answered any more
            h.mgr.submit(await mine(job, 1))
            await h.wait(lambda: h.pool_events("disconnected"), timeout=5)
            assert h.pool_events("disconnected")[0]["reason"].startswith("hung")
            assert not h.shares("rejected")      # held, never thrown away as rejected
            assert h.mgr.counters(0)["held"] == 1
            pool.hung = False
            pool.send_job_on_authorize = False   # the resumed session keeps its job
            await h.wait(lambda: len(h.shares("accepted")) == 2, timeout=10)
            h.mgr.submit(await mine(job, 2))
            await h.wait(lambda: len(h.shares("accepted")) == 3)
            first = pool.clients[0]
            assert len(first.requests("mining.authorize")) == 2      # the handshake and the probe
            assert (snap(h).accepted, snap(h).rejected, snap(h).stale) == (len(pool.accepted), 0, 0) == (3, 0, 0)
        await pool.stop()

    arun(go())
    assert "probing the pool" in caplog.text and "the session is dead" in caplog.text
    assert "resubmitting held share" in caplog.text
    no_tracebacks(caplog)


def test_the_probe_is_harmless_to_the_real_pool(real_pool):
    """The probe is a repeated mining.authorize on the live session: stratum-pool-sha256 answers it at
    once and the session goes on as before (same extranonce, no new job, the next share valid)."""
    from miner.stratum.session import Endpoint, StratumSession

    jobs = []

    async def go():
        s = StratumSession(0, Endpoint("127.0.0.1", real_pool.port, False), real_pool.user, real_pool.password,
                           on_job=jobs.append, on_event=lambda k, d: None, agent="miner-test/1",
                           version_rolling=True, version_mask=0x1FFFE000, suggest_difficulty=None,
                           extranonce_subscribe=False, ssl_context=None)
        await s.start()
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while not jobs:
            assert loop.time() < end, "no job"
            await asyncio.sleep(0.02)
        en1, n_jobs = s.extranonce1, len(jobs)
        res = await s._call("mining.authorize", [real_pool.user, real_pool.password], Timeouts().probe)
        ok = await s.submit(await mine(jobs[-1], 3))
        await s.close()
        return res, ok, en1 == s.extranonce1, len(jobs) == n_jobs

    res, ok, same_en1, no_new_job = arun(go(), timeout=60)
    assert res.result is True and res.error is None
    assert ok == (True, None) and same_en1 and no_new_job
    assert [v["valid"] for v in real_pool.wait_shares(1)] == [True]


def test_hung_primary_fails_over_to_the_backup_within_30_s():
    """The `miner` command with the default timeouts, one CPU thread, two pools: the primary stops
    answering (socket kept open, new connections accepted but never answered)."""
    async def go():
        primary = await FakePool(difficulty=1e-3, extranonce1="0a0a0a0a").start()
        backup = await FakePool(difficulty=1e-3, extranonce1="0b0b0b0b").start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "miner", "-o", primary.url, "-o", backup.url, "-u", "worker.1", "-p", "x",
            "-t", "1", "--time-limit", "120", "--json", "--log-level", "info",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tempfile.gettempdir())
        loop = asyncio.get_running_loop()
        try:
            await primary.wait(lambda: len(primary.accepted) >= 3, timeout=60)
            primary.hung = True
            silent_at = loop.time()
            await backup.wait(lambda: backup.accepted, timeout=45)
            took = backup.accepted_at[0] - silent_at
            await backup.wait(lambda: len(backup.accepted) >= 3, timeout=30)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            await primary.stop()
            await backup.stop()
        return took, proc.returncode, out.decode(), err.decode(), len(primary.accepted) + len(backup.accepted), \
            primary.rejected + backup.rejected

    took, code, out, err, pool_accepted, pool_rejected = arun(go(), timeout=150)
    print(f"hung primary -> first share accepted at the backup: {took:.1f} s")
    assert code == 0, err[-3000:]
    assert took <= 30.0, f"backup's first accepted share {took:.1f} s after the primary went silent"
    assert not pool_rejected
    final = [e for e in map(json.loads, out.splitlines()) if e.get("event") == "hashrate"][-1]
    assert final["final"] and final["accepted"] == pool_accepted and final["rejected"] == 0
    assert "Traceback" not in err and "the session is dead" in err and "failing over" in err


# -- 3. re-issued jobs ----------------------------------------------------------------------------
def test_noop_messages_change_nothing_and_a_real_change_continues_the_extranonce2(caplog):
    """Engine + CPU device + pool client + fake pool: repeated set_extranonce / set_version_mask that
    change nothing keep the work going; a real mask change re-issues the job at the next extranonce2,
    so no finished work is redone (no duplicate share)."""
    from miner.backends.cpu import CPUDevice
    from miner.engine.engine import Engine

    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=1e-3).start()
        jobs = []
        mgr = PoolManager([PoolConfig(pool.url, "worker.1", "x")], on_job=lambda j: (jobs.append(j), eng.on_job(j)),
                          on_event=lambda k, d: eng.pool_event(k, d), extranonce_subscribe=True, timeouts=QUICK)
        eng = Engine([CPUDevice("cpu0")], mgr)
        run = asyncio.create_task(eng.run(time_limit=60))
        await pool.wait(lambda: len(pool.accepted) >= 4, timeout=40)
        c = pool.client
        for _ in range(3):
            c.send({"id": None, "method": "mining.set_extranonce", "params": [c.extranonce1, c.extranonce2_size]})
            c.send({"id": None, "method": "mining.set_version_mask", "params": ["1fffe000"]})
            await asyncio.sleep(0.3)
        n = len(pool.accepted)
        await pool.wait(lambda: len(pool.accepted) >= n + 3, timeout=40)
        assert len(jobs) == 1                       # nothing re-issued
        c.send({"id": None, "method": "mining.set_version_mask", "params": ["00ffe000"]})
        await pool.wait(lambda: len(jobs) == 2)
        c.version_mask = 0x00FFE000          # shares sent before the miner saw the change used the old mask
        n = len(pool.accepted)
        await pool.wait(lambda: len(pool.accepted) >= n + 4, timeout=40)
        eng.stop("test over")
        await asyncio.wait_for(run, 20)
        return jobs, pool, mgr, eng.snapshot()

    jobs, pool, mgr, s = arun(go(), timeout=150)
    assert len(jobs) == 2 and jobs[1].version_mask == 0x00FFE000 and jobs[1].job_id == jobs[0].job_id
    assert not pool.rejected, pool.rejected
    assert mgr.counters(0)["duplicates"] == 0 and mgr.counters(0)["invalid"] == 0
    # One device stream (extranonce2 0) before the change; after it the next extranonce2, not 0 again.
    en2 = [p[2] for p in pool.accepted]
    assert en2 == sorted(en2) and set(en2) == {"00000000", "00000001"}, en2
    assert en2.count("00000000") >= 7 and en2.count("00000001") >= 4, en2
    assert s.accepted == len(pool.accepted) and s.rejected == 0
    assert "duplicate share" not in caplog.text
    assert caplog.text.count("repeats the current") == 6


# -- 4. late replies ------------------------------------------------------------------------------
def test_slow_pool_that_answers_the_probe_keeps_its_session_and_every_share():
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url], timeouts=QUICK) as h:
            job = await h.wait_jobs(1)
            await connected(h)
            pool.submit_delay = 2.0              # five times the reply bound; other requests answered at once
            for n in range(3):
                h.mgr.submit(await mine(job, n))
            await h.wait(lambda: len(h.shares("accepted")) == 3, timeout=10)
            assert len(pool.clients) == 1 and len(pool.client.requests("mining.authorize")) >= 2   # probed
            assert (snap(h).accepted, snap(h).rejected, snap(h).stale) == (len(pool.accepted), 0, 0) == (3, 0, 0)
        await pool.stop()

    arun(go())


def test_late_reply_after_the_give_up_bound_corrects_the_count(caplog):
    from miner.backends.cpu import CPUDevice
    from miner.engine.engine import Engine

    caplog.set_level(logging.INFO)
    eng = Engine([CPUDevice("test0")], None)          # its per-device accounting, fed the manager's events

    async def go():
        pool = await FakePool(difficulty=D).start()
        t = Timeouts(connect=2.0, handshake=2.0, reply=0.3, probe=0.5, give_up=0.8, silence=30.0)
        async with Harness([pool.url], timeouts=t) as h:
            forward = h.mgr._on_event_cb
            h.mgr._on_event_cb = lambda k, d: (forward(k, d), eng.pool_event(k, d))
            job = await h.wait_jobs(1)
            await connected(h)
            pool.submit_delay = 1.6
            for n in range(2):
                h.mgr.submit(await mine(job, n))
            await h.wait(lambda: len(h.shares("rejected")) == 2, timeout=5)
            assert snap(h).reject_reasons == {"no reply from pool": 2}
            await h.wait(lambda: len(h.shares("accepted")) == 2, timeout=5)
            assert all(d["corrects"] == "rejected" for d in h.shares("accepted"))
            pool.submit_delay = 0.0
            h.mgr.submit(await mine(job, 2))
            await h.wait(lambda: len(h.shares("accepted")) == 3)
            s = snap(h)
            assert (s.accepted, s.rejected, s.stale) == (len(pool.accepted), 0, 0) == (3, 0, 0)
            assert s.reject_reasons == {} and s.difficulty_rejected == pytest.approx(0.0, abs=1e-12)
        await pool.stop()

    arun(go())
    dev = eng.snapshot().devices[0]
    assert (dev.accepted, dev.rejected) == (3, 0)
    assert caplog.text.count("count corrected") == 2


# -- 5. shutdown ----------------------------------------------------------------------------------
def test_shares_unanswered_at_shutdown_are_counted_stale():
    async def go():
        pool = await FakePool(difficulty=D).start()
        h = Harness([pool.url], timeouts=QUICK)
        async with h:
            job = await h.wait_jobs(1)
            await connected(h)
            for n in range(2):
                h.mgr.submit(await mine(job, n))
            await h.wait(lambda: len(h.shares("accepted")) == 2)
            pool.submit_delay = 10.0             # judged (credited) at once, answered too late
            for n in range(2, 5):
                h.mgr.submit(await mine(job, n))
            await pool.wait(lambda: len(pool.accepted) == 5)
            await h.mgr.close(timeout=0.5)
        s = snap(h)
        assert (s.accepted, s.rejected, s.stale) == (2, 0, 3)
        assert s.accepted + s.stale == len(pool.accepted)          # every share the pool credited is counted
        assert [d["reason"] for d in h.shares("stale")] == ["not answered before shutdown"] * 3
        await pool.stop()

    arun(go())


# -- 7. set_version_mask without negotiation --------------------------------------------------------
def test_version_mask_from_a_pool_that_never_negotiated_rolling_is_ignored(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(configure_result={}, difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            await connected(h)
            for _ in range(2):
                pool.client.send({"id": None, "method": "mining.set_version_mask", "params": ["1fffe000"]})
            h.mgr.submit(await mine(job))
            await pool.wait(lambda: pool.accepted)
            await h.wait(lambda: h.shares("accepted"))
            assert len(h.jobs) == 1 and job.version_mask == 0
            assert len(pool.client.requests("mining.submit")[0]["params"]) == 5
            assert (snap(h).accepted, snap(h).rejected, snap(h).stale) == (1, 0, 0)
        await pool.stop()

    arun(go())
    warned = [r for r in caplog.records if "did not grant version rolling" in r.getMessage()]
    assert [r.levelno for r in warned] == [logging.WARNING]          # the repeat is a debug line


# -- the command against a pool that redirects every connection to another host --------------------
def test_miner_command_keeps_mining_through_foreign_reconnects_on_every_connection():
    async def go():
        pool = await FakePool(difficulty=1e-3).start()
        pool.after_authorize = lambda c: c.send({"id": None, "method": "client.reconnect",
                                                 "params": ["pool.elsewhere.example", 3333, 0]})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "miner", "-o", pool.url, "-u", "worker.1", "-p", "x", "-t", "1",
            "--time-limit", "60", "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=tempfile.gettempdir())
        try:
            await pool.wait(lambda: len(pool.accepted) >= 5, timeout=40)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            await pool.stop()
        return pool, proc.returncode, out.decode(), err.decode()

    pool, code, out, err = arun(go(), timeout=90)
    assert code == 0, err[-3000:]
    assert len(pool.accepted) >= 5 and not pool.rejected
    assert len(pool.clients) == 1
    final = [e for e in map(json.loads, out.splitlines()) if e.get("event") == "hashrate"][-1]
    assert final["accepted"] == len(pool.accepted) and final["rejected"] == 0
    assert err.count("client.reconnect to another host") == 1


def test_miner_command_summary_counts_shares_unanswered_at_shutdown():
    """The pool credits shares whose replies it holds back; at Ctrl-C the summary counts every one of
    them (stale, "not answered before shutdown") instead of letting them vanish."""
    async def go():
        pool = await FakePool(difficulty=1e-3).start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "miner", "-o", pool.url, "-u", "worker.1", "-p", "x", "-t", "1",
            "--time-limit", "60", "--json", "--log-level", "info", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=tempfile.gettempdir())
        try:
            await pool.wait(lambda: len(pool.accepted) >= 3, timeout=40)
            pool.submit_delay = 60.0             # credited on arrival, answered after the miner is gone
            n = len(pool.accepted)
            await pool.wait(lambda: len(pool.accepted) >= n + 3, timeout=40)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            await asyncio.sleep(0.3)             # the pool judges what was still on the wire
            await pool.stop()
        return pool, proc.returncode, out.decode(), err.decode()

    pool, code, out, err = arun(go(), timeout=120)
    assert code == 0, err[-3000:]
    events = list(map(json.loads, out.splitlines()))
    final = [e for e in events if e.get("event") == "hashrate"][-1]
    stale = [e for e in events if e.get("event") == "share" and e["result"] == "stale"]
    assert final["final"] and final["rejected"] == 0 and final["stale"] >= 3
    assert final["accepted"] + final["stale"] == len(pool.accepted), (final, len(pool.accepted))
    assert {e["reason"] for e in stale} == {"not answered before shutdown"}
    assert not pool.rejected
