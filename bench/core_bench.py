"""Back-to-back benchmark of the C core against OpenSSL (and cpuminer-opt when given).

    python bench/core_bench.py [--rounds 5] [--duration 3] [--compare "NAME=COMMAND" ...] [--json out.json]

Rounds interleave every measurement (OpenSSL's SHA-256, each core implementation
at 1 and at all threads, and again hashing 8 header versions per nonce where it
can ("+8v", miner.core.scan_versions), each --compare command at 1 and all
threads) so that
host load and clock changes hit all of them alike; the report gives medians over
the rounds. A --compare COMMAND is run as `COMMAND THREADS SECONDS` and must
print "... <rate> H/s" (bench/core_cpuminer.sh builds such drivers around
cpuminer-opt's own sha256d code).

OpenSSL's figure is `openssl speed -evp sha256 -bytes 16384` bytes/s divided by
64: SHA-256 compressions per second on one core. Our H/s over that is a ratio
that can be checked on any machine. Reference cycles (TSC) per nonce are
printed when the TSC frequency is known (cpuinfo/dmesg); they are not core
cycles, which this VM cannot count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

from miner import core
from miner.core import cpuinfo
from miner.cli.bench import AUTO, measure


def openssl_compressions_per_s(seconds: int) -> float:
    res = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-evp", "sha256", "-bytes", "16384"],
                         capture_output=True, text=True, check=True)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("sha256"))
    kbytes = float(line.split()[-1].rstrip("k"))  # "k" is 1000 bytes in openssl speed output
    return kbytes * 1000 / 64


def compare_hs(command: str, threads: int, seconds: float) -> float | None:
    """Rate printed by an external driver run as `command threads seconds`."""
    try:
        res = subprocess.run([*command.split(), str(threads), str(seconds)], capture_output=True, text=True,
                             timeout=seconds + 60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"([\d.]+) H/s", res.stdout)
    return float(m.group(1)) if m and res.returncode == 0 else None


def tsc_hz() -> float | None:
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"tsc: Detected ([\d.]+) MHz processor", out)
        if m:
            return float(m.group(1)) * 1e6
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    facts = cpuinfo.cpu_facts()
    info.update(facts, cpu=cpuinfo.describe(facts))
    info["openssl"] = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    info["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    info["tsc_hz"] = tsc_hz()
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per miner cell")
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--openssl-each", action="store_true",
                    help="also run OpenSSL right before every 1-thread cell, for a paired ratio per round")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=COMMAND",
                    help="an external driver to measure back to back (see bench/core_cpuminer.sh)")
    ap.add_argument("--impl", action="append", default=None)
    ap.add_argument("--no-versions", dest="versions", action="store_false",
                    help="leave out the +8v cells (8 header versions per nonce, miner.core.scan_versions)")
    ap.add_argument("--json", default=None, help="write the raw figures here")
    args = ap.parse_args()

    ncpu = os.cpu_count() or 1
    # "auto": what the CPU device runs (each thread choosing and re-choosing its code).
    impls = [i if i == AUTO else core.resolve(i) for i in args.impl] if args.impl else core.implementations()
    threads = sorted({1, ncpu})
    # Each implementation plain, and with 8 header versions per nonce where it can
    # (what the CPU device mines at when the pool allows BIP 310 version rolling).
    cells = [(i, v) for i in impls
             for v in ((1, 8) if args.versions and (i == AUTO or core.max_versions(i) >= 8) else (1,))]
    names = [i if v == 1 else f"{i} +{v}v" for i, v in cells]
    raw: dict[str, list[float]] = {"openssl_comp_per_s": []}
    info = machine()
    info["load_before"] = os.getloadavg()
    info["selected"] = core.selected()
    t_start = time.time()
    for r in range(args.rounds):
        raw["openssl_comp_per_s"].append(openssl_compressions_per_s(args.openssl_seconds))
        for impl, versions in cells:
            name = impl if versions == 1 else f"{impl} +{versions}v"
            for n in threads:
                if n == 1 and args.openssl_each:
                    raw.setdefault(f"{name} x1 openssl", []).append(openssl_compressions_per_s(args.openssl_seconds))
                ru0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                hs = measure(impl, n, args.duration, lambda *a: None, versions)
                ru1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                raw.setdefault(f"{name} x{n}", []).append(hs)
                # Hashes per CPU-second and CPUs used: load-independent views of the scaling.
                raw.setdefault(f"{name} x{n} per-cpu-s", []).append(hs * (w1 - w0) / max(cpu, 1e-9))
                raw.setdefault(f"{name} x{n} cpus-used", []).append(cpu / (w1 - w0))
        for spec in args.compare:
            label, command = spec.split("=", 1)
            for n in threads:
                ru0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                hs = compare_hs(command, n, args.duration)
                ru1, w1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                if hs:
                    raw.setdefault(f"{label} x{n}", []).append(hs)
                    raw.setdefault(f"{label} x{n} per-cpu-s", []).append(hs * args.duration / max(cpu, 1e-9))
                    raw.setdefault(f"{label} x{n} cpus-used", []).append(cpu / (w1 - w0))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    info["load_after"] = os.getloadavg()
    info["wall_s"] = round(time.time() - t_start, 1)

    med = {k: statistics.median(v) for k, v in raw.items()}
    ossl = med["openssl_comp_per_s"]
    tsc = info.get("tsc_hz")
    print(f"machine: {info}")
    print(f"OpenSSL sha256: {ossl / 1e6:.2f} M compressions/s (median of {len(raw['openssl_comp_per_s'])})")
    print(f"{'cell':<26} {'median':>11} {'min..max':>17} {'/OpenSSL':>9} {'2T/1T':>6} {'TSC/nonce':>10}")
    for key, vals in raw.items():
        if key == "openssl_comp_per_s" or key.endswith(("per-cpu-s", "cpus-used", "openssl")):
            continue
        name, n = key.rsplit(" x", 1)
        scale = med.get(f"{name} x{ncpu}", 0) / med[f"{name} x1"] if n == "1" and ncpu > 1 else None
        cyc = f"{tsc / med[key]:.0f}" if tsc and n == "1" else ""
        print(f"{key:<26} {med[key] / 1e6:8.2f} MH/s {min(vals) / 1e6:7.2f}..{max(vals) / 1e6:6.2f}"
              f" {med[key] / ossl:8.2f}x {'' if scale is None else f'{scale:5.2f}x':>6} {cyc:>10}")
    print("per CPU-second (load-independent) and CPUs actually used by the process:")
    for impl in names + [spec.split("=", 1)[0] for spec in args.compare]:
        if f"{impl} x1 per-cpu-s" not in med:
            continue
        print("  " + "   ".join(f"x{n}: {med[f'{impl} x{n} per-cpu-s'] / 1e6:.2f} MH/cpu-s on "
                                  f"{med[f'{impl} x{n} cpus-used']:.2f} CPUs" for n in threads) + f"   {impl}")
    for spec in args.compare:
        label = spec.split("=", 1)[0]
        for n in threads:
            other = med.get(f"{label} x{n}")
            if other:
                print(f"vs {label} x{n}: " + ", ".join(f"{impl} {med[f'{impl} x{n}'] / other:.2f}x" for impl in names))
                # The same, round by round (both cells of one round), then the median.
                theirs = raw[f"{label} x{n}"]
                paired = {impl: statistics.median(a / b for a, b in zip(raw[f"{impl} x{n}"], theirs)) for impl in names
                          if len(raw[f"{impl} x{n}"]) == len(theirs)}
                if paired:
                    print(f"vs {label} x{n}, paired median: " + ", ".join(f"{i} {q:.2f}x" for i, q in paired.items()))
    if args.openssl_each:
        # Each 1-thread cell against the OpenSSL run just before it, then the median over the rounds.
        print("vs OpenSSL run just before, 1 thread, paired median (min..max): ")
        for impl in names:
            q = [a / b for a, b in zip(raw[f"{impl} x1"], raw[f"{impl} x1 openssl"])]
            print(f"  {impl:<26} {statistics.median(q):.3f}x ({min(q):.3f}..{max(q):.3f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "raw": raw, "median": med}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
