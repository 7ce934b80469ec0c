"""The CPU code choice replayed on this host's own contention: is the adaptive choice ever worse than
the best fixed code, and how far does it beat the worst?

    python bench/choice_replay.py --seconds 300 [--core NAME ...] [--openssl] [--save trace.json]
    python bench/choice_replay.py --trace trace.json        # replay a saved trace only

Runs of `miner --benchmark` one after another (bench/core_choice.py) compare codes at different
moments, and on a shared host the moments differ more than the codes do: on a 2-vCPU Zen 3 guest the
same forced code moved 33-47 MH/s between 20 s runs. So this measures every code at the same moments
and replays those moments through the real chooser.

1. Record. One thread runs the candidate codes (those of the automatic choice, miner.core.candidates(),
   or --core) in turn, SLICE nonces each, the order rotating, for --seconds, and times each slice in
   its own CPU time (what the CPU device's trial rounds measure). A round, every code once, takes
   about 70 ms with SHA-NI, so the trace holds each code's rate at nearly the same moment: whatever
   the host does to the core (its other hardware thread above all) hits every code alike.
2. Replay. The trace drives the real CodeChooser (miner.backends.cpu_choice) with a clock that the
   replay advances, slice by slice as the CPU device loop does: a trial slice of
   CodeChooser.slice_nonces(rate) nonces, a mining slice of HIT_SECONDS at the thread's rate, each
   running at the trace's rate for that code at that moment. It replays from every start code.

With --openssl each round also times OpenSSL's SHA-256 (hashlib, which is OpenSSL's code with its
SHA-NI path, over 1 MiB: 16,384 compressions, about 0.7 ms), so each code's hashes per second over
OpenSSL's compressions per second, the issue's yardstick, is taken at the same moments too: per
round (median, 10th and 90th percentiles) and over the whole trace. OpenSSL is not a candidate.

It prints the hashes per second of each fixed code over the trace, of the adaptive choice from each
start, and of an oracle that runs the best code of every round: no chooser can reach it, since it
knows the next 70 ms. A slice takes the rate of the round it starts in. The trace's per-round ratios
are printed too: their median and their time-weighted mean can disagree (a deeper interleave that
wins most rounds by a little and loses the busy ones by a lot), and the mean is what a thread hashes.
"""
from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import statistics
import sys
import time

from miner import core
from miner.backends import cpu as cpu_mod
from miner.backends.cpu_choice import CodeChooser

SLICE = 1 << 19  # nonces a code scans per round: about 22 ms of SHA-NI on Zen 3
OPENSSL = "OpenSSL"  # the yardstick's column in a trace (compressions per CPU second)
_OSSL_BUF = bytes(1 << 20)
_OSSL_CALLS = 32  # 32 MiB: 524,288 compressions, a round's slice as long as a code's


def _openssl_rate() -> float:
    c0 = time.thread_time()
    for _ in range(_OSSL_CALLS):
        hashlib.sha256(_OSSL_BUF).digest()
    return _OSSL_CALLS * len(_OSSL_BUF) / 64 / max(time.thread_time() - c0, 1e-9)


def record(codes: list[str], seconds: float, openssl: bool = False) -> list[tuple[float, dict[str, float]]]:
    """[(end of round in seconds from the start, {code: nonces per CPU second in that round})],
    with an OPENSSL column (compressions per CPU second) when ``openssl``."""
    order = codes + ([OPENSSL] if openssl else [])
    header, target = bytes(range(80)), 0xFFFF << 208  # a target no hash meets: the rate is the scan's
    rows, pos, r = [], 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        rates = {}
        for code in order[r % len(order):] + order[:r % len(order)]:
            if code == OPENSSL:
                rates[code] = _openssl_rate()
                continue
            c0 = time.thread_time()
            core.scan(header, pos, SLICE, target, impl=code)
            rates[code] = SLICE / max(time.thread_time() - c0, 1e-9)
            pos = (pos + SLICE) % (1 << 32)
        r += 1
        rows.append((time.monotonic() - t0, {c: rates[c] for c in order}))
    return rows


class Trace:
    def __init__(self, rows: list[tuple[float, dict[str, float]]]):
        self.ends = [t for t, _ in rows]
        self.rates = [r for _, r in rows]
        self.codes = [c for c in self.rates[0] if c != OPENSSL]
        self.length = self.ends[-1]
        starts = [0.0] + self.ends[:-1]
        self.spans = [e - s for s, e in zip(starts, self.ends)]

    def rate(self, code: str, t: float) -> float:
        return self.rates[min(bisect.bisect_right(self.ends, t), len(self.ends) - 1)][code]

    def fixed(self, code: str) -> float:
        """Hashes per second of one code run all the time (for OPENSSL: its compressions per second)."""
        return sum(r[code] * s for r, s in zip(self.rates, self.spans)) / self.length

    def oracle(self) -> float:
        return sum(max(r[c] for c in self.codes) * s for r, s in zip(self.rates, self.spans)) / self.length


def replay(trace: Trace, start: str, **chooser_args) -> tuple[float, int, dict[str, float]]:
    """The real chooser on this trace from ``start``: (hashes per second, switches, share of time per code).

    chooser_args go to CodeChooser (explore_every=..., margin=...) to replay other settings."""
    now = 0.0
    chooser = CodeChooser(list(trace.codes), start, clock=lambda: now, **chooser_args)
    hashes, switches, rate = 0.0, 0, trace.rate(start, 0.0)
    on = {c: 0.0 for c in trace.codes}
    while now < trace.length:
        impl = chooser.next_impl()
        speed = trace.rate(impl, now)
        if chooser.exploring:
            n = chooser.slice_nonces(rate)
            dt = n / speed
            now += dt
            if chooser.record(impl, n, dt) is not None:
                switches += 1
        else:
            dt = max(cpu_mod.MIN_CHUNK / speed, cpu_mod.HIT_SECONDS)
            now += dt
            rate = speed
        hashes += speed * dt
        on[impl] += dt
    return hashes / now, switches, {c: t / now for c, t in on.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0, help="length of the recorded trace")
    ap.add_argument("--core", action="append", metavar="NAME", help="codes to record (default: the candidates)")
    ap.add_argument("--openssl", action="store_true", help="time OpenSSL's SHA-256 in every round too")
    ap.add_argument("--save", metavar="FILE", help="write the recorded trace to FILE")
    ap.add_argument("--trace", metavar="FILE", help="replay this saved trace instead of recording one")
    a = ap.parse_args()
    if a.trace:
        with open(a.trace) as f:
            rows = [(t, r) for t, r in json.load(f)]
    else:
        codes = [core.resolve(c) for c in a.core] if a.core else core.candidates()
        codes = [c for c in codes if c in core.implementations()]
        rows = record(codes, a.seconds, a.openssl)
        if a.save:
            with open(a.save, "w") as f:
                json.dump(rows, f)
    trace = Trace(rows)
    print(f"{len(rows)} rounds over {trace.length:.0f} s, {SLICE} nonces per code per round")
    fixed = {c: trace.fixed(c) for c in trace.codes}
    best, worst = max(fixed, key=fixed.get), min(fixed, key=fixed.get)
    base = trace.codes[0]
    for c in trace.codes:
        ratios = [r[c] / r[base] for r in trace.rates]
        print(f"fixed {c:24s} {fixed[c] / 1e6:7.2f} MH/s  {fixed[c] / fixed[best]:.3f}x the best fixed; per round "
              f"over {base}: median {statistics.median(ratios):.3f}, time-weighted {fixed[c] / fixed[base]:.3f}")
    if OPENSSL in trace.rates[0]:
        ossl = trace.fixed(OPENSSL)
        print(f"OpenSSL {ossl / 1e6:.2f} M compressions/s over the trace; each code's hashes/s over OpenSSL's "
              f"compressions/s (per round: median [10th..90th percentile]; over the trace):")
        for c in trace.codes:
            q = sorted(r[c] / r[OPENSSL] for r in trace.rates)
            print(f"  {c:24s} {statistics.median(q):.3f} [{q[len(q) // 10]:.3f}..{q[9 * len(q) // 10]:.3f}]; "
                  f"{fixed[c] / ossl:.3f}")
    print(f"oracle (best code of each round)   {trace.oracle() / 1e6:7.2f} MH/s  "
          f"{trace.oracle() / fixed[best]:.3f}x the best fixed")
    for start in trace.codes:
        v, n, on = replay(trace, start)
        share = ", ".join(f"{c} {p:.0%}" for c, p in on.items() if p >= 0.005)
        print(f"adaptive from {start:24s} {v / 1e6:7.2f} MH/s  {v / fixed[best]:.3f}x the best fixed "
              f"({best}), {v / fixed[worst]:.3f}x the worst ({worst}); {n} switches; time on {share}")


if __name__ == "__main__":
    sys.exit(main())
