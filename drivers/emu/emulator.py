"""Device emulators: the device side of a board, on a pseudo-terminal, a TCP port or the fake USB bus.

An EmulatedDevice is transport-free: bytes from the host go to feed(), bytes
for the host are queued by send() and drained by whichever server carries it.
Models (drivers/emu/models.py) speak the real protocol and compute real
double-SHA-256; the time model pretends the configured hashrate: a nonce at
position p of a job is not sent before t0 + p / hashrate, and a job whose whole
space has been walked leaves the device idle, which the stats record.
"""
from __future__ import annotations

import logging
import os
import random
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass, field

from miner.errors import ConfigError

log = logging.getLogger(__name__)

FAULT_KINDS = ("wrong-nonce", "garbage", "bad-crc", "silence", "disconnect", "duplicate")


@dataclass
class Faults:
    """Fault injection. Periodic kinds hit every n-th nonce reply; silence and disconnect happen once,
    after the n-th reply (silence lasts until the host re-initialises the device)."""
    every: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: list[str] | None) -> "Faults":
        out: dict[str, int] = {}
        for spec in specs or []:
            kind, _, n = spec.partition("=")
            kind = kind.strip().lower().replace("_", "-")
            if kind not in FAULT_KINDS:
                raise ConfigError(f"unknown fault {kind!r}; choose from: {', '.join(FAULT_KINDS)}")
            try:
                out[kind] = int(n) if n else 5
            except ValueError:
                raise ConfigError(f"fault {spec!r}: the count after '=' must be an integer") from None
            if out[kind] < 1:
                raise ConfigError(f"fault {spec!r}: the count must be >= 1")
        return cls(out)


class EmulatedDevice:
    """Base of every emulated board: output queue, fault bookkeeping, pacing and idle statistics."""

    def __init__(self, hashrate: float | None, faults: Faults | None = None, seed: int = 1) -> None:
        self.hashrate_override = hashrate
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self._out = bytearray()
        self._cond = threading.Condition()
        self._job_gen = 0
        self.closed = False
        self.silent = False
        self.on_disconnect = None          # set by the server: drops the host's connection
        self.replies = 0
        self.injected = {k: 0 for k in FAULT_KINDS}
        self.fault_log: list[tuple[str, int]] = []   # (kind, jobs received so far) per injection
        self.jobs = 0
        self.job_times: list[float] = []
        self.idle_s = 0.0
        self.max_gap_s = float("-inf")     # largest (next job - previous job's end); < 0 means no idle
        self._job_end = None               # virtual time the current job's space runs out

    # -- host side --------------------------------------------------------
    def feed(self, data: bytes) -> None:  # pragma: no cover - every model overrides
        raise NotImplementedError

    def take(self, n: int, timeout: float) -> bytes:
        with self._cond:
            if not self._out and not self.closed:
                self._cond.wait(timeout)
            out = bytes(self._out[:n])
            del self._out[:n]
            return out

    def send(self, data: bytes) -> None:
        if self.silent or self.closed:
            return
        with self._cond:
            self._out += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._job_gen += 1
            self._cond.notify_all()

    # -- time model ---------------------------------------------------------
    def hashrate(self) -> float:  # pragma: no cover - models override
        return self.hashrate_override or 1e9

    def new_job(self, space: int) -> tuple[int, float]:
        """Start a job of ``space`` hashes now; returns (generation, t0). Records idle gaps."""
        now = time.monotonic()
        with self._cond:
            if self._job_end is not None and space:
                gap = now - self._job_end
                if gap > 0:
                    self.idle_s += gap
                self.max_gap_s = max(self.max_gap_s, gap)
            # An empty job (Icarus park packet) means "stop", not a job that ran dry: no gap after it.
            self._job_end = now + space / self.hashrate() if space else None
            self._job_gen += 1
            self.jobs += 1
            self.job_times.append(now)
            if len(self.job_times) > 100_000:
                del self.job_times[:50_000]
            self._cond.notify_all()
            return self._job_gen, now

    def current(self, gen: int) -> bool:
        return gen == self._job_gen and not self.closed

    def wait_until(self, t: float, gen: int) -> bool:
        """Sleep until monotonic time t; False when the job changed or the device closed first."""
        with self._cond:
            while self.current(gen):
                left = t - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(min(left, 0.5))
            return False

    def wait_job_change(self, gen: int, timeout: float) -> None:
        with self._cond:
            if self.current(gen):
                self._cond.wait(timeout)

    # -- faults ---------------------------------------------------------------
    def emit(self, frame_for, *, crc_capable: bool) -> None:
        """Send one nonce reply, applying faults. frame_for(corrupt_nonce, bad_crc) builds its bytes."""
        if self.silent or self.closed:
            return
        self.replies += 1
        n = self.replies
        f = self.faults.every

        def hit(kind: str) -> bool:
            return kind in f and n % f[kind] == 0

        def note(kind: str) -> None:
            self.injected[kind] += 1
            self.fault_log.append((kind, self.jobs))

        wrong = hit("wrong-nonce")
        bad = crc_capable and hit("bad-crc")
        if hit("garbage"):
            junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 6)))
            note("garbage")
            self.send(junk)
        frame = frame_for(wrong, bad)
        if wrong:
            note("wrong-nonce")
        if bad:
            note("bad-crc")
        self.send(frame)
        if hit("duplicate") and not wrong and not bad:
            note("duplicate")
            self.send(frame)
        if f.get("silence") == n:
            note("silence")
            self.silent = True
            log.info("emulator: going silent after %d replies (fault)", n)
        if f.get("disconnect") == n and self.on_disconnect is not None:
            note("disconnect")
            log.info("emulator: dropping the connection after %d replies (fault)", n)
            with self._cond:
                self._out.clear()
            self.on_disconnect()

    def reset_stats(self) -> None:
        """Forget idle time and job history so far (after a benchmark's warm-up)."""
        with self._cond:
            self.idle_s, self.max_gap_s = 0.0, float("-inf")
            self.job_times = self.job_times[-1:]

    def stats(self) -> dict:
        with self._cond:
            times = list(self.job_times)
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        return {"jobs": self.jobs, "replies": self.replies, "injected": dict(self.injected),
                "idle_s": self.idle_s, "max_gap_s": self.max_gap_s if self.max_gap_s > float("-inf") else None,
                "hashrate": self.hashrate(),
                "job_interval_median_s": gaps[len(gaps) // 2] if gaps else None,
                "job_interval_max_s": gaps[-1] if gaps else None}


# -- servers ---------------------------------------------------------------------
class PtyServer:
    """Serves a device on a new pseudo-terminal; ``path`` is what the miner opens."""

    def __init__(self, device: EmulatedDevice) -> None:
        self.device = device
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes pass untouched: no echo, no CR/LF mapping
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._fd_lock = threading.Lock()
        self._fds: tuple[int, ...] = (self.master, self.slave)  # still open; closed once, in hangup()
        device.on_disconnect = self.hangup
        self._threads = [threading.Thread(target=self._rx, daemon=True, name="emu-pty-rx"),
                         threading.Thread(target=self._tx, daemon=True, name="emu-pty-tx")]
        for t in self._threads:
            t.start()

    def _rx(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.master], [], [], 0.2)
                if r:
                    data = os.read(self.master, 4096)
                    if not data:
                        break
                    self.device.feed(data)
            except OSError:  # EIO while no client has the slave open: keep waiting
                self._stop.wait(0.05)

    def _tx(self) -> None:
        while not self._stop.is_set():
            data = self.device.take(4096, 0.2)
            if data:
                try:
                    os.write(self.master, data)
                except OSError:
                    pass

    def hangup(self) -> None:
        """A board unplugged: the tty disappears for the host (reads fail from now on).

        The I/O threads are stopped and joined before the descriptors are closed, and
        they are closed once: a raw fd number closed while a thread still selects on it
        (or closed twice) may already belong to another file, whose bytes that thread
        would then read or whose descriptor the second close would take away.
        """
        self._stop.set()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me and t.is_alive():
                t.join(2.0)
        with self._fd_lock:
            fds, self._fds = self._fds, ()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        self.device.close()  # first: nothing more is produced while the tty goes away
        self.hangup()


class TcpServer:
    """Serves a device on 127.0.0.1:port (use socket://127.0.0.1:port in the miner), one host at a time.
    A disconnect fault drops the connection; the port stays open, as a serial-over-IP bridge would."""

    def __init__(self, device: EmulatedDevice, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1)
        self.host, self.port = self.sock.getsockname()[:2]
        self.url = f"socket://{self.host}:{self.port}"
        self._conn: socket.socket | None = None
        self._stop = threading.Event()
        device.on_disconnect = self.hangup
        threading.Thread(target=self._accept, daemon=True, name="emu-tcp-accept").start()
        threading.Thread(target=self._tx, daemon=True, name="emu-tcp-tx").start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.hangup()
            self._conn = conn
            self.device.silent = False
            threading.Thread(target=self._rx, args=(conn,), daemon=True, name="emu-tcp-rx").start()

    def _rx(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            self.device.feed(data)
        if self._conn is conn:
            self.hangup()

    def _tx(self) -> None:
        while not self._stop.is_set():
            data = self.device.take(4096, 0.2)
            conn = self._conn
            if data and conn is not None:
                try:
                    conn.sendall(data)
                except OSError:
                    pass

    def hangup(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self.device.close()  # first: nothing more is produced while the connections go away
        self._stop.set()
        self.hangup()
        self.sock.close()
