"""The miner's CPU cost per share: `miner` against the real test pool (stratum-pool-sha256, tests/pool)
at a high and a low share rate, CPU time per thread from /proc.

    python bench/share_cost.py [--threads 2] [--seconds 20] [--rounds 2] [--high 0.0002] [--low 0.002]

Each round runs the miner once at each difficulty, back to back. The main thread (the event loop:
host re-check, Stratum, logging, --json) does the per-share work; the marginal cost per share is
the difference of its CPU time between the two runs over the difference of their share counts,
so start-up and the fixed periodic work cancel. Also printed: user and system time apart, and the
CPU time the hashing threads got in each run. Needs node and `npm ci --prefix tests/pool`.
"""
from __future__ import annotations

import argparse
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


def run(threads: int, seconds: float, difficulty: float) -> dict:
    pool = start_real_pool(difficulty)
    try:
        base = len(pool.shares())
        cmd = [MINER, "-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", str(threads),
               "--time-limit", str(seconds), "--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/")
        last: dict[int, tuple[float, float]] = {}

        def sample() -> None:
            # A thread's figures vanish when it ends (the hashing threads before the main thread):
            # keep each thread's latest reading.
            while p.poll() is None:
                try:
                    last.update(thread_cpu(p.pid))
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
    finally:
        pool.stop()
    main = last.get(p.pid, (0.0, 0.0))
    hashing = sum(u + s for tid, (u, s) in last.items() if tid != p.pid)
    return {"shares": shares, "user": main[0], "sys": main[1], "hashing": hashing}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--high", type=float, default=0.0002, help="difficulty of the high share rate")
    ap.add_argument("--low", type=float, default=0.002, help="difficulty of the low share rate")
    a = ap.parse_args()
    per_share, per_user, per_sys = [], [], []
    for r in range(a.rounds):
        hi, lo = run(a.threads, a.seconds, a.high), run(a.threads, a.seconds, a.low)
        dn = hi["shares"] - lo["shares"]
        if dn <= 0:
            print(f"round {r + 1}: no more shares at {a.high:g} than at {a.low:g}; skipped")
            continue
        per_user.append((hi["user"] - lo["user"]) / dn)
        per_sys.append((hi["sys"] - lo["sys"]) / dn)
        per_share.append(per_user[-1] + per_sys[-1])
        for name, x in (("high", hi), ("low", lo)):
            print(f"round {r + 1} {name}: {x['shares']} shares; main thread {x['user']:.2f} s user + "
                  f"{x['sys']:.2f} s system; hashing threads {x['hashing']:.2f} CPU s in {a.seconds:g} s")
        print(f"round {r + 1}: {1e3 * per_share[-1]:.3f} ms per share "
              f"({1e3 * per_user[-1]:.3f} user + {1e3 * per_sys[-1]:.3f} system)", flush=True)
    if per_share:
        print(f"median: {1e3 * statistics.median(per_share):.3f} ms of main-thread CPU per share "
              f"({1e3 * statistics.median(per_user):.3f} user + {1e3 * statistics.median(per_sys):.3f} system)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
