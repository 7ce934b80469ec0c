"""OpenCL GPU backend (pyopencl): kernels/sha256d.cl on any OpenCL 1.2+ device, PoCL included.

Device spec: ``opencl:PLATFORM:DEVICE`` (indices as `miner devices` lists
them), ``opencl:PLATFORM`` for every device of a platform, ``opencl`` for all.

Options read from the configuration (all optional):
    gpu_kernel_ms   target kernel time in ms for launch-size auto-tuning (default 30)
    gpu_launch      fixed launch size in nonces; disables auto-tuning

pyopencl is imported lazily, so importing this module never needs it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from miner.engine.backend import Backend, DetectedDevice, Device, DeviceOptions
from miner.backends import gpu_common
from miner.backends.gpu_common import Launch, LaunchTuner
from miner.errors import BackendUnavailable, ConfigError, DeviceError
from miner.install import pip_install

log = logging.getLogger(__name__)

KERNEL_FILE = "sha256d.cl"
KERNEL_NAME = "sha256d_scan"
BUILD_OPTIONS = ("-cl-std=CL1.2",)


def _cl():
    try:
        import pyopencl
    except ImportError as exc:
        raise BackendUnavailable(f"OpenCL needs pyopencl: {pip_install('opencl')} ({exc})") from exc
    return pyopencl


def cache_dir() -> Path:
    """Where compiled kernels live: $XDG_CACHE_HOME/miner/opencl, else ~/.cache/miner/opencl."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "miner" / "opencl"


def _platforms(cl) -> list:
    try:
        return cl.get_platforms()
    except cl.Error:  # no ICD installed: PLATFORM_NOT_FOUND_KHR
        return []


def cache_key(device, options: tuple[str, ...], source: str) -> str:
    """Everything that changes the binary: platform, device, driver, build options and source."""
    plat = device.platform
    parts = (plat.name, plat.vendor, plat.version, device.name, device.vendor, device.version,
             device.driver_version, " ".join(options), source)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# PoCL hands the host CPU's LLVM name to its compiler; an LLVM older than the CPU (the pip
# wheel's PoCL 3.0 carries LLVM 14, which predates AMD Zen 5) names it "generic", and every
# build fails. The error alone does not say what to do about it.
_UNKNOWN_CPU_HINT = (" -- this OpenCL compiler does not know this CPU model; use a newer PoCL, such as the "
                     "distribution's (apt-get install pocl-opencl-icd), and pick its device with --device")


def build_summary(log_text: str) -> str:
    """One line from pyopencl's many-line build failure: its first line and the compiler's errors."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    if not lines:
        return "no build log"
    # pyopencl repeats its status once per nesting level: "X - X - X".
    head = " - ".join(dict.fromkeys(lines[0].split(" - ")))
    errors = [line for line in lines[1:] if line.startswith("error:") or ": error:" in line]
    return "; ".join([head] + errors[:3])


def build_hint(log_text: str) -> str:
    """What to do about a failed build, when its log shows a known cause ("" otherwise)."""
    return _UNKNOWN_CPU_HINT if "unknown target CPU" in log_text else ""


def build_program(ctx, device, source: str, options: tuple[str, ...] = BUILD_OPTIONS,
                  directory: Path | None = None):
    """A built program for ``device``, from the binary cache when it holds a match.

    Returns (program, was_cached). A cached binary that fails to load is
    rebuilt from source and replaced (a driver update with the same version
    string, a truncated file).
    """
    cl = _cl()
    directory = cache_dir() if directory is None else directory
    path = directory / f"{cache_key(device, options, source)}.bin"
    if path.is_file():
        try:
            prg = cl.Program(ctx, [device], [path.read_bytes()]).build(options=list(options))
            return prg, True
        except (cl.Error, OSError) as exc:
            log.info("cached OpenCL binary %s unusable (%s); rebuilding", path.name, exc)
    try:
        prg = cl.Program(ctx, source).build(options=list(options), devices=[device], cache_dir=False)
    except cl.Error as exc:
        log.debug("OpenCL build log on %s:\n%s", device.name, exc)
        raise DeviceError(f"OpenCL kernel build failed on {device.name}: {build_summary(str(exc))}"
                          f"{build_hint(str(exc))}") from exc
    try:
        binary = prg.get_info(cl.program_info.BINARIES)[0]
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write under a temporary name and rename: readers never see half a file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(binary)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, cl.Error) as exc:  # caching is an optimisation; mining goes on without it
        log.warning("could not cache the OpenCL binary in %s: %s", directory, exc)
    return prg, False


def pci_bus_id(cl, device) -> str | None:
    """The device's PCI address as "DDDD:BB:DD.F", from the vendor's OpenCL extension; None when the
    device has none (a CPU device such as PoCL's) or its driver does not say.

    NVIDIA (cl_nv_device_attribute_query): PCI_SLOT_ID_NV packs device << 3 | function.
    AMD (cl_amd_device_attribute_query): TOPOLOGY_AMD carries bus, device and function."""
    exts = device.extensions.split()
    try:
        if "cl_nv_device_attribute_query" in exts:
            bus, slot = device.get_info(cl.device_info.PCI_BUS_ID_NV), device.get_info(cl.device_info.PCI_SLOT_ID_NV)
            try:
                domain = device.get_info(cl.device_info.PCI_DOMAIN_ID_NV)
            except (cl.Error, AttributeError):   # older drivers: domain 0
                domain = 0
            return f"{domain:04x}:{bus & 0xFF:02x}:{(slot >> 3) & 0x1F:02x}.{slot & 7:x}"
        if "cl_amd_device_attribute_query" in exts:
            t = device.get_info(cl.device_info.TOPOLOGY_AMD)
            return f"0000:{t.bus:02x}:{t.device:02x}.{t.function:x}"
    except (cl.Error, AttributeError, TypeError, ValueError) as exc:
        log.debug("%s: no PCI bus id: %s", device.name, exc)
    return None


class OpenCLDevice(gpu_common.GPUDevice):
    kind = "opencl"

    def __init__(self, name: str, platform_index: int, device_index: int,
                 options: DeviceOptions | None = None) -> None:
        super().__init__(name)
        self.platform_index = platform_index
        self.device_index = device_index
        options = DeviceOptions.of(options)
        self.tuner = LaunchTuner(target_ms=float(options.gpu_kernel_ms or 30.0), fixed=options.gpu_launch)
        self._cl = None
        self._ctx = self._queue = self._kernel = self._device = None
        self._local = 256
        self.program_was_cached = False
        self.last_run_stats: dict[str, float] = {}

    # -- lifecycle ------------------------------------------------------
    def open(self) -> None:
        cl = self._cl = _cl()
        plats = _platforms(cl)
        try:
            self._device = plats[self.platform_index].get_devices()[self.device_index]
        except (IndexError, cl.Error) as exc:
            raise DeviceError(f"{self.name}: no OpenCL device {self.platform_index}:{self.device_index}") from exc
        try:
            self._ctx = cl.Context([self._device])
            self._queue = cl.CommandQueue(self._ctx, self._device,
                                          properties=cl.command_queue_properties.PROFILING_ENABLE)
        except cl.Error as exc:
            raise DeviceError(f"{self.name}: cannot open {self._device.name}: {exc}") from exc
        prg, self.program_was_cached = build_program(self._ctx, self._device,
                                                     gpu_common.kernel_source(KERNEL_FILE))
        self._kernel = getattr(prg, KERNEL_NAME)
        # One fixed work-group size: PoCL specialises (and compiles) a kernel per size.
        self._local = min(256, self._device.max_work_group_size,
                          self._kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE,
                                                           self._device))
        self._reset_slots()
        log.info("%s: %s (%s), kernel %s", self.name, self._device.name, self._device.driver_version,
                 "from cache" if self.program_was_cached else "built")

    def close(self) -> None:
        if self._queue is not None:
            try:
                self._queue.finish()
            except Exception:  # closing after a device failure must not raise again
                pass
        self._kernel = self._queue = self._ctx = None
        self._reset_slots()

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._device is not None:
            out["model"] = self._device.name
            out["driver"] = self._device.driver_version
            out["vendor"] = self._device.vendor
            out["vendor_id"] = self._device.vendor_id
            bus = pci_bus_id(self._cl, self._device)
            if bus:
                out["pci_bus_id"] = bus
        out["launch_size"] = self.tuner.size
        out.update(self.last_run_stats)
        return out

    # -- launches -------------------------------------------------------
    def _new_slot(self, cap: int) -> gpu_common.FoundSlot:
        cl = self._cl
        return gpu_common.FoundSlot(cl.Buffer(self._ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                                              hostbuf=bytes(4 * (cap + 1))), cap)

    def launch(self, pre: gpu_common.JobPrecompute, nonce_base: int, count: int, cap: int) -> Launch:
        """Enqueue one kernel over [nonce_base, nonce_base+count) without waiting for it.

        The found buffer comes from the shared base's two alternating slots; the
        in-order queue orders the rest.
        """
        cl = self._cl
        if self._kernel is None:
            raise DeviceError(f"{self.name}: not open")
        gpu_common.check_launch_range(nonce_base, count)
        try:
            slot = self._take_slot(cap)
            # Job by value (copied at enqueue), counter never reset: one kernel and one
            # read-back per launch, nothing else between kernels.
            job = gpu_common.job_scalar(pre.pack(nonce_base, count, cap, slot.counter))
            found = bytearray(4 * (cap + 1))
            groups = -(-count // self._local)
            kev = self._kernel(self._queue, (groups * self._local,), (self._local,), job, slot.device_buf)
            rev = cl.enqueue_copy(self._queue, found, slot.device_buf, is_blocking=False)
        except cl.Error as exc:
            raise DeviceError(f"{self.name}: kernel launch failed: {exc}") from exc
        return Launch(nonce_base, count, cap, found, kev, rev, slot, found_base=slot.counter)

    def wait(self, launch: Launch) -> tuple[list[int], float, float, float]:
        """(hits, kernel_start_s, kernel_end_s, kernel_seconds) once ``launch`` completed."""
        try:
            launch.done_event.wait()
            start = launch.kernel_event.profile.start * 1e-9
            end = launch.kernel_event.profile.end * 1e-9
        except self._cl.Error as exc:
            raise DeviceError(f"{self.name}: kernel failed: {exc}") from exc
        return self._finish(launch), start, end, end - start

class OpenCLBackend(Backend):
    name = "opencl"
    extra = "opencl"

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        try:
            cl = _cl()
        except BackendUnavailable:
            return []
        out = []
        for pi, plat in enumerate(_platforms(cl)):
            try:
                devices = plat.get_devices()
            except cl.Error:  # a platform with no devices raises DEVICE_NOT_FOUND
                continue
            for di, dev in enumerate(devices):
                out.append(DetectedDevice(
                    "opencl", f"opencl:{pi}:{di}", f"{plat.name} / {dev.name}",
                    {"platform": plat.name, "device": dev.name, "driver": dev.driver_version,
                     "compute_units": dev.max_compute_units,
                     "type": cl.device_type.to_string(dev.type)}))
        return out

    @classmethod
    def create(cls, specs: list[str], options: DeviceOptions) -> list[Device]:
        _cl()  # BackendUnavailable naming the extra when pyopencl is missing
        found = cls.detect()
        if not found:
            raise BackendUnavailable("OpenCL: no platform or device found (install a driver, or pyopencl[pocl] "
                                     "for the CPU device)")
        if not specs:
            chosen = found
        else:
            chosen = []
            for spec in specs:
                parts = spec.split(":")
                if parts[0] != "opencl" or len(parts) > 3 or not all(p.isdigit() for p in parts[1:]):
                    raise ConfigError(f"bad OpenCL device {spec!r}: use opencl, opencl:PLATFORM or "
                                      f"opencl:PLATFORM:DEVICE")
                match = [d for d in found if d.spec == spec or d.spec.startswith(spec + ":")
                         or spec == "opencl"]
                if not match:
                    listed = ", ".join(d.spec for d in found) or "none"
                    raise ConfigError(f"no OpenCL device {spec!r} (present: {listed})")
                chosen.extend(d for d in match if d not in chosen)
        devices: list[Device] = []
        for d in chosen:
            _, p, i = d.spec.split(":")
            devices.append(OpenCLDevice(d.spec, int(p), int(i), options))
        return devices
