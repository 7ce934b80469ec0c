"""Back-to-back benchmark of the C core against OpenSSL (and cpuminer-opt when given).

    python bench/core_bench.py [--rounds 5] [--duration 3] [--cpuminer /path/to/cpuminer] [--json out.json]

Rounds interleave every measurement (OpenSSL's SHA-256, each core implementation
at 1 and at all threads, cpuminer-opt at 1 and all threads) so that host load and
clock changes hit all of them alike; the report gives medians over the rounds.

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
import shutil
import statistics
import subprocess
import sys
import time

from miner import core
from miner.bench import measure


def openssl_compressions_per_s(seconds: int) -> float:
    res = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-evp", "sha256", "-bytes", "16384"],
                         capture_output=True, text=True, check=True)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("sha256"))
    kbytes = float(line.split()[-1].rstrip("k"))  # "k" is 1000 bytes in openssl speed output
    return kbytes * 1000 / 64


def cpuminer_hs(binary: str, threads: int, seconds: int) -> float | None:
    """cpuminer-opt's own benchmark: mean of its per-thread/total hash-rate reports after warm-up."""
    try:
        res = subprocess.run([binary, "-a", "sha256d", "--benchmark", "-t", str(threads), "-q",
                              f"--time-limit={seconds}"], capture_output=True, text=True, timeout=seconds + 60)
    except (OSError, subprocess.SubprocessError):
        return None
    rates = []
    for m in re.finditer(r"Benchmark:\s*([\d.]+)\s*([kMGT]?)h/s", res.stdout + res.stderr):
        rates.append(float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)])
    if not rates:
        totals = [float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
                  for m in re.finditer(r"Total:?\s*([\d.]+)\s*([kMG]?)h/s", res.stdout + res.stderr)]
        rates = totals
    return statistics.median(rates[1:] if len(rates) > 2 else rates) if rates else None


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
    try:
        text = open("/proc/cpuinfo").read()
        for key in ("model name", "cpu family", "model", "stepping"):
            m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
            if m:
                info[key.replace(" ", "_")] = m.group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split())
        info["flags"] = sorted(flags & {"sha_ni", "avx2", "avx512f", "avx512vl", "sse4_1", "ssse3"})
    except (OSError, AttributeError):
        pass
    info["openssl"] = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    info["gcc"] = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    info["tsc_hz"] = tsc_hz()
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per miner cell")
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--cpuminer", default=None, help="path to a cpuminer-opt binary")
    ap.add_argument("--cpuminer-seconds", type=int, default=15)
    ap.add_argument("--impl", action="append", default=None)
    ap.add_argument("--json", default=None, help="write the raw figures here")
    args = ap.parse_args()

    ncpu = os.cpu_count() or 1
    impls = [core.resolve(i) for i in args.impl] if args.impl else core.implementations()
    threads = sorted({1, ncpu})
    raw: dict[str, list[float]] = {"openssl_comp_per_s": []}
    info = machine()
    info["load_before"] = os.getloadavg()
    info["selected"] = core.selected()
    t_start = time.time()
    for r in range(args.rounds):
        raw["openssl_comp_per_s"].append(openssl_compressions_per_s(args.openssl_seconds))
        for impl in impls:
            for n in threads:
                raw.setdefault(f"{impl} x{n}", []).append(measure(impl, n, args.duration, lambda *a: None))
        if args.cpuminer and shutil.which(args.cpuminer) or (args.cpuminer and os.path.exists(args.cpuminer)):
            for n in threads:
                hs = cpuminer_hs(args.cpuminer, n, args.cpuminer_seconds)
                if hs:
                    raw.setdefault(f"cpuminer-opt x{n}", []).append(hs)
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
        if key == "openssl_comp_per_s":
            continue
        name, n = key.rsplit(" x", 1)
        scale = med.get(f"{name} x{ncpu}", 0) / med[f"{name} x1"] if n == "1" and ncpu > 1 else None
        cyc = f"{tsc / med[key]:.0f}" if tsc and n == "1" else ""
        print(f"{key:<26} {med[key] / 1e6:8.2f} MH/s {min(vals) / 1e6:7.2f}..{max(vals) / 1e6:6.2f}"
              f" {med[key] / ossl:8.2f}x {'' if scale is None else f'{scale:5.2f}x':>6} {cyc:>10}")
    for n in threads:
        cpm = med.get(f"cpuminer-opt x{n}")
        if cpm:
            for impl in impls:
                print(f"{impl} x{n} / cpuminer-opt x{n}: {med[f'{impl} x{n}'] / cpm:.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "raw": raw, "median": med}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
