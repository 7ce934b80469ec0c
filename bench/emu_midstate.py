"""How fast the emulated midstate chips (Icarus sticks, BM1397) really hash.

They are sent only a midstate, so they hash with drivers/emu/midstate.py
(numpy-vectorised) instead of the C core; this sets the nonce rate the
emulator-driven tests can expect at a given test difficulty. Each round
scans one batch of the size the emulators use (Icarus 2^14 nonces, BM1397
2^13 per chip slice), the rounds of both sizes interleaved; medians of the
rounds, per wall-clock second and per CPU-second of this thread (the machine
may be shared). Also one round of the plain-Python fallback (no numpy).

    python bench/emu_midstate.py --rounds 15
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from miner.drivers.emu import midstate as MS
from miner.drivers.emu.models import BM_SLICE, ICARUS_BATCH
from miner.sha256 import midstate


def _rate(fn, n: int) -> tuple[float, float]:
    """(hashes per wall second, hashes per CPU second of this thread)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return n / (time.perf_counter() - t0), n / max(time.thread_time() - c0, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    header = bytes(range(80))
    mid, tail = midstate(header), header[64:76]
    target = 0xFFFF << 208
    rates: dict[str, list[tuple[float, float]]] = {f"numpy, batch {ICARUS_BATCH} (Icarus)": [],
                                     f"numpy, batch {BM_SLICE} (BM1397 slice)": []}
    start = 0
    for _ in range(args.rounds):
        for (label, out), n in zip(rates.items(), (ICARUS_BATCH, BM_SLICE)):
            words = range(start, start + n)
            out.append(_rate(lambda: MS.scan_midstate(mid, tail, words, target), n))
            start += n
    np, MS._np = MS._np, None
    try:
        n = 2000
        plain = _rate(lambda: MS.scan_midstate(mid, tail, range(n), target), n)
    finally:
        MS._np = np
    result = {label: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
              for label, v in rates.items()}
    result["plain Python (no numpy), 2000 nonces"] = plain
    print(f"CPU: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {getattr(np, '__version__', 'absent')}, {args.rounds} rounds; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  {'':42s} {'kH/s wall':>10s} {'kH/CPU-s':>10s}")
    for label, (wall, cpu) in result.items():
        print(f"  {label:42s} {wall / 1e3:10.1f} {cpu / 1e3:10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
