"""Curtailment: pause and resume mining by API command, schedule, energy price and profitability.

Several sources can want a pause at once (a schedule window and a price spike,
say). The Curtailer keeps the set of active reasons; mining is paused while the
set is non-empty and resumed only when the last reason clears. It is the one
owner of pause state on this side: sources never call the engine themselves.

The engine keeps the pool session alive while paused (it only stops handing out
work), so a pause costs no reconnect. API pause/resume act synchronously; each
polled source runs on its own thread at its own interval.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from typing import Callable

from miner.fleet import profit
from miner.errors import ConfigError, MinerError, ProtocolError
from miner.engine.stats import MinerControl
from miner.units import flag_number

log = logging.getLogger(__name__)

TICK_S = 0.25
MAX_FEED_BYTES = 64 * 1024
FEED_TIMEOUT_S = 20.0


class Curtailer:
    """The set of active pause reasons, applied to a MinerControl."""

    def __init__(self, control: MinerControl, sources: list["Source"] | None = None) -> None:
        self.control = control
        self.sources = list(sources or ())
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}   # key -> the reason string given to control.pause
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.changes = 0                     # state changes applied (pause or resume calls)

    # -- the reason set ------------------------------------------------------
    # The engine keeps its own set of pause reasons keyed by the reason string
    # (pause(r) adds r, resume(r) removes r), so each source's reason string is
    # kept stable while it holds, and is removed with exactly the string it added.
    def hold(self, key: str, text: str) -> None:
        """Source `key` wants mining paused because of `text` (keep `text` stable while holding)."""
        reason = f"{key}: {text}"
        with self._lock:
            old = self._reasons.get(key)
            if old == reason:
                return
            self._reasons[key] = reason
            log.warning("curtailment: pause by %s", reason)
            self.control.pause(reason)
            if old is not None:  # reason changed: add the new one before dropping the old, no gap
                self.control.resume(old)
            self.changes += 1

    def release(self, key: str, why: str = "") -> None:
        """Source `key` no longer wants a pause; `why` goes to the log."""
        with self._lock:
            old = self._reasons.pop(key, None)
            if old is None:
                return
            left = len(self._reasons)
            log.warning("curtailment: %s cleared%s%s", key, f" ({why})" if why else "",
                        f"; {left} other reason(s) still hold" if left else "")
            self.control.resume(old)
            self.changes += 1

    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reasons)

    def status(self) -> dict[str, object]:
        """Facts for the API and metrics: reasons plus whatever each source reports."""
        out: dict[str, object] = {"reasons": self.reasons()}
        for s in self.sources:
            out.update(s.facts())
        return out

    # -- the polling threads --------------------------------------------------
    # One thread per source: a price command that takes its full timeout must not
    # delay a schedule edge. The reason set's lock keeps their effects ordered.
    def start(self) -> None:
        if not self.sources or self._threads:
            return
        for src in self.sources:
            t = threading.Thread(target=self._loop, args=(src,), name=f"curtail-{src.key}", daemon=True)
            self._threads.append(t)
            t.start()

    def _loop(self, s: "Source") -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                s.poll(self)
            except MinerError as e:
                s.fail(str(e))
            except Exception as e:  # a source bug must not end curtailment
                log.exception("curtailment source %s failed", s.key)
                s.fail(f"{type(e).__name__}: {e}")
            self._stop.wait(max(TICK_S / 5, s.interval - (time.monotonic() - t0)))

    def close(self) -> None:
        self._stop.set()
        threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                # A feed stuck in its (bounded) fetch is a daemon thread: do not hold up shutdown for it.
                t.join(timeout=2.0)


class Source:
    """One reason to pause, polled every `interval` seconds."""

    key = "source"
    interval = 1.0

    def __init__(self) -> None:
        self._failing = False

    def poll(self, c: Curtailer) -> None:
        raise NotImplementedError

    def fail(self, msg: str) -> None:
        # One log line per failure streak: a price feed down for an hour must not flood the log.
        # The pause state is left as it was: no data is not a reason to change it.
        if not self._failing:
            log.warning("curtailment %s: %s (keeping the current state until it recovers)", self.key, msg)
        self._failing = True

    def ok(self) -> None:
        if self._failing:
            log.info("curtailment %s: recovered", self.key)
        self._failing = False

    def facts(self) -> dict[str, object]:
        return {}


# -- schedule -----------------------------------------------------------------
_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> tuple[int, int]:
    """'22:00-06:00' -> (1320, 360) minutes after local midnight; end may be 24:00."""
    m = _WINDOW_RE.match(str(text))
    if not m:
        raise ConfigError(f"pause window {text!r} must look like HH:MM-HH:MM, e.g. 22:00-06:00")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ConfigError(f"pause window {text!r} has an invalid time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ConfigError(f"pause window {text!r} is empty; use 00:00-24:00 for all day")
    return start, end


def in_window(minute: int, window: tuple[int, int]) -> bool:
    start, end = window
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # crosses midnight


class ScheduleSource(Source):
    key = "schedule"
    interval = TICK_S  # a clock read: cheap, and a window edge is acted on within a second

    def __init__(self, windows: list[str], now: Callable[[], _dt.datetime] = _dt.datetime.now) -> None:
        super().__init__()
        self.texts = [w.strip() for item in windows for w in str(item).split(",") if w.strip()]
        self.windows = [parse_window(w) for w in self.texts]
        self.now = now

    def active(self) -> str | None:
        t = self.now()
        minute = t.hour * 60 + t.minute
        for text, w in zip(self.texts, self.windows):
            if in_window(minute, w):
                return text
        return None

    def poll(self, c: Curtailer) -> None:
        hit = self.active()
        if hit:
            c.hold(self.key, f"window {hit} local time")
        else:
            c.release(self.key, "outside all pause windows")


# -- numeric feeds (energy price, BTC price) ----------------------------------
def parse_number(body: str, field: str | None = None) -> float:
    """A number from a feed: plain text ('0.123', '0.123 EUR/kWh'), a JSON number, or field in JSON."""
    text = body.strip()
    value: object = None
    if field:
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ProtocolError(f"feed is not JSON, cannot read field {field!r}") from e
        for part in field.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise ProtocolError(f"feed has no field {field!r}")
    else:
        m = re.search(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)
        value = m.group(0) if m else None
    try:
        v = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise ProtocolError(f"feed gave no number: {text[:60]!r}")
    return v


class Feed:
    """A number fetched by a shell command (stdout) or an HTTP(S) GET."""

    def __init__(self, what: str, command: str | None = None, url: str | None = None,
                 field: str | None = None, timeout: float = FEED_TIMEOUT_S) -> None:
        if command and url:
            raise ConfigError(f"{what}: give a command or a URL, not both")
        if url:
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme not in ("http", "https"):
                raise ConfigError(f"{what}: URL must be http:// or https://, got {url!r}")
        self.what, self.command, self.url, self.field, self.timeout = what, command, url, field, timeout

    def fetch(self) -> float:
        if self.command:
            try:
                # The command is the user's own configuration, run as they wrote it (pipes allowed).
                p = subprocess.run(self.command, shell=True, capture_output=True, timeout=self.timeout)
            except subprocess.TimeoutExpired as e:
                raise ProtocolError(f"{self.what} command timed out after {self.timeout:g} s") from e
            if p.returncode != 0:
                err = p.stderr.decode(errors="replace").strip().splitlines()
                raise ProtocolError(f"{self.what} command exited {p.returncode}"
                                    + (f": {err[-1][:200]}" if err else ""))
            body = p.stdout[:MAX_FEED_BYTES].decode(errors="replace")
        else:
            try:
                # urllib verifies TLS certificates with the system store by default.
                with urllib.request.urlopen(self.url, timeout=self.timeout) as r:
                    raw = r.read(MAX_FEED_BYTES + 1)
            except OSError as e:
                raise ProtocolError(f"{self.what} URL: {e}") from e
            if len(raw) > MAX_FEED_BYTES:
                raise ProtocolError(f"{self.what} URL returned more than {MAX_FEED_BYTES} bytes")
            body = raw.decode(errors="replace")
        return parse_number(body, self.field)


class PriceSource(Source):
    """Energy price with hysteresis: pause above max, resume at or below resume (default = max)."""

    key = "energy-price"

    def __init__(self, feed: Feed, interval: float, max_price: float | None,
                 resume_price: float | None = None) -> None:
        super().__init__()
        self.feed, self.interval = feed, interval
        self.max_price = max_price
        self.resume_price = resume_price if resume_price is not None else max_price
        if max_price is not None and self.resume_price is not None and self.resume_price > max_price:
            raise ConfigError("--resume-energy-price must not be above --max-energy-price")
        self.price: float | None = None

    def poll(self, c: Curtailer) -> None:
        p = self.feed.fetch()
        self.ok()
        if p != self.price:
            log.info("energy price now %g per kWh", p)
        self.price = p
        if self.max_price is None:
            return
        if p > self.max_price:
            if self.key not in c.reasons():
                log.warning("energy price %g > max %g per kWh", p, self.max_price)
            c.hold(self.key, f"energy price above {self.max_price:g}/kWh")
        elif p <= self.resume_price:
            c.release(self.key, f"energy price {p:g} <= {self.resume_price:g}")

    def facts(self) -> dict[str, object]:
        return {"energy_price": self.price}


class MiningRate:
    """Hashrate and watts measured over recent unpaused time only.

    The snapshot's decayed windows fall toward zero during a pause, which would
    make a paused miner look worthless and keep it paused forever. Total hashes
    (hashrate["av"] * elapsed) differenced between samples taken while mining
    give the rate the machine actually achieves when it runs.
    """

    def __init__(self, span_s: float = 600.0, min_s: float = 30.0) -> None:
        self.span_s, self.min_s = span_s, min_s
        self._prev: tuple[float, float, bool] | None = None   # (elapsed, total hashes, paused)
        self._samples: deque[tuple[float, float]] = deque()   # (dt, dhashes) while mining
        self.watts: float | None = None

    def add(self, snap) -> None:
        total = snap.hashrate.get("av", 0.0) * snap.elapsed
        cur = (snap.elapsed, total, snap.paused)
        if self._prev is not None and not self._prev[2] and not snap.paused:
            dt, dh = snap.elapsed - self._prev[0], total - self._prev[1]
            if dt > 0 and dh >= 0:
                self._samples.append((dt, dh))
                while sum(s[0] for s in self._samples) - self._samples[0][0] > self.span_s:
                    self._samples.popleft()
        if not snap.paused and snap.watts is not None:
            self.watts = snap.watts
        self._prev = cur

    def rate(self) -> float | None:
        t = sum(s[0] for s in self._samples)
        return sum(s[1] for s in self._samples) / t if t >= self.min_s else None


class ProfitSource(Source):
    """Pause when expected revenue < energy cost; resume when revenue >= cost * (1 + margin)."""

    key = "profit"

    def __init__(self, control: MinerControl, btc_price: Callable[[], float | None],
                 energy_price: Callable[[], float | None], fee_btc: float = 0.0,
                 difficulty: float | None = None, resume_margin: float = 0.05,
                 interval: float = 5.0, rate: MiningRate | None = None) -> None:
        super().__init__()
        self.control, self.btc_price, self.energy_price = control, btc_price, energy_price
        self.fee_btc, self.difficulty, self.resume_margin = fee_btc, difficulty, resume_margin
        self.interval = interval
        self.rate = rate or MiningRate()
        self.last: profit.Economics | None = None
        self._missing: str | None = None

    def poll(self, c: Curtailer) -> None:
        snap = self.control.snapshot()
        self.rate.add(snap)
        hs = self.rate.rate()
        diff = snap.network_difficulty or self.difficulty
        btc, energy, watts = self.btc_price(), self.energy_price(), self.rate.watts
        missing = [n for n, v in (("hashrate (30 s of mining)", hs), ("watts", watts), ("network difficulty", diff),
                                  ("BTC price", btc), ("energy price", energy)) if v is None]
        if missing:
            msg = "waiting for " + ", ".join(missing)
            if msg != self._missing:
                log.info("profit check: %s", msg)
            self._missing = msg
            return
        self._missing = None
        e = profit.Economics(hashrate=hs, watts=watts, difficulty=diff, btc_price=btc,
                             energy_price=energy, fee_btc=self.fee_btc)
        self.last = e
        rev, cost = e.revenue_per_day, e.cost_per_day
        if rev < cost:
            if self.key not in c.reasons():
                log.warning("profit check: revenue %.4f/day < energy cost %.4f/day", rev, cost)
            c.hold(self.key, "expected revenue below energy cost")
        elif rev >= cost * (1 + self.resume_margin):
            c.release(self.key, f"revenue {rev:.4f}/day >= energy cost {cost:.4f}/day")

    def facts(self) -> dict[str, object]:
        e = self.last
        if e is None:
            return {}
        return {"revenue_per_day": e.revenue_per_day, "energy_cost_per_day": e.cost_per_day,
                "btc_per_day": e.btc_per_day, "btc_price": e.btc_price}


class FeedValue(Source):
    """Polls a Feed (e.g. the BTC price) and remembers the last good value."""

    def __init__(self, key: str, feed: Feed, interval: float) -> None:
        super().__init__()
        self.key, self.feed, self.interval = key, feed, interval
        self.value: float | None = None

    def poll(self, c: Curtailer) -> None:
        self.value = self.feed.fetch()
        self.ok()


# -- flags ----------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("curtailment")
    g.add_argument("--pause-window", dest="pause_window", action="append", metavar="HH:MM-HH:MM",
                   help="pause mining in this local-time window (may cross midnight); repeatable")
    g.add_argument("--price-command", dest="price_command", metavar="CMD",
                   help="shell command printing the current energy price per kWh")
    g.add_argument("--price-url", dest="price_url", metavar="URL",
                   help="http(s) URL returning the current energy price per kWh")
    g.add_argument("--price-field", dest="price_field", metavar="PATH",
                   help="dotted JSON path of the price in the command/URL output (default: first number)")
    g.add_argument("--price-interval", dest="price_interval", type=flag_number(low=1.0),
                   default=300.0, metavar="S", help="seconds between price polls (default 300)")
    g.add_argument("--max-energy-price", dest="max_energy_price", type=flag_number(low=-1e9),
                   metavar="P", help="pause while the energy price is above P")
    g.add_argument("--resume-energy-price", dest="resume_energy_price",
                   type=flag_number(low=-1e9), metavar="P",
                   help="resume when the price falls to P or below (default: --max-energy-price)")
    g.add_argument("--energy-cost", dest="energy_cost", type=flag_number(low=0), metavar="P",
                   help="energy price per kWh when no price feed is configured")
    g.add_argument("--btc-price", dest="btc_price", type=flag_number(low=0), metavar="P",
                   help="BTC price in the energy price's currency")
    g.add_argument("--btc-price-command", dest="btc_price_command", metavar="CMD",
                   help="shell command printing the BTC price (polled every --price-interval)")
    g.add_argument("--fee-estimate", dest="fee_estimate", type=flag_number(low=0), default=0.0,
                   metavar="BTC", help="expected transaction fees per block in BTC (default 0)")
    g.add_argument("--network-difficulty", dest="network_difficulty", type=flag_number(low=0),
                   metavar="D", help="network difficulty for the profit check when no job has given one")
    g.add_argument("--profit-pause", dest="profit_pause", action="store_true",
                   help="pause while expected revenue is below the energy cost")
    g.add_argument("--profit-resume-margin", dest="profit_resume_margin",
                   type=flag_number(low=0), default=0.05, metavar="F",
                   help="resume when revenue >= cost * (1 + F) (default 0.05)")


def build(control: MinerControl, args: argparse.Namespace) -> Curtailer:
    """The Curtailer with every source the flags ask for (none: API pause/resume only)."""
    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    sources: list[Source] = []
    if g("pause_window"):
        sources.append(ScheduleSource(g("pause_window")))
    interval = g("price_interval") or 300.0
    price_src: PriceSource | None = None
    if g("price_command") or g("price_url"):
        feed = Feed("energy price", g("price_command"), g("price_url"), g("price_field"))
        price_src = PriceSource(feed, interval, g("max_energy_price"), g("resume_energy_price"))
        sources.append(price_src)
    elif g("max_energy_price") is not None:
        raise ConfigError("--max-energy-price needs --price-command or --price-url")
    if g("profit_pause"):
        btc_src: FeedValue | None = None
        if g("btc_price_command"):
            btc_src = FeedValue("btc-price", Feed("BTC price", g("btc_price_command")), interval)
            sources.append(btc_src)
        elif g("btc_price") is None:
            raise ConfigError("--profit-pause needs --btc-price or --btc-price-command")
        if price_src is None and g("energy_cost") is None:
            raise ConfigError("--profit-pause needs --energy-cost or an energy price feed")
        fixed_btc, fixed_energy = g("btc_price"), g("energy_cost")
        sources.append(ProfitSource(
            control,
            btc_price=(lambda: btc_src.value) if btc_src else (lambda: fixed_btc),
            energy_price=(lambda: price_src.price if price_src.price is not None else fixed_energy)
            if price_src else (lambda: fixed_energy),
            fee_btc=g("fee_estimate") or 0.0, difficulty=g("network_difficulty"),
            resume_margin=g("profit_resume_margin", 0.05) or 0.0))
    return Curtailer(control, sources)
