"""`miner bench`: hashes per second of each usable core implementation.

Each cell is one implementation at one thread count: that many threads call
miner.core.scan() with the implementation forced, on disjoint nonce ranges of
a fixed header at a real network target, for --duration seconds. The C core
releases the GIL, so the threads run in parallel. The rate of a cell is the
nonces scanned by all threads over the wall time until the last one stopped
(each thread stops after its current chunk, and that chunk is counted).

Implementations that can hash several header versions per nonce (the BIP 310
version rolling most pools allow; see miner.core.scan_versions) get a second
row per thread count, "IMPL +8 versions", measured with miner.core.scan_versions
and counted in hashes (nonces times versions): what the CPU device mines at when
the pool grants a version mask. --versions 1 leaves those rows out.

The "auto" row (--auto, on by default) runs what the CPU device runs when no
code is forced: each thread starts on the start-up choice and re-measures the
other codes on slices of its work (miner.backends.cpu_choice), switching when
one is clearly faster; the row shows the code each thread ended on.

Cycles per nonce are reported only where hardware counters are readable
(`perf stat -e cycles` works); virtual machines often say "<not supported>",
and then the column is left out rather than guessed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from miner import core
from miner.core import cpuinfo
from miner.errors import CoreError
from miner.units import human

log = logging.getLogger(__name__)

# The genesis block header (nonce field ignored by scan) and its own target
# (nbits 1d00ffff): a real job, so the early filter runs as it does when mining.
BENCH_HEADER = core.GENESIS_HEADER
BENCH_TARGET = 0xFFFF << 208
# Without --duration each cell gets TABLE_SECONDS / cells, at most DEFAULT_DURATION_S and at least
# MIN_DURATION_S: a quick look that stays under about 15 s on a CPU with many codes (AVX-512 and
# SHA-NI: 32 cells), and half-second cells where there are few.
DEFAULT_DURATION_S = 0.5
MIN_DURATION_S = 0.2
TABLE_SECONDS = 12.0
CHUNK = 1 << 18  # hashes per scan() call: short enough for a live rate, long enough to hide the call
# Versions rolled in the bench job's mask bits (0x1fffe000, the usual BIP 310 mask).
BENCH_VERSIONS = [0x20000000 | v << 13 for v in range(8)]


@dataclass
class Cell:
    impl: str
    threads: int
    hashes_per_s: list[float] = field(default_factory=list)  # one per repeat
    cycles_per_nonce: float | None = None
    versions: int = 1  # header versions per nonce (scan_versions when > 1)
    thread_codes: list[str] = field(default_factory=list)  # auto row: the code each thread ran last

    @property
    def label(self) -> str:
        base = self.impl if self.versions == 1 else f"{self.impl} +{self.versions} versions"
        return f"{base} [{', '.join(self.thread_codes)}]" if self.thread_codes else base

    @property
    def median(self) -> float:
        return statistics.median(self.hashes_per_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds per measurement (default: {DEFAULT_DURATION_S:g}, less where there are "
                             f"many cells, so that a table of many takes about {TABLE_SECONDS:g} s: a quick look; "
                             "figures for docs use --duration 3 --repeat 5)")
    parser.add_argument("--impl", action="append", default=None, metavar="NAME",
                        help="only this implementation (short or full name, or 'auto' for the adaptive choice; "
                             "repeatable); default: all usable")
    parser.add_argument("--threads", type=int, action="append", default=None, metavar="N",
                        help="thread count (repeatable); default: 1 and all cores")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measurements per cell; the table shows the median (default 1)")
    parser.add_argument("--versions", type=int, default=8, metavar="N",
                        help="also measure N header versions per nonce where the code can (BIP 310 rolling; "
                             "default 8, 1 = off)")
    parser.add_argument("--no-auto", dest="auto", action="store_false",
                        help="leave out the 'auto' row (the adaptive choice the CPU device makes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


AUTO = "auto"


def measure(impl: str, threads: int, duration: float, progress, versions: int = 1,
            codes: list[str] | None = None) -> float:
    """Hashes per second of `threads` threads scanning with `impl` for `duration` seconds.

    versions > 1: each nonce is hashed under that many header versions at once
    (miner.core.scan_versions); the rate counts every version's hash.
    impl "auto": each thread chooses and re-chooses its code as the CPU device
    does; `codes` (a list) receives the code each thread ran last.
    """
    from miner.backends.cpu_choice import EXPLORE_EVERY, CodeChooser, adaptive_candidates

    stop = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []
    span = (1 << 32) // threads
    last = [impl] * threads
    cands = adaptive_candidates(core.selected())   # what a CPU thread of the miner re-measures

    def worker(t: int) -> None:
        base = t * span
        pos = 0
        # The CPU device's schedule (first trial after 2 s, then every 30 s), the interval
        # shortened to half the cell in cells under a minute so they see a second trial.
        every = min(EXPLORE_EVERY, max(duration / 2, 2.0))
        chooser = CodeChooser(cands, core.selected(), explore_every=every) if impl == AUTO else None
        try:
            while not stop.is_set():
                code = chooser.next_impl() if chooser else impl
                nv = max(1, min(versions, core.max_versions(code)))
                n = CHUNK // nv
                if chooser is not None and chooser.exploring:
                    n = min(n, 1 << 16)
                if pos + n > span:
                    pos = 0  # wrap inside this thread's slice; the work is the same
                c0 = time.thread_time()
                if nv > 1:
                    core.scan_versions(BENCH_HEADER, BENCH_VERSIONS[:nv], base + pos, n, BENCH_TARGET,
                                       impl=code)
                else:
                    core.scan(BENCH_HEADER, base + pos, n, BENCH_TARGET, impl=code)
                if chooser is not None:
                    chooser.record(code, n * nv, time.thread_time() - c0)
                    last[t] = chooser.current
                pos += n
                counts[t] += n * nv
        except BaseException as exc:  # reported by the caller, never lost in a thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    deadline = t0 + duration
    while (now := time.perf_counter()) < deadline and not errors:
        progress(impl if versions == 1 else f"{impl} +{versions}v", threads, now - t0,
                 sum(counts) / max(now - t0, 1e-9))
        time.sleep(min(0.25, max(deadline - now, 0)))
    stop.set()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise CoreError(f"benchmark of {impl} failed: {errors[0]}") from errors[0]
    if codes is not None:
        codes[:] = last
    return sum(counts) / elapsed


def perf_cycles_supported() -> bool:
    """True when `perf stat -e cycles` counts real cycles here (not on most VMs)."""
    perf = shutil.which("perf")
    if perf is None:
        return False
    try:
        res = subprocess.run([perf, "stat", "-x,", "-e", "cycles", "--", "true"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    first = next((ln for ln in res.stderr.splitlines() if ",cycles" in ln), "")
    return res.returncode == 0 and first.split(",", 1)[0].strip().isdigit()


def _perf_cycles(impl: str, nonces: int) -> int | None:
    code = ("import miner.core as c, sys; "
            f"c.scan({BENCH_HEADER!r}, 0, int(sys.argv[1]), {BENCH_TARGET}, impl={impl!r})")
    try:
        res = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "--", sys.executable, "-c", code, str(nonces)],
                             capture_output=True, text=True, timeout=300)
        line = next(ln for ln in res.stderr.splitlines() if ",cycles" in ln)
        return int(line.split(",", 1)[0])
    except (OSError, subprocess.SubprocessError, StopIteration, ValueError):
        return None


def cycles_per_nonce(impl: str, nonces: int = 1 << 22) -> float | None:
    """Cycles per nonce from two runs (N and 2N nonces), so interpreter start-up cancels out."""
    one, two = _perf_cycles(impl, nonces), _perf_cycles(impl, 2 * nonces)
    if one is None or two is None or two <= one:
        return None
    return (two - one) / nonces


def _fmt_rate(hs: float) -> str:
    return human(hs, "H/s")


def _resolve_impls(wanted: list[str] | None) -> list[str]:
    usable = core.implementations()
    if not wanted:
        # The codes the automatic choice weighs, and portable C as the baseline; an
        # SSE-encoded SHA-NI code whose VEX build runs here only when named or chosen.
        cands = set(core.candidates()) | {core.selected()}
        return [n for n in usable if n in cands or n == "portable"]
    out = []
    for name in wanted:
        full = core.resolve(name)  # raises CoreError with the list of names
        if full not in out:
            out.append(full)
    return out


def _print_table(cells: list[Cell], selected: str, repeat: int, cycles_ok: bool, stream) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is a dependency; plain text if it is missing anyway
        Console = None
    one = {(c.impl, c.versions): c.median for c in cells if c.threads == 1}
    headers = ["implementation", "threads", "H/s (median)" if repeat > 1 else "H/s", "vs 1 thread"]
    if cycles_ok:
        headers.append("cycles/nonce")
    rows = []
    for c in cells:
        key = (c.impl, c.versions)
        scale = f"{c.median / one[key]:.2f}x" if key in one and c.threads > 1 else ""
        row = [c.label + (" *" if c.impl == selected and c.versions == 1 else ""), str(c.threads),
               _fmt_rate(c.median), scale]
        if cycles_ok:
            row.append(f"{c.cycles_per_nonce:.0f}" if c.cycles_per_nonce else "")
        rows.append(row)
    note = f"* selected: {selected}" + ("" if cycles_ok else "; cycles/nonce omitted: perf counters not readable here")
    if Console is not None:
        table = Table(*headers, title="miner bench", caption=note)
        for row in rows:
            table.add_row(*row)
        Console(file=stream).print(table)
    else:
        print("  ".join(headers), file=stream)
        for row in rows:
            print("  ".join(row), file=stream)
        print(note, file=stream)
    # Outside the table, unwrapped: the line to quote with the figures.
    print(f"CPU: {cpuinfo.describe()}", file=stream)


def cell_seconds(duration: float | None, cells: int) -> float:
    """Seconds per cell: --duration when given, else a share of TABLE_SECONDS (see DEFAULT_DURATION_S)."""
    if duration is not None:
        return duration
    return min(DEFAULT_DURATION_S, max(MIN_DURATION_S, TABLE_SECONDS / max(cells, 1)))


def plan(args: argparse.Namespace, impls: list[str], want_auto: bool, threads: list[int]) -> list[tuple[str, int, int]]:
    """The table's cells in order, as (implementation, threads, versions per nonce)."""
    cells: list[tuple[str, int, int]] = []
    if want_auto or (args.auto and not args.impl and len([n for n in impls if n != "portable"]) > 1):
        for versions in (1, args.versions) if args.versions > 1 else (1,):
            cells += [(AUTO, n, versions) for n in threads]
    for impl in impls:
        rolled = min(args.versions, core.max_versions(impl))
        for versions in (1, rolled) if rolled > 1 else (1,):
            cells += [(impl, n, versions) for n in threads]
    return cells


def run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        log.error("--duration must be a positive number of seconds, got %s", args.duration)
        return 2
    if args.repeat < 1:
        log.error("--repeat must be at least 1, got %s", args.repeat)
        return 2
    if not 1 <= args.versions <= len(BENCH_VERSIONS):
        log.error("--versions must be 1 to %d, got %s", len(BENCH_VERSIONS), args.versions)
        return 2
    ncpu = os.cpu_count() or 1
    threads = sorted(set(args.threads)) if args.threads else sorted({1, ncpu})
    if threads[0] < 1:
        log.error("--threads must be at least 1, got %s", threads[0])
        return 2
    try:
        want_auto = bool(args.impl) and AUTO in args.impl  # --impl auto: the adaptive row only
        impls = [] if want_auto and set(args.impl) == {AUTO} else _resolve_impls(
            [i for i in args.impl if i != AUTO] if args.impl else None)
        default = core.selected()
    except CoreError as exc:
        log.error("%s", exc)
        return 2

    tty = sys.stderr.isatty()

    def progress(impl: str, n: int, elapsed: float, rate: float) -> None:
        if tty:
            sys.stderr.write(f"\r  {impl:<16} x{n:<3} {elapsed:5.1f}/{duration:.1f} s  {_fmt_rate(rate):>12}   ")
            sys.stderr.flush()

    cycles_ok = perf_cycles_supported()
    todo = plan(args, impls, want_auto, threads)
    duration = cell_seconds(args.duration, len(todo) * args.repeat)
    cells: list[Cell] = []
    try:
        for impl, n, versions in todo:
            cell = Cell(impl, n, versions=versions)
            for _ in range(args.repeat):
                # Progress only on a terminal, overwritten in place: the table is the result.
                codes: list[str] = []
                cell.hashes_per_s.append(measure(impl, n, duration, progress, versions,
                                                 codes if impl == AUTO else None))
                cell.thread_codes = codes  # filled by the auto row only
            if impl != AUTO and cycles_ok and n == 1 and versions == 1:
                cell.cycles_per_nonce = cycles_per_nonce(impl)
            cells.append(cell)
    except CoreError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        if tty:
            sys.stderr.write("\n")
        log.error("benchmark interrupted")
        return 130
    finally:
        if tty:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()

    if args.json:
        doc = {
            "selected": default,
            "cpu_count": ncpu,
            "cpu": cpuinfo.cpu_facts(),
            "duration_s": duration,
            "repeat": args.repeat,
            "cycles_supported": cycles_ok,
            "results": [
                {**{k: v for k, v in asdict(c).items() if k != "hashes_per_s"},
                 "hashes_per_s": c.median, "runs": c.hashes_per_s}
                for c in cells
            ],
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(cells, default, args.repeat, cycles_ok, sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m miner.cli.bench) until the CLI wires `miner bench`."""
    parser = argparse.ArgumentParser(prog="miner bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
