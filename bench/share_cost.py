"""Where the CPU goes per share: `miner` against the real test pool (stratum-pool-sha256, tests/pool)
at a high and a low share rate, the CPU time of every party on the same cores, from /proc.

    python bench/share_cost.py [--threads 2] [--seconds 20] [--rounds 2] [--high 0.0002] [--low 0.002]
                               [--hit-seconds 0.02,0.25]

Each round runs the miner once at the low difficulty, then once at the high one for each
--hit-seconds value (the CPU device's HIT_SECONDS, set in the miner process for that run; the
installed value when the option is absent), back to back. Per run: the shares the pool accepted,
the CPU time of the miner's main thread (the event loop: host re-check, Stratum, logging, --json)
and how often it slept (voluntary context switches: each is a wake-up later), the CPU time its
hashing threads got, and the CPU time of the pool process. Per share, over the low-rate run of the
same round (start-up and the periodic work cancel): what each party took more, and what the
hashing threads got less. The first line is what this host charges a thread for one wake-up from
a timer (an asyncio loop sleeping 4 ms, 400 times): in a virtual machine it is far above the
microseconds of bare metal, and a share costs its event loop one or two wake-ups.
Needs node and `npm ci --prefix tests/pool`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
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
# `miner` with the CPU device's HIT_SECONDS set first (argv[1]); the rest of argv is the command line.
WITH_HIT = ("import sys, miner.backends.cpu as c; c.HIT_SECONDS = float(sys.argv.pop(1)); "
            "from miner.cli import main; sys.exit(main())")


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """{thread id: (user, system) CPU seconds} of every thread of process pid."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended between the listing and the read
        out[int(task.name)] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process pid (its threads together), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sleeps(pid: int, tid: int) -> int:
    """Voluntary context switches of thread tid so far."""
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def wakeup_cost(n: int = 400) -> float:
    """CPU seconds this host charges a thread per wake-up of an asyncio loop sleeping 4 ms."""
    async def go() -> float:
        c0 = time.thread_time()
        for _ in range(n):
            await asyncio.sleep(0.004)
        return (time.thread_time() - c0) / n
    return asyncio.run(go())


def run(threads: int, seconds: float, difficulty: float, hit: float | None) -> dict:
    pool = start_real_pool(difficulty)
    try:
        base = len(pool.shares())
        pool0 = proc_cpu(pool.proc.pid)
        head = [sys.executable, "-c", WITH_HIT, str(hit)] if hit is not None else [MINER]
        cmd = head + ["-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", str(threads),
                      "--time-limit", str(seconds), "--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/")
        last: dict[int, tuple[float, float]] = {}
        woke = [0]

        def sample() -> None:
            # A thread's figures vanish when it ends (the hashing threads before the main thread):
            # keep each thread's latest reading.
            while p.poll() is None:
                try:
                    last.update(thread_cpu(p.pid))
                    woke[0] = sleeps(p.pid, p.pid)
                except OSError:
                    break
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        for _ in p.stdout:
            pass
        p.wait()
        th.join()
        time.sleep(0.5)  # verdicts of the last shares
        shares = len(pool.shares()) - base
        pool_cpu = proc_cpu(pool.proc.pid) - pool0
    finally:
        pool.stop()
    main = last.get(p.pid, (0.0, 0.0))
    # The hashing threads: every other thread that ran for more than a second (the status
    # reporter and the rest wake a few times a second).
    hashing = sum(u + s for tid, (u, s) in last.items() if tid != p.pid and u + s > 1.0)
    return {"shares": shares, "user": main[0], "sys": main[1], "main": main[0] + main[1],
            "sleeps": woke[0], "hashing": hashing, "pool": pool_cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--high", type=float, default=0.0002, help="difficulty of the high share rate")
    ap.add_argument("--low", type=float, default=0.002, help="difficulty of the low share rate")
    ap.add_argument("--hit-seconds", default="", help="comma-separated HIT_SECONDS values for the high runs")
    a = ap.parse_args()
    hits: list[float | None] = [float(x) for x in a.hit_seconds.split(",") if x] or [None]
    print(f"one wake-up from a 4 ms timer costs a thread {1e6 * wakeup_cost():.0f} us of CPU here", flush=True)
    keys = ("main", "user", "sys", "pool", "lost", "sleeps")
    per: dict[float | None, dict[str, list[float]]] = {h: {k: [] for k in keys} for h in hits}
    for r in range(a.rounds):
        lo = run(a.threads, a.seconds, a.low, None)
        print(f"round {r + 1} low: {lo['shares']} shares; main thread {lo['main']:.2f} s, {lo['sleeps']} sleeps; "
              f"hashing {lo['hashing']:.2f} s; pool {lo['pool']:.2f} s (CPU in {a.seconds:g} s)", flush=True)
        for h in hits:
            hi = run(a.threads, a.seconds, a.high, h)
            dn = hi["shares"] - lo["shares"]
            label = "installed HIT_SECONDS" if h is None else f"HIT_SECONDS {h:g}"
            print(f"round {r + 1} high, {label}: {hi['shares']} shares; main thread {hi['main']:.2f} s "
                  f"({hi['user']:.2f} user), {hi['sleeps']} sleeps; hashing {hi['hashing']:.2f} s; "
                  f"pool {hi['pool']:.2f} s", flush=True)
            if dn <= 0:
                print(f"round {r + 1}: no more shares at {a.high:g} than at {a.low:g}; skipped")
                continue
            d = per[h]
            for k in ("main", "user", "sys", "pool", "sleeps"):
                d[k].append((hi[k] - lo[k]) / dn)
            d["lost"].append((lo["hashing"] - hi["hashing"]) / dn)
            print(f"  per share: main thread {1e3 * d['main'][-1]:.3f} ms ({d['sleeps'][-1]:.2f} sleeps), "
                  f"pool {1e3 * d['pool'][-1]:.3f} ms; hashing threads {1e3 * d['lost'][-1]:.3f} ms less", flush=True)
    for h, d in per.items():
        if not d["main"]:
            continue
        label = "installed HIT_SECONDS" if h is None else f"HIT_SECONDS {h:g}"
        med = {k: statistics.median(v) for k, v in d.items()}
        print(f"median, {label}: {1e3 * med['main']:.3f} ms of main-thread CPU per share "
              f"({1e3 * med['user']:.3f} user + {1e3 * med['sys']:.3f} system, {med['sleeps']:.2f} sleeps), "
              f"pool {1e3 * med['pool']:.3f} ms; hashing threads {1e3 * med['lost']:.3f} ms less")
    return 0


if __name__ == "__main__":
    sys.exit(main())
