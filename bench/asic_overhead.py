"""Host overhead per ASIC board, measured against the emulators.

The emulator runs in its own process (`python -m miner emulate ... --tcp 0`), so
its hashing does not count; the driver runs here on its own thread, fed by the
test context (real Job from the vectors, real host re-check of every nonce),
and its CPU time is that thread's time.thread_time(). The emulator reports how
often jobs arrived and how long the chain sat idle with its job space walked.

    python bench/asic_overhead.py --runs 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from asic_ctx import TestContext, session_job  # noqa: E402
from miner.drivers import create_device  # noqa: E402

CASES = {
    # name: (emulate args, device spec options, pool version mask, seconds per run)
    # BM1370 at 590 MHz = 1.2 TH/s. diff 0.004 gives about as many nonces per second from the
    # emulator's real hashing as a real 1.2 TH/s chip returns at its usual ticket difficulty 256.
    "bm1370-1.2T-rolling": (["bm1370", "--diff", "0.004"], "freq=590,diff=0.004,silence=60", 0x1FFFE000, 10),
    # No version rolling allowed by the pool: a job lasts 2^32 / 1.2e12 = 3.6 ms.
    "bm1370-1.2T-no-rolling": (["bm1370", "--diff", "0.004"], "freq=590,diff=0.004,silence=60", 0, 10),
    # Nonces at difficulty 1e-4 (about 1/s from the emulator's midstate hashing).
    "erupter-336M-nonces": (["erupter", "--diff", "0.0001"], "diff=0.0001", 0, 10),
    # Real difficulty 1: the driver keeps its 336 MH/s estimate and re-feeds every 0.8 x 12.8 s.
    "erupter-336M-refeed": (["erupter"], "diff=1", 0, 30),
}


def one_run(name: str, scale: float) -> dict:
    emu_args, opts, mask, seconds = CASES[name]
    seconds *= scale
    emu = subprocess.Popen([sys.executable, "-m", "miner", "emulate", *emu_args, "--tcp", "0", "--stats",
                            "--duration", str(seconds + 4)], stdout=subprocess.PIPE, text=True)
    url = None
    for line in emu.stdout:
        if "socket://" in line:
            url = line.split(" on ", 1)[1].strip()
            break
    model = emu_args[0]
    dev = create_device(f"{model}:{url},{opts},ramp_delay=0")
    ctx = TestContext(session_job(difficulty=1e-3, version_mask=mask))
    out: dict = {}
    sends: list[float] = []
    if hasattr(dev, "_send"):  # host-side job timestamps, to tell host delays from emulator delays
        inner = dev._send

        def timed_send(work):
            inner(work)
            sends.append(time.monotonic())
        dev._send = timed_send
    else:  # Icarus: every work packet that is neither the golden work nor the park packet
        from miner.drivers.icarus import GOLDEN_WORK
        write = dev.transport.write

        def timed_write(data):
            write(data)
            if len(data) == 64 and data != GOLDEN_WORK and any(data):
                sends.append(time.monotonic())
        dev.transport.write = timed_write

    def drive():
        t0 = time.thread_time()
        dev.run(ctx)
        out["thread_cpu_s"] = time.thread_time() - t0

    p0, w0 = time.process_time(), time.monotonic()
    th = threading.Thread(target=drive)
    th.start()
    time.sleep(seconds)
    ctx.stop()
    th.join(10)
    wall = time.monotonic() - w0
    out["process_cpu_s"] = time.process_time() - p0
    stats = json.loads(emu.stdout.read().strip().splitlines()[-1])
    emu.wait(10)
    info = dev.info()
    # Host-side idle: how long past the end of each job's space (2^32 x versions at the emulated
    # rate) the next job went out. With rolling, a job lasts minutes, so this is 0.
    space = (1 << 32) * ((1 << bin(mask).count("1")) if model.startswith("bm13") and model != "bm1397" else 1)
    job_time = space / stats["hashrate"]
    intervals = [b - a for a, b in zip(sends[1:], sends[2:])]  # after the first job: steady state
    host_idle = sum(max(0.0, i - job_time) for i in intervals)
    return {"case": name, "wall_s": wall, "thread_cpu_pct": 100 * out["thread_cpu_s"] / wall,
            "process_cpu_pct": 100 * out["process_cpu_s"] / wall, "jobs_per_s": stats["jobs"] / wall,
            "job_interval_median_ms": 1000 * (stats["job_interval_median_s"] or 0),
            "job_interval_max_ms": 1000 * (stats["job_interval_max_s"] or 0),
            "idle_s": stats["idle_s"],
            "max_gap_ms": 1000 * stats["max_gap_s"] if stats["max_gap_s"] is not None else float("nan"),
            "nonces_per_s": info["nonces"] / wall, "hw_errors": info["hw_errors"],
            "emulated_hashrate": stats["hashrate"], "job_time_ms": 1000 * job_time,
            "host_send_interval_max_ms": 1000 * max(intervals, default=0.0), "host_idle_s": host_idle}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every case's run time")
    ap.add_argument("--case", action="append", choices=list(CASES))
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    summary = {}
    for name in args.case or list(CASES):
        runs = [one_run(name, args.scale) for _ in range(args.runs)]
        for r in runs:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
        summary[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "case"}
    print("\n| case | driver thread CPU % | bench process CPU % | jobs/s | job lasts ms "
          "| host send interval max ms | host idle s | emulator-seen idle s / max gap ms | nonces/s | hw errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in summary.items():
        print(f"| {name} | {m['thread_cpu_pct']:.2f} | {m['process_cpu_pct']:.2f} | {m['jobs_per_s']:.1f} | "
              f"{m['job_time_ms']:.1f} | {m['host_send_interval_max_ms']:.1f} | {m['host_idle_s']:.3f} | "
              f"{m['idle_s']:.3f} / {m['max_gap_ms']:.1f} | {m['nonces_per_s']:.2f} | {m['hw_errors']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
