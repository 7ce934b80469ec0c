"""Watts per device and efficiency (J/TH).

Where a number comes from, in order:
  1. a per-device value the user configured (--device-watts SPEC=W, SPEC being
     the device name, its spec or its kind);
  2. ASIC: the driver's own estimate (info["watts"], chip model x frequency);
     GPU: NVML's power reading for an NVIDIA device that published its PCI bus id
          (info["pci_bus_id"]), when nvidia-ml-py and an NVIDIA driver are present;
     CPU: the Linux powercap/RAPL package energy counter (energy_uj), as a delta;
  3. the per-kind value the user configured (--asic-watts, --gpu-watts, --cpu-watts).
Unknown stays None: an unknown power is never shown as zero.

RAPL measures the whole CPU package, so on a machine doing other work it is an
upper bound on what the miner draws. Since Linux 5.10 energy_uj is readable by
root only; an unreadable counter is simply skipped.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from miner.errors import ConfigError

log = logging.getLogger(__name__)

POWERCAP_ROOT = "/sys/class/powercap"
GPU_KINDS = ("opencl", "cuda", "gpu")


def joules_per_terahash(watts: float | None, hashrate_hs: float | None) -> float | None:
    """J/TH = W / (TH/s). None when either is unknown or the hashrate is zero."""
    if watts is None or not hashrate_hs or hashrate_hs <= 0:
        return None
    return watts / (hashrate_hs / 1e12)


def efficiency_hashrate(hashrate: dict[str, float], elapsed: float) -> float:
    """The hashrate J/TH is computed from: the 5-minute window once it has had 5 minutes,
    the average since start before that (the decayed window starts at zero and would
    overstate J/TH for minutes after start)."""
    if elapsed >= 300.0 and hashrate.get("5m"):
        return hashrate["5m"]
    return hashrate.get("av", 0.0)


def parse_device_watts(items: list[str] | None) -> dict[str, float]:
    """["cpu=65", "bm1370:/dev/ttyUSB0=18.5"] -> {spec: watts}. Splits on the LAST '='."""
    out: dict[str, float] = {}
    for item in items or ():
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            spec, sep, value = part.rpartition("=")
            if not sep or not spec:
                raise ConfigError(f"--device-watts expects SPEC=WATTS, got {part!r}")
            out[spec] = _watts(value, f"--device-watts {part}")
    return out


def _watts(value: Any, what: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {value!r} is not a number of watts") from None
    if not (w >= 0 and w < 1e7):
        raise ConfigError(f"{what}: watts must be between 0 and 10 MW, got {value!r}")
    return w


class RaplMeter:
    """Average package power from the powercap energy counters between two reads.

    The counter wraps at max_energy_range_uj; one wrap between two reads is
    handled, which holds as long as reads come at least every few minutes.
    """

    def __init__(self, root: str = POWERCAP_ROOT) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._zones = self._find_zones()
        self._last: tuple[float, list[int]] | None = None
        self._value: float | None = None

    def _find_zones(self) -> list[str]:
        # Top-level package zones only (intel-rapl:0, intel-rapl:1, amd's too):
        # sub-zones (intel-rapl:0:0 = core) are already counted in the package.
        zones = []
        for path in sorted(glob.glob(os.path.join(self.root, "*-rapl:*"))):
            name = os.path.basename(path)
            if name.count(":") == 1 and os.path.exists(os.path.join(path, "energy_uj")):
                zones.append(path)
        return zones

    @property
    def available(self) -> bool:
        return bool(self._zones) and self._read() is not None

    def _read(self) -> list[int] | None:
        try:
            vals = []
            for z in self._zones:
                with open(os.path.join(z, "energy_uj")) as f:
                    vals.append(int(f.read().strip()))
            return vals
        except (OSError, ValueError):
            return None

    def _range(self, zone: str) -> int:
        try:
            with open(os.path.join(zone, "max_energy_range_uj")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def watts(self, now: float | None = None, prime_s: float = 0.1, min_interval_s: float = 1.0) -> float | None:
        """Average watts since the previous reading.

        The first call reads twice prime_s apart. Calls closer than min_interval_s
        to the last reading return that reading's value: several reporters ask
        every second, and very short intervals are mostly counter granularity.
        """
        if not self._zones:
            return None
        with self._lock:
            t_now = time.monotonic() if now is None else now
            if self._last is not None and self._value is not None and t_now - self._last[0] < min_interval_s:
                return self._value
            if self._last is None:
                first = self._read()
                if first is None:
                    return None
                self._last = (time.monotonic() if now is None else now, first)
                if prime_s > 0:
                    time.sleep(prime_s)
            vals = self._read()
            if vals is None:
                return None
            t = time.monotonic() if now is None else now
            t0, prev = self._last
            dt = t - t0
            if dt <= 0:
                return None
            total = 0
            for z, a, b in zip(self._zones, prev, vals):
                d = b - a
                if d < 0:  # wrapped
                    d += self._range(z)
                total += max(d, 0)
            self._last = (t, vals)
            self._value = total / 1e6 / dt
            return self._value


_rapl: RaplMeter | None = None
_rapl_lock = threading.Lock()


def _cpu_rapl_watts(root: str) -> float | None:
    global _rapl
    with _rapl_lock:
        if _rapl is None or _rapl.root != root:
            _rapl = RaplMeter(root)
        meter = _rapl
    return meter.watts()


class _Nvml:
    """NVML initialised once per process; unavailable stays unavailable (no retry storm)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mod: Any = None
        self._state = "new"  # new | ready | unavailable

    def watts(self, info: dict[str, Any]) -> float | None:
        with self._lock:
            if self._state == "new":
                try:
                    import pynvml  # nvidia-ml-py; optional
                    pynvml.nvmlInit()
                    self._mod, self._state = pynvml, "ready"
                except Exception as e:  # ImportError or NVMLError: no NVIDIA driver here
                    log.debug("NVML unavailable: %s", e)
                    self._state = "unavailable"
            if self._state != "ready":
                return None
            nv = self._mod
            bus = info.get("pci_bus_id")
            if not bus:   # never a guess: GPU 0's watts would be shown for every device
                return None
            try:
                handle = nv.nvmlDeviceGetHandleByPciBusId(bus.encode() if isinstance(bus, str) else bus)
                return nv.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
            except Exception as e:  # NVMLError subclasses: this GPU gives no reading
                log.debug("NVML power reading unavailable: %s", e)
                return None


_nvml = _Nvml()


def nvml_watts(info: dict[str, Any]) -> float | None:
    """Board power from NVML for the GPU at info["pci_bus_id"]; None if unavailable or not given."""
    return _nvml.watts(info)


NVIDIA_PCI_VENDOR = 0x10DE


def is_nvidia(kind: str, info: dict[str, Any]) -> bool:
    """Whether NVML can know this device: CUDA devices, and OpenCL devices of NVIDIA's driver."""
    return (kind == "cuda" or info.get("vendor_id") == NVIDIA_PCI_VENDOR
            or str(info.get("vendor", "")).lower().startswith("nvidia"))


@dataclass(frozen=True, slots=True)
class PowerConfig:
    """The power flags, parsed once at start (PowerConfig.from_args), read on every snapshot."""
    per_device: dict[str, float] = field(default_factory=dict)  # --device-watts: name, spec or kind -> W
    cpu_watts: float | None = None
    gpu_watts: float | None = None
    asic_watts: float | None = None
    powercap_root: str = POWERCAP_ROOT

    @classmethod
    def from_args(cls, args: argparse.Namespace | None) -> "PowerConfig":
        """ConfigError (one line) on a malformed --device-watts or a watts value out of range."""
        return cls(per_device=parse_device_watts(getattr(args, "device_watts", None)),
                   cpu_watts=_configured(args, "cpu_watts"), gpu_watts=_configured(args, "gpu_watts"),
                   asic_watts=_configured(args, "asic_watts"),
                   powercap_root=getattr(args, "powercap_root", None) or POWERCAP_ROOT)


def device_watts(kind: str, info: dict[str, Any],
                 config: PowerConfig | argparse.Namespace | None) -> float | None:
    """Watts one device draws, or None when unknown. See the module docstring for the order.

    ``config``: the PowerConfig built at start (flags given as a Namespace are parsed here)."""
    if not isinstance(config, PowerConfig):
        config = PowerConfig.from_args(config)
    kind = (kind or "").lower()
    for key in (info.get("name"), info.get("spec"), kind):
        if key and key in config.per_device:
            return config.per_device[key]
    if kind == "asic":
        w = info.get("watts")
        if isinstance(w, (int, float)) and w >= 0:
            return float(w)
        return config.asic_watts
    if kind in GPU_KINDS:
        w = nvml_watts(info) if is_nvidia(kind, info) and info.get("pci_bus_id") else None
        return w if w is not None else config.gpu_watts
    if kind == "cpu":
        w = _cpu_rapl_watts(config.powercap_root)
        return w if w is not None else config.cpu_watts
    w = info.get("watts")
    return float(w) if isinstance(w, (int, float)) else None


def watts_for(kinds: list[str], config: PowerConfig) -> Callable[[Any, dict[str, Any]], float | None]:
    """The engine's watts_for(snapshot, info) for devices of these ``kinds``, reading ``config`` only.

    RAPL and --cpu-watts describe the whole CPU package: it is shared among the
    CPU threads so the total is not counted once per thread."""
    n_cpu = sum(1 for k in kinds if k == "cpu")

    def watts(snap: Any, info: dict[str, Any]) -> float | None:
        w = device_watts(snap.kind, {**info, "name": snap.name}, config)
        if w is not None and snap.kind == "cpu" and n_cpu > 1 and snap.name not in config.per_device:
            w /= n_cpu
        return w
    return watts


def _configured(args: argparse.Namespace | None, name: str) -> float | None:
    v = getattr(args, name, None)
    return None if v is None else _watts(v, "--" + name.replace("_", "-"))


def _nonneg_float(s: str) -> float:
    try:
        return _watts(s, "watts")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("power")
    g.add_argument("--cpu-watts", dest="cpu_watts", type=_nonneg_float, metavar="W",
                   help="watts the CPU miner draws when RAPL is not readable")
    g.add_argument("--gpu-watts", dest="gpu_watts", type=_nonneg_float, metavar="W",
                   help="watts per GPU when NVML gives no reading")
    g.add_argument("--asic-watts", dest="asic_watts", type=_nonneg_float, metavar="W",
                   help="watts per ASIC device when its driver gives no estimate")
    g.add_argument("--device-watts", dest="device_watts", action="append", metavar="SPEC=W",
                   help="watts for one device (name, spec or kind); repeatable, overrides everything else")
