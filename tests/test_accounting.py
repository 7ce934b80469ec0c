"""The miner's numbers against the real third-party pool's own log (stratum-pool-sha256 under node).

One `miner` process mines on one CPU thread until the pool has judged enough shares, is paused through
the API so the counts stand still, and is then read every way a user reads it: the cgminer API
(summary, devs, pools), /metrics, the --json events and the summary printed at exit. Each must give
the pool's accepted count and the pool's accepted difficulty (shares x the job's difficulty, which is
what the pool credits), and an effective hashrate that is the pool's credited work over the run's
time and agrees with the hashing rate within sampling error.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet_control import api_ask as ask

SHARES = 60             # shares the pool must have judged before the counts are read
NONCES_PER_DIFF1 = 2 ** 32


def scrape(port: int) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(metrics: dict[tuple, float], name: str, **labels) -> float:
    want = {k: str(v) for k, v in labels.items()}
    hits = [v for (n, lab), v in metrics.items() if n == name and want.items() <= dict(lab).items()]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


@pytest.mark.parametrize("real_pool", [0.002], indirect=True)
def test_counts_difficulty_and_effective_hashrate_are_the_pools(real_pool):
    cmd = [sys.executable, "-m", "miner", "-o", real_pool.url, "-u", real_pool.user, "-p", real_pool.password,
           "-t", "1", "--time-limit", "300", "--json", "--status-interval", "1", "--api-port", "0",
           "--api-allow", "W:127.0.0.1", "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir())
    events: list[dict] = []
    errors: list[str] = []
    ports: dict[str, int] = {}

    def read_out():
        for line in proc.stdout:
            events.append(json.loads(line))

    def read_err():
        for line in proc.stderr:
            errors.append(line)
            if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", line):
                ports["api"] = int(m.group(1))
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                ports["metrics"] = int(m.group(1))

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    try:
        real_pool.wait_shares(SHARES, timeout=240)
        assert len(ports) == 2, "".join(errors)
        assert ask(ports["api"], "pause")["STATUS"][0]["Code"] == 200
        # Paused: no new shares. Wait until every share sent has its answer.
        end = time.monotonic() + 30
        while time.monotonic() < end:
            s = ask(ports["api"], "summary")["SUMMARY"][0]
            if s["Accepted"] + s["Rejected"] >= len(real_pool.shares()):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        api = ask(ports["api"], "summary+devs+pools")
        metrics = scrape(ports["metrics"])
        assert ask(ports["api"], "quit")["STATUS"] == "BYE"
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    time.sleep(0.2)
    stderr = "".join(errors)
    assert code == 0, stderr
    assert "Traceback" not in stderr

    # The pool's own log: every verdict, with the difficulty it credited and the one the share achieved.
    verdicts = real_pool.shares()
    assert real_pool.invalid == 0, real_pool.reasons()
    pool_n = len(verdicts)
    pool_diff = sum(v["difficulty"] for v in verdicts)
    assert pool_diff == pytest.approx(pool_n * real_pool.difficulty)
    pool_best = max(v["shareDiff"] for v in verdicts)

    summary = api["summary"][0]["SUMMARY"][0]
    devs = api["devs"][0]["DEVS"]
    pools = api["pools"][0]["POOLS"]
    assert summary["Accepted"] == pool_n and summary["Rejected"] == 0
    assert summary["Difficulty Accepted"] == pytest.approx(pool_diff, rel=1e-9)
    assert sum(d["Accepted"] for d in devs) == pool_n
    assert sum(d["Difficulty Accepted"] for d in devs) == pytest.approx(pool_diff, rel=1e-9)
    assert pools[0]["Accepted"] == pool_n
    assert pools[0]["Difficulty Accepted"] == pytest.approx(pool_diff, rel=1e-9)
    # Stale shares were never sent, so the pool cannot know them; every view counts them once.
    stale = summary["Stale"]
    assert pools[0]["Stale"] == stale == sum(d["Stale"] for d in devs)
    # The pool's log gives shareDiff to 8 decimal places.
    assert summary["Best Share"] >= pool_best - 1e-8
    if stale == 0:
        assert summary["Best Share"] == pytest.approx(pool_best, abs=1e-8)
    assert pools[0]["Best Share"] == pytest.approx(summary["Best Share"], rel=1e-9)

    # Effective hashrate: the pool's credited work over the run's time ...
    elapsed = summary["Elapsed"]
    pool_rate = pool_diff * NONCES_PER_DIFF1 / elapsed
    effective = summary["Effective MHS"] * 1e6
    assert effective == pytest.approx(pool_rate, rel=1.5 / elapsed + 0.01)   # Elapsed is whole seconds
    # ... and the hashing rate within sampling error: n shares at a fixed difficulty have a relative
    # standard deviation of 1/sqrt(n); 4 of them is a one-in-15000 false alarm. Before the fix the
    # achieved difficulty was credited and this ratio was 5-30.
    hashing = summary["MHS av"] * 1e6
    assert abs(effective / hashing - 1) < 4 / math.sqrt(pool_n), (effective, hashing, pool_n)

    # /metrics, scraped in the same pause.
    assert sample(metrics, "miner_shares_total", pool=0, result="accepted") == pool_n
    assert sample(metrics, "miner_share_difficulty_total", pool=0, result="accepted") == pytest.approx(pool_diff)
    assert sample(metrics, "miner_shares_total", pool=0, result="stale") == stale
    assert sample(metrics, "miner_effective_hashrate_hashes_per_second") == pytest.approx(effective, rel=0.1)
    assert sample(metrics, "miner_best_share_difficulty") == pytest.approx(summary["Best Share"], rel=1e-9)

    # --json: the final totals, and one accepted event per share the pool accepted.
    accepted = [e for e in events if e["event"] == "share" and e["result"] == "accepted"]
    assert len(accepted) == pool_n
    assert all(e["target_difficulty"] == real_pool.difficulty for e in accepted)
    assert all(e["share_difficulty"] >= real_pool.difficulty * (1 - 1e-9) for e in accepted)
    final = [e for e in events if e["event"] == "hashrate"][-1]
    assert final["final"] and final["accepted"] == pool_n and final["stale"] == stale
    assert final["effective"] == pytest.approx(effective, rel=0.1)

    # The summary printed at exit.
    m = re.search(r"pool 0 \S+: accepted (\d+) \(diff ([0-9.e+-]+)\), rejected (\d+) .*?, stale (\d+)", stderr)
    assert m, stderr[-3000:]
    assert int(m.group(1)) == pool_n and float(m.group(2)) == pytest.approx(pool_diff, rel=1e-3)
    assert int(m.group(4)) == stale
    m = re.search(r"effective hashrate ([0-9.]+) (\w?)H/s", stderr)
    assert m, stderr[-3000:]
    shown = float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
    assert shown == pytest.approx(effective, rel=0.1)


def test_stale_shares_are_one_count_in_every_view(monkeypatch):
    """Clean jobs every 30 ms while a real CPU device finds shares at a tiny difficulty: shares found
    for replaced work are dropped by the engine (or by the pool client, for a job the pool dropped).
    Each is counted once, at its pool, so the status line's S:, the per-pool summary line, the
    per-device counts and the API agree (the status line said S:6 while the pool line said stale 0);
    none reached the pool after the miner had read the clean job that replaced its work."""
    import asyncio
    import io

    from fakepool import FakePool, make_job
    from miner.backends.cpu import CPUDevice
    from miner.cli.status import print_summary, status_line
    from miner.engine import Engine
    from miner.fleet.api import ApiCommands, ApiRequest
    from miner.stratum import PoolConfig, PoolManager
    from miner.stratum.session import StratumSession

    import miner.core as core
    # About 2,000 shares a second on any CPU (2e-6 on the ~20 MH/s thread this test was sized on): the
    # event loop's load, and with it how many shares cross a clean notify on the wire, then does not
    # grow with the core's speed (an AVX-512 thread, twice as fast, doubled the crossings).
    core.selected()  # the start-up choice first, outside the timing
    t = time.perf_counter()
    core.scan(core.GENESIS_HEADER, 0, 1 << 22, 0)
    d = 2e-6 * max(1.0, (1 << 22) / (time.perf_counter() - t) / 20e6)
    events: list[tuple[str, dict]] = []
    # When the miner took each job, and when it wrote each share to the wire (the session's
    # send_share writes before it returns), on one clock and one event loop: their order is exact.
    arrived: dict[str, float] = {}
    written: dict[tuple[str, str], float] = {}
    real_send = StratumSession.send_share

    def send_share(self, share, on_late=None):
        written[(share.job.job_id, f"{share.nonce:08x}")] = time.monotonic()
        return real_send(self, share, on_late)
    monkeypatch.setattr(StratumSession, "send_share", send_share)

    def pool_event(kind, data):
        if kind == "job":
            arrived.setdefault(data["job_id"], time.monotonic())
        ref[0].pool_event(kind, data)
    ref: list[Engine] = []

    async def go():
        pool = await FakePool(difficulty=d).start()
        mgr = PoolManager([PoolConfig(pool.url, "w", "x")], on_job=lambda j: ref[0].on_job(j),
                          on_event=pool_event)
        engine = Engine([CPUDevice("cpu0")], mgr, on_event=lambda k, v: events.append((k, v)))
        ref.append(engine)
        task = asyncio.create_task(engine.run(time_limit=60))
        await pool.wait(lambda: pool.clients and pool.client.authorized and pool.accepted)
        for n in range(2, 120):
            pool.client.notify(make_job(n, d, prev_seed=n), clean=True)
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.5)
        engine.stop("test over")
        await task
        await pool.stop()
        return engine, pool

    engine, pool = asyncio.run(asyncio.wait_for(go(), 90))
    snap = engine.snapshot()
    p = snap.pools[0]
    stale_events = [v for k, v in events if k == "share" and v["result"] == "stale"]
    assert any(v["reason"] == "job replaced by a clean job" for v in stale_events), "no engine-level stale"
    assert snap.stale == p.stale == snap.devices[0].stale == len(stale_events) > 0
    assert p.difficulty_stale == pytest.approx(p.stale * d)
    assert f"S:{snap.stale} " in status_line(snap)
    out = io.StringIO()
    print_summary(snap, out)
    assert f", stale {snap.stale}, " in " ".join(out.getvalue().split())   # however the table wraps
    summary = ApiCommands(engine).execute(ApiRequest("summary+pools+devs"), False)
    assert summary["summary"][0]["SUMMARY"][0]["Stale"] == snap.stale
    assert summary["pools"][0]["POOLS"][0]["Stale"] == snap.stale
    assert summary["devs"][0]["DEVS"][0]["Stale"] == snap.stale
    # No share for work the miner knew was replaced reached the pool: the only ones the pool can call stale
    # crossed its clean notify on the wire, written before the miner read that notify. How many cross is
    # the wire latency times the share rate, so it grows with the host's load (a bound of 5% of the stale
    # count failed on a busy CI host); the order of the two events does not.
    crossed = [r for r in pool.rejected if "not found" in str(r[1]).lower()]
    assert len(crossed) == len(pool.stale_lateness)
    order = sorted(arrived, key=arrived.get)
    after = {job: order[i + 1] for i, job in enumerate(order[:-1])}
    behind = [(params[1], params[4]) for params, _ in crossed
            if written[(params[1], params[4])] >= arrived[after[params[1]]]]
    assert not behind, f"{len(behind)} of {len(crossed)} shares written after their job's replacement arrived"
    assert all(late < 1.0 for late in pool.stale_lateness), pool.stale_lateness
    assert len(pool.accepted) == snap.accepted and len(pool.rejected) == snap.rejected
