"""The engine at full speed, counted by the pool: `miner` mining against the real test pool
(stratum-pool-sha256 from npm, tests/pool) against `miner bench` on the same threads, interleaved.

    python bench/engine_pool.py [--threads 2] [--seconds 30] [--rounds 3] [--difficulty 0.0002]
                                [--bench-seconds S/2] [--rolling] [--core NAME]

The rounds run B P B P ... P B, back to back:
  B  `miner bench --threads N --versions 1 --json`, its "auto" row (the code choice the miner makes);
  P  `miner -o <pool> -t N --time-limit S --json` against a fresh pool; the pool-side rate is the sum
     of the difficulty of the shares the pool itself accepted, times 2^32, over the time from the
     miner's first job to its exit (start-up included).
Each P is compared with the mean of the B cells on both sides of it, so a host that speeds up or
slows down during the run does not tilt the ratio. Printed per round: both rates, their ratio
(also per CPU second of each process, x threads: on a shared host the wall rates mostly measure
what other work left), the miner's own hashrate report and the pool-side rate over it, and the
CPU time of the pool process, of the miner process and of this script, as shares of one core
(so what else ran on the same cores is visible), and the miner's own threads sampled once a second
from /proc: its main thread (the event loop) and the hashing threads, as shares of one core.
Medians over rounds at the end, and the
ratio of all rounds pooled with its share-count noise (1/sqrt(shares)).
Each ratio is also given over the hashing window: from the miner's devices starting (after its
start-up trial, 0.5-0.9 s on a 2-vCPU Zen 3) to its final hashrate report, which is what a bench
cell times (its own start-up trial runs before the cell's clock starts).
--core NAME forces one code in both the miner (--core) and the bench (its NAME row), so the
engine's own cost is measured apart from its choice of code.
Needs node and `npm ci --prefix tests/pool`.

--rolling measures the BIP 310 path instead: the real test pool refuses version rolling (it answers
mining.configure with an empty result), so the pool is the project's own (tests/fakepool.py, on a
thread of this script), which grants the mask 1fffe000 and accepts a share only when the header
rebuilt from the job, extranonce2, ntime, nonce and rolled version bits hashes below its target; the
bench cells are `miner bench --versions 8`'s "auto" row with 8 versions. That pool's CPU is part of
this script's.

The script reads the pool's verdicts only after the miner has exited (a fresh pool per round
sees only this miner's shares), so it takes no CPU from the miner while it mines beyond
draining the two processes' output. The per-CPU-second figures count each process's whole CPU
time, start-up included (the bench's imports and start-up trial are a larger part of a shorter cell).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import start_real_pool  # noqa: E402  (the test suite's launcher of the real pool)

MINER = str(Path(sys.executable).with_name("miner"))
TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(stat: Path, children: bool) -> float:
    """CPU seconds (user + system, and the reaped children's with children) from a /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()   # the name in parentheses may hold spaces
    return sum(int(x) for x in fields[11:15 if children else 13]) / TICK


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process pid and its reaped children, from /proc."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"), children=True)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of process pid, by thread id, from /proc."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _stat_cpu(task / "stat", children=False)
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
    return out


class ThreadSampler(threading.Thread):
    """Samples the miner's threads once a second until it exits: the last sample of each thread is
    its CPU time to within a second. Shows whether the hashing threads get whole cores and what the
    main thread (the event loop: Stratum, share checks, reports) takes beside them."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="thread-sampler", daemon=True)
        self.pid, self.seen, self.stop = pid, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.seen.update(thread_cpu(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return

    def split(self, threads: int, window: float) -> dict:
        """Shares of one core over window: the main thread, the `threads` busiest others (the hashing
        threads), and all the rest."""
        main = self.seen.get(self.pid, 0.0)
        others = sorted((c for t, c in self.seen.items() if t != self.pid), reverse=True)
        return {"main": main / window, "hashers": [c / window for c in others[:threads]],
                "rest": sum(others[threads:]) / window}


def _cpu(who: int) -> float:
    """User + system CPU seconds of resource.RUSAGE_SELF or RUSAGE_CHILDREN (reaped children)."""
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


class RollingPool:
    """tests/fakepool.py behind the interface of conftest's real-pool handle (url, user, shares(), ...)."""

    def __init__(self, difficulty: float) -> None:
        from test_api_pool import PoolThread  # noqa: E402  (the test suite's in-process pool)
        # Its job is always the same; a fresh extranonce1 per round gives each round its own headers
        # (with one, every round would re-hash the same nonces and see the same shares).
        self.thread = PoolThread(difficulty=difficulty, extranonce1=os.urandom(4).hex())
        self.pool = self.thread.pool
        self.url, self.user, self.password, self.proc = self.pool.url, "worker.1", "x", None
        self.difficulty = difficulty

    def shares(self) -> list[dict]:
        return [{"difficulty": self.difficulty, "valid": True}] * len(self.pool.accepted)

    @property
    def invalid(self) -> int:
        return len(self.pool.rejected)

    def stop(self) -> None:
        self.thread.close()


def bench_rate(threads: int, seconds: float, versions: int = 1, code: str | None = None) -> tuple[float, float]:
    """(rate, rate per CPU second x threads) of `miner bench`'s auto row, or of code's row when a code
    is forced (with that many versions)."""
    c0 = _cpu(resource.RUSAGE_CHILDREN)
    impl = ["--impl", code, "--no-auto"] if code else ["--impl", "auto"]
    res = subprocess.run([MINER, "bench", *impl, "--threads", str(threads), "--duration", str(seconds),
                          "--versions", str(versions), "--json"], capture_output=True, text=True,
                         timeout=seconds * 40 + 120, cwd="/")
    doc = json.loads(res.stdout)
    (auto,) = [r for r in doc["results"] if r["impl"] == (code or "auto") and r["threads"] == threads
               and r["versions"] == versions]
    cpu = _cpu(resource.RUSAGE_CHILDREN) - c0
    cells = 2 if versions > 1 else 1  # with --versions N the bench also runs the 1-version cell, as long
    return auto["hashes_per_s"], auto["hashes_per_s"] * seconds * threads * cells / max(cpu, 1e-9)


def pool_round(threads: int, seconds: float, difficulty: float, rolling: bool = False,
               code: str | None = None) -> dict:
    pool = RollingPool(difficulty) if rolling else start_real_pool(difficulty)
    try:
        base = len(pool.shares())
        cmd = [MINER, "-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", str(threads),
               "--time-limit", str(seconds), "--json"] + (["--core", code] if code else [])
        pool_cpu0, self_cpu0 = proc_cpu(pool.proc.pid) if pool.proc else 0.0, _cpu(resource.RUSAGE_SELF)
        log = tempfile.TemporaryFile("w+")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd="/")
        sampler = ThreadSampler(p.pid)
        sampler.start()
        first_job = started = final = None
        final_at = 0.0
        for line in p.stdout:
            # Only three events matter; the rest (one per share) are skipped unparsed.
            if first_job is None and '"job"' in line and json.loads(line).get("event") == "job":
                first_job = time.monotonic()
            elif started is None and '"started"' in line and json.loads(line).get("event") == "device":
                started = time.monotonic()
            elif '"final"' in line:
                ev = json.loads(line)
                if ev.get("event") == "hashrate" and ev.get("final"):
                    final, final_at = ev, time.monotonic()
        sampler.stop.set()
        sampler.join()
        _, _, ru = os.wait4(p.pid, 0)
        end = time.monotonic()
        self_cpu = _cpu(resource.RUSAGE_SELF) - self_cpu0
        time.sleep(0.5)  # verdicts of the last shares, sent before the miner exited
        pool_cpu = proc_cpu(pool.proc.pid) - pool_cpu0 if pool.proc else 0.0
        acc = [e["difficulty"] for e in pool.shares()[base:] if e["valid"]]
        log.seek(0)
        text = log.read()
        log.close()
        # The code the start-up trial chose and every change of code while mining (both logged at info).
        m = re.search(r"core: (\S+) selected", text)
        switches = re.findall(r"(cpu\d+): core (\S+) -> (\S+) ", text)
        window = end - first_job
        # The bench cells time hashing only (their start-up trial runs before the cell's clock), so
        # the like-for-like window is from the devices' start (after the start-up trial) to the
        # miner's final report; every share was found inside it.
        hashing = (final_at or end) - (started or first_job)
        return {"pool_rate": sum(acc) * 2 ** 32 / window, "shares": len(acc), "hashing": hashing,
                "pool_rate_hashing": sum(acc) * 2 ** 32 / hashing, "startup": (started or first_job) - first_job,
                "miner_rate": final["total"]["av"] if final else 0.0, "window": window,
                "pool_cpu": pool_cpu / window, "miner_cpu": (ru.ru_utime + ru.ru_stime) / window,
                "self_cpu": self_cpu / window, "invalid": pool.invalid,
                "start_code": m.group(1) if m else "?", "switches": [" ".join(x) for x in switches],
                "threads_cpu": sampler.split(threads, window)}
    finally:
        pool.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--difficulty", type=float, default=0.0002)
    ap.add_argument("--bench-seconds", type=float, default=None, help="length of each bench cell (default S/2)")
    ap.add_argument("--rolling", action="store_true",
                    help="BIP 310 version rolling: the project's own pool, which grants a mask, and bench cells with 8 versions")
    ap.add_argument("--core", default=None, metavar="NAME",
                    help="force one code in both (miner --core NAME, bench --impl NAME): the engine's cost "
                         "apart from the choice")
    a = ap.parse_args()
    code = None
    if a.core:
        from miner import core
        code = core.resolve(a.core)  # the bench row's full name, e.g. shani(3-lane,vex)
    versions = 8 if a.rolling else 1
    bench_s = a.bench_seconds or a.seconds / 2
    rows = []
    before = bench_rate(a.threads, bench_s, versions, code)
    for r in range(a.rounds):
        got = pool_round(a.threads, a.seconds, a.difficulty, a.rolling, code)
        after = bench_rate(a.threads, bench_s, versions, code)
        bench = (before[0] + after[0]) / 2
        bench_cpu = (before[1] + after[1]) / 2
        got["bench"] = bench
        got["bench_cells"] = (before[0], after[0])
        got["ratio"] = got["pool_rate"] / bench
        got["ratio_hashing"] = got["pool_rate_hashing"] / bench
        # Per CPU second of the process (x threads): on a shared host the wall rates mostly
        # measure the CPU time other work left over.
        got["bench_cpu"] = bench_cpu
        got["pool_rate_cpu"] = got["pool_rate"] * a.threads / max(got["miner_cpu"], 1e-9)
        got["ratio_cpu"] = got["pool_rate_cpu"] / bench_cpu
        got["pool_over_own"] = got["pool_rate"] / got["miner_rate"] if got["miner_rate"] else 0.0
        rows.append(got)
        before = after
        cells = "|".join(f"{b / 1e6:.2f}" for b in got["bench_cells"])
        tc = got["threads_cpu"]
        print(f"round {r + 1}: bench {bench / 1e6:.2f} ({cells}) MH/s  pool-side {got['pool_rate'] / 1e6:.2f} MH/s "
              f"({got['shares']} shares, {got['invalid']} invalid)  ratio {got['ratio']:.3f}  "
              f"(hashing window {got['ratio_hashing']:.3f}: start-up {got['startup']:.2f} s, "
              f"{got['window'] - got['hashing']:.2f} s outside it)  "
              f"miner's own report {got['miner_rate'] / 1e6:.2f} MH/s  "
              f"CPU: pool {100 * got['pool_cpu']:.1f}%, miner {100 * got['miner_cpu']:.1f}%, "
              f"this script {100 * got['self_cpu']:.1f}% of one core; "
              f"per CPU second: bench {bench_cpu / 1e6:.2f}, pool-side {got['pool_rate_cpu'] / 1e6:.2f} MH/s, "
              f"ratio {got['ratio_cpu']:.3f}; pool-side / miner's own {got['pool_over_own']:.3f}; "
              f"started on {got['start_code']}, switches: {', '.join(got['switches']) or 'none'}; "
              f"miner threads (to within 1 s): main {100 * tc['main']:.1f}%, hashing "
              f"{'+'.join(f'{100 * h:.1f}' for h in tc['hashers'])}%, rest {100 * tc['rest']:.1f}%",
              flush=True)
    keys = ("bench", "pool_rate", "ratio", "ratio_hashing", "startup", "miner_rate", "pool_cpu", "miner_cpu", "self_cpu", "bench_cpu",
            "pool_rate_cpu", "ratio_cpu", "pool_over_own", "shares")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    # All rounds pooled: the pool's credited hashes over what the bench rate would have done in
    # the same windows. Its share-count noise alone is 1/sqrt(shares) (Poisson).
    credited = sum(r["pool_rate"] * r["window"] for r in rows)
    expected = sum(r["bench"] * r["window"] for r in rows)
    total_shares = sum(r["shares"] for r in rows)
    hashing = credited / sum(r["bench"] * r["hashing"] for r in rows)
    pooled = {"pooled_ratio": credited / expected, "pooled_ratio_hashing": hashing, "pooled_shares": total_shares,
              "pooled_count_noise": 1 / max(total_shares, 1) ** 0.5}
    print(json.dumps({"threads": a.threads, "core": code or "auto", "seconds": a.seconds, "bench_seconds": bench_s, "rolling": a.rolling,
                      "difficulty": a.difficulty, **med, **pooled, "ratios": [round(r["ratio"], 4) for r in rows],
                      "ratios_hashing": [round(r["ratio_hashing"], 4) for r in rows],
                      "ratios_cpu": [round(r["ratio_cpu"], 4) for r in rows],
                      "main_thread_cpu": [round(r["threads_cpu"]["main"], 4) for r in rows],
                      "hashing_threads_cpu": [[round(h, 4) for h in r["threads_cpu"]["hashers"]] for r in rows]},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
