"""The engine at full speed, counted by the pool: `miner` mining against the real test pool
(stratum-pool-sha256 from npm, tests/pool) against `miner bench` on the same threads, interleaved.

    python bench/engine_pool.py [--threads 2] [--seconds 30] [--rounds 3] [--difficulty 0.0002]

Each round runs, back to back:
  A  `miner bench --threads N --versions 1 --json`, its "auto" row (the code choice the miner makes);
  B  `miner -o <pool> -t N --time-limit S --json`; the pool-side rate is the sum of the difficulty of
     the shares the pool itself accepted, times 2^32, over the time from the miner's first job to its
     last accepted share.
and prints per round: both rates, their ratio (also per CPU second of each process, x threads: on a
shared host the wall rates mostly measure what other work left), the miner's own hashrate report
and the pool-side rate over it, and the CPU time
of the pool process and of the miner process as shares of the machine (so the pool's cost on the
same cores is visible). Medians over rounds at the end. Needs node and `npm ci --prefix tests/pool`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import start_real_pool  # noqa: E402  (the test suite's launcher of the real pool)

MINER = str(Path(sys.executable).with_name("miner"))
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process pid and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_rate(threads: int, seconds: float) -> tuple[float, float]:
    """(rate, rate per CPU second x threads) of `miner bench`'s auto row."""
    c0 = _children_cpu()
    res = subprocess.run([MINER, "bench", "--impl", "auto", "--threads", str(threads), "--duration", str(seconds),
                          "--versions", "1", "--json"], capture_output=True, text=True, timeout=seconds * 40 + 120, cwd="/")
    doc = json.loads(res.stdout)
    (auto,) = [r for r in doc["results"] if r["impl"] == "auto" and r["threads"] == threads]
    cpu = _children_cpu() - c0
    return auto["hashes_per_s"], auto["hashes_per_s"] * seconds * threads / max(cpu, 1e-9)


def pool_round(threads: int, seconds: float, difficulty: float) -> dict:
    pool = start_real_pool(difficulty)
    try:
        times: list[float] = []   # arrival time of every accepted share's verdict
        base = len(pool.shares())
        cmd = [MINER, "-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", str(threads),
               "--time-limit", str(seconds), "--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/")
        first_job = None
        final = None
        pool_cpu0 = proc_cpu(pool.proc.pid)
        stop = threading.Event()

        def watch() -> None:
            seen = base
            while not stop.is_set():
                got = pool.shares()
                for e in got[seen:]:
                    if e["valid"]:
                        times.append((time.monotonic(), e["difficulty"]))
                seen = len(got)
                time.sleep(0.01)
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        for line in p.stdout:
            ev = json.loads(line)
            if ev.get("event") == "job" and first_job is None:
                first_job = time.monotonic()
            if ev.get("event") == "hashrate" and ev.get("final"):
                final = ev
        _, status, ru = os.wait4(p.pid, 0)
        end = time.monotonic()
        time.sleep(0.5)  # verdicts of the last shares
        stop.set()
        th.join()
        pool_cpu = proc_cpu(pool.proc.pid) - pool_cpu0
        acc = [(t, d) for t, d in times if first_job is not None and t >= first_job]
        window = end - first_job
        return {"pool_rate": sum(d for _, d in acc) * 2 ** 32 / window, "shares": len(acc),
                "miner_rate": final["total"]["av"] if final else 0.0, "window": window,
                "pool_cpu": pool_cpu / window, "miner_cpu": (ru.ru_utime + ru.ru_stime) / window,
                "invalid": pool.invalid}
    finally:
        pool.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--difficulty", type=float, default=0.0002)
    a = ap.parse_args()
    rows = []
    for r in range(a.rounds):
        bench, bench_cpu = bench_rate(a.threads, a.seconds / 3)
        got = pool_round(a.threads, a.seconds, a.difficulty)
        got["bench"] = bench
        got["ratio"] = got["pool_rate"] / bench
        # Per CPU second of the process (x threads): on a shared host the wall rates mostly
        # measure the CPU time other work left over.
        got["bench_cpu"] = bench_cpu
        got["pool_rate_cpu"] = got["pool_rate"] * a.threads / max(got["miner_cpu"], 1e-9)
        got["ratio_cpu"] = got["pool_rate_cpu"] / bench_cpu
        got["pool_over_own"] = got["pool_rate"] / got["miner_rate"] if got["miner_rate"] else 0.0
        rows.append(got)
        print(f"round {r + 1}: bench {bench / 1e6:.2f} MH/s  pool-side {got['pool_rate'] / 1e6:.2f} MH/s "
              f"({got['shares']} shares, {got['invalid']} invalid)  ratio {got['ratio']:.3f}  "
              f"miner's own report {got['miner_rate'] / 1e6:.2f} MH/s  "
              f"CPU: pool {100 * got['pool_cpu']:.1f}%, miner {100 * got['miner_cpu']:.1f}% of one core; "
              f"per CPU second: bench {bench_cpu / 1e6:.2f}, pool-side {got['pool_rate_cpu'] / 1e6:.2f} MH/s, "
              f"ratio {got['ratio_cpu']:.3f}; pool-side / miner's own {got['pool_over_own']:.3f}",
              flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in ("bench", "pool_rate", "ratio", "miner_rate",
                                                            "pool_cpu", "miner_cpu", "bench_cpu",
                                                            "pool_rate_cpu", "ratio_cpu", "pool_over_own")}
    print(json.dumps({"threads": a.threads, "seconds": a.seconds, "difficulty": a.difficulty, **med,
                      "ratios": [r["ratio"] for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
