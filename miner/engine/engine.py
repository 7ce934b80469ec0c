"""The mining engine: one dispatcher over every device, fed by the pool client.

Ownership:
- The asyncio loop thread owns the pool manager, the current job and the job
  generation (it is the only writer of both, under ``_cond``).
- Each device owns its thread; it reads work through its DeviceContext.
- Counters are per device and written by that device's thread or the loop;
  reporters read immutable snapshots (miner.engine.stats).

Work split: every (job, extranonce2, host-rolled version bits) stream is handed
to exactly one device, which then takes nonce chunks from it; so no two
devices ever hash the same header. A clean job bumps the generation: devices
abort their scan (generation listener), results of older generations are
re-checked (hardware errors still count) and then dropped as stale.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from miner import __version__
from miner.engine.backend import RECONNECT, Device, ReconnectPolicy, Work
from miner.engine.difficulty import network_difficulty
from miner.errors import DeviceError, DeviceGone, MinerError, NoSuchDevice
from miner.engine.job import Job, NonceCheck, Share, recheck, spread_bits
from miner.engine.stats import (HISTORY_INTERVAL_S, DeviceSnapshot, HistoryRing, MinerSnapshot, PoolSnapshot,
                                RateMeter, ShareLog, ShareRecord)

log = logging.getLogger(__name__)

NONCE_SPACE = 1 << 32
EventSink = Callable[[str, dict], None]


class ExitReason(enum.Enum):
    """Why Engine.run() returned; the command maps it to an exit code (one place, no strings compared)."""
    STOPPED = "stopped"                      # a signal, the API's quit, a key, or a caller's stop()
    TIME_LIMIT = "time limit reached"
    RESTART = "restart requested"
    DEVICES_FAILED = "every device failed"
    NO_POOL = "no pool reachable"


@dataclass
class _Stream:
    """One device's current (job, extranonce2, version) header and how far it has got."""
    job: Job
    extranonce2: bytes
    version: int
    merkle_root: bytes
    header: bytes
    next_nonce: int = 0


@dataclass
class _DeviceState:
    id: int
    device: Device
    meter: RateMeter = field(default_factory=RateMeter)
    status: str = "starting"      # starting | alive | sick | dead | disabled
    stream: _Stream | None = None
    listeners: list[Callable[[], None]] = field(default_factory=list)
    good_nonces: int = 0
    hw_errors: int = 0
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    difficulty_accepted: float = 0.0
    best_share: float = 0.0
    last_share_time: float | None = None
    restarts: int = 0
    last_error: str = ""
    thread: threading.Thread | None = None
    picked_generation: int = -1   # for switch-latency measurement
    info: dict[str, Any] = field(default_factory=dict)
    held: bool = False            # disabled by the user: open, but given no work until enabled


class _Context:
    """The DeviceContext the engine hands one device (see miner.engine.backend.DeviceContext)."""

    def __init__(self, engine: "Engine", state: _DeviceState) -> None:
        self._engine = engine
        self._state = state

    @property
    def stopping(self) -> bool:
        return self._engine._stopping or self._state.status in ("disabled", "dead")

    @property
    def generation(self) -> int:
        return self._engine._generation

    def next_work(self, nonce_count: int = NONCE_SPACE, *, timeout: float | None = None,
                  version_rolling: bool = False) -> Work | None:
        return self._engine._next_work(self._state, nonce_count, timeout, version_rolling, self)

    def wait_generation(self, generation: int, timeout: float) -> bool:
        return self._engine._wait_generation(generation, timeout, self)

    def submit(self, work: Work, nonce: int, *, version: int | None = None,
               claimed_target: int | None = None, check: NonceCheck | None = None) -> bool:
        return self._engine._submit(self._state, work, nonce, version, claimed_target, check)

    def hashes(self, n: int) -> None:
        self._state.meter.add(n)
        self._engine._meter.add(n)

    def add_generation_listener(self, fn: Callable[[], None]) -> None:
        self._state.listeners.append(fn)


class Engine:
    """Drives devices on the current job and sends shares to the pools. Implements miner.engine.stats.MinerControl."""

    def __init__(self, devices: list[Device], pool_manager: Any | None = None, *,
                 on_event: EventSink | None = None, hw_error_limit: int = 20,
                 device_retries: int | None = None, reconnect: ReconnectPolicy = RECONNECT,
                 watts_for: Callable[[DeviceSnapshot, dict], float | None] | None = None,
                 benchmark_job: Job | None = None) -> None:
        if not devices:
            raise MinerError("no device to mine with")
        self._devices = [_DeviceState(i, d) for i, d in enumerate(devices)]
        self._by_name = {s.device.name: s for s in self._devices}
        self.pools = pool_manager
        self._on_event = on_event or (lambda kind, data: None)
        self._hw_error_limit = hw_error_limit
        self._reconnect = reconnect if device_retries is None else replace(reconnect, retries=device_retries)
        self._watts_for = watts_for
        self._benchmark_job = benchmark_job
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._generation = 0
        self._generation_time = 0.0
        self._stream_counter = 0      # streams handed out for the current job
        self._paused_reasons: dict[str, str] = {}
        self._stopping = False
        self._meter = RateMeter()
        self._effective = RateMeter()
        self._local = {"accepted": 0, "best": 0.0, "blocks": 0}  # benchmark mode (no pool)
        self._engine_stale = 0   # stale shares no pool manager counted (offline benchmark, or after shutdown)
        self._share_log = ShareLog()
        self._history = HistoryRing()
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.exit_reason: ExitReason | None = None
        self.exit_detail = ""         # the words behind exit_reason, for the log
        self.restart_requested = False
        self.switch_latencies: list[float] = []   # seconds, clean job -> every device on it

    def attach_pools(self, pool_manager: Any) -> None:
        """Use ``pool_manager`` (built with on_job=engine.on_job, on_event=engine.pool_event); before run()."""
        if self._loop is not None:
            raise MinerError("attach_pools() after run() started")
        self.pools = pool_manager

    # ------------------------------------------------------------------ jobs
    def on_job(self, job: Job) -> None:
        """New job from the pool manager (loop thread)."""
        with self._cond:
            first = self._job is None
            if not _same_template(self._job, job):
                self._stream_counter = 0
            else:
                # The pool re-issued this job (new extranonce or version mask): continue from the
                # extranonce2 already reached rather than redo finished work from 0.
                log.debug("job %s re-issued; continuing at extranonce2 #%d", job.job_id, self._stream_counter)
            self._job = job
            if job.clean or first:
                self._generation += 1
                self._generation_time = time.perf_counter()
            listeners = [fn for s in self._devices for fn in s.listeners] if (job.clean or first) else []
            self._cond.notify_all()
        for fn in listeners:
            fn()
        self._on_event("job", {"job_id": job.job_id, "pool": job.pool_id, "clean": job.clean,
                               "target_difficulty": float(job.difficulty), "generation": self._generation})

    def _new_stream(self, job: Job, device_rolls: bool) -> _Stream | None:
        """Next disjoint (extranonce2, version) of ``job``; caller holds _cond."""
        en2_space = 1 << (8 * job.extranonce2_size)
        c = self._stream_counter
        self._stream_counter += 1
        en2 = job.extranonce2_bytes(c % en2_space)
        version = job.version
        roll = c // en2_space
        if roll:
            # Extranonce2 space used up: roll version bits on the host (never for a
            # device that rolls them itself, which needs the whole mask).
            bits = spread_bits(roll, job.version_mask)
            if device_rolls or bits is None:
                log.warning("job %s: extranonce2 space exhausted; waiting for a new job", job.job_id)
                return None
            version = job.rolled_version(bits)
        root = job.merkle_root(en2)
        return _Stream(job, en2, version, root, job.header(en2, None, 0, version, root))

    def _next_work(self, st: _DeviceState, nonce_count: int, timeout: float | None,
                   version_rolling: bool, ctx: _Context) -> Work | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if ctx.stopping:
                    return None
                if self._job is not None and not self._paused_reasons and not st.held:
                    stream = st.stream
                    if stream is None or stream.job is not self._job or stream.next_nonce >= NONCE_SPACE:
                        stream = st.stream = self._new_stream(self._job, version_rolling)
                    if stream is not None:
                        break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 1.0)
            start = stream.next_nonce
            count = max(1, min(int(nonce_count), NONCE_SPACE - start))
            stream.next_nonce = start + count
            gen = self._generation
            if st.picked_generation != gen:
                st.picked_generation = gen
                if all(s.picked_generation == gen for s in self._devices if s.status == "alive" and not s.held):
                    self.switch_latencies.append(time.perf_counter() - self._generation_time)
                    del self.switch_latencies[:-1000]
        if st.status in ("starting", "sick"):
            st.status = "alive"
        mask = stream.job.version_mask if version_rolling else 0
        return Work(stream.job, stream.extranonce2, stream.job.ntime, stream.version, start, count,
                    gen, stream.merkle_root, stream.header, mask)

    def _wait_generation(self, generation: int, timeout: float, ctx: _Context) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._generation == generation and not ctx.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._generation != generation

    # ---------------------------------------------------------------- results
    def _submit(self, st: _DeviceState, work: Work, nonce: int, version: int | None,
                claimed_target: int | None, check: NonceCheck | None = None) -> bool:
        """Re-check a device's nonce on the host (device thread), unless the driver's host code just did."""
        nonce &= 0xFFFFFFFF
        ver = work.version if version is None else version & 0xFFFFFFFF
        if (ver ^ work.version) & ~work.device_version_mask & 0xFFFFFFFF:
            return self._hw_error(st, f"rolled version {ver:08x} outside the allowed mask")
        if check is None or check.nonce != nonce or check.version != ver:
            check = recheck(work.header, nonce, ver)
        h, value = check.hash, check.value
        if value > (work.target if claimed_target is None else claimed_target):
            return self._hw_error(st, f"nonce {nonce:08x} does not meet the device's target")
        st.good_nonces += 1
        if value > work.job.share_target:
            return False  # a valid device result below the pool's difficulty
        share = Share(work.job, work.extranonce2, work.ntime, nonce, ver, h, st.device.name)
        st.best_share = max(st.best_share, share.share_difficulty)
        if work.generation != self._generation:
            self._count_stale(share)
            return False
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send_share, share, work.generation)
        return True

    def _send_share(self, share: Share, generation: int) -> None:
        if generation != self._generation:
            # A clean job landed between the device's check and this callback.
            self._count_stale(share)
            return
        if share.is_block:
            log.warning("BLOCK FOUND by %s: hash %s", share.device, share.hash[::-1].hex())
        if self.pools is None:  # offline benchmark: count locally
            self._local["accepted"] += 1
            self._local["best"] = max(self._local["best"], share.share_difficulty)
            self._local["blocks"] += int(share.is_block)
            self.pool_event("share", {"result": "accepted", "device": share.device, "job_id": share.job.job_id,
                                      "target_difficulty": float(share.job.difficulty),
                                      "share_difficulty": share.share_difficulty, "local": True})
            return
        self.pools.submit(share)

    def _count_stale(self, share: Share) -> None:
        """A share for work a clean job replaced (device thread or loop): counted stale once, never sent."""
        why = "job replaced by a clean job"
        log.info("%s: share for job %s found after a clean job; counted stale, not sent",
                 share.device, share.job.job_id)
        if self.pools is not None:
            # The pool manager counts it with its pool (per device through pool_event), so the
            # per-pool line and every total agree.
            loop = self._loop
            if loop is not None and not loop.is_closed():
                if self._in_loop():
                    self.pools.discard_stale(share, why)
                else:
                    loop.call_soon_threadsafe(self.pools.discard_stale, share, why)
                return
            # The loop is gone (a device thread that outlived shutdown): counted here instead.
        st = self._by_name.get(share.device)
        if st is not None:
            st.stale += 1
        self._engine_stale += 1  # not through pool_event: the pool client never saw this share
        self._share_log.add_event({"result": "stale", "device": share.device, "pool": share.job.pool_id,
                                   "job_id": share.job.job_id, "target_difficulty": float(share.job.difficulty),
                                   "share_difficulty": share.share_difficulty, "reason": why})
        self._on_event("share", {"result": "stale", "device": share.device, "job_id": share.job.job_id,
                                 "target_difficulty": float(share.job.difficulty),
                                 "share_difficulty": share.share_difficulty, "reason": why, "local": True})

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def pool_event(self, kind: str, data: dict) -> None:
        """Event sink for the pool manager (loop thread): account share outcomes per device, then forward."""
        if kind == "share":
            self._account_share(data)
            self._share_log.add_event(data)
        self._on_event(kind, data)

    def _account_share(self, data: dict) -> None:
        st = self._by_name.get(data.get("device", ""))
        result = data.get("result")
        # Credit the job's target difficulty, as cgminer and the pool do; the share's own
        # (achieved) difficulty is only a best-share figure and would inflate these 5-30x.
        diff = float(data.get("target_difficulty") or 0.0)
        if st is not None:
            if data.get("corrects") == "rejected":   # a late reply: the share was counted rejected
                st.rejected = max(0, st.rejected - 1)
            if result == "accepted":
                st.accepted += 1
                st.difficulty_accepted += diff
                st.last_share_time = time.time()
            elif result == "rejected":
                st.rejected += 1
            elif result == "stale":
                st.stale += 1
        if result == "accepted":
            self._effective.add(diff * NONCE_SPACE)

    def _hw_error(self, st: _DeviceState, why: str) -> bool:
        st.hw_errors += 1
        log.warning("%s: hardware error: %s (%d so far)", st.device.name, why, st.hw_errors)
        self._on_event("device", {"device": st.device.name, "state": "hw_error", "detail": why,
                                  "hw_errors": st.hw_errors})
        if st.hw_errors >= self._hw_error_limit and st.hw_errors > st.good_nonces:
            self._disable(st, f"{st.hw_errors} hardware errors against {st.good_nonces} good nonces")
        return False

    def _disable(self, st: _DeviceState, why: str) -> None:
        if st.status in ("disabled", "dead"):
            return
        st.status = "disabled"
        log.error("%s: disabled: %s; the other devices keep mining", st.device.name, why)
        self._on_event("device", {"device": st.device.name, "state": "disabled", "detail": why})
        for fn in st.listeners:
            fn()
        with self._cond:
            self._cond.notify_all()

    # ---------------------------------------------------------------- devices
    def _device_thread(self, st: _DeviceState) -> None:
        dev = st.device
        ctx = _Context(self, st)
        attempts = 0
        while not ctx.stopping:
            st.listeners.clear()
            try:
                dev.open()
                try:
                    st.info = dict(dev.info())
                except Exception:  # info is best-effort
                    st.info = {}
                dev.selftest()
                if st.status != "disabled":
                    st.status = "alive"
                self._on_event("device", {"device": dev.name, "state": "started", "kind": dev.kind,
                                          "model": st.info.get("model", "")})
                dev.run(ctx)
                return
            except (NoSuchDevice, DeviceGone) as exc:
                if isinstance(exc, NoSuchDevice) and st.status == "starting":
                    # never opened: retrying a path that is not there helps nobody
                    st.status = "dead"
                    st.last_error = str(exc)
                    log.error("%s: %s", dev.name, exc)
                    self._on_event("device", {"device": dev.name, "state": "dead", "detail": str(exc)})
                    self._check_all_dead()
                    return
                attempts += 1
                st.restarts += 1
                st.status = "sick"
                st.last_error = str(exc)
                log.warning("%s: device gone (%s)%s", dev.name, exc, self._retry_note(attempts))
                self._on_event("device", {"device": dev.name, "state": "gone", "detail": str(exc)})
            except Exception as exc:  # any failure is isolated to this device
                attempts += 1
                st.restarts += 1
                st.status = "sick"
                st.last_error = str(exc)
                kind = "error" if isinstance(exc, DeviceError) else type(exc).__name__
                log.error("%s: %s: %s%s", dev.name, kind, exc, self._retry_note(attempts))
                self._on_event("device", {"device": dev.name, "state": "failed", "detail": str(exc)})
            finally:
                try:
                    dev.close()
                except Exception as exc:
                    log.debug("%s: close failed: %s", dev.name, exc)
            if attempts > self._reconnect.retries:
                st.status = "dead"
                others = any(s.status not in ("dead", "disabled") for s in self._devices)
                log.error("%s: giving up after %d failures%s", dev.name, attempts,
                          "; the other devices keep mining" if others else "")
                self._on_event("device", {"device": dev.name, "state": "dead"})
                self._check_all_dead()
                return
            with self._cond:  # back off before reopening, waking early on shutdown
                self._cond.wait(self._reconnect.delay(attempts))

    def _retry_note(self, attempts: int) -> str:
        retries = self._reconnect.retries
        if attempts > retries:
            return ""
        return f"; retry {attempts} of {retries} in {self._reconnect.delay(attempts):g} s"

    def failed_devices(self) -> list[tuple[str, str]]:
        """(name, last error) of every device that failed for good."""
        return [(s.device.name, s.last_error) for s in self._devices if s.status in ("dead", "disabled")]

    def _check_all_dead(self) -> None:
        if all(s.status in ("dead", "disabled") for s in self._devices) and self._loop is not None:
            self._set_exit(ExitReason.DEVICES_FAILED, ExitReason.DEVICES_FAILED.value)
            self._loop.call_soon_threadsafe(self._request_stop)

    # ---------------------------------------------------------------- running
    async def run(self, time_limit: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for st in self._devices:
            st.thread = threading.Thread(target=self._device_thread, args=(st,), name=f"dev-{st.device.name}",
                                         daemon=True)
            st.thread.start()
        pool_task = None
        if self.pools is not None:
            pool_task = asyncio.create_task(self.pools.run(), name="pools")
        elif self._benchmark_job is not None:
            self.on_job(self._benchmark_job)
        history_task = asyncio.create_task(self._sample_history(), name="history")
        try:
            if time_limit:
                try:
                    await asyncio.wait_for(self._stop_event.wait(), time_limit)
                except asyncio.TimeoutError:
                    self._set_exit(ExitReason.TIME_LIMIT, f"time limit of {time_limit:g} s reached")
            else:
                await self._stop_event.wait()
        finally:
            history_task.cancel()
            await self._shutdown(pool_task)

    async def _sample_history(self) -> None:
        while True:
            self._history.sample(self._meter.total)
            await asyncio.sleep(HISTORY_INTERVAL_S)

    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def _set_exit(self, reason: ExitReason, detail: str) -> None:
        if self.exit_reason is None:  # the first reason wins: a stop during shutdown does not rename it
            self.exit_reason, self.exit_detail = reason, detail

    def stop(self, detail: str = "stopped", reason: ExitReason = ExitReason.STOPPED) -> None:
        """Thread-safe request to stop (signals, API quit); ``detail`` is the log's wording."""
        self._set_exit(reason, detail)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._request_stop)

    async def _shutdown(self, pool_task: asyncio.Task | None) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for st in self._devices:
            for fn in st.listeners:
                fn()
        # Device threads finish their current chunk; their last shares reach the loop
        # before the pool client's bounded wait for submits in flight.
        deadline = time.monotonic() + 5.0
        for st in self._devices:
            if st.thread is not None:
                await asyncio.get_running_loop().run_in_executor(
                    None, st.thread.join, max(0.0, deadline - time.monotonic()))
                if st.thread.is_alive():
                    log.warning("%s: did not stop within 5 s", st.device.name)
        await asyncio.sleep(0)  # run the share callbacks the threads queued
        if self.pools is not None:
            try:
                await self.pools.close(timeout=5.0)
            except Exception as exc:
                log.warning("pool shutdown: %s", exc)
        if pool_task is not None:
            pool_task.cancel()
            try:
                await pool_task
            except (asyncio.CancelledError, Exception):
                pass

    # ---------------------------------------------------------------- control
    def pause(self, reason: str) -> None:
        with self._cond:
            new = reason not in self._paused_reasons
            self._paused_reasons[reason] = reason
            self._cond.notify_all()
        if new:
            log.warning("mining paused: %s (pool session kept alive)", reason)
            self._on_event("state", {"paused": True, "reason": reason})
            for st in self._devices:
                for fn in st.listeners:
                    fn()

    def resume(self, reason: str = "") -> None:
        with self._cond:
            if reason:
                self._paused_reasons.pop(reason, None)
            else:
                self._paused_reasons.clear()
            paused = bool(self._paused_reasons)
            self._cond.notify_all()
        log.warning("mining %s%s", "still paused" if paused else "resumed",
                    f" ({reason} cleared)" if reason else "")
        self._on_event("state", {"paused": paused, "reason": reason})

    @property
    def paused(self) -> bool:
        return bool(self._paused_reasons)

    @property
    def pause_reasons(self) -> tuple[str, ...]:
        return tuple(self._paused_reasons)

    def _pool_call(self, name: str, *args):
        if self.pools is None:
            raise MinerError("no pool configured (offline benchmark)")
        fn = getattr(self.pools, name)
        if self._loop is not None and threading.current_thread() is not threading.main_thread():
            fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
            return fut.result(timeout=5.0)
        return fn(*args)

    def switch_pool(self, pool_id: int) -> None:
        self._pool_call("switch_pool", pool_id)

    def add_pool(self, url: str, user: str, password: str) -> int:
        from miner.stratum import PoolConfig
        return self._pool_call("add_pool", PoolConfig(url, user, password))

    def enable_pool(self, pool_id: int) -> None:
        self._pool_call("enable_pool", pool_id)

    def disable_pool(self, pool_id: int) -> None:
        self._pool_call("disable_pool", pool_id)

    def remove_pool(self, pool_id: int) -> None:
        self._pool_call("remove_pool", pool_id)

    def _device_state(self, name: str) -> _DeviceState:
        st = self._by_name.get(name)
        if st is None:
            raise MinerError(f"no device {name!r}; devices are {', '.join(self._by_name)}")
        return st

    def disable_device(self, name: str) -> None:
        """Stop giving `name` work (it stays open, like a pause of one device)."""
        st = self._device_state(name)
        with self._cond:
            if st.held:
                return
            st.held = True
            self._cond.notify_all()
        log.warning("%s: disabled by request", name)
        self._on_event("device", {"device": name, "state": "disabled", "detail": "by request"})
        for fn in st.listeners:
            fn()

    def enable_device(self, name: str) -> None:
        st = self._device_state(name)
        if st.status in ("disabled", "dead") and not st.held:
            raise MinerError(f"{name} was stopped by the miner ({st.last_error or st.status}); "
                             "restart the miner to use it again")
        with self._cond:
            if not st.held:
                return
            st.held = False
            self._cond.notify_all()
        log.warning("%s: enabled by request", name)
        self._on_event("device", {"device": name, "state": "enabled", "detail": "by request"})

    def shares(self) -> tuple[ShareRecord, ...]:
        return self._share_log.items()

    def history(self) -> tuple[tuple[float, float], ...]:
        return self._history.points()

    def quit(self) -> None:
        self.stop("quit requested")

    def restart(self) -> None:
        self.restart_requested = True
        self.stop("restart requested", ExitReason.RESTART)

    # ---------------------------------------------------------------- reporting
    def snapshot(self) -> MinerSnapshot:
        now = time.monotonic()
        elapsed = now - self._started
        devices = []
        for st in self._devices:
            info = st.info
            snap = DeviceSnapshot(
                id=st.id, name=st.device.name, kind=st.device.kind, model=str(info.get("model", st.device.kind)),
                status="disabled" if st.held else ("paused" if (self.paused and st.status == "alive") else st.status),
                enabled=not st.held and st.status not in ("disabled", "dead"), hashrate=st.meter.rates(now),
                accepted=st.accepted, rejected=st.rejected, stale=st.stale, hw_errors=st.hw_errors,
                difficulty_accepted=st.difficulty_accepted, best_share=st.best_share,
                last_share_time=st.last_share_time, temperature_c=info.get("temperature_c"),
                watts=info.get("watts"), frequency_mhz=info.get("frequency_mhz"), elapsed=elapsed,
                code=getattr(st.device, "code", None))
            if self._watts_for is not None:
                try:
                    w = self._watts_for(snap, info)
                except Exception as exc:
                    log.debug("watts for %s: %s", snap.name, exc)
                    w = None
                if w is not None:
                    snap = replace(snap, watts=w)
            devices.append(snap)
        pools: tuple[PoolSnapshot, ...] = tuple(self.pools.snapshots()) if self.pools is not None else ()
        watts = [d.watts for d in devices if d.watts is not None and d.enabled]
        job = self._job
        if pools:
            acc = sum(p.accepted for p in pools)
            rej = sum(p.rejected for p in pools)
            stale = sum(p.stale for p in pools) + self._engine_stale
            dacc = sum(p.difficulty_accepted for p in pools)
            drej = sum(p.difficulty_rejected for p in pools)
            dstale = sum(p.difficulty_stale for p in pools)
            best = max([p.best_share for p in pools] + [d.best_share for d in devices])
            blocks = sum(p.blocks for p in pools)
        else:
            acc, rej, stale = self._local["accepted"], 0, self._engine_stale
            dacc = sum(d.difficulty_accepted for d in devices)
            drej = dstale = 0.0
            best = max([self._local["best"]] + [d.best_share for d in devices])
            blocks = self._local["blocks"]
        return MinerSnapshot(
            version=__version__, started_at=self._started_wall, elapsed=elapsed, paused=self.paused,
            pause_reason="; ".join(self._paused_reasons), hashrate=self._meter.rates(now),
            effective_hashrate=self._effective.rates(now)["av"], accepted=acc, rejected=rej, stale=stale,
            hw_errors=sum(d.hw_errors for d in devices), difficulty_accepted=dacc, difficulty_rejected=drej,
            difficulty_stale=dstale, best_share=best, blocks=blocks,
            network_difficulty=network_difficulty(job.nbits) if job is not None else None,
            watts=sum(watts) if watts else None, devices=tuple(devices), pools=pools,
            current_pool=getattr(self.pools, "active_pool_id", None) if self.pools is not None else None,
            utility=acc / (elapsed / 60.0) if elapsed > 0 else 0.0)

    @property
    def device_names(self) -> list[str]:
        return [s.device.name for s in self._devices]


def _same_template(old: Job | None, new: Job) -> bool:
    """The same pool job (coinbase, branch, header fields): only the extranonce or mask can differ."""
    return (old is not None and old.pool_id == new.pool_id and old.job_id == new.job_id
            and old.prevhash == new.prevhash and old.coinb1 == new.coinb1 and old.coinb2 == new.coinb2
            and old.merkle_branch == new.merkle_branch and old.version == new.version
            and old.nbits == new.nbits and old.ntime == new.ntime)


async def _call(fn, *args):
    return fn(*args)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
