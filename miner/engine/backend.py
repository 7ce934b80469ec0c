"""The one seam between the engine and hardware: Device, Work, DeviceContext, and the backend registry.

Every kind of hardware (CPU threads, OpenCL and CUDA GPUs, ASIC boards)
implements Device. The engine runs each device's run() on a thread of its own
and hands it a DeviceContext: the device pulls Work, reports candidate nonces
and hash counts, and returns when ctx.stopping is set. The host re-checks every
nonce; a device never decides what is a share.

Backends are found through a registry of name -> "module:Class" with lazy
imports (python-can style), extended by the entry-point group "miner.backends".
An import failure becomes BackendUnavailable with the pip extra to install.
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from importlib import metadata
from typing import Any, Callable, ClassVar, Mapping, Protocol

from miner.errors import BackendUnavailable, ConfigError
from miner.install import pip_install
from miner.engine.job import Job, NonceCheck

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Work:
    """A disjoint slice of a job for one device.

    No two Work objects handed out by the engine for the same job share an
    (extranonce2, version) pair and overlapping nonce range, so no two devices
    hash the same header.
    """
    job: Job
    extranonce2: bytes
    ntime: int
    version: int             # header version as handed out (host-rolled bits included)
    nonce_start: int
    nonce_count: int         # nonce_start + nonce_count <= 2^32
    generation: int          # engine job generation; stale once the engine's moves on
    merkle_root: bytes       # for extranonce2, computed once
    header: bytes            # 80 bytes, nonce field zero
    device_version_mask: int = 0  # bits the device itself may roll (ASICs that roll versions); 0 = none

    @property
    def target(self) -> int:
        return self.job.share_target


class DeviceContext(Protocol):
    """What the engine offers a running device. All methods are thread-safe."""

    @property
    def stopping(self) -> bool:
        """True once the device must return from run() (shutdown, disable)."""

    @property
    def generation(self) -> int:
        """Current job generation; a device holding older Work should switch."""

    def next_work(self, nonce_count: int = 1 << 32, *, timeout: float | None = None,
                  version_rolling: bool = False) -> Work | None:
        """Block until work is available (mining paused, no job yet); None when stopping or timed out.

        version_rolling=True asks for Work whose device_version_mask lets the
        device roll version bits itself (BM1366/68/70).
        """

    def wait_generation(self, generation: int, timeout: float) -> bool:
        """Sleep until the job generation differs from ``generation`` (True) or timeout (False)."""

    def submit(self, work: Work, nonce: int, *, version: int | None = None,
               claimed_target: int | None = None, check: NonceCheck | None = None) -> bool:
        """Report a candidate nonce. The host re-hashes it (miner.engine.job.recheck).

        claimed_target: the target the device promises its nonces meet (an
        ASIC's ticket difficulty); defaults to the work's share target. A nonce
        whose hash misses claimed_target is a hardware error for the device.
        check: what recheck(work.header, nonce, version) already returned, when
        host code of the driver hashed the nonce itself; the engine then uses it
        instead of hashing the nonce a second time.
        Returns True when it became a share.
        """

    def hashes(self, n: int) -> None:
        """Add n hashes done to the device's hashrate counters."""

    def add_generation_listener(self, fn: "Callable[[], None]") -> None:
        """Call fn() (on the engine's thread, so it must only set a flag) whenever the job
        generation changes or mining pauses, so a device can abort a long scan at once."""


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a failed device is reopened: one policy for every device (docs/ASIC.md, "Reconnects").

    The n-th failure in a row waits delay(n) before the reopen: first_delay_s,
    doubling, at most max_delay_s. Two loops apply it:
    - the engine, for a device whose open(), selftest() or run() raised: it is
      closed and reopened, and after ``retries`` failures it is given up (dead),
      the other devices mining on;
    - an ASIC board's own loop (drivers/base.py), for a board that went away
      (DeviceGone: unplugged, port gone): reopened without limit, since boards
      come back; the count restarts after every successful reopen.
    """
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    retries: int = 3

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, failures - 1))


RECONNECT = ReconnectPolicy()


class Device(ABC):
    """One piece of hardware the engine drives. Drivers declare what they implement; defaults fill the rest.

    Hooks, in the order the engine calls them:
      open()      once before mining; raise DeviceError if the hardware is not there.
      selftest()  known-answer check; raise DeviceError on a wrong answer. Never mine unverified.
      run(ctx)    on the device's own thread until ctx.stopping; raise DeviceError/DeviceGone on failure.
      close()     always, also after a failure; safe to call twice.
    """

    kind: ClassVar[str] = "device"  # "cpu", "opencl", "cuda", "asic"

    def __init__(self, name: str) -> None:
        self.name = name

    def open(self) -> None:
        pass

    def selftest(self) -> None:
        pass

    @abstractmethod
    def run(self, ctx: DeviceContext) -> None: ...

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        """Static and live facts for status, API and metrics.

        Known keys: model, driver, frequency_mhz, chips, temperature_c, watts,
        nominal_hashrate (H/s). Unknown values are simply absent.
        """
        return {}

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class DeviceOptions:
    """What backends read from the configuration, built once by the command (None = the backend's default)."""
    threads: int | None = None           # CPU mining threads
    core: str | None = None              # forced CPU core implementation
    gpu_kernel_ms: float | None = None   # GPU: target kernel time per launch
    gpu_launch: int | None = None        # GPU: fixed launch size in nonces
    cuda_runtime: str | None = None      # "cuda-python" or "pycuda"
    adaptive_core: bool = True           # CPU: re-measure the candidate codes while mining (off when forced)

    @classmethod
    def of(cls, options: "DeviceOptions | Mapping[str, Any] | None") -> "DeviceOptions":
        """Accept a DeviceOptions, a mapping with these keys (plugins, tests) or None."""
        if isinstance(options, DeviceOptions):
            return options
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(options or {}).items() if k in names})


@dataclass(frozen=True)
class DetectedDevice:
    """One line of `miner devices`."""
    backend: str
    spec: str              # what --device accepts to pick it
    description: str
    details: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A family of devices: detection for `miner devices`, and Device construction."""

    name: ClassVar[str]
    extra: ClassVar[str | None] = None  # pip extra that brings its dependencies

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        """Everything of this family present; [] when none. Must not raise for 'nothing there'."""
        return []

    @classmethod
    @abstractmethod
    def create(cls, specs: list[str], options: DeviceOptions) -> list[Device]:
        """Devices to mine with. specs: --device values for this backend ([] = all detected).

        options: a DeviceOptions (DeviceOptions.of() also takes a mapping). Raise
        ConfigError for a spec that names nothing.
        """

    @classmethod
    def selftest_all(cls) -> list[tuple[str, bool, str]]:
        """`miner selftest`: (device, passed, detail) for each present device."""
        out = []
        for dev in cls.create([], DeviceOptions()):
            try:
                with dev:
                    dev.selftest()
                out.append((dev.name, True, "ok"))
            except Exception as exc:  # reported, not raised: selftest lists every result
                out.append((dev.name, False, str(exc)))
        return out


BUILTIN_BACKENDS: dict[str, tuple[str, str | None]] = {
    "cpu": ("miner.backends.cpu:CPUBackend", None),
    "opencl": ("miner.backends.opencl:OpenCLBackend", "opencl"),
    "cuda": ("miner.backends.cuda:CUDABackend", "cuda"),
    "asic": ("miner.backends.asic:ASICBackend", "usb"),
}

ENTRY_POINT_GROUP = "miner.backends"


def backend_names() -> list[str]:
    names = list(BUILTIN_BACKENDS)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in names:
            names.append(ep.name)
    return names


def load_backend(name: str) -> type[Backend]:
    """Import the backend class for ``name``. Raises ConfigError (unknown) or BackendUnavailable."""
    if name in BUILTIN_BACKENDS:
        target, extra = BUILTIN_BACKENDS[name]
    else:
        eps = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not eps:
            raise ConfigError(f"unknown backend {name!r}; choose from: {', '.join(backend_names())}")
        target, extra = eps[0].value, None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: {pip_install(extra)}" if extra else ""
        raise BackendUnavailable(f"backend {name} unavailable ({exc}){hint}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise BackendUnavailable(f"backend unavailable: {module_name} has no {attr}") from exc
