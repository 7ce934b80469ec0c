"""CUDA kernel without a GPU: NVRTC compile, nvcc/ptxas spill check, the kernel's logic on the CPU
through the host shim, and the backend's behaviour with no driver. With an NVIDIA driver, the tests
marked gpu check the real device against the C core."""
import ctypes
import json
import os
import random
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from gpu_ctx import TimedContext
from miner import core
from miner.backends import gpu_common as g
from miner.engine.difficulty import target_from_nbits

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
VECTORS = Path(__file__).parent / "vectors" / "block_headers.json"
HEADERS = json.loads(VECTORS.read_text())["headers"]

cuda = pytest.importorskip("miner.backends.cuda")


def _nvrtc_available() -> bool:
    try:
        cuda.nvrtc_compile("compute_90", source='extern "C" __global__ void k() {}')
    except Exception:
        return False
    return True


needs_nvrtc = pytest.mark.skipif(not _nvrtc_available(),
                                 reason="libnvrtc not installed (pip install 'nvidia-cuda-nvrtc==13.0.*')")


# -- the same .cu on the CPU through kernels/sha256d_shim.h ----------------------------------

@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler for the CUDA host shim")
    out = tmp_path_factory.mktemp("shim") / "sha256d_shim.so"
    subprocess.run([cxx, "-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-Wno-unknown-pragmas",
                    f"-I{KERNELS}", "-o", str(out), str(KERNELS / "sha256d_shim.cpp")],
                   check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    lib.sha256d_shim_launch.argtypes = [ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32,
                                        ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]

    def scan(header: bytes, start: int, count: int, target: int, block: int = 64,
             cap: int | None = None) -> tuple[list[int], int]:
        cap = g.found_capacity(count, target) if cap is None else cap
        job = (ctypes.c_uint32 * g.JOB_WORDS)(*struct.unpack(f"<{g.JOB_WORDS}I",
                                                          g.precompute(header, target).pack(start, count, cap)))
        found = (ctypes.c_uint32 * (cap + 1))()
        assert lib.sha256d_shim_launch(job, count, block, found) == 0
        total = found[0]
        return sorted(found[1:1 + min(total, cap)]), total
    return scan


@pytest.mark.parametrize("entry", HEADERS, ids=[h["name"] for h in HEADERS])
def test_shim_finds_the_real_block_nonce(shim, entry):
    header = bytes.fromhex(entry["header"])
    target = target_from_nbits(int(entry["nbits"], 16))
    hits, total = shim(header, entry["nonce"] - 700, 1500, target)
    assert hits == [entry["nonce"]] and total == 1


def test_shim_agrees_with_c_core_on_random_headers_and_targets(shim):
    rnd = random.Random(6)
    # Targets above 2^224 (top word decides), exactly at a top word (ties), and near 2^256.
    targets = [1 << 248, (1 << 250) + 12345, (0x0100 << 240) - 1, (1 << 256) - 1, (1 << 255) + (1 << 100),
               1 << 224, (1 << 244) - 1]
    for target in targets:
        header = bytes(rnd.getrandbits(8) for _ in range(80))
        start = rnd.randrange(0, (1 << 32) - 3000)
        count = rnd.randrange(1000, 3000)  # not a multiple of the block: the tail guard is exercised
        hits, total = shim(header, start, count, target)
        assert hits == core.scan(header, start, count, target), hex(target)
        assert total == len(hits)


def test_shim_counts_past_capacity_so_the_host_sees_overflow(shim):
    header = bytes(80)
    hits, total = shim(header, 0, 1000, (1 << 256) - 1, cap=10)
    assert total == 1000 and len(hits) == 10


def test_shim_last_nonces_of_the_space(shim):
    header = bytes.fromhex(HEADERS[1]["header"])
    hits, _ = shim(header, (1 << 32) - 700, 700, 1 << 250)
    assert hits == core.scan(header, (1 << 32) - 700, 700, 1 << 250)


# -- NVRTC and nvcc -------------------------------------------------------------------------

PINNED_PTX_ISA = (9, 0)  # CUDA 13.0's NVRTC; drivers r580+ JIT it


@needs_nvrtc
def test_nvrtc_builds_sm90_cubin_without_spills():
    image, log = cuda.nvrtc_compile("sm_90", extra=(b"--ptxas-options=-v",))
    assert image[:4] == b"\x7fELF"
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert spills and all(s == ("0", "0") for s in spills), log
    stacks = re.findall(r"(\d+) bytes stack frame", log)
    assert stacks and all(s == "0" for s in stacks), log


@needs_nvrtc
def test_nvrtc_ptx_isa_is_within_the_pin():
    ptx, _ = cuda.nvrtc_compile("compute_90")
    assert b".entry sha256d_scan" in ptx
    assert cuda.ptx_isa_version(ptx) <= PINNED_PTX_ISA


def _nvcc() -> str | None:
    return shutil.which("nvcc") or next((p for p in ("/usr/local/bin/nvcc", "/usr/local/cuda/bin/nvcc")
                                         if os.access(p, os.X_OK)), None)


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_nvcc_sm90_cubin_has_no_spills(tmp_path):
    src = tmp_path / "sha256d.cu"
    src.write_text(g.kernel_source("sha256d.cu"))
    res = subprocess.run([_nvcc(), "-arch=sm_90", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = res.stdout + res.stderr
    assert "Compiling entry function 'sha256d_scan' for 'sm_90'" in report
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert len(spills) >= 1 and all(s == ("0", "0") for s in spills), report


# -- without a driver ----------------------------------------------------------------------

def _has_gpu() -> bool:
    try:
        return bool(cuda.CUDABackend.detect())
    except Exception:
        return False


HAS_GPU = _has_gpu()


@pytest.mark.skipif(HAS_GPU, reason="an NVIDIA driver is present")
def test_no_driver_means_no_devices_and_a_clear_error():
    from miner.errors import BackendUnavailable
    assert cuda.CUDABackend.detect() == []
    with pytest.raises(BackendUnavailable, match="no NVIDIA driver"):
        cuda.CUDABackend.create([], {})
    dev = cuda.CUDADevice("cuda:0", 0)
    from miner.errors import DeviceError
    with pytest.raises(DeviceError, match="no NVIDIA driver"):
        dev.open()
    dev.close()  # safe without open, and twice
    dev.close()


def test_bad_specs_and_runtime_are_config_errors():
    from miner.errors import ConfigError
    with pytest.raises(ConfigError):
        cuda.CUDABackend.create([], {"cuda_runtime": "opencl"})


# -- on a real NVIDIA GPU --------------------------------------------------------------------

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no NVIDIA driver/GPU")


@gpu
@needs_gpu
def test_gpu_selftest_and_random_ranges_match_c_core():
    dev = cuda.CUDABackend.create([], {})[0]
    with dev:
        dev.selftest()
        rnd = random.Random(9)
        for target in (1 << 248, (1 << 256) - 1, 1 << 240):
            header = bytes(rnd.getrandbits(8) for _ in range(80))
            start = rnd.randrange(0, (1 << 32) - (1 << 20))
            assert dev.scan(header, start, 1 << 20, target) == core.scan(header, start, 1 << 20, target)
        for entry in HEADERS:
            header = bytes.fromhex(entry["header"])
            target = target_from_nbits(int(entry["nbits"], 16))
            assert entry["nonce"] in dev.scan(header, entry["nonce"] - (1 << 22), 1 << 23, target)


@gpu
@needs_gpu
def test_gpu_benchmark_device_stays_busy(capsys):
    dev = cuda.CUDABackend.create([], {})[0]
    with dev:
        dev.run(TimedContext(2.0))  # warm-up: the tuner settles on ~30 ms launches
        ctx = TimedContext(10.0)
        t0 = time.perf_counter()
        dev.run(ctx)
        wall = time.perf_counter() - t0
    st = dev.last_run_stats
    with capsys.disabled():
        print(f"\n{dev.model}: {ctx.hashed / wall / 1e9:.3f} GH/s over {wall:.1f} s, kernel "
              f"{1000 * st['kernel_seconds'] / st['launches']:.1f} ms/launch, busy {100 * st['busy_fraction']:.2f}%")
    assert ctx.bad == 0
    assert ctx.hashed > 0 and 20 <= 1000 * st["kernel_seconds"] / st["launches"] <= 50
    assert st["busy_fraction"] >= 0.98  # launch overhead under 2% of kernel time

@pytest.mark.skipif(HAS_GPU, reason="an NVIDIA driver is present")
def test_selftest_all_lists_nothing_without_a_gpu():
    assert cuda.CUDABackend.selftest_all() == []


def _tie_cases():
    """(header, nonce, hash value): a nonce whose full hash is known, to aim a target's top word at it."""
    rnd = random.Random(224)
    header = bytes(rnd.getrandbits(8) for _ in range(80))
    nonce = rnd.randrange(1000, 1 << 31)
    value = int.from_bytes(core.sha256d(header[:76] + nonce.to_bytes(4, "little")), "little")
    return header, nonce, value


def test_shim_top_word_ties_are_settled_by_the_full_compare(shim):
    # A target with the same top 32 bits as the hash makes the kernel take its rare path:
    # equal to the hash -> a hit; one below it -> not a hit. Neighbours are checked by the C core.
    header, nonce, value = _tie_cases()
    for target, expect_hit in ((value, True), (value - 1, False), (value | ((1 << 224) - 1), True),
                               (value & ~((1 << 224) - 1), value & ((1 << 224) - 1) == 0)):
        hits, _ = shim(header, nonce - 300, 600, target)
        assert hits == core.scan(header, nonce - 300, 600, target)
        assert (nonce in hits) is expect_hit


def test_arch_choice_prefers_a_cubin_and_falls_back_to_older_ptx():
    from miner.errors import DeviceError
    assert cuda.pick_arch(90, [75, 80, 90, 100]) == 90
    assert cuda.pick_arch(95, [75, 80, 90, 100]) == 90     # unknown to this NVRTC: newest below it, as PTX
    with pytest.raises(DeviceError):
        cuda.pick_arch(70, [75, 80])


@needs_nvrtc
def test_installed_nvrtc_can_build_for_hopper():
    assert cuda.pick_arch(90) == 90
