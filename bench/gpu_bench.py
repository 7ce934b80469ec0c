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
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gpu_ctx import TimedContext  # noqa: E402  (the context tests/test_cuda.py times with)
from miner import core  # noqa: E402
from miner.engine.backend import DeviceOptions, load_backend  # noqa: E402
from miner.backends import gpu_common  # noqa: E402


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
            ctx = TimedContext(args.seconds)
            t0 = time.perf_counter()
            dev.run(ctx)
            wall = time.perf_counter() - t0
            st = dict(dev.last_run_stats)
            if ctx.bad:
                raise SystemExit(f"device returned {ctx.bad} nonces that miss the target")
            row = {"rate": ctx.hashed / wall, "kernel_rate": ctx.hashed / st["kernel_seconds"],
                   "idle": st["idle_fraction"], "busy": st["busy_fraction"], "launch": st["launch_size"],
                   "kernel_ms": 1000 * st["kernel_seconds"] / max(1, st["launches"]), "shares": ctx.good}
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
