"""What the CPU device's short C calls cost: one thread's scan rate at several HIT_SECONDS.

A CPU thread scans each chunk of work in C calls of about HIT_SECONDS, so that a share found goes to
the engine within that long (miner/backends/cpu.py). Each call costs a fixed few microseconds (the
cffi call, the device loop's bookkeeping). This runs the real CPUDevice loop on one thread over the
same nonce count at each value, alternating in one process, and reports each value's median rate
over the first value's, with the fixed cost per call that the shortest value implies.

    python bench/cpu_slices.py --hit-seconds 0.25,0.02,0.002 --nonces 67108864 --rounds 9
    python bench/cpu_slices.py --hit-seconds 0.25,0.02,0.002 --nonces 16777216 --rounds 9 --rolling

--rolling grants a BIP 310 mask, so the thread hashes 8 versions of each nonce (the rates are then
in nonces, each 8 hashes).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import miner.backends.cpu as cpu_mod
from miner import core
from miner.backends.cpu import CPUDevice
from miner.engine.job import Job

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cpuctx import Ctx  # noqa: E402  (the test suite's context for the real device loop)

MASK = 0x1FFFE000  # BIP 310's usual mask, for --rolling


def make_job(mask: int) -> Job:
    """A job with a share target no hash meets, so the rate is the scan loop's alone."""
    return Job("b1", bytes(32), bytes.fromhex("0100000001000063"), bytes.fromhex("ffffffff0100f2052a01000000"),
               (), 0x20000000, 0x1D00FFFF, 0x504E86B9, True, b"\x08\x00\x00\x02", 4, 1e12, version_mask=mask)


def one_run(hit: float, nonces: int, job: Job) -> tuple[float, int]:
    cpu_mod.HIT_SECONDS = hit
    dev = CPUDevice("cpu0", adaptive=False)
    dev.open()
    ctx = Ctx(job, 0, nonces)
    t = time.thread_time()
    dev.run(ctx)
    return nonces / (time.thread_time() - t), ctx.calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hit-seconds", default="0.25,0.01,0.001")
    ap.add_argument("--nonces", type=int, default=1 << 26)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rolling", action="store_true", help="grant a version mask: 8 versions a nonce")
    a = ap.parse_args()
    job = make_job(MASK if a.rolling else 0)
    hits = [float(x) for x in a.hit_seconds.split(",")]
    rates: dict[float, list[float]] = {h: [] for h in hits}
    calls: dict[float, list[int]] = {h: [] for h in hits}
    ratios: dict[float, list[float]] = {h: [] for h in hits}
    for r in range(a.rounds):
        got = {}
        for h in hits[r % len(hits):] + hits[:r % len(hits)]:
            got[h] = one_run(h, a.nonces, job)
            rates[h].append(got[h][0])
            calls[h].append(got[h][1])
        for h in hits:
            ratios[h].append(got[h][0] / got[hits[0]][0])
        print(f"round {r + 1}: " + "  ".join(f"{h:g} s {got[h][0] / 1e6:.2f} M/s ({got[h][1]} calls)"
                                            for h in hits), flush=True)
    base = statistics.median(rates[hits[0]])
    print(f"code {core.selected()}{' +8 versions' if a.rolling else ''}, 1 thread, {a.nonces} nonces a run, "
          f"thread CPU time, {a.rounds} rounds")
    for h in hits:
        med = statistics.median(ratios[h])
        per_call = (1 / statistics.median(rates[h]) - 1 / base) * a.nonces / max(1, statistics.median(calls[h]))
        print(f"HIT_SECONDS {h:g}: median {statistics.median(rates[h]) / 1e6:.2f} M nonces/s, "
              f"{statistics.median(calls[h]):.0f} calls, paired ratio to {hits[0]:g} s median {med:.4f} "
              f"(min {min(ratios[h]):.4f}, max {max(ratios[h]):.4f}), {per_call * 1e6:.1f} us a call over it")


if __name__ == "__main__":
    main()
