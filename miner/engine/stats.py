"""Counters and read-only snapshots of the running miner.

The engine owns the live counters; everything that reports (status display,
cgminer API, Prometheus, --json events, the exit summary) reads immutable
snapshots taken from them, so no reporter ever holds an engine lock.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

# cgminer's windows: 5 s, 1 min, 5 min, 15 min, plus the average since start.
WINDOWS = {"5s": 5.0, "1m": 60.0, "5m": 300.0, "15m": 900.0}


class RateMeter:
    """Exponentially decayed rate over several windows, plus the average since start.

    add(n) may be called from any thread. Each window w keeps a rate r_w that
    decays as r_w += (x - r_w) * (1 - exp(-dt / w)) where x is the rate seen
    over dt; this is the usual load-average form and what cgminer's decay_time
    approximates.
    """

    def __init__(self, now: float | None = None) -> None:
        self._lock = threading.Lock()
        t = time.monotonic() if now is None else now
        self.started = t
        self._last = t
        self._pending = 0.0
        self.total = 0.0
        self._rates = {k: 0.0 for k in WINDOWS}

    def add(self, n: float) -> None:
        with self._lock:
            self._pending += n
            self.total += n

    def _folded(self, now: float) -> dict[str, float]:
        """Each window's rate as a fold at ``now`` leaves it (the hashes pending since the last fold
        seen over the time since it), without committing the fold."""
        dt = now - self._last
        if dt <= 0:
            return dict(self._rates)
        x = self._pending / dt
        return {k: r + (x - r) * (1.0 - math.exp(-dt / WINDOWS[k])) for k, r in self._rates.items()}

    def _fold(self, now: float) -> None:
        if now > self._last:
            self._rates = self._folded(now)
            self._pending = 0.0
            self._last = now

    def rates(self, now: float | None = None) -> dict[str, float]:
        """{"5s", "1m", "5m", "15m", "av"} in units per second."""
        t = time.monotonic() if now is None else now
        with self._lock:
            if t - self._last >= 0.5:
                self._fold(t)
            elapsed = t - self.started
            # The figures are those of a fold at t, so they do not depend on when the
            # last committed fold happened: folded only every 0.5 s, a reader right
            # after the first hashes saw 0 H/s beside accepted shares (the fold before
            # them had seen nothing yet).
            rates = self._folded(t)
            # Warm-up correction: a window that has seen only `span` seconds holds
            # x * (1 - exp(-span / w)) of a steady rate x; dividing that out makes
            # the 1m..15m figures right from the start instead of creeping up from 0.
            span = max(t, self._last) - self.started
            out = {}
            for k, w in WINDOWS.items():
                seen = 1.0 - math.exp(-span / w) if span > 0 else 0.0
                out[k] = rates[k] / seen if seen > 0 else 0.0
            out["av"] = self.total / elapsed if elapsed > 0 else 0.0
        return out


@dataclass(frozen=True)
class DeviceSnapshot:
    id: int
    name: str                 # e.g. "cpu0", "opencl:0:0", "bm1370:/dev/ttyUSB0"
    kind: str                 # cpu | opencl | cuda | asic
    model: str
    status: str               # alive | sick | dead | disabled | paused
    enabled: bool
    hashrate: dict[str, float]  # H/s by window: 5s 1m 5m 15m av
    accepted: int
    rejected: int
    stale: int
    hw_errors: int
    difficulty_accepted: float
    best_share: float
    last_share_time: float | None  # unix time
    temperature_c: float | None = None
    watts: float | None = None
    frequency_mhz: float | None = None
    elapsed: float = 0.0
    code: str | None = None   # CPU threads: the core implementation running now


@dataclass(frozen=True)
class PoolSnapshot:
    id: int
    url: str                  # never contains the password
    user: str
    status: str               # alive | dead | disabled | connecting
    priority: int
    active: bool
    accepted: int
    rejected: int
    stale: int
    difficulty: float         # current
    difficulty_accepted: float
    difficulty_rejected: float
    difficulty_stale: float
    best_share: float
    blocks: int
    jobs: int                 # notifies received ("Getworks")
    last_share_time: float | None
    reject_reasons: dict[str, int] = field(default_factory=dict)
    version_mask: int = 0
    connected_since: float | None = None


@dataclass(frozen=True)
class MinerSnapshot:
    version: str
    started_at: float         # unix time
    elapsed: float            # seconds
    paused: bool
    pause_reason: str
    hashrate: dict[str, float]          # total H/s by window
    effective_hashrate: float           # H/s from accepted difficulty-weighted shares
    accepted: int
    rejected: int
    stale: int
    hw_errors: int
    difficulty_accepted: float
    difficulty_rejected: float
    difficulty_stale: float
    best_share: float
    blocks: int
    network_difficulty: float | None
    watts: float | None                 # total where known
    devices: tuple[DeviceSnapshot, ...]
    pools: tuple[PoolSnapshot, ...]
    current_pool: int | None = None
    utility: float = 0.0                # accepted shares per minute (cgminer "Utility")


@dataclass(frozen=True)
class ShareRecord:
    """One share's outcome, as the share log keeps it."""
    time: float                # unix time of the verdict
    result: str                # accepted | rejected | stale | duplicate | invalid
    device: str
    pool: int | None
    target_difficulty: float   # the difficulty the pool asked for
    share_difficulty: float    # the difficulty the share's hash reached
    reason: str | None = None  # the pool's reason for a reject, or why it was not sent
    job_id: str = ""
    block: bool = False


SHARE_LOG_SIZE = 50


class ShareLog:
    """The last SHARE_LOG_SIZE share outcomes, newest last. add() from any thread."""

    def __init__(self, size: int = SHARE_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._items: deque[ShareRecord] = deque(maxlen=size)
        self.count = 0             # every share ever added: lets a reader ask for what is new

    def add_event(self, data: dict, now: float | None = None) -> None:
        """Record a "share" event: ``target_difficulty`` is the job's (what the pool credits),
        ``share_difficulty`` what the share's hash achieved (one name each across the seam)."""
        target, achieved = data.get("target_difficulty"), data.get("share_difficulty")
        rec = ShareRecord(time.time() if now is None else now, str(data.get("result", "")),
                          str(data.get("device") or ""), data.get("pool"),
                          float(target or 0.0), float(achieved or 0.0), data.get("reason") or None,
                          str(data.get("job_id") or ""), bool(data.get("block")))
        with self._lock:
            self._items.append(rec)
            self.count += 1

    def items(self) -> tuple[ShareRecord, ...]:
        with self._lock:
            return tuple(self._items)


HISTORY_INTERVAL_S = 5.0
HISTORY_POINTS = 720           # one hour of 5 s points


class HistoryRing:
    """Total hashrate every HISTORY_INTERVAL_S seconds over the last hour, from the hash count.

    Each point is the exact average over its own interval (hashes done / seconds), not a
    decayed window, so a pause shows as 0 in the next point.
    """

    def __init__(self, size: int = HISTORY_POINTS) -> None:
        self._lock = threading.Lock()
        self._points: deque[tuple[float, float]] = deque(maxlen=size)
        self._last: tuple[float, float] | None = None   # (monotonic time, total hashes)

    def sample(self, total_hashes: float, now: float | None = None, wall: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        with self._lock:
            last, self._last = self._last, (t, total_hashes)
            if last is not None and t > last[0]:
                rate = max(0.0, total_hashes - last[1]) / (t - last[0])
                self._points.append((time.time() if wall is None else wall, rate))

    def points(self) -> tuple[tuple[float, float], ...]:
        """((unix time, H/s), ...), oldest first."""
        with self._lock:
            return tuple(self._points)


class MinerControl(Protocol):
    """What the engine exposes to the API, curtailment and the CLI. Thread-safe."""

    def snapshot(self) -> MinerSnapshot: ...
    def pause(self, reason: str) -> None: ...
    def resume(self, reason: str) -> None: ...
    def switch_pool(self, pool_id: int) -> None: ...
    def add_pool(self, url: str, user: str, password: str) -> int: ...
    def enable_pool(self, pool_id: int) -> None: ...
    def disable_pool(self, pool_id: int) -> None: ...
    def remove_pool(self, pool_id: int) -> None: ...
    def quit(self) -> None: ...
    def restart(self) -> None: ...
    def shares(self) -> tuple[ShareRecord, ...]: ...                 # the share log, newest last
    def history(self) -> tuple[tuple[float, float], ...]: ...       # ((unix time, H/s), ...) 5 s points
    def enable_device(self, name: str) -> None: ...
    def disable_device(self, name: str) -> None: ...
