"""Engine benchmark: mining against a local pool versus raw hashing on the same threads.

Measures, in one run, alternating A/B rounds so machine noise hits both alike:
  A  raw core rate: N threads calling miner.core.scan back to back (what `miner bench` measures)
  B  the engine: N CPU devices mining through the real pool client against a local pool
     that sends a clean job every --clean-every seconds
and reports the medians of: B/A hashing rate, the engine's own CPU time (process CPU minus
the CPU time spent inside the C scan) as a share of one core, the clean-job switch latency
(clean notify handed to the engine -> every device hashing the new job), and the resident
memory of a separate `miner` process mining for --rss-seconds with the CPU backend.

--hit-seconds A,B,... runs one engine round per value in each round (the order turned each round),
with the CPU device's HIT_SECONDS (how long one C call of a chunk lasts, so how long a found share
waits) set to it, and reports each value's engine/raw ratio: the cost of handing shares over sooner.

    python bench/engine_bench.py --threads 2 --seconds 10 --rounds 3
    python bench/engine_bench.py --threads 2 --seconds 10 --rounds 7 --hit-seconds 0.01,0.25 --rss-seconds 0
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from miner import core
import miner.backends.cpu as cpu_mod
from miner.backends.cpu import CPUDevice
from miner.engine import Engine
from miner.stratum import PoolConfig, PoolManager

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = bytes.fromhex("0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d75"
                       "0423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695")


def raw_rate(threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        start = i << 28
        while time.perf_counter() < stop:
            core.scan(HEADER, start, 1 << 20, 0xFFFF << 208)
            start += 1 << 20
            done[i] += 1 << 20

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


# CPU time spent inside the C scan, summed over device threads.
_scan_cpu = [0.0]
_scan_lock = threading.Lock()
# Both scans the CPU device calls: scan_versions when the pool grants version rolling (untimed, the
# engine's CPU read 196-199% of a core against the local pool, which grants it).
_TIMED = ("scan_abortable", "scan_versions")


def _timed(fn):
    def timed_scan(*a, **kw):
        t0 = time.thread_time()
        try:
            return fn(*a, **kw)
        finally:
            dt = time.thread_time() - t0
            with _scan_lock:
                _scan_cpu[0] += dt
    return timed_scan


class _CoreProxy:
    def __init__(self) -> None:
        self._scans = {name: _timed(getattr(core, name)) for name in _TIMED}

    def __getattr__(self, name):
        return self._scans[name] if name in self._scans else getattr(core, name)


def engine_round(url: str, threads: int, seconds: float) -> dict:
    cpu_mod.core = _CoreProxy()
    _scan_cpu[0] = 0.0
    result = {}

    async def main() -> None:
        engine_box = []
        mgr = PoolManager([PoolConfig(url, "bench", "x")], on_job=lambda j: engine_box[0].on_job(j),
                          on_event=lambda k, d: engine_box[0].pool_event(k, d))
        engine = Engine([CPUDevice(f"cpu{i}") for i in range(threads)], mgr)
        engine_box.append(engine)
        task = asyncio.create_task(engine.run())
        while engine._meter.total == 0:       # wait for the first job and first chunk
            await asyncio.sleep(0.01)
        h0, c0, t0 = engine._meter.total, time.process_time(), time.perf_counter()
        s0 = _scan_cpu[0]
        await asyncio.sleep(seconds)
        h1, c1, t1 = engine._meter.total, time.process_time(), time.perf_counter()
        s1 = _scan_cpu[0]
        snap = engine.snapshot()
        engine.stop("bench over")
        await task
        result.update(rate=(h1 - h0) / (t1 - t0), overhead_core=((c1 - c0) - (s1 - s0)) / (t1 - t0),
                      switch_ms=[x * 1e3 for x in engine.switch_latencies[1:]],
                      accepted=snap.accepted, rejected=snap.rejected, stale=snap.stale, hw=snap.hw_errors)

    asyncio.run(main())
    cpu_mod.core = core
    return result


def rss_run(url: str, threads: int, seconds: float) -> float:
    p = subprocess.Popen([sys.executable, "-m", "miner", "-o", url, "-u", "bench", "-t", str(threads),
                          "--time-limit", str(seconds), "--quiet"], cwd="/tmp",
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"miner exited {p.returncode}: {p.stderr.read().decode()[-500:]}")
    return ru.ru_maxrss / 1024.0  # KiB -> MiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clean-every", type=float, default=1.0)
    ap.add_argument("--difficulty", type=float, default=0.05)
    ap.add_argument("--rss-seconds", type=float, default=15.0)
    ap.add_argument("--hit-seconds", default="", help="comma-separated HIT_SECONDS values to alternate")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    hits = [float(x) for x in a.hit_seconds.split(",") if x.strip()] or [cpu_mod.HIT_SECONDS]
    pool = subprocess.Popen([sys.executable, os.path.join(HERE, "localpool.py"), "--difficulty", str(a.difficulty),
                             "--clean-every", str(a.clean_every)], stdout=subprocess.PIPE, text=True)
    try:
        url = pool.stdout.readline().strip()
        threading.Thread(target=lambda: [None for _ in pool.stdout], daemon=True).start()
        raws, engs, ratios, overhead, switches = [], [], [], [], []
        totals = {"accepted": 0, "rejected": 0, "stale": 0, "hw": 0}
        by_hit: dict[float, list[float]] = {h: [] for h in hits}
        for r in range(a.rounds):
            raw = raw_rate(a.threads, a.seconds)
            for h in hits[r % len(hits):] + hits[:r % len(hits)]:
                cpu_mod.HIT_SECONDS = h
                eng = engine_round(url, a.threads, a.seconds)
                raws.append(raw)
                engs.append(eng["rate"])
                ratios.append(eng["rate"] / raw)
                by_hit[h].append(eng["rate"] / raw)
                overhead.append(eng["overhead_core"])
                switches.extend(eng["switch_ms"])
                for k in totals:
                    totals[k] += eng[k]
                print(f"round {r + 1}: hit {h:g} s  raw {raw / 1e6:.2f} MH/s  engine {eng['rate'] / 1e6:.2f} MH/s  "
                      f"ratio {eng['rate'] / raw:.3f}  engine CPU {100 * eng['overhead_core']:.2f}% of a core  "
                      f"switches {len(eng['switch_ms'])}  accepted {eng['accepted']}  stale {eng['stale']}",
                      file=sys.stderr, flush=True)
        rss = rss_run(url, a.threads, a.rss_seconds) if a.rss_seconds > 0 else None
    finally:
        pool.terminate()
    out = {
        "threads": a.threads, "seconds": a.seconds, "rounds": a.rounds, "core": core.selected(),
        "raw_mhs_median": statistics.median(raws) / 1e6, "engine_mhs_median": statistics.median(engs) / 1e6,
        "ratio_median": statistics.median(ratios), "ratios": ratios,
        "engine_cpu_pct_of_core_median": 100 * statistics.median(overhead),
        "switch_ms_median": statistics.median(switches) if switches else None,
        "switch_ms_p90": sorted(switches)[int(0.9 * (len(switches) - 1))] if switches else None,
        "switches": len(switches), "rss_mib": rss, **totals,
        "ratio_median_by_hit_seconds": {f"{h:g}": statistics.median(v) for h, v in by_hit.items()},
    }
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()
