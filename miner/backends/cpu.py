"""CPU backend: one device per thread, each scanning with the C core (GIL released).

Unless the user forces a core implementation (--core or MINER_CORE), each thread starts on
the start-up choice (miner.core.selected()) and keeps re-measuring the other
self-tested implementations on slices of its real work (miner.backends.cpu_choice),
switching when one is clearly faster under the load the host has now.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, ClassVar

from miner import core
from miner.backends.cpu_choice import CodeChooser, adaptive_candidates
from miner.engine.backend import Backend, DetectedDevice, Device, DeviceContext, DeviceOptions
from miner.errors import ConfigError, CoreError, DeviceError
from miner.engine.job import spread_bits

log = logging.getLogger(__name__)

# A chunk is sized to about this long. The scan is aborted at once on a clean job
# (generation listener), so the chunk length only bounds how late a non-clean job
# or a hashrate update is picked up.
CHUNK_SECONDS = 0.25
MIN_CHUNK, MAX_CHUNK = 1 << 14, 1 << 26
# The C core hands back its hits when a call ends, so a chunk is scanned in calls of about this
# long and each hit goes to the engine when its call ends. Held to the end of a 0.25 s chunk, a
# share reached the pool up to 0.25 s late, and one found before a clean job that came during
# the chunk was counted stale and never sent, though the pool would have taken it (with a clean
# job every 30 ms, 88% of the shares found went that way). A call costs 10-20 us over its
# hashing, so 50 a second are about 0.1% of a thread (bench/cpu_slices.py, docs/BENCHMARKS.md).
HIT_SECONDS = 0.02


class CPUDevice(Device):
    kind: ClassVar[str] = "cpu"

    def __init__(self, name: str, impl: str | None = None, *, adaptive: bool = True) -> None:
        super().__init__(name)
        self.impl = impl
        self.adaptive = adaptive and impl is None
        self._impl_name = ""
        self._candidates: list[str] = []
        self._max_versions: dict[str, int] = {}
        self.chooser: CodeChooser | None = None

    @property
    def code(self) -> str:
        """The core implementation this thread runs now (shown by the API and the status)."""
        return self.chooser.current if self.chooser is not None else self._impl_name

    def open(self) -> None:
        if os.environ.get("MINER_CORE", "").strip():
            self.adaptive = False  # the user forced the code through the environment
        try:
            self._impl_name = core.resolve(self.impl) if self.impl else core.selected()
            names = adaptive_candidates(self._impl_name) if self.adaptive else [self._impl_name]
            self._max_versions = {n: core.max_versions(n) for n in names}
        except CoreError as exc:
            raise DeviceError(str(exc)) from exc
        self._candidates = names

    def _versions(self, work, impl: str) -> list[int] | None:
        """Header versions to hash together, when the pool lets us roll version bits (BIP 310).

        The C core's multi-version code shares the first hash's message schedule
        between versions (with 8: 1.16x the hashes per second on AVX-512, docs/benchmarks/core.md run E; on
        SHA-NI the 2-lane code also shares each K+W load between four versions' rounds, run I). The versions are
        the work's own with 0..n-1 spread over the mask's lowest bits; the engine
        hands this device's Work out disjoint by extranonce2 and nonce range, so
        no other device hashes these headers.
        """
        mask = work.device_version_mask
        n = min(self._max_versions.get(impl, 0), 1 << bin(mask).count("1"))
        if n < 2:
            return None
        return [work.job.rolled_version(spread_bits(i, mask)) for i in range(n)]

    def selftest(self) -> None:
        # The C core self-tests every implementation before reporting it usable;
        # this re-checks each code this thread may run end to end through the
        # Python API. A candidate that fails is dropped (never switched to); the
        # start-up code failing is fatal for the device.
        g = core.GENESIS_NONCE
        ok = []
        for name in self._candidates:
            if core.scan(core.GENESIS_HEADER, g - 5, 10, 0xFFFF << 208, impl=name) == [g]:
                ok.append(name)
            elif name == self._impl_name:
                raise DeviceError(f"{self.name}: core {name} failed the genesis-block known answer")
            else:
                log.warning("%s: core %s failed the genesis-block known answer; not used", self.name, name)
        self._candidates = ok
        self.chooser = CodeChooser(ok, self._impl_name) if self.adaptive and len(ok) > 1 else None

    def info(self) -> dict[str, Any]:
        return {"model": f"CPU {self.code or core.selected()}", "driver": "cpu"}

    def _scan(self, work, impl: str, start: int, count: int, abort) -> tuple[list, int, int]:
        """Scan [start, start+count) of work with impl: ((nonce, version) pairs, next nonce, hashes per nonce)."""
        versions = self._versions(work, impl)
        if versions:
            pairs, next_nonce = core.scan_versions(work.header, versions, start, count, work.target,
                                                   abort=abort, impl=impl)
            return pairs, next_nonce, len(versions)
        hits, next_nonce = core.scan_abortable(work.header, start, count, work.target, abort=abort, impl=impl)
        return [(nonce, None) for nonce in hits], next_nonce, 1

    def run(self, ctx: DeviceContext) -> None:
        abort = core.AbortFlag()
        ctx.add_generation_listener(abort.set)
        chunk = MIN_CHUNK * 16
        rate = 0.0  # nonces per second of the current code, from the last full chunk
        rolling = max(self._max_versions.values(), default=0) > 1
        while True:
            work = ctx.next_work(chunk, version_rolling=rolling)
            if work is None:
                return
            abort.clear()
            if work.generation != ctx.generation:  # a clean job landed between the two calls
                continue
            # The work's range is scanned in order, slice after slice; each slice
            # starts at the previous one's next nonce, so a change of code between
            # slices neither skips nor repeats a nonce.
            pos, end = work.nonce_start, work.nonce_start + work.nonce_count
            t0 = time.perf_counter()
            while pos < end:
                impl = self.chooser.next_impl() if self.chooser else self._impl_name
                trial = self.chooser is not None and self.chooser.exploring
                if rate <= 0:
                    n = min(end - pos, MIN_CHUNK)
                elif trial:
                    n = min(end - pos, self.chooser.slice_nonces(rate))
                else:
                    n = min(end - pos, max(MIN_CHUNK, int(rate * HIT_SECONDS)))
                c0 = time.thread_time()
                pairs, next_nonce, per_nonce = self._scan(work, impl, pos, n, abort)
                cpu = time.thread_time() - c0
                ctx.hashes((next_nonce - pos) * per_nonce)
                for nonce, version in pairs:
                    ctx.submit(work, nonce, version=version)
                if next_nonce < pos + n:  # aborted: a clean job
                    pos = next_nonce
                    break
                if trial:
                    switch = self.chooser.record(impl, n * per_nonce, cpu)
                    if switch is not None:
                        log.info("%s: core %s -> %s (trial medians %s)", self.name, switch.old, switch.new,
                                 ", ".join(f"{k} {v / 1e6:.2f} MH/s" for k, v in switch.rates.items()))
                pos = next_nonce
            dt = time.perf_counter() - t0
            done = pos - work.nonce_start
            if done == work.nonce_count and dt > 0:
                # Chunks are sized in nonces (each one n hashes with n versions), so is rate.
                chunk = int(min(MAX_CHUNK, max(MIN_CHUNK, done / dt * CHUNK_SECONDS)))
                if not (self.chooser and self.chooser.exploring):
                    rate = done / dt


class CPUBackend(Backend):
    name: ClassVar[str] = "cpu"

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        from miner.engine import default_threads
        impls = core.implementations()
        return [DetectedDevice("cpu", "cpu", f"{default_threads()} threads; core implementations: "
                               f"{', '.join(impls)} (selected {core.selected()})",
                               {"implementations": impls, "selected": core.selected()})]

    @classmethod
    def create(cls, specs: list[str], options: DeviceOptions) -> list[Device]:
        """specs: "cpu" (all threads) or "cpu:N" (N threads). options: threads, core."""
        from miner.engine import default_threads
        options = DeviceOptions.of(options)
        threads = options.threads or default_threads()
        for spec in specs:
            _, _, arg = spec.partition(":")
            if arg:
                if not arg.isdigit() or int(arg) < 1:
                    raise ConfigError(f"bad CPU device {spec!r}: use cpu or cpu:THREADS, e.g. cpu:2")
                threads = int(arg)
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"bad thread count {threads!r}: -t needs a positive integer")
        impl = options.core or None
        if impl:
            try:
                core.select(impl)
            except CoreError as exc:
                raise ConfigError(str(exc)) from exc
        adaptive = options.adaptive_core
        return [CPUDevice(f"cpu{i}", impl, adaptive=adaptive) for i in range(threads)]
