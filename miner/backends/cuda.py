"""CUDA GPU backend: kernels/sha256d.cu through cuda-python (NVRTC + driver API), or pycuda.

Device spec: ``cuda:N`` (driver ordinal, as `miner devices` lists it) or
``cuda`` for all. Options as for OpenCL: gpu_kernel_ms, gpu_launch, and
``cuda_runtime`` = "cuda-python" (default) or "pycuda".

Compilation: NVRTC builds a cubin for the device's own architecture
(sm_XY), so no PTX is JIT-compiled by the driver and the driver's PTX ISA
limit does not matter. Only when NVRTC does not know the architecture
(a GPU newer than the NVRTC) does it fall back to PTX for the driver to JIT;
that PTX's ISA version must not exceed what the driver accepts, which is why
the NVRTC wheel is pinned (CUDA 13.0's NVRTC emits PTX ISA 9.0, JIT-able by
drivers from r580 on).

Nothing here imports cuda-python or pycuda at module import time.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import re
from typing import Any

from miner.engine.backend import Backend, DetectedDevice, Device, DeviceOptions
from miner.backends import gpu_common
from miner.backends.gpu_common import Launch, LaunchTuner
from miner.errors import BackendUnavailable, ConfigError, DeviceError
from miner.install import pip_install

log = logging.getLogger(__name__)

KERNEL_FILE = "sha256d.cu"
KERNEL_NAME = b"sha256d_scan"
BLOCK = 256                      # matches __launch_bounds__(256) in the kernel
NVRTC_OPTIONS = (b"-std=c++17",)


def _bindings():
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError:
        try:  # cuda-python 12.x before the cuda.bindings split
            from cuda import cuda as driver, nvrtc  # type: ignore[no-redef]
        except ImportError as exc:
            raise BackendUnavailable(f"CUDA needs cuda-python: {pip_install('cuda')} ({exc})") from exc
    return driver, nvrtc


def _check(result, what: str):
    """cuda-python returns (status, *values); raise DeviceError on a failed status."""
    status, *values = result
    if int(status) != 0:
        raise DeviceError(f"CUDA {what} failed: {status!r}")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def nvrtc_compile(arch: str, source: str | None = None, extra: tuple[bytes, ...] = ()) -> tuple[bytes, str]:
    """Compile kernels/sha256d.cu with NVRTC for ``arch`` ("sm_90" -> cubin, "compute_90" -> PTX).

    ``extra``: more NVRTC options, e.g. (b"--ptxas-options=-v",) to get ptxas's
    register and spill report in the returned log.
    Returns (image, compile log). Raises BackendUnavailable when libnvrtc is
    missing and DeviceError when compilation fails.
    """
    _, nvrtc = _bindings()
    src = (source or gpu_common.kernel_source(KERNEL_FILE)).encode()
    try:
        prog = _check(nvrtc.nvrtcCreateProgram(src, b"sha256d.cu", 0, [], []), "nvrtcCreateProgram")
    except (RuntimeError, OSError) as exc:  # the pathfinder cannot find libnvrtc
        raise BackendUnavailable(f"NVRTC library not found: pip install 'nvidia-cuda-nvrtc==13.0.*' ({exc})") from exc
    try:
        opts = [f"--gpu-architecture={arch}".encode(), *NVRTC_OPTIONS, *extra]
        status, = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        buf = b" " * size
        _check(nvrtc.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        text = buf.rstrip(b"\0 ").decode(errors="replace")
        if int(status) != 0:
            raise DeviceError(f"NVRTC could not compile {KERNEL_FILE} for {arch}: {status!r}\n{text}")
        if arch.startswith("sm_"):
            size = _check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
            image = b" " * size
            _check(nvrtc.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN")
        else:
            size = _check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
            image = b" " * size
            _check(nvrtc.nvrtcGetPTX(prog, image), "nvrtcGetPTX")
        return image, text
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def pick_arch(device_arch: int, supported: list[int] | None = None) -> int:
    """The architecture to compile for: the device's own when NVRTC knows it, else the newest
    NVRTC knows below it (as PTX, which the driver JIT-compiles forward)."""
    if supported is None:
        _, nvrtc = _bindings()
        supported = list(_check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))
    if device_arch in supported:
        return device_arch
    older = [a for a in supported if a < device_arch]
    if not older:
        raise DeviceError(f"NVRTC supports none of the architectures up to sm_{device_arch} ({supported})")
    return max(older)


def ptx_isa_version(ptx: bytes) -> tuple[int, int]:
    """The ``.version X.Y`` a PTX image declares (what a driver must support to JIT it)."""
    m = re.search(rb"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.M)
    if not m:
        raise ValueError("no .version directive in PTX")
    return int(m.group(1)), int(m.group(2))


def _driver_or_none():
    """The driver module after a successful cuInit, or None when no driver/GPU is present."""
    try:
        driver, _ = _bindings()
    except BackendUnavailable:
        return None
    try:
        status, = driver.cuInit(0)
    except Exception as exc:  # cuda-pathfinder raises when libcuda.so is absent; that means "no GPU"
        log.debug("CUDA driver not loadable: %s", exc)
        return None
    if int(status) != 0:
        log.debug("cuInit: %r", status)
        return None
    return driver


class CUDADevice(gpu_common.GPUDevice):
    kind = "cuda"

    SCAN_CHUNK = 1 << 28  # a GPU clears 2^28 nonces in a fraction of a second

    def __init__(self, name: str, ordinal: int, options: DeviceOptions | None = None) -> None:
        super().__init__(name)
        self.ordinal = ordinal
        options = DeviceOptions.of(options)
        self.tuner = LaunchTuner(target_ms=float(options.gpu_kernel_ms or 30.0), fixed=options.gpu_launch)
        self._drv = None
        self._ctx = self._module = self._func = self._stream = None
        self._dev = None
        self._allocated: list = []  # every FoundSlot made, freed at close
        self.arch = ""
        self.model = ""
        self.pci_bus_id = ""
        self.last_run_stats: dict[str, float] = {}

    def open(self) -> None:
        drv = _driver_or_none()
        if drv is None:
            raise DeviceError(f"{self.name}: no NVIDIA driver or GPU on this machine")
        self._drv = drv
        self._dev = _check(drv.cuDeviceGet(self.ordinal), "cuDeviceGet")
        self.model = _check(drv.cuDeviceGetName(256, self._dev), "cuDeviceGetName").split(b"\0")[0].decode()
        attr = drv.CUdevice_attribute
        major = _check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self._dev), "attr")
        minor = _check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self._dev), "attr")
        self.arch = f"{major}{minor}"
        try:   # "0000:01:00.0": what NVML looks the board up by for its power reading
            self.pci_bus_id = _check(drv.cuDeviceGetPCIBusId(32, self._dev), "cuDeviceGetPCIBusId"
                                     ).split(b"\0")[0].decode()
        except Exception as exc:  # power figures are optional; mining is not
            log.debug("%s: no PCI bus id: %s", self.name, exc)
        self._ctx = _check(drv.cuDevicePrimaryCtxRetain(self._dev), "cuDevicePrimaryCtxRetain")
        self._bind()
        arch = pick_arch(int(self.arch))
        if arch == int(self.arch):
            image, _ = nvrtc_compile(f"sm_{arch}")
        else:  # NVRTC older than the GPU: PTX for the newest arch it knows, JIT-compiled by the driver
            log.info("%s: NVRTC has no sm_%s; using compute_%s PTX", self.name, self.arch, arch)
            image, _ = nvrtc_compile(f"compute_{arch}")
        # By address, NUL-terminated (PTX needs it; a cubin ignores it), alive during the call.
        image_buf = ctypes.create_string_buffer(image)
        self._module = _check(drv.cuModuleLoadData(ctypes.addressof(image_buf)), "cuModuleLoadData")
        self._func = _check(drv.cuModuleGetFunction(self._module, KERNEL_NAME), "cuModuleGetFunction")
        self._stream = _check(drv.cuStreamCreate(drv.CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate")
        log.info("%s: %s sm_%s", self.name, self.model, self.arch)

    def _bind(self) -> None:
        """Make the device's context current on the calling thread (run() has its own thread)."""
        _check(self._drv.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")

    @contextlib.contextmanager
    def _bound(self):
        self._bind()
        yield

    def close(self) -> None:
        drv = self._drv
        if drv is None:
            return
        try:
            self._bind()
            if self._stream is not None:
                drv.cuStreamSynchronize(self._stream)
            for slot in self._allocated:
                drv.cuMemFree(slot.device_buf)
                drv.cuMemFreeHost(slot.host_buf)
                for ev in slot.events:
                    drv.cuEventDestroy(ev)
            if self._stream is not None:
                drv.cuStreamDestroy(self._stream)
            if self._module is not None:
                drv.cuModuleUnload(self._module)
            drv.cuDevicePrimaryCtxRelease(self._dev)
        except Exception as exc:  # close after a failure must not raise again
            log.debug("%s: close: %s", self.name, exc)
        self._reset_slots()
        self._allocated = []
        self._stream = self._module = self._func = self._ctx = None
        self._drv = None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"launch_size": self.tuner.size, "vendor": "NVIDIA Corporation"}
        if self.model:
            out["model"] = self.model
            out["arch"] = f"sm_{self.arch}"
        if self.pci_bus_id:
            out["pci_bus_id"] = self.pci_bus_id
        out.update(self.last_run_stats)
        return out

    def _new_slot(self, cap: int) -> gpu_common.FoundSlot:
        drv = self._drv
        nbytes = 4 * (cap + 1)
        dptr = _check(drv.cuMemAlloc(nbytes), "cuMemAlloc")
        _check(drv.cuMemsetD32(dptr, 0, cap + 1), "cuMemsetD32")  # the counter starts at 0, once
        hptr = _check(drv.cuMemAllocHost(nbytes), "cuMemAllocHost")
        events = (_check(drv.cuEventCreate(0), "cuEventCreate"), _check(drv.cuEventCreate(0), "cuEventCreate"))
        slot = gpu_common.FoundSlot(dptr, cap, hptr, events=events)
        self._allocated.append(slot)
        return slot

    def launch(self, pre: gpu_common.JobPrecompute, nonce_base: int, count: int, cap: int) -> Launch:
        drv = self._drv
        if self._func is None:
            raise DeviceError(f"{self.name}: not open")
        gpu_common.check_launch_range(nonce_base, count)
        slot = self._take_slot(cap)
        ev0, ev1 = slot.events
        job = (ctypes.c_uint32 * gpu_common.JOB_WORDS).from_buffer_copy(
            pre.pack(nonce_base, count, cap, slot.counter))
        out_arg = ctypes.c_uint64(int(slot.device_buf))
        params = (ctypes.c_void_p * 2)(ctypes.addressof(job), ctypes.addressof(out_arg))
        nbytes = 4 * (cap + 1)
        # Per launch: kernel, read-back, three event records. The counter is never
        # reset (found_base), and the job travels as a kernel parameter.
        _check(drv.cuEventRecord(ev0, self._stream), "cuEventRecord")
        _check(drv.cuLaunchKernel(self._func, -(-count // BLOCK), 1, 1, BLOCK, 1, 1, 0, self._stream,
                                  ctypes.addressof(params), 0), "cuLaunchKernel")
        _check(drv.cuEventRecord(ev1, self._stream), "cuEventRecord")
        _check(drv.cuMemcpyDtoHAsync(slot.host_buf, slot.device_buf, nbytes, self._stream), "cuMemcpyDtoHAsync")
        done = _check(drv.cuEventCreate(drv.CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate")
        _check(drv.cuEventRecord(done, self._stream), "cuEventRecord")
        found = (ctypes.c_char * nbytes).from_address(int(slot.host_buf))
        # cuLaunchKernel copies the parameters at launch, so job/params may go after it returns.
        return Launch(nonce_base, count, cap, memoryview(found).cast("B"), slot.events, done, slot,
                      found_base=slot.counter)

    def wait(self, launch: Launch):
        drv = self._drv
        try:
            _check(drv.cuEventSynchronize(launch.done_event), "cuEventSynchronize")
            ms = _check(drv.cuEventElapsedTime(*launch.kernel_event), "cuEventElapsedTime")
        finally:
            drv.cuEventDestroy(launch.done_event)
        hits = self._finish(launch)
        # The elapsed-time pair does not place the kernel on a clock, so successive
        # launches are treated as back to back; busy_fraction covers host stalls.
        return hits, 0.0, 0.0, ms / 1000.0

class CUDABackend(Backend):
    name = "cuda"
    extra = "cuda"

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        drv = _driver_or_none()
        if drv is None:
            return []
        try:
            n = _check(drv.cuDeviceGetCount(), "cuDeviceGetCount")
            version = _check(drv.cuDriverGetVersion(), "cuDriverGetVersion")
            out = []
            for i in range(n):
                dev = _check(drv.cuDeviceGet(i), "cuDeviceGet")
                name = _check(drv.cuDeviceGetName(256, dev), "cuDeviceGetName").split(b"\0")[0].decode()
                attr = drv.CUdevice_attribute
                sms = _check(drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "attr")
                out.append(DetectedDevice("cuda", f"cuda:{i}", name,
                                          {"driver": f"{version // 1000}.{version % 1000 // 10}",
                                           "multiprocessors": sms}))
            return out
        except DeviceError as exc:
            log.warning("CUDA detection failed: %s", exc)
            return []

    @classmethod
    def selftest_all(cls) -> list[tuple[str, bool, str]]:
        # No GPU is not a failed self-test: there is simply nothing to list.
        return super().selftest_all() if cls.detect() else []

    @classmethod
    def create(cls, specs: list[str], options: DeviceOptions) -> list[Device]:
        options = DeviceOptions.of(options)
        runtime = options.cuda_runtime or "cuda-python"
        if runtime not in ("cuda-python", "pycuda"):
            raise ConfigError(f"cuda_runtime must be cuda-python or pycuda, not {runtime!r}")
        if runtime == "pycuda":
            found = _pycuda_detect()
        else:
            _bindings()  # BackendUnavailable with the pip extra when cuda-python is missing
            found = cls.detect()
        if not found:
            raise BackendUnavailable("CUDA: no NVIDIA driver or GPU found (cuInit failed or no devices)")
        chosen = []
        for spec in specs or ["cuda"]:
            parts = spec.split(":")
            if parts[0] != "cuda" or len(parts) > 2 or not all(p.isdigit() for p in parts[1:]):
                raise ConfigError(f"bad CUDA device {spec!r}: use cuda or cuda:N")
            match = [d for d in found if spec in ("cuda", d.spec)]
            if not match:
                raise ConfigError(f"no CUDA device {spec!r} (present: {', '.join(d.spec for d in found)})")
            chosen.extend(d for d in match if d not in chosen)
        kind = PyCUDADevice if runtime == "pycuda" else CUDADevice
        return [kind(d.spec, int(d.spec.split(":")[1]), options) for d in chosen]


# ---------------------------------------------------------------------------
# pycuda as the alternative runtime: same kernel source, compiled by pycuda's
# own nvcc path (whoever built pycuda has the toolkit), same launch contract.

def _pycuda():
    try:
        import numpy
        import pycuda.driver as pdrv
        from pycuda.compiler import SourceModule
    except ImportError as exc:
        raise BackendUnavailable(f"cuda_runtime=pycuda but pycuda is not importable ({exc})") from exc
    return pdrv, SourceModule, numpy


def _pycuda_detect() -> list[DetectedDevice]:
    pdrv, _, _ = _pycuda()
    try:
        pdrv.init()
        return [DetectedDevice("cuda", f"cuda:{i}", pdrv.Device(i).name(), {"runtime": "pycuda"})
                for i in range(pdrv.Device.count())]
    except pdrv.Error as exc:
        log.debug("pycuda: %s", exc)
        return []


class PyCUDADevice(CUDADevice):
    """CUDADevice on pycuda (cuda_runtime=pycuda): the same kernel source, job layout, found-buffer
    slots, self-test and run loop (gpu_common.GPUDevice); only open/close, buffer allocation,
    launch and wait are pycuda calls. The job goes by value as a numpy void scalar (152 bytes).

    UNTESTED ON A GPU: this class has never run on one. No test here imports pycuda
    (the suite has no NVIDIA GPU); what it shares with CUDADevice is tested through the
    host shim and NVRTC, the pycuda calls below are not. docs/GPU.md says the same.
    """

    def open(self) -> None:
        pdrv, SourceModule, np = _pycuda()
        self._p = pdrv
        self._np = np
        try:
            pdrv.init()
            dev = pdrv.Device(self.ordinal)
            self.model = dev.name()
            self.pci_bus_id = dev.pci_bus_id()
            major, minor = dev.compute_capability()
            self.arch = f"{major}{minor}"
            self._ctx = dev.retain_primary_context()
            self._ctx.push()
            try:
                mod = SourceModule(gpu_common.kernel_source(KERNEL_FILE), no_extern_c=True,
                                   arch=f"sm_{self.arch}")
                self._module = mod
                self._func = mod.get_function(KERNEL_NAME.decode())
                self._stream = pdrv.Stream()
            finally:
                pdrv.Context.pop()
        except pdrv.Error as exc:
            raise DeviceError(f"{self.name}: pycuda: {exc}") from exc

    @contextlib.contextmanager
    def _bound(self):
        # pycuda keeps a context stack per thread: scan() and run() push and pop around their work.
        self._ctx.push()
        try:
            yield
        finally:
            self._p.Context.pop()

    def close(self) -> None:
        self._reset_slots()
        self._func = self._module = self._stream = self._ctx = None

    def _new_slot(self, cap: int) -> gpu_common.FoundSlot:
        pdrv, np = self._p, self._np
        dbuf = pdrv.mem_alloc(4 * (cap + 1))
        pdrv.memset_d32(dbuf, 0, cap + 1)
        return gpu_common.FoundSlot(dbuf, cap, pdrv.pagelocked_empty(cap + 1, np.uint32),
                                    events=(pdrv.Event(), pdrv.Event()))

    def launch(self, pre, nonce_base: int, count: int, cap: int) -> Launch:
        pdrv = self._p
        gpu_common.check_launch_range(nonce_base, count)
        slot = self._take_slot(cap)
        ev0, ev1 = slot.events
        job = gpu_common.job_scalar(pre.pack(nonce_base, count, cap, slot.counter))
        ev0.record(self._stream)
        self._func(job, slot.device_buf, block=(BLOCK, 1, 1), grid=(-(-count // BLOCK), 1), stream=self._stream)
        ev1.record(self._stream)
        pdrv.memcpy_dtoh_async(slot.host_buf, slot.device_buf, self._stream)
        done = pdrv.Event()
        done.record(self._stream)
        return Launch(nonce_base, count, cap, memoryview(slot.host_buf).cast("B"), (ev0, ev1), done, slot,
                      found_base=slot.counter)

    def wait(self, launch: Launch):
        launch.done_event.synchronize()
        ev0, ev1 = launch.kernel_event
        return self._finish(launch), 0.0, 0.0, ev1.time_since(ev0) / 1000.0
