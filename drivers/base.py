"""The one base class of every ASIC driver: transport ownership, reconnects, host re-checks, counters.

A driver implements three hooks (cgminer-style, only what it needs):
  init_hw()   after the transport opened: detect, configure clocks, self-test.
  mine(ctx)   feed work and read nonces until ctx.stopping (or raise DeviceGone).
  describe()  extra info() keys.
The base class owns the reconnect loop: an unplugged board is closed, reported
and reopened with the back-off of miner.engine.backend.RECONNECT (the one
device reconnect policy) while the other devices keep mining.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from miner.engine.backend import RECONNECT, Device, DeviceContext, Work
from miner.engine.difficulty import target_from_difficulty
from miner.errors import DeviceError, DeviceGone
from miner.engine.job import NonceCheck, recheck

from miner.drivers.transport import Transport

log = logging.getLogger(__name__)


class ASICDevice(Device):
    kind = "asic"
    model = "asic"

    def __init__(self, name: str, transport: Transport, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.transport = transport
        self.options = dict(options or {})
        self._open = False
        self._lock = threading.Lock()  # guards the counters below (read by info() from other threads)
        self.counters = {"nonces": 0, "valid": 0, "hw_errors": 0, "crc_errors": 0, "garbage_bytes": 0,
                         "duplicates": 0, "stale": 0, "silences": 0, "disconnects": 0, "reopens": 0}
        self.chip_hw_errors: dict[int, int] = {}
        self.ticket_diff: float = float(self.options.get("diff", 1))
        self.claimed_target = target_from_difficulty(self.ticket_diff)
        self.reconnect = bool(self.options.get("reconnect", True))

    # -- hooks ------------------------------------------------------------
    def init_hw(self) -> None:
        """Bring the board up after the transport opened. Raise DeviceError if it is not what we expect."""

    def mine(self, ctx: DeviceContext) -> None:  # pragma: no cover - every driver overrides
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    # -- Device -----------------------------------------------------------
    def open(self) -> None:
        if self._open:
            return
        self.transport.open()
        try:
            self.init_hw()
        except BaseException:
            self.transport.close()
            raise
        self._open = True

    def close(self) -> None:
        self._open = False
        self.transport.close()

    def run(self, ctx: DeviceContext) -> None:
        failures = 0  # in a row, since the last successful reopen
        while not ctx.stopping:
            try:
                if not self._open:
                    self.open()
                    self.count("reopens")
                    failures = 0
                self.mine(ctx)
            except DeviceGone as exc:
                self.close()
                self.count("disconnects")
                if not self.reconnect:
                    raise
                failures += 1
                wait = RECONNECT.delay(failures)
                log.warning("%s: board gone (%s); retrying in %.1f s", self.name, exc, wait)
                deadline = time.monotonic() + wait
                while not ctx.stopping and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.close()

    def info(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"model": self.model, "driver": type(self).__name__,
                                   "ticket_difficulty": self.ticket_diff, **self.counters}
            if self.chip_hw_errors:
                out["chip_hw_errors"] = dict(self.chip_hw_errors)
        out.update(self.describe())
        return out

    # -- helpers for drivers ---------------------------------------------
    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def check(self, work: Work, nonce: int, version: int | None = None) -> NonceCheck:
        """The host re-check of one of this board's nonces (miner.engine.job.recheck), for the driver to
        place a reply (which job, which alignment) and then hand to report() unchanged."""
        return recheck(work.header, nonce, work.version if version is None else version)

    def report(self, ctx: DeviceContext, work: Work, nonce: int, version: int | None = None,
               chip: int | None = None, check: NonceCheck | None = None) -> bool:
        """Hand one device nonce to the engine; re-hash it here too, to blame the right chip.

        Every nonce goes to ctx.submit (the engine's re-check is the one that
        counts); this host-side check only attributes hardware errors per chip
        and credits hashes for valid nonces: each one at ticket difficulty d
        stands for d * 2^32 hashes on average, which measures the chip's real
        work, failures included, without trusting a clock. ``check``: what
        self.check(work, nonce, version) already gave; the nonce is hashed once.
        """
        nonce &= 0xFFFFFFFF
        if check is None or check.nonce != nonce or check.version != (work.version if version is None
                                                                        else version & 0xFFFFFFFF):
            check = self.check(work, nonce, version)
        ok = check.meets(self.claimed_target)
        with self._lock:
            self.counters["nonces"] += 1
            if ok:
                self.counters["valid"] += 1
            else:
                self.counters["hw_errors"] += 1
                if chip is not None:
                    self.chip_hw_errors[chip] = self.chip_hw_errors.get(chip, 0) + 1
        if ok:
            ctx.hashes(int(self.ticket_diff * (1 << 32)))
        else:
            log.debug("%s: nonce %08x fails the ticket target (chip %s)", self.name, nonce, chip)
        return ctx.submit(work, nonce, version=version, claimed_target=self.claimed_target, check=check)


def expected_nonce_interval(hashrate: float, diff: float) -> float:
    """Mean seconds between nonces at ticket difficulty ``diff``."""
    return diff * (1 << 32) / max(hashrate, 1.0)


def silence_limit(hashrate: float, diff: float, floor: float = 5.0) -> float:
    """How long without any nonce before a board counts as silent: 20 mean intervals, at least ``floor`` s."""
    return max(floor, 20 * expected_nonce_interval(hashrate, diff))


__all__ = ["ASICDevice", "DeviceError", "DeviceGone", "expected_nonce_interval", "silence_limit"]
