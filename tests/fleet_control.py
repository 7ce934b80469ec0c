"""A small MinerControl for the fleet tests: real snapshot dataclasses, recorded calls.

It stands in for the engine only where the engine is not the thing under test
(API, metrics, curtailment). It keeps the same contract: thread-safe, pause and
resume take a reason, pool ids are validated like the engine validates them
(MinerError subclasses for bad ids), and snapshot() reflects every change.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

from miner.errors import ConfigError
from miner.engine.stats import DeviceSnapshot, HistoryRing, MinerSnapshot, PoolSnapshot, ShareLog, ShareRecord


def device(i: int = 0, kind: str = "asic", name: str | None = None, hs: float = 1.2e12,
           watts: float | None = 18.0, temp: float | None = 55.5, hw: int = 2) -> DeviceSnapshot:
    return DeviceSnapshot(
        id=i, name=name or f"{kind}{i}", kind=kind, model="BM1370" if kind == "asic" else kind.upper(),
        status="alive", enabled=True,
        hashrate={"5s": hs, "1m": hs * 0.99, "5m": hs * 0.98, "15m": hs * 0.97, "av": hs},
        accepted=10 + i, rejected=1, stale=0, hw_errors=hw, difficulty_accepted=10240.0 * (i + 1),
        best_share=123456.0, last_share_time=time.time() - 3, temperature_c=temp, watts=watts,
        frequency_mhz=525.0 if kind == "asic" else None, elapsed=600.0)


def pool(i: int = 0, url: str = "stratum+tcp://127.0.0.1:3333", active: bool = True) -> PoolSnapshot:
    return PoolSnapshot(
        id=i, url=url, user=f"bc1qexample.worker{i}", status="alive", priority=i, active=active,
        accepted=10 + i, rejected=1, stale=1, difficulty=1024.0, difficulty_accepted=10240.0,
        difficulty_rejected=1024.0, difficulty_stale=1024.0, best_share=123456.0, blocks=0, jobs=42,
        last_share_time=time.time() - 3, reject_reasons={"low difficulty": 1}, version_mask=0x1FFFE000,
        connected_since=time.time() - 600)


class FakeControl:
    """Implements miner.engine.stats.MinerControl over real snapshot dataclasses."""

    def __init__(self, devices=None, pools=None, network_difficulty: float | None = 1.5e14,
                 watts: float | None = None) -> None:
        self._lock = threading.Lock()
        self.devices = tuple(devices if devices is not None else (device(0), device(1, kind="cpu", watts=None)))
        self.pools = list(pools if pools is not None else (pool(0), pool(1, "stratum+tcp://127.0.0.1:3334", False)))
        self.network_difficulty = network_difficulty
        self.watts = watts
        self.reasons: dict[str, str] = {}   # like the engine: pause(r) adds r, resume(r) removes r
        self.calls: list[tuple] = []
        self.quit_called = threading.Event()
        self.restart_called = threading.Event()
        self.started = time.time() - 600
        # Total hashes so far; advances with wall time while not paused so that
        # hashrate["av"] * elapsed behaves like the engine's cumulative count.
        self.rate = sum(d.hashrate["av"] for d in self.devices)
        self._hashes = self.rate * 600
        self._last = self._mono0 = time.monotonic()

    @property
    def paused(self) -> bool:
        return bool(self.reasons)

    def _advance(self) -> float:
        now = time.monotonic()
        if not self.paused:
            self._hashes += self.rate * (now - self._last)
        self._last = now
        return now

    def snapshot(self) -> MinerSnapshot:
        with self._lock:
            # Elapsed from the same clock reading as the hash count, as the engine does: two
            # clocks read a thread switch apart made the rate between two snapshots 0.1 s
            # apart wrong by up to 1% on a loaded machine.
            elapsed = 600.0 + (self._advance() - self._mono0)
            total = {k: sum(d.hashrate[k] for d in self.devices) for k in ("5s", "1m", "5m", "15m")}
            total["av"] = self._hashes / elapsed
            watts = self.watts
            if watts is None:
                known = [d.watts for d in self.devices if d.watts is not None]
                watts = sum(known) if known else None
            cur = next((p.id for p in self.pools if p.active), None)
            return MinerSnapshot(
                version="0.1.0", started_at=self.started, elapsed=elapsed, paused=self.paused,
                pause_reason="; ".join(self.reasons), hashrate=total, effective_hashrate=total["av"] * 0.95,
                accepted=sum(p.accepted for p in self.pools), rejected=sum(p.rejected for p in self.pools),
                stale=sum(p.stale for p in self.pools), hw_errors=sum(d.hw_errors for d in self.devices),
                difficulty_accepted=sum(p.difficulty_accepted for p in self.pools),
                difficulty_rejected=sum(p.difficulty_rejected for p in self.pools),
                difficulty_stale=sum(p.difficulty_stale for p in self.pools),
                best_share=max(p.best_share for p in self.pools) if self.pools else 0.0, blocks=0,
                network_difficulty=self.network_difficulty, watts=watts, devices=self.devices,
                pools=tuple(self.pools), current_pool=cur, utility=2.5)

    def set_rate(self, hs: float) -> None:
        with self._lock:
            self._advance()
            self.rate = hs

    def pause(self, reason: str) -> None:
        with self._lock:
            self._advance()
            self.calls.append(("pause", reason))
            self.reasons[reason] = reason

    def resume(self, reason: str = "") -> None:
        with self._lock:
            self._advance()
            self.calls.append(("resume", reason))
            if reason:
                self.reasons.pop(reason, None)
            else:
                self.reasons.clear()

    def _pool(self, pool_id: int) -> int:
        for i, p in enumerate(self.pools):
            if p.id == pool_id:
                return i
        raise ConfigError(f"no pool {pool_id}")

    def switch_pool(self, pool_id: int) -> None:
        with self._lock:
            self._pool(pool_id)
            self.calls.append(("switch_pool", pool_id))
            self.pools = [replace(p, active=(p.id == pool_id)) for p in self.pools]

    def add_pool(self, url: str, user: str, password: str) -> int:
        with self._lock:
            if "://" not in url:
                raise ConfigError(f"bad pool URL {url!r}")
            new_id = max((p.id for p in self.pools), default=-1) + 1
            self.calls.append(("add_pool", url, user, password))
            self.pools.append(replace(pool(new_id, url, False), user=user))
            return new_id

    def enable_pool(self, pool_id: int) -> None:
        with self._lock:
            i = self._pool(pool_id)
            self.calls.append(("enable_pool", pool_id))
            self.pools[i] = replace(self.pools[i], status="alive")

    def disable_pool(self, pool_id: int) -> None:
        with self._lock:
            i = self._pool(pool_id)
            self.calls.append(("disable_pool", pool_id))
            self.pools[i] = replace(self.pools[i], status="disabled")

    def remove_pool(self, pool_id: int) -> None:
        with self._lock:
            i = self._pool(pool_id)
            if self.pools[i].active:
                raise ConfigError(f"cannot remove active pool {pool_id}")
            self.calls.append(("remove_pool", pool_id))
            del self.pools[i]

    # The share log and history are the engine's own classes, fed by the test.
    share_log: ShareLog | None = None
    history_ring: HistoryRing | None = None

    def shares(self) -> tuple[ShareRecord, ...]:
        return self.share_log.items() if self.share_log is not None else ()

    def history(self) -> tuple[tuple[float, float], ...]:
        return self.history_ring.points() if self.history_ring is not None else ()

    def _device(self, name: str) -> int:
        for i, d in enumerate(self.devices):
            if d.name == name:
                return i
        raise ConfigError(f"no device {name!r}")

    def enable_device(self, name: str) -> None:
        with self._lock:
            i = self._device(name)
            self.calls.append(("enable_device", name))
            devs = list(self.devices)
            devs[i] = replace(devs[i], enabled=True, status="alive")
            self.devices = tuple(devs)

    def disable_device(self, name: str) -> None:
        with self._lock:
            i = self._device(name)
            self.calls.append(("disable_device", name))
            devs = list(self.devices)
            devs[i] = replace(devs[i], enabled=False, status="disabled")
            self.devices = tuple(devs)

    def quit(self) -> None:
        self.calls.append(("quit",))
        self.quit_called.set()

    def restart(self) -> None:
        self.calls.append(("restart",))
        self.restart_called.set()


def api_ask(port: int, cmd: str) -> dict:
    """One cgminer-API request to a miner on loopback; the reply without its closing NUL."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(cmd.encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.endswith(b"\0")
    return json.loads(raw[:-1])
