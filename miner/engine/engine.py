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
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from miner import __version__
from miner.engine.backend import Device, Work
from miner.engine.difficulty import hash_value, network_difficulty
from miner.errors import DeviceError, DeviceGone, MinerError
from miner.engine.job import Job, Share, dsha256, spread_bits
from miner.engine.stats import DeviceSnapshot, MinerSnapshot, PoolSnapshot, RateMeter

log = logging.getLogger(__name__)

NONCE_SPACE = 1 << 32
EventSink = Callable[[str, dict], None]


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
               claimed_target: int | None = None) -> bool:
        return self._engine._submit(self._state, work, nonce, version, claimed_target)

    def hashes(self, n: int) -> None:
        self._state.meter.add(n)
        self._engine._meter.add(n)

    def add_generation_listener(self, fn: Callable[[], None]) -> None:
        self._state.listeners.append(fn)


class Engine:
    """Drives devices on the current job and sends shares to the pools. Implements miner.engine.stats.MinerControl."""

    def __init__(self, devices: list[Device], pool_manager: Any | None = None, *,
                 on_event: EventSink | None = None, hw_error_limit: int = 20,
                 device_retries: int = 3, watts_for: Callable[[DeviceSnapshot, dict], float | None] | None = None,
                 benchmark_job: Job | None = None) -> None:
        if not devices:
            raise MinerError("no device to mine with")
        self._devices = [_DeviceState(i, d) for i, d in enumerate(devices)]
        self._by_name = {s.device.name: s for s in self._devices}
        self.pools = pool_manager
        self._on_event = on_event or (lambda kind, data: None)
        self._hw_error_limit = hw_error_limit
        self._device_retries = device_retries
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
        self._engine_stale = 0   # stale shares the engine dropped before the pool client saw them
        self._started_wall = time.time()
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.exit_reason = ""
        self.restart_requested = False
        self.switch_latencies: list[float] = []   # seconds, clean job -> every device on it

    # ------------------------------------------------------------------ jobs
    def on_job(self, job: Job) -> None:
        """New job from the pool manager (loop thread)."""
        with self._cond:
            first = self._job is None
            self._job = job
            self._stream_counter = 0
            if job.clean or first:
                self._generation += 1
                self._generation_time = time.perf_counter()
            listeners = [fn for s in self._devices for fn in s.listeners] if (job.clean or first) else []
            self._cond.notify_all()
        for fn in listeners:
            fn()
        self._on_event("job", {"job_id": job.job_id, "pool": job.pool_id, "clean": job.clean,
                               "difficulty": job.difficulty, "generation": self._generation})

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
                if self._job is not None and not self._paused_reasons:
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
                if all(s.picked_generation == gen for s in self._devices if s.status == "alive"):
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
                claimed_target: int | None) -> bool:
        """Re-check a device's nonce on the host (device thread)."""
        nonce &= 0xFFFFFFFF
        ver = work.version if version is None else version & 0xFFFFFFFF
        if (ver ^ work.version) & ~work.device_version_mask & 0xFFFFFFFF:
            return self._hw_error(st, f"rolled version {ver:08x} outside the allowed mask")
        header = ver.to_bytes(4, "little") + work.header[4:76] + nonce.to_bytes(4, "little")
        h = dsha256(header)
        value = hash_value(h)
        if value > (work.target if claimed_target is None else claimed_target):
            return self._hw_error(st, f"nonce {nonce:08x} does not meet the device's target")
        st.good_nonces += 1
        if value > work.job.share_target:
            return False  # a valid device result below the pool's difficulty
        share = Share(work.job, work.extranonce2, work.ntime, nonce, ver, h, st.device.name)
        st.best_share = max(st.best_share, share.difficulty)
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
            self._local["best"] = max(self._local["best"], share.difficulty)
            self._local["blocks"] += int(share.is_block)
            self.pool_event("share", {"result": "accepted", "device": share.device, "job_id": share.job.job_id,
                                      "difficulty": share.job.difficulty, "share_difficulty": share.difficulty,
                                      "local": True})
            return
        self.pools.submit(share)

    def _count_stale(self, share: Share) -> None:
        st = self._by_name.get(share.device)
        if st is not None:
            st.stale += 1
        self._engine_stale += 1  # not through pool_event: the pool client never saw this share
        log.info("%s: share for job %s found after a clean job; counted stale, not sent",
                 share.device, share.job.job_id)
        self._on_event("share", {"result": "stale", "device": share.device, "job_id": share.job.job_id,
                                 "difficulty": share.job.difficulty, "share_difficulty": share.difficulty,
                                 "reason": "job replaced by a clean job", "local": True})

    def pool_event(self, kind: str, data: dict) -> None:
        """Event sink for the pool manager (loop thread): account share outcomes per device, then forward."""
        if kind == "share":
            self._account_share(data)
        self._on_event(kind, data)

    def _account_share(self, data: dict) -> None:
        st = self._by_name.get(data.get("device", ""))
        result = data.get("result")
        diff = float(data.get("difficulty") or 0.0)
        if st is not None:
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
            except DeviceGone as exc:
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
            if attempts > self._device_retries:
                st.status = "dead"
                others = any(s.status not in ("dead", "disabled") for s in self._devices)
                log.error("%s: giving up after %d failures%s", dev.name, attempts,
                          "; the other devices keep mining" if others else "")
                self._on_event("device", {"device": dev.name, "state": "dead"})
                self._check_all_dead()
                return
            with self._cond:  # back off before reopening, waking early on shutdown
                self._cond.wait(min(30.0, 0.5 * 2 ** attempts))

    def _retry_note(self, attempts: int) -> str:
        return f"; retry {attempts} of {self._device_retries}" if attempts <= self._device_retries else ""

    def failed_devices(self) -> list[tuple[str, str]]:
        """(name, last error) of every device that failed for good."""
        return [(s.device.name, s.last_error) for s in self._devices if s.status in ("dead", "disabled")]

    def _check_all_dead(self) -> None:
        if all(s.status in ("dead", "disabled") for s in self._devices) and self._loop is not None:
            self.exit_reason = "every device failed"
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
        try:
            if time_limit:
                try:
                    await asyncio.wait_for(self._stop_event.wait(), time_limit)
                except asyncio.TimeoutError:
                    self.exit_reason = self.exit_reason or f"time limit of {time_limit:g} s reached"
            else:
                await self._stop_event.wait()
        finally:
            await self._shutdown(pool_task)

    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def stop(self, reason: str = "stopped") -> None:
        """Thread-safe request to stop (signals, API quit)."""
        self.exit_reason = self.exit_reason or reason
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

    def quit(self) -> None:
        self.stop("quit requested")

    def restart(self) -> None:
        self.restart_requested = True
        self.stop("restart requested")

    # ---------------------------------------------------------------- reporting
    def snapshot(self) -> MinerSnapshot:
        now = time.monotonic()
        elapsed = now - self._started
        devices = []
        for st in self._devices:
            info = st.info
            snap = DeviceSnapshot(
                id=st.id, name=st.device.name, kind=st.device.kind, model=str(info.get("model", st.device.kind)),
                status="paused" if (self.paused and st.status == "alive") else st.status,
                enabled=st.status not in ("disabled", "dead"), hashrate=st.meter.rates(now),
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


async def _call(fn, *args):
    return fn(*args)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
