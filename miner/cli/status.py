"""What the user sees: a live panel in a terminal, plain periodic lines otherwise,
one JSON object per line with --json, and a summary table at exit.

Everything here reads MinerSnapshot objects; nothing touches engine state.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Callable

from miner.engine.stats import MinerSnapshot
from miner.units import human


def fmt_rate(hs: float, unit: str = "H/s") -> str:
    return human(hs, unit)


def fmt_diff(d: float) -> str:
    return human(d)


def fmt_duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def efficiency_j_per_th(watts: float | None, snap: MinerSnapshot) -> float | None:
    """J/TH of the whole miner, from the rate miner.fleet.power chooses for efficiency."""
    from miner.fleet.power import efficiency_hashrate, joules_per_terahash
    return joules_per_terahash(watts, efficiency_hashrate(snap.hashrate, snap.elapsed))


class JsonEvents:
    """--json: one JSON object per line on stdout; callable as the engine's event sink."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, kind: str, data: dict) -> None:
        fields = {k: v for k, v in data.items() if k not in ("event", "time")}
        line = json.dumps({"event": kind, "time": round(time.time(), 3), **fields}, default=str)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # the reader went away; mining carries on

    def hashrate(self, snap: MinerSnapshot, final: bool = False) -> None:
        self("hashrate", {"final": final, "total": snap.hashrate, "effective": snap.effective_hashrate,
                          "devices": {d.name: d.hashrate["5s"] for d in snap.devices},
                          "accepted": snap.accepted, "rejected": snap.rejected, "stale": snap.stale,
                          "hw_errors": snap.hw_errors, "paused": snap.paused, "watts": snap.watts})


def status_line(snap: MinerSnapshot) -> str:
    pool = _active_pool(snap)
    parts = [
        fmt_duration(snap.elapsed),
        f"{fmt_rate(snap.hashrate['5s'])} (avg {fmt_rate(snap.hashrate['av'])})",
        f"A:{snap.accepted} R:{snap.rejected} S:{snap.stale} HW:{snap.hw_errors}",
        f"best {fmt_diff(snap.best_share)}",
    ]
    if pool is not None:
        parts.insert(1, f"{pool.url} diff {fmt_diff(pool.difficulty)}")
    eff = efficiency_j_per_th(snap.watts, snap)
    if eff is not None:
        parts.append(f"{snap.watts:.0f} W {human(eff, 'J/TH')}")
    if snap.paused:
        parts.append(f"PAUSED ({snap.pause_reason})")
    return " | ".join(parts)


def _active_pool(snap: MinerSnapshot):
    for p in snap.pools:
        if p.active:
            return p
    return None


def build_panel(snap: MinerSnapshot):
    from rich.panel import Panel
    from rich.table import Table

    table = Table(expand=True, box=None, pad_edge=False)
    for col in ("device", "status", "5s", "1m", "avg", "A", "R", "S", "HW", "best", "W", "°C"):
        table.add_column(col, justify="right" if col not in ("device", "status") else "left")
    for d in snap.devices:
        table.add_row(d.name, d.status, fmt_rate(d.hashrate["5s"]), fmt_rate(d.hashrate["1m"]),
                      fmt_rate(d.hashrate["av"]), str(d.accepted), str(d.rejected), str(d.stale),
                      str(d.hw_errors), fmt_diff(d.best_share),
                      f"{d.watts:.0f}" if d.watts is not None else "-",
                      f"{d.temperature_c:.0f}" if d.temperature_c is not None else "-")
    table.add_row("total", "paused" if snap.paused else "", fmt_rate(snap.hashrate["5s"]),
                  fmt_rate(snap.hashrate["1m"]), fmt_rate(snap.hashrate["av"]), str(snap.accepted),
                  str(snap.rejected), str(snap.stale), str(snap.hw_errors), fmt_diff(snap.best_share),
                  f"{snap.watts:.0f}" if snap.watts is not None else "-", "", style="bold")
    pool = _active_pool(snap)
    title = f"miner {snap.version} | up {fmt_duration(snap.elapsed)}"
    if pool is not None:
        title += f" | {pool.url} ({pool.status}) diff {fmt_diff(pool.difficulty)}"
    elif not snap.pools:
        title += " | offline benchmark"
    sub = f"effective {fmt_rate(snap.effective_hashrate)}"
    eff = efficiency_j_per_th(snap.watts, snap)
    if eff is not None:
        sub += f" | {human(eff, 'J/TH')}"
    if snap.paused:
        sub += f" | PAUSED: {snap.pause_reason}"
    return Panel(table, title=title, subtitle=sub)


class StatusReporter:
    """Live panel on a terminal (rich), else a plain line every ``interval`` seconds, on stderr."""

    def __init__(self, snapshot: Callable[[], MinerSnapshot], *, live: bool, interval: float,
                 json_events: JsonEvents | None = None, quiet: bool = False) -> None:
        self._snapshot = snapshot
        self._live_wanted = live and not quiet
        self._interval = interval
        self._json = json_events
        self._quiet = quiet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._live = None

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        if self._live_wanted:
            from rich.console import Console
            from rich.live import Live
            console = Console(stderr=True)
            with Live(build_panel(self._snapshot()), console=console, refresh_per_second=1,
                      transient=True) as live:
                last_json = 0.0
                while not self._stop.wait(1.0):
                    snap = self._snapshot()
                    live.update(build_panel(snap))
                    if self._json is not None and time.monotonic() - last_json >= self._interval:
                        self._json.hashrate(snap)
                        last_json = time.monotonic()
            return
        while not self._stop.wait(self._interval):
            snap = self._snapshot()
            if self._json is not None:
                self._json.hashrate(snap)
            if not self._quiet:
                print(status_line(snap), file=sys.stderr, flush=True)


def print_summary(snap: MinerSnapshot, stream: IO[str] | None = None) -> None:
    """The table printed at exit."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stderr, width=120)
    t = Table(title=f"miner summary after {fmt_duration(snap.elapsed)}")
    for col in ("device", "status", "avg", "A", "R", "S", "HW", "best"):
        t.add_column(col, justify="left" if col in ("device", "status") else "right")
    for d in snap.devices:
        t.add_row(d.name, d.status, fmt_rate(d.hashrate["av"]), str(d.accepted), str(d.rejected),
                  str(d.stale), str(d.hw_errors), fmt_diff(d.best_share))
    t.add_row("total", "", fmt_rate(snap.hashrate["av"]), str(snap.accepted), str(snap.rejected),
              str(snap.stale), str(snap.hw_errors), fmt_diff(snap.best_share), style="bold")
    console.print(t)
    for p in snap.pools:
        reasons = ", ".join(f"{k}: {v}" for k, v in p.reject_reasons.items()) or "-"
        console.print(f"pool {p.id} {p.url}: accepted {p.accepted} (diff {p.difficulty_accepted:g}), "
                      f"rejected {p.rejected} [{reasons}], stale {p.stale}, blocks {p.blocks}, "
                      f"best share {fmt_diff(p.best_share)}")
    console.print(f"effective hashrate {fmt_rate(snap.effective_hashrate)}; "
                  f"hashing {fmt_rate(snap.hashrate['av'])}")
