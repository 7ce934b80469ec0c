"""What the user sees: a live panel in a terminal, plain periodic lines otherwise,
one JSON object per line with --json, and a summary table at exit.

Everything here reads MinerSnapshot objects; nothing touches engine state.
"""
from __future__ import annotations

import json
import os
import re
import select
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
    ]
    if snap.pools:
        parts += [f"A:{snap.accepted} R:{snap.rejected} S:{snap.stale} HW:{snap.hw_errors}",
                  f"best {fmt_diff(snap.best_share)}"]
    else:  # offline benchmark: nothing is submitted, so there are no share counts to show
        parts += [f"HW:{snap.hw_errors}", "offline benchmark"]
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


def short_name(name: str, width: int = 18) -> str:
    """A device name that fits ``width`` and still tells two boards apart.

    'bm1370:/dev/ttyUSB0' -> 'bm1370:ttyUSB0', 'icarus:socket://127.0.0.1:4000' -> 'icarus:tcp:4000',
    'bm1397:usb:0403:6015@1:7' -> 'bm1397:usb@1:7', '.../serial/by-id/usb-FTDI_FT230X_D30AB1C2-if00-port0'
    -> 'FTDI_FT230X_D30AB1C2'; whatever is still too long loses its middle,
    since the end (port number, bus address) is what differs between sticks.
    """
    driver, sep, target = name.partition(":")
    if sep:
        if target.startswith("/dev/serial/"):
            # udev's stable names: usb-VENDOR_PRODUCT_SERIAL-if00-port0; the serial number is what differs
            target = re.sub(r"-if\d+(-port\d+)?$", "", target.rsplit("/", 1)[-1]).removeprefix("usb-")
        elif target.startswith("/dev/"):
            target = target[len("/dev/"):]
        elif "://" in target:
            target = target.split("://", 1)[1]
            for loopback in ("127.0.0.1:", "localhost:"):
                if target.startswith(loopback):
                    target = "tcp:" + target[len(loopback):]
        elif target.startswith("usb:") and "@" in target:
            target = "usb@" + target.split("@", 1)[1]
        name = f"{driver}:{target}"
    if len(name) <= width:
        return name
    keep = width - 1
    head = keep // 3
    return name[:head] + "\u2026" + name[len(name) - (keep - head):]


def fmt_rate_short(hs: float, unit: str = "H/s") -> str:
    """Three significant digits: '1.23 TH/s', '12.3 GH/s', '123 MH/s' (at most 9 characters)."""
    return human(hs, unit, digits=3)


_SHORT_STATUS = {"starting": "start", "disabled": "off", "paused": "pause"}
PANEL_PADDING = 4       # panel border and padding, left and right
NAME_MIN, NAME_MAX = 8, 24


def build_panel(snap: MinerSnapshot, width: int = 80):
    """The live panel, laid out for a terminal ``width`` columns wide (80 by default).

    Every device is one line: name, status, 5 s and average rate, A/R/HW, best share, and watts /
    temperature where some device reports them. Below 72 columns watts and temperature go, below
    66 the best share; device names get what is left (short_name keeps the part that differs).
    An offline benchmark submits nothing: HW only, no A/R, best or effective rate.
    """
    from rich.panel import Panel
    from rich.table import Table

    offline = not snap.pools
    show_w = width >= 72 and any(d.watts is not None for d in snap.devices)
    show_t = width >= 72 and any(d.temperature_c is not None for d in snap.devices)
    show_best = width >= 66 and not offline
    headers = ["status", "5s", "avg"] + (["HW"] if offline else ["A/R/HW"]) + (["best"] if show_best else []) \
        + (["W"] if show_w else []) + (["\u00b0C"] if show_t else [])

    def cells(status, rates, a, r, hw, best, watts, temp) -> list[str]:
        out = [_SHORT_STATUS.get(status, status)[:5], fmt_rate_short(rates["5s"]), fmt_rate_short(rates["av"])]
        out.append(str(hw) if offline else f"{a}/{r}/{hw}")
        if show_best:
            out.append(fmt_diff(best))
        if show_w:
            out.append(f"{watts:.0f}" if watts is not None else "-")
        if show_t:
            out.append(f"{temp:.0f}" if temp is not None else "-")
        return out

    rows = [(d.name, cells(d.status, d.hashrate, d.accepted, d.rejected, d.hw_errors, d.best_share, d.watts,
                           d.temperature_c)) for d in snap.devices]
    total = None
    if len(snap.devices) > 1:
        total = cells("paused" if snap.paused else "", snap.hashrate, snap.accepted, snap.rejected, snap.hw_errors,
                      snap.best_share, snap.watts, None)
    widths = [max([len(h)] + [len(c[i]) for _, c in rows] + ([len(total[i])] if total else []))
              for i, h in enumerate(headers)]
    room = width - PANEL_PADDING - sum(widths) - 2 * len(headers)
    name_width = max(NAME_MIN, min(NAME_MAX, room, max([len(short_name(n, NAME_MAX)) for n, _ in rows] + [6])))

    table = Table(box=None, pad_edge=False, padding=(0, 1))
    table.add_column("device", no_wrap=True, overflow="ellipsis", max_width=name_width)
    for h in headers:
        table.add_column(h, justify="left" if h == "status" else "right", no_wrap=True)
    for name, c in rows:
        table.add_row(short_name(name, name_width), *c)
    if total is not None:
        table.add_row("total", *total, style="bold")

    pool = _active_pool(snap)
    title = f"miner | up {fmt_duration(snap.elapsed)}"
    if pool is not None:
        title += f" | {pool.url.split('://', 1)[-1]}{'' if pool.status == 'alive' else f' ({pool.status})'}" \
                 f" diff {fmt_diff(pool.difficulty)}"
    elif offline:
        title += " | offline benchmark"
    parts = [] if offline else [f"effective {fmt_rate_short(snap.effective_hashrate)}"]
    eff = efficiency_j_per_th(snap.watts, snap)
    if eff is not None:
        parts.append(human(eff, 'J/TH'))
    if snap.paused:
        parts.append(f"PAUSED: {snap.pause_reason}")
    parts.append("q quit, p pause")
    return Panel(table, title=title, subtitle=" | ".join(parts), expand=False)


class _Keys:
    """The terminal while the live panel runs: no echo, no line buffering (so ^C and keys leave no
    marks that would shift the panel and strand its border), keys read one at a time; restored on close.
    Signals still work: Ctrl-C stays SIGINT."""

    def __init__(self, keys: dict[str, Callable[[], None]]) -> None:
        self._keys = keys
        self._fd: int | None = None
        self._saved = None

    def open(self) -> None:
        try:
            import termios
            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return
            self._saved = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)   # lflags
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 0, 0
            termios.tcsetattr(fd, termios.TCSANOW, mode)
            self._fd = fd
            _OPEN_KEYS.add(self)
        except (ImportError, OSError, ValueError, AttributeError):
            self._fd = None

    def poll(self) -> None:
        if self._fd is None:
            return
        try:
            r, _, _ = select.select([self._fd], [], [], 0)
            data = os.read(self._fd, 64) if r else b""
        except OSError:
            return
        for ch in data.decode("latin-1").lower():
            fn = self._keys.get(ch)
            if fn is not None:
                fn()

    def close(self) -> None:
        if self._fd is not None and self._saved is not None:
            import termios
            try:
                termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)
            except (OSError, termios.error):
                pass
        self._fd = None
        _OPEN_KEYS.discard(self)


_OPEN_KEYS: set[_Keys] = set()


def restore_terminal() -> None:
    """Give the terminal its echo back; for exits that skip the normal close (a second Ctrl-C)."""
    for keys in list(_OPEN_KEYS):
        keys.close()


class StatusReporter:
    """Live panel on a terminal (rich), else a plain line every ``interval`` seconds, on stderr.

    keys: single keys and what they do while the panel shows (cgminer's q and p)."""

    FIRST_LINE_S = 2.0   # without a terminal the first line comes early, so a short run shows one

    def __init__(self, snapshot: Callable[[], MinerSnapshot], *, live: bool, interval: float,
                 json_events: JsonEvents | None = None, quiet: bool = False,
                 keys: dict[str, Callable[[], None]] | None = None) -> None:
        self._snapshot = snapshot
        self._live_wanted = live and not quiet
        self._interval = interval
        self._json = json_events
        self._quiet = quiet
        self._keys = _Keys(keys or {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)
        self._keys.close()

    def _run(self) -> None:
        if self._live_wanted:
            self._run_live()
            return
        wait = min(self._interval, self.FIRST_LINE_S)
        while not self._stop.wait(wait):
            wait = self._interval
            snap = self._snapshot()
            if self._json is not None:
                self._json.hashrate(snap)
            if not self._quiet:
                print(status_line(snap), file=sys.stderr, flush=True)

    def _run_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        console = Console(stderr=True)
        self._keys.open()
        try:
            with Live(build_panel(self._snapshot(), console.width), console=console, auto_refresh=False,
                      transient=True) as live:
                last_json = last_draw = 0.0
                while not self._stop.wait(0.1):
                    self._keys.poll()
                    now = time.monotonic()
                    if now - last_draw >= 1.0:
                        snap = self._snapshot()
                        live.update(build_panel(snap, console.width), refresh=True)
                        last_draw = now
                        if self._json is not None and now - last_json >= self._interval:
                            self._json.hashrate(snap)
                            last_json = now
        finally:
            self._keys.close()


def print_summary(snap: MinerSnapshot, stream: IO[str] | None = None) -> None:
    """The table printed at exit. An offline benchmark submits nothing: it shows rates and hardware errors only."""
    from rich.console import Console
    from rich.table import Table

    offline = not snap.pools
    console = Console(file=stream or sys.stderr, width=120)
    t = Table(title=f"miner {'benchmark ' if offline else ''}summary after {fmt_duration(snap.elapsed)}")
    cols = ("device", "status", "avg", "HW") if offline else ("device", "status", "avg", "A", "R", "S", "HW", "best")
    for col in cols:
        t.add_column(col, justify="left" if col in ("device", "status") else "right")

    def row(name, status, rates, a, r, st, hw, best, **kw) -> None:
        cells = [name, status, fmt_rate(rates["av"])]
        cells += [str(hw)] if offline else [str(a), str(r), str(st), str(hw), fmt_diff(best)]
        t.add_row(*cells, **kw)

    for d in snap.devices:
        row(d.name, d.status, d.hashrate, d.accepted, d.rejected, d.stale, d.hw_errors, d.best_share)
    row("total", "", snap.hashrate, snap.accepted, snap.rejected, snap.stale, snap.hw_errors, snap.best_share,
        style="bold")
    console.print(t)
    for p in snap.pools:
        reasons = ", ".join(f"{k}: {v}" for k, v in p.reject_reasons.items()) or "-"
        console.print(f"pool {p.id} {p.url}: accepted {p.accepted} (diff {p.difficulty_accepted:g}), "
                      f"rejected {p.rejected} [{reasons}], stale {p.stale}, blocks {p.blocks}, "
                      f"best share {fmt_diff(p.best_share)}")
    if offline:
        console.print(f"offline benchmark: hashing {fmt_rate(snap.hashrate['av'])}; no shares are submitted")
    else:
        console.print(f"effective hashrate {fmt_rate(snap.effective_hashrate)}; "
                      f"hashing {fmt_rate(snap.hashrate['av'])}")
