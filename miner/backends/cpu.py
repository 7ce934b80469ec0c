"""CPU backend: one device per thread, each scanning with the C core (GIL released)."""
from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from miner import core
from miner.engine.backend import Backend, DetectedDevice, Device, DeviceContext, DeviceOptions
from miner.errors import ConfigError, CoreError, DeviceError
from miner.engine.job import spread_bits

log = logging.getLogger(__name__)

# A chunk is sized to about this long. The scan is aborted at once on a clean job
# (generation listener), so the chunk length only bounds how late a non-clean job
# or a hashrate update is picked up.
CHUNK_SECONDS = 0.25
MIN_CHUNK, MAX_CHUNK = 1 << 14, 1 << 26


class CPUDevice(Device):
    kind: ClassVar[str] = "cpu"

    def __init__(self, name: str, impl: str | None = None) -> None:
        super().__init__(name)
        self.impl = impl
        self._impl_name = ""
        self._max_versions = 0

    def open(self) -> None:
        try:
            self._impl_name = core.select(self.impl) if self.impl else core.selected()
            self._max_versions = core.max_versions(self.impl)
        except CoreError as exc:
            raise DeviceError(str(exc)) from exc

    def _versions(self, work) -> list[int] | None:
        """Header versions to hash together, when the pool lets us roll version bits (BIP 310).

        The C core's multi-version code shares the first hash's message schedule
        between versions (with 8: 1.16x the hashes per second, docs/benchmarks/core.md run E). The versions are
        the work's own with 0..n-1 spread over the mask's lowest bits; the engine
        hands this device's Work out disjoint by extranonce2 and nonce range, so
        no other device hashes these headers.
        """
        mask = work.device_version_mask
        n = min(self._max_versions, 1 << bin(mask).count("1"))
        if n < 2:
            return None
        return [work.job.rolled_version(spread_bits(i, mask)) for i in range(n)]

    def selftest(self) -> None:
        # The C core self-tests every implementation before reporting it usable;
        # this re-checks the chosen one end to end through the Python API.
        g = core.GENESIS_NONCE
        if core.scan(core.GENESIS_HEADER, g - 5, 10, 0xFFFF << 208, impl=self.impl) != [g]:
            raise DeviceError(f"{self.name}: core {self._impl_name} failed the genesis-block known answer")

    def info(self) -> dict[str, Any]:
        return {"model": f"CPU {self._impl_name or core.selected()}", "driver": "cpu"}

    def run(self, ctx: DeviceContext) -> None:
        abort = core.AbortFlag()
        ctx.add_generation_listener(abort.set)
        chunk = MIN_CHUNK * 16
        while True:
            work = ctx.next_work(chunk, version_rolling=self._max_versions > 1)
            if work is None:
                return
            abort.clear()
            if work.generation != ctx.generation:  # a clean job landed between the two calls
                continue
            versions = self._versions(work)
            t0 = time.perf_counter()
            if versions:
                pairs, next_nonce = core.scan_versions(work.header, versions, work.nonce_start, work.nonce_count,
                                                       work.target, abort=abort, impl=self.impl)
            else:
                hits, next_nonce = core.scan_abortable(work.header, work.nonce_start, work.nonce_count,
                                                       work.target, abort=abort, impl=self.impl)
                pairs = [(nonce, None) for nonce in hits]
            dt = time.perf_counter() - t0
            done = next_nonce - work.nonce_start
            ctx.hashes(done * (len(versions) if versions else 1))
            for nonce, version in pairs:
                ctx.submit(work, nonce, version=version)
            if done == work.nonce_count and dt > 0:
                # Chunks are sized in nonces (each one n hashes with n versions), so is rate.
                rate = done / dt
                chunk = int(min(MAX_CHUNK, max(MIN_CHUNK, rate * CHUNK_SECONDS)))


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
        return [CPUDevice(f"cpu{i}", impl) for i in range(threads)]
