"""Per-job precompute shared by the OpenCL and CUDA kernels, and helpers both hosts use.

A header is two SHA-256 blocks. The first (bytes 0..63) never changes within
a Work, so its compression (the midstate) is done once here. In the second
block only word 3 (the nonce) varies, so rounds 0..2, most of round 3 and the
schedule words W16..W19 (up to a nonce term) are computed here too. The kernel
then does rounds 3..63 of block 2 and rounds 0..60 of the second hash per
nonce, rejecting on the top 32 bits of the hash before anything else.

The job is one flat structure of 38 little-endian uint32 (``JOB_WORDS``),
declared once in kernels/sha256d_job.h with its word offsets: both kernels
include that header, and JOB_FIELDS below is read from it, so JobPrecompute.pack()
lays the words out in exactly the kernels' order.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import struct
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from typing import Any

from miner import core
from miner.engine.backend import Device, DeviceContext
from miner.errors import ConfigError, CoreError, DeviceError
from miner.sha256 import (  # plain-Python pieces for the per-job precompute
    H_INIT, K, MASK as _M, bsig0 as _bsig0, bsig1 as _bsig1, ch as _ch, compress, maj as _maj,
    sha_round as _round, ssig0 as _ssig0, ssig1 as _ssig1,
)

log = logging.getLogger(__name__)

JOB_HEADER = "sha256d_job.h"


def _job_fields() -> tuple[tuple[str, int], ...]:
    """(field, words) of the job struct, in layout order, read from kernels/sha256d_job.h."""
    text = resources.files("miner.kernels").joinpath(JOB_HEADER).read_text(encoding="utf-8")
    body = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    m = re.search(r"typedef struct \{(.*?)\}\s*sha256d_job;", body, re.S)
    if m is None:
        raise CoreError(f"kernels/{JOB_HEADER} declares no sha256d_job")
    fields = tuple((name, int(n or 1)) for name, n in re.findall(r"SHA256_U32\s+(\w+)(?:\[(\d+)\])?\s*;", m.group(1)))
    if len(fields) != m.group(1).count(";"):
        raise CoreError(f"kernels/{JOB_HEADER}: one `SHA256_U32 name[N];` per field expected")
    return fields


JOB_FIELDS = _job_fields()
JOB_WORDS = sum(n for _, n in JOB_FIELDS)  # 38
_JOB_STRUCT = struct.Struct(f"<{JOB_WORDS}I")


@dataclass(frozen=True, slots=True)
class JobPrecompute:
    """The nonce-independent part of one 80-byte header, packed for a kernel by ``pack()``."""
    midstate: tuple[int, ...]
    state3: tuple[int, ...]     # a..h after block-2 rounds 0..2
    w012: tuple[int, int, int]
    w16: int
    w17: int
    w18_base: int
    w19_base: int
    p3: int
    t2_3: int
    target_words: tuple[int, ...]

    def pack(self, nonce_base: int, count: int, found_cap: int, found_base: int = 0) -> bytes:
        """The 152-byte job structure for a launch of ``count`` nonces from ``nonce_base``,
        in the order of kernels/sha256d_job.h (JOB_FIELDS)."""
        values = {"midstate": self.midstate, "st": self.state3, "w": self.w012, "w16": (self.w16,),
                  "w17": (self.w17,), "w18_base": (self.w18_base,), "w19_base": (self.w19_base,),
                  "p3": (self.p3,), "t2_3": (self.t2_3,), "nonce_base": (nonce_base & _M,),
                  "target": self.target_words, "found_cap": (found_cap,), "count": (count,),
                  "found_base": (found_base & _M,), "pad": (0,)}
        words: list[int] = []
        for name, n in JOB_FIELDS:
            v = values[name]
            if len(v) != n:
                raise CoreError(f"job field {name}: {len(v)} words for {n}")
            words.extend(v)
        return _JOB_STRUCT.pack(*words)


def job_scalar(packed: bytes):
    """A packed job as a numpy void scalar: how pyopencl and pycuda pass a struct by value."""
    import numpy  # both bindings depend on numpy
    return numpy.frombuffer(packed, dtype=numpy.dtype([("w", "<u4", (JOB_WORDS,))]))[0]


def target_words(target: int) -> tuple[int, ...]:
    """A share target as eight little-endian 32-bit chunks; clamped to 2^256-1 like the C core."""
    if target < 0:
        raise ValueError("target must not be negative")
    target = min(target, (1 << 256) - 1)
    return struct.unpack("<8I", target.to_bytes(32, "little"))


def precompute(header: bytes, target: int) -> JobPrecompute:
    """Everything the kernels need from an 80-byte header (its nonce field is ignored) and a target."""
    if len(header) != 80:
        raise ValueError(f"header must be 80 bytes, got {len(header)}")
    mid = compress(H_INIT, header[:64])
    w0, w1, w2 = struct.unpack(">3I", header[64:76])
    # Block 2: W3 = nonce (byte-swapped), W4 = 0x80000000 padding, W5..W14 = 0, W15 = 640 bits.
    s = list(mid)
    for i, w in enumerate((w0, w1, w2)):
        s = _round(s, K[i], w)
    a, b, c, d, e, f, g, h = s
    p3 = (h + _bsig1(e) + _ch(e, f, g) + K[3]) & _M
    t2_3 = (_bsig0(a) + _maj(a, b, c)) & _M
    w16 = (_ssig0(w1) + w0) & _M                          # + sigma1(W14=0) + W9=0
    w17 = (_ssig1(640) + _ssig0(w2) + w1) & _M            # sigma1(W15) + W10=0
    w18_base = (_ssig1(w16) + w2) & _M                    # + W11=0; sigma0(W3) added per nonce
    w19_base = (_ssig1(w17) + _ssig0(0x80000000)) & _M    # + W12=0; W3 added per nonce
    return JobPrecompute(mid, tuple(s), (w0, w1, w2), w16, w17, w18_base, w19_base, p3, t2_3,
                         target_words(target))


def kernel_source(name: str) -> str:
    """A kernel's source with its kernels/ headers (sha256_common.h, sha256d_job.h, sha256d_nonce.h) inlined.

    Runtime compilers (NVRTC, OpenCL drivers) then need no include path.
    """
    kernels = resources.files("miner.kernels")
    src = kernels.joinpath(name).read_text(encoding="utf-8")
    if '#include "sha256_common.h"' not in src:
        raise ConfigError(f"kernel {name} does not include sha256_common.h")
    for header in ("sha256_common.h", JOB_HEADER, "sha256d_nonce.h"):
        src = src.replace(f'#include "{header}"', kernels.joinpath(header).read_text(encoding="utf-8"), 1)
    return src


def check_launch_range(nonce_base: int, count: int) -> None:
    """A launch may not cross 2^32: the kernel's nonce is a 32-bit base plus the thread index."""
    if not 0 <= nonce_base < (1 << 32) or count < 0 or nonce_base + count > (1 << 32):
        raise ValueError(f"nonce range {nonce_base}+{count} leaves 0..2^32")


def found_capacity(count: int, target: int) -> int:
    """Found-buffer slots for a launch of ``count`` nonces: 4x the expected hits, at least 64.

    The kernel counts every hit even past the capacity, so the host sees an
    overflow and rescans; this size only makes overflow rare.
    """
    expected = (count * min(target + 1, 1 << 256)) >> 256
    return max(64, min(4 * expected + 64, 1 << 20))


# ---------------------------------------------------------------------------
# The host side both backends share: launch records, size tuning, the pipeline.

GENESIS_HEADER, GENESIS_NONCE = core.GENESIS_HEADER, core.GENESIS_NONCE  # mainnet block 0


def selftest_cases() -> list[tuple[str, bytes, int, int, int, list[int]]]:
    """(label, header, start, count, target, expected hits) with expectations from the C core.

    The genesis window checks the early-exit path at a real block target (a
    top word of zero settled by the full compare); the second case checks
    many hits at an easy target above 2^224, where the top word decides.
    """
    from miner.engine.difficulty import target_from_nbits

    genesis_target = target_from_nbits(0x1D00FFFF)
    pseudo = hashlib.sha256(b"miner gpu self-test").digest()
    header2 = (pseudo * 3)[:80]
    cases = [("genesis", GENESIS_HEADER, GENESIS_NONCE - 1500, 3000, genesis_target),
             ("easy-target", header2, 12345, 8192, 1 << 248)]
    out = []
    for label, header, start, count, target in cases:
        out.append((label, header, start, count, target, core.scan(header, start, count, target)))
    if GENESIS_NONCE not in out[0][5]:
        raise CoreError("the C core misses the genesis nonce; the GPU self-test has no reference")
    return out


@dataclass(slots=True)
class Launch:
    """One kernel launch in flight; ``found`` is the host copy of the found buffer once done."""
    nonce_base: int
    count: int
    cap: int
    found: bytearray | memoryview
    kernel_event: Any = None
    done_event: Any = None
    keep: Any = None           # device buffers that must outlive the launch
    pipelined: bool = False    # enqueued while another launch was still in flight
    found_base: int = 0        # found[0] before the launch (the counter runs on across launches)
    total: int = 0             # hits the kernel counted (set by hits())
    counter: int = 0           # found[0] after the launch: the next launch's found_base

    def hits(self) -> list[int] | None:
        """The hits, masked to 32 bits; None when they overflowed the buffer (relaunch with a bigger cap)."""
        words = struct.unpack_from(f"<{self.cap + 1}I", self.found)
        self.counter = words[0]
        self.total = (words[0] - self.found_base) & _M
        if self.total > self.cap:
            return None
        end = self.nonce_base + self.count
        # Never trust a device: a nonce outside the launch's range is not ours to submit.
        return [n & _M for n in words[1:1 + self.total] if self.nonce_base <= n < end]


@dataclass(slots=True)
class FoundSlot:
    """One found buffer on the device and what the host knows of it.

    ``counter`` is found[0] as last read back (the next launch's found_base);
    ``busy`` while a launch using it is in flight, so it is never handed to a
    second launch before its counter is known.
    """
    device_buf: Any
    cap: int
    host_buf: Any = None
    counter: int = 0
    busy: bool = False
    events: Any = None


class LaunchTuner:
    """Launch size that keeps kernel time near ``target_ms``: long enough that the host's
    per-launch cost stays small, short enough that a new job reaches the device quickly."""

    GRAIN = 1 << 12
    MAX = 1 << 31

    def __init__(self, target_ms: float = 30.0, fixed: int | None = None, start: int = 1 << 16) -> None:
        if not 1.0 <= target_ms <= 1000.0:
            raise ConfigError(f"gpu_kernel_ms must be between 1 and 1000, got {target_ms}")
        if fixed is not None and not self.GRAIN <= int(fixed) <= self.MAX:
            raise ConfigError(f"gpu_launch must be between {self.GRAIN} and {self.MAX}, got {fixed}")
        self.target_s = target_ms / 1000.0
        self.fixed = fixed is not None
        self.size = int(fixed) if fixed is not None else start

    def observe(self, count: int, seconds: float) -> None:
        if self.fixed or seconds <= 0 or count < self.size // 2:
            return  # a short tail launch says little about the rate
        rate = count / seconds
        want = rate * self.target_s
        # At most x2 per step, so one noisy sample cannot swing it far.
        want = max(self.size / 2, min(self.size * 2, want))
        self.size = int(max(self.GRAIN, min(self.MAX, want // self.GRAIN * self.GRAIN)))

    def request_size(self) -> int:
        """Nonces to ask the engine for at once: several launches' worth."""
        return min(1 << 32, self.size * 8)


def _relaunch_all(dev, pre: JobPrecompute, launch: Launch) -> list[int]:
    """After an overflow: the kernel's count is exact, so one relaunch with room for all of them."""
    again = dev.launch(pre, launch.nonce_base, launch.count, launch.total + 1)
    hits = dev.wait(again)[0]
    if hits is None:
        raise DeviceError(f"{dev.name}: kernel hit count changed between identical launches")
    return hits


def pipeline_run(dev, ctx, tuner: LaunchTuner, depth: int = 2) -> dict[str, float]:
    """Drive ``dev`` (launch()/wait()) from ``ctx`` with ``depth`` launches in flight until stopping.

    Work is pulled in slices of several launches and cut into launches of
    ``tuner.size`` nonces; a new job generation is picked up at the next
    launch, so a stale job costs at most the launches already in flight.
    Returns timing facts of the run (kernel and wall seconds, idle fraction).
    """
    inflight: deque = deque()
    wall_start: float | None = None
    work = pre = None
    pos = end = 0
    kernel_s = gap_s = 0.0
    gaps = launches = 0
    prev_end: float | None = None
    while not ctx.stopping:
        while len(inflight) < depth and not ctx.stopping:
            if work is None or pos >= end or work.generation != ctx.generation:
                work = ctx.next_work(nonce_count=tuner.request_size(), timeout=0.05 if inflight else 0.5)
                if work is None:
                    break
                pre = precompute(work.header, work.target)
                pos, end = work.nonce_start, work.nonce_start + work.nonce_count
                if pos >= end:
                    work = None
                    continue
            n = min(tuner.size, end - pos)
            launch = dev.launch(pre, pos, n, found_capacity(n, work.target))
            launch.pipelined = bool(inflight)
            if wall_start is None:
                wall_start = time.perf_counter()
            inflight.append((work, pre, launch))
            pos += n
        if not inflight:
            continue
        w, p, launch = inflight.popleft()
        hits, start, stop, secs = dev.wait(launch)
        if hits is None:
            hits = _relaunch_all(dev, p, launch)
        for nonce in hits:
            ctx.submit(w, nonce)
        ctx.hashes(launch.count)
        tuner.observe(launch.count, secs)
        launches += 1
        kernel_s += secs
        if launch.pipelined and prev_end is not None:
            gap_s += max(0.0, start - prev_end)
            gaps += 1
        prev_end = stop
    for w, p, launch in inflight:  # let the device finish; its hits are still real shares
        hits, *_ = dev.wait(launch)
        for nonce in hits or ():
            ctx.submit(w, nonce)
        ctx.hashes(launch.count)
    wall_s = time.perf_counter() - wall_start if wall_start is not None else 0.0
    # idle_fraction: device-timeline gaps between back-to-back launches (OpenCL profiling);
    # busy_fraction: kernel time over host wall time, which also counts waits for work.
    return {"launches": launches, "kernel_seconds": kernel_s, "wall_seconds": wall_s,
            "idle_fraction": (gap_s / kernel_s) if kernel_s and gaps else 0.0,
            "busy_fraction": (kernel_s / wall_s) if wall_s else 0.0,
            "launch_size": tuner.size}


class GPUDevice(Device):
    """What the OpenCL and CUDA devices share: the two found-buffer slots, a synchronous scan
    (self-test, tests), the self-test against the C core and the pipelined run loop.

    Subclasses provide launch(pre, nonce_base, count, cap) -> Launch (taking its
    buffers from _take_slot()), wait(launch) (ending with _finish(launch)),
    _new_slot(cap) and a ``tuner``; they override _bound() when their context must
    be current on the calling thread while they run.
    """

    SCAN_CHUNK = 1 << 24  # nonces per launch in scan(); a subclass may launch more at once

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._reset_slots()

    def _bound(self):
        """Context manager around scan() and run(): the device's context is current inside."""
        return contextlib.nullcontext()

    # -- found-buffer slots --------------------------------------------------
    def _reset_slots(self) -> None:
        self._slots: list[FoundSlot | None] = [None, None]
        self._slot = 0

    def _new_slot(self, cap: int) -> FoundSlot:  # pragma: no cover - every GPU device overrides
        raise NotImplementedError

    def _take_slot(self, cap: int) -> FoundSlot:
        """The other of the two found-buffer slots (two launches in flight, so the next launch's
        buffers never touch those of the one still running), marked busy. A busy slot only
        happens for an overflow relaunch: it gets buffers of its own."""
        self._slot ^= 1
        slot = self._slots[self._slot]
        if slot is None or slot.busy or slot.cap < cap:
            fresh = self._new_slot(cap)
            if slot is None or not slot.busy:
                self._slots[self._slot] = fresh
            slot = fresh
        slot.busy = True
        return slot

    @staticmethod
    def _finish(launch: Launch) -> list[int] | None:
        """A completed launch's hits; its slot learns the counter and is free again."""
        hits = launch.hits()
        launch.keep.counter, launch.keep.busy = launch.counter, False
        return hits

    # -- scanning --------------------------------------------------------------
    def scan(self, header: bytes, start: int, count: int, target: int) -> list[int]:
        """Synchronous scan of one range; sorted like miner.core.scan."""
        with self._bound():
            pre = precompute(header, target)
            hits: list[int] = []
            pos, end = start, start + count
            while pos < end:
                n = min(end - pos, self.SCAN_CHUNK)
                launch = self.launch(pre, pos, n, found_capacity(n, target))
                got = self.wait(launch)[0]
                if got is None:  # overflow: the count is exact, so one relaunch with room for all
                    launch = self.launch(pre, pos, n, launch.total + 1)
                    got = self.wait(launch)[0]
                hits.extend(got)
                pos += n
            return sorted(hits)

    def selftest(self) -> None:
        for label, header, start, count, target, expect in selftest_cases():
            got = self.scan(header, start, count, target)
            if got != expect:
                raise DeviceError(f"{self.name}: self-test {label} failed: kernel found {got[:8]}, "
                                  f"C core {expect[:8]}")
        log.info("%s: self-test passed", self.name)

    def run(self, ctx: DeviceContext) -> None:
        with self._bound():
            self.last_run_stats = pipeline_run(self, ctx, self.tuner)
