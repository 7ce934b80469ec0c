"""Thread scaling of the C core, measured so that host noise cancels.

    python bench/core_scaling.py [--pairs 15] [--duration 1.0] [--threads N] [--impl NAME ...] [--json out.json]

A shared VM's speed drifts by 10-15% over seconds (clock changes, a busy
neighbour on the same physical core), which swamps a 5% scaling question when
the 1-thread and N-thread figures come from runs minutes apart. Here every
N-thread measurement is bracketed by two 1-thread measurements of the same
length, and the figure reported is the median over many such triples of

    ratio = rate(N threads) / mean(rate(1 thread before), rate(1 thread after))

with its interquartile range, so slow drift cancels within a triple and a
burst of noise moves one triple, not the median.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from miner import core
from miner.cli.bench import measure


def bracketed(impl: str, threads: int, pairs: int, duration: float) -> dict:
    ratios, one, many = [], [], []
    quiet = lambda *a: None  # noqa: E731 - no progress line between cells
    for _ in range(pairs):
        before = measure(impl, 1, duration, quiet)
        n = measure(impl, threads, duration, quiet)
        after = measure(impl, 1, duration, quiet)
        one += [before, after]
        many.append(n)
        ratios.append(n / ((before + after) / 2))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {"impl": impl, "threads": threads, "ratio_median": statistics.median(ratios), "ratio_q1": q1,
            "ratio_q3": q3, "one_thread_hs": statistics.median(one), "n_thread_hs": statistics.median(many),
            "ratios": ratios}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=15, help="bracketed triples per implementation")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per cell")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--impl", action="append", default=None, help="default: every usable implementation")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads < 2:
        print("core_scaling: needs --threads of 2 or more", file=sys.stderr)
        return 2
    impls = [core.resolve(i) for i in args.impl] if args.impl else core.implementations()
    rows = []
    print(f"{'implementation':<16} {'1 thread':>11} {f'{args.threads} threads':>11} {'ratio (median)':>15} {'IQR':>13}")
    for impl in impls:
        r = bracketed(impl, args.threads, args.pairs, args.duration)
        rows.append(r)
        print(f"{impl:<16} {r['one_thread_hs'] / 1e6:7.2f} MH/s {r['n_thread_hs'] / 1e6:6.2f} MH/s"
              f" {r['ratio_median']:14.3f}x {r['ratio_q1']:.3f}..{r['ratio_q3']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"pairs": args.pairs, "duration": args.duration, "loadavg": os.getloadavg(), "rows": rows},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
