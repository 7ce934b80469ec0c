"""GPU benchmark: sha256d rate of an OpenCL or CUDA device through the real run loop.

Each round runs Device.run() (double-buffered launches, auto-tuned launch
size) against a context that hands out one endless job in slices, for
--seconds, and reports per round:
  rate          nonces hashed / wall seconds of the run
  kernel rate   nonces / summed kernel time (profiling events)
  idle          device-timeline gaps between back-to-back launches / kernel time
                (OpenCL profiling; the launch-overhead figure, target < 2%)
  busy          summed kernel time / wall time (also counts the host's own stalls)
  launch        the launch size the tuner settled on, and its kernel time
Medians over --rounds are printed last, with the C core's rate on the same
machine measured in the same run for scale.

    python bench/gpu_bench.py --backend opencl --device opencl:0:0 --seconds 5 --rounds 3
    python bench/gpu_bench.py --backend cuda --device cuda:0 --seconds 10 --rounds 5
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import threading
import time

from miner import core
from miner.engine.backend import DeviceOptions, Work, load_backend
from miner.backends import gpu_common
from miner.engine.job import Job


def _job() -> Job:
    # Difficulty 1: hits are rare, as in real mining, so the run measures hashing.
    return Job(job_id="bench", prevhash=hashlib.sha256(b"prev").digest(), coinb1=b"\x01" * 50,
               coinb2=b"\x02" * 40, merkle_branch=(), version=0x20000000, nbits=0x1D00FFFF,
               ntime=0x65000000, clean=True, extranonce1=b"\x00\x00\x00\x01", extranonce2_size=4,
               difficulty=1)


class EndlessContext:
    """Hands out consecutive slices of one job (moving to a new extranonce2 after 2^32) until a deadline."""

    def __init__(self, seconds: float) -> None:
        self.job = _job()
        self.deadline = time.perf_counter() + seconds
        self.en2 = 0
        self.pos = 0
        self.hashed = 0
        self.shares = 0
        self.lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return time.perf_counter() >= self.deadline

    @property
    def generation(self) -> int:
        return 1

    def next_work(self, nonce_count=1 << 32, *, timeout=None, version_rolling=False):
        if self.stopping:
            return None
        with self.lock:
            if self.pos >= 1 << 32:
                self.en2, self.pos = self.en2 + 1, 0
            en2 = self.job.extranonce2_bytes(self.en2)
            root = self.job.merkle_root(en2)
            n = min(nonce_count, (1 << 32) - self.pos)
            w = Work(self.job, en2, self.job.ntime, self.job.version, self.pos, n, 1, root,
                     self.job.header(en2, merkle_root=root))
            self.pos += n
            return w

    def wait_generation(self, generation, timeout):
        time.sleep(timeout)
        return False

    def submit(self, work, nonce, *, version=None, claimed_target=None):
        h = core.sha256d(work.header[:76] + nonce.to_bytes(4, "little"))
        ok = int.from_bytes(h, "little") <= work.target
        if not ok:
            raise SystemExit(f"device returned a nonce that misses the target: {nonce:#x}")
        self.shares += 1
        return True

    def hashes(self, n: int) -> None:
        self.hashed += n

    def add_generation_listener(self, fn) -> None:
        pass


def c_core_rate(seconds: float) -> float:
    header = bytes(80)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        core.scan(header, n & 0xFFFFFFFF, 1 << 18, 0)
        n += 1 << 18
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("opencl", "cuda"), default="opencl")
    ap.add_argument("--device", default=None, help="device spec, e.g. opencl:0:0 or cuda:0 (default: first)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernel-ms", type=float, default=30.0)
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args(argv)

    backend = load_backend(args.backend)
    devices = backend.create([args.device] if args.device else [], DeviceOptions(gpu_kernel_ms=args.kernel_ms))
    dev = devices[0]
    rows = []
    with dev:
        dev.selftest()
        model = dev.info().get("model", dev.name)
        print(f"{args.backend} {dev.name}: {model}; host {platform.machine()} {platform.processor() or ''}")
        tuner = gpu_common.LaunchTuner(target_ms=args.kernel_ms)
        for r in range(args.rounds + 1):  # round 0 warms up and lets the tuner settle
            dev.tuner = tuner
            ctx = EndlessContext(args.seconds)
            t0 = time.perf_counter()
            dev.run(ctx)
            wall = time.perf_counter() - t0
            st = dict(dev.last_run_stats)
            row = {"rate": ctx.hashed / wall, "kernel_rate": ctx.hashed / st["kernel_seconds"],
                   "idle": st["idle_fraction"], "busy": st["busy_fraction"], "launch": st["launch_size"],
                   "kernel_ms": 1000 * st["kernel_seconds"] / max(1, st["launches"]), "shares": ctx.shares}
            label = "warm-up" if r == 0 else f"round {r}"
            print(f"{label:8s} rate {row['rate'] / 1e6:9.3f} MH/s  kernel {row['kernel_rate'] / 1e6:9.3f} MH/s  "
                  f"idle {100 * row['idle']:5.2f}%  busy {100 * row['busy']:5.1f}%  "
                  f"launch {row['launch']} ({row['kernel_ms']:.1f} ms)")
            if r:
                rows.append(row)
    core_rate = c_core_rate(min(3.0, args.seconds))
    med = {k: statistics.median(row[k] for row in rows) for k in ("rate", "kernel_rate", "idle", "busy",
                                                                  "kernel_ms")}
    print(f"median   rate {med['rate'] / 1e6:.3f} MH/s, kernel {med['kernel_rate'] / 1e6:.3f} MH/s, "
          f"idle {100 * med['idle']:.2f}% of kernel time, busy {100 * med['busy']:.1f}%, "
          f"kernel {med['kernel_ms']:.1f} ms/launch; C core ({core.selected()}, 1 thread) "
          f"{core_rate / 1e6:.3f} MH/s")
    if args.json:
        print(json.dumps({"median": med, "c_core_1thread": core_rate, "device": model}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
