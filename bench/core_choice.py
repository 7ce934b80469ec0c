"""The CPU code choice end to end: N starts of `miner --benchmark` with the automatic (adaptive)
choice against the same command with each code forced (--core), interleaved run by run.

    python bench/core_choice.py [--starts 10] [--time-limit 20] [--threads 2]
                                [--core "shani(4-lane,vex)" --core "shani(2-lane,vex)" ...]

Each run's rate is the miner's own final hashrate report (--json, "total" "av":
hashes over the run), and the same per CPU second of the miner process
(rate x seconds x threads / CPU seconds used): on a host shared with other
work the wall-clock rate mostly measures how much CPU time the other work left,
so the comparison uses the CPU-time view (both are printed). Both count the start-up trial (a
one-time cost of the automatic choice, 0.6-0.9 s on Zen 1) as time not hashing; a third view, the wall-clock
rate from the moment the device threads start, leaves it out. The script prints every run, the median of each forced
code, and for each automatic start its ratio to the best forced code's median
and the code each thread ran at the end (from the INFO log). The target it
checks: every automatic start within 3% of the best forced code (docs/benchmarks/core.md), both by
its measured rate (which includes this host's run-to-run spread) and by the code it chose (that
code's forced median against the best one's).
With --no-trials every start also runs the automatic choice with its trial rounds while mining
switched off (the start-up trial kept), so the cost of those rounds shows as a paired ratio.
--without FAMILY (repeatable; e.g. avx512) leaves that family out of the automatic choice's
candidates, at start-up and while mining, to see the choice a CPU without it would make on this
core: a Sapphire Rapids core without its AVX-512 codes is a Golden Cove, the P-core of Intel's
client chips, which have SHA-NI but no AVX-512. Forced codes run as usual.
Uses the miner installed next to this Python (the venv's `miner`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MINER = str(Path(sys.executable).with_name("miner"))
NO_TRIALS = "auto, no trials"
# The miner with every CPU thread kept on its start-up code: the chooser never starts a trial round.
_NO_TRIALS = ("from miner.backends.cpu_choice import CodeChooser; "
              "CodeChooser.next_impl = lambda self: self.current; ")
# The miner with some code families left out of the automatic choice (--without): miner.core's
# candidates are the codes both the start-up trial and the CPU threads' trial rounds measure.
_WITHOUT = ("import miner.core as c; _cands = c._candidate_indices; "
            "c._candidate_indices = lambda: [i for i in _cands() if c._base(c._all_names()[i]) not in {families!r}]; ")
_MAIN = "import sys; {prelude}from miner.cli.command import main; sys.exit(main(sys.argv[1:]))"


def run_once(core: str | None, seconds: float, threads: int,
             without: tuple[str, ...] = ()) -> tuple[float, float, float, float, str]:
    cmd = [MINER, "--benchmark", "--time-limit", str(seconds), "-t", str(threads), "--json", "--log-level", "info"]
    prelude = ""
    if core == NO_TRIALS:
        prelude, core = _NO_TRIALS, None
    if core is None and without:
        prelude += _WITHOUT.format(families=set(without))
    if prelude:
        cmd[:1] = [sys.executable, "-c", _MAIN.format(prelude=prelude)]
    if core:
        cmd += ["--core", core]
    env = dict(os.environ)
    env.pop("MINER_CORE", None)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", env=env)
    out, err = p.communicate(timeout=seconds + 120)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - run_once.cpu_before
    run_once.cpu_before = ru.ru_utime + ru.ru_stime
    res = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    events = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    final = [e for e in events if e.get("final")]
    if res.returncode != 0 or not final:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-500:]}")
    # The steady rate leaves out the start-up: the engine's clock starts with the first job,
    # the threads hash once their device has started (with the automatic choice, after the
    # start-up trial), so the same hashes over the time from the last device start.
    t0 = min(e["time"] for e in events if e.get("event") == "job")
    t1 = max(e["time"] for e in events if e.get("event") == "device" and e.get("state") == "started")
    t_end = final[-1]["time"]
    codes: dict[str, str] = {}
    for ln in res.stderr.splitlines():
        if m := re.search(r"core: (\S+) selected", ln):
            codes = {"start": m.group(1)}
        if m := re.search(r"(cpu\d+): core \S+ -> (\S+)", ln):
            codes[m.group(1)] = m.group(2)
    rate = final[-1]["total"]["av"]
    steady = rate * (t_end - t0) / max(t_end - t1, 1e-9)
    return (rate, rate * seconds * threads / max(cpu, 1e-9), steady, t1 - t0,
            ", ".join(f"{k} {v}" for k, v in codes.items()))


run_once.cpu_before = 0.0


def _default_codes(without: tuple[str, ...] = ()) -> list[str]:
    import miner.core as core
    codes = [c for c in core.candidates() if (core.lane_count(c) or 0) >= 2 and core._base(c) not in without]
    # Both builds of each: the start-up choice weighs the winner's SSE build against its VEX build.
    codes += [core.encoding_twin(c) for c in codes if core.encoding_twin(c) in core.implementations()]
    return codes or core.candidates()[:3]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--core", action="append", default=None, metavar="NAME")
    ap.add_argument("--json", metavar="FILE", help="also write every run to FILE")
    ap.add_argument("--no-trials", action="store_true",
                    help="also run the automatic choice without its trial rounds while mining, every start")
    ap.add_argument("--without", action="append", default=[], metavar="FAMILY",
                    help="leave this code family (e.g. avx512) out of the automatic choice")
    args = ap.parse_args()
    without = tuple(args.without)
    # By default the SHA-NI candidates of the automatic choice with 2 or more lanes, in both builds.
    fixed = args.core or _default_codes(without)
    runs: list[dict] = []
    for i in range(args.starts):
        for core in (None, *([NO_TRIALS] if args.no_trials else []), fixed[i % len(fixed)]):
            wall, rate, steady, startup, codes = run_once(core, args.time_limit, args.threads, without)
            runs.append({"core": core or "auto", "rate": rate, "wall_rate": wall, "steady_rate": steady,
                         "startup_s": startup, "codes": codes, "time": time.time()})
            print(f"{time.strftime('%H:%M:%S')} {core or 'auto':16s} {rate / 1e6:7.2f} MH/s per CPU "
                  f"({wall / 1e6:6.2f} MH/s wall, {steady / 1e6:6.2f} after a start-up of {startup:.2f} s)  {codes}",
                  flush=True)
    med = {c: statistics.median(r["rate"] for r in runs if r["core"] == c) for c in fixed}
    best = max(med, key=med.get)
    print("\nper CPU second; forced code medians: " + ", ".join(f"{c} {m / 1e6:.2f} MH/s" for c, m in med.items()))
    autos = [r for r in runs if r["core"] == "auto"]
    within = sum(r["rate"] >= 0.97 * med[best] for r in autos)
    for r in autos:
        print(f"auto {r['rate'] / 1e6:7.2f} MH/s = {r['rate'] / med[best]:.3f}x best forced ({best})  [{r['codes']}]")
    print(f"auto median {statistics.median(r['rate'] for r in autos) / 1e6:.2f} MH/s; "
          f"within 3% of the best forced code in {within} of {len(autos)} starts; "
          f"worst forced code {min(med, key=med.get)} at {min(med.values()) / med[best]:.3f}x the best")
    # Wall-clock rates from the threads' start: what the start-up trial (a one-time cost, in
    # the per-CPU figures above as time not hashing) leaves out.
    smed = {c: statistics.median(r["steady_rate"] for r in runs if r["core"] == c) for c in fixed}
    sbest = max(smed, key=smed.get)
    sratios = [r["steady_rate"] / smed[sbest] for r in autos]
    print(f"after start-up (wall clock): auto median {statistics.median(sratios):.3f}x the best forced code "
          f"({sbest}), within 3% in {sum(x >= 0.97 for x in sratios)} of {len(autos)} starts; start-up "
          f"median {statistics.median(r['startup_s'] for r in autos):.2f} s auto, "
          f"{statistics.median(r['startup_s'] for r in runs if r['core'] in fixed):.2f} s forced")
    # The choice itself, apart from the host's run-to-run spread: the forced median of the code
    # each start chose, over the best forced median (a code not forced here counts as a miss).
    def quality(code: str) -> float:
        return med.get(code, 0.0) / med[best]
    start_ok = end_ok = 0
    for r in autos:
        parts = dict(p.split(" ", 1) for p in r["codes"].split(", ") if " " in p)
        start = parts.get("start", "")
        end = [parts.get(f"cpu{i}", start) for i in range(args.threads)]
        start_ok += quality(start) >= 0.97
        end_ok += all(quality(c) >= 0.97 for c in end)
    print(f"the code chosen at start-up is within 3% of the best forced code (by forced medians) in {start_ok} of "
          f"{len(autos)} starts; every thread's code at the end of the run in {end_ok} of {len(autos)}")
    if args.no_trials:
        bare = [r for r in runs if r["core"] == NO_TRIALS]
        q = [a["rate"] / b["rate"] for a, b in zip(autos, bare)]
        print(f"auto over auto without trial rounds, paired by start: median {statistics.median(q):.3f}x "
              f"({', '.join(f'{x:.3f}' for x in q)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": med, "best": best}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
