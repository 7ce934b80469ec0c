"""OpenCL backend for real on the CPU through PoCL: real block nonces found, random ranges agree
with the C core, the binary cache, the double-buffered run loop against a DeviceContext."""
import json
import os
import random
import tempfile
import threading
from pathlib import Path

import pytest

# PoCL reads its cache dir once, at first use; a stable default keeps repeat runs fast.
os.environ.setdefault("POCL_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"miner-pocl-cache-{os.getuid()}"))

cl = pytest.importorskip("pyopencl")

from miner import core  # noqa: E402
from miner.engine.backend import Work  # noqa: E402
from miner.backends import gpu_common as g  # noqa: E402
from miner.backends import opencl  # noqa: E402
from miner.engine.difficulty import target_from_nbits  # noqa: E402
from miner.errors import ConfigError  # noqa: E402
from miner.engine.job import Job  # noqa: E402
from miner.sha256 import sha256d  # noqa: E402

HEADERS = json.loads((Path(__file__).parent / "vectors" / "block_headers.json").read_text())["headers"]

if not opencl.OpenCLBackend.detect():
    pytest.skip("no OpenCL platform (pip install 'pyopencl[pocl]')", allow_module_level=True)
from opencl_device import SKIP_REASON, builds, working_spec  # noqa: E402

SPEC = working_spec()
if SPEC is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)
PLATFORM, INDEX = (int(x) for x in SPEC.split(":")[1:])


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(scope="module")
def device(cache_home):
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(cache_home))
    dev = opencl.OpenCLBackend.create([SPEC], {})[0]
    dev.open()
    yield dev
    dev.close()
    mp.undo()


@pytest.mark.parametrize("entry", HEADERS, ids=[h["name"] for h in HEADERS])
def test_real_block_nonce_is_found(device, entry):
    header = bytes.fromhex(entry["header"])
    target = target_from_nbits(int(entry["nbits"], 16))
    start = entry["nonce"] - 20000
    assert device.scan(header, start, 40000, target) == [entry["nonce"]]


def test_random_ranges_agree_with_c_core(device):
    rnd = random.Random(61)
    for target in (1 << 248, (1 << 250) + 999, (1 << 256) - 1, (1 << 255) + (1 << 77), 1 << 224, (1 << 244) - 1):
        header = bytes(rnd.getrandbits(8) for _ in range(80))
        start = rnd.randrange(0, (1 << 32) - 20000)
        count = rnd.randrange(5000, 20000)  # rarely a multiple of the work-group size
        assert device.scan(header, start, count, target) == core.scan(header, start, count, target), hex(target)


def test_overflowing_found_buffer_is_relaunched_not_dropped(device):
    header = bytes(80)
    pre = g.precompute(header, (1 << 256) - 1)
    launch = device.launch(pre, 1000, 3000, 16)
    hits, *_ = device.wait(launch)
    assert hits is None and launch.total == 3000
    assert device.scan(header, 1000, 3000, (1 << 256) - 1) == list(range(1000, 4000))


def test_end_of_nonce_space(device):
    header = bytes.fromhex(HEADERS[0]["header"])
    start = (1 << 32) - 3000
    assert device.scan(header, start, 3000, 1 << 249) == core.scan(header, start, 3000, 1 << 249)


def test_selftest_passes(device):
    device.selftest()


def test_binary_cache_is_used_and_keyed_by_options(device, tmp_path):
    src = g.kernel_source(opencl.KERNEL_FILE)
    ctx = cl.Context([device._device])
    prg, cached = opencl.build_program(ctx, device._device, src, directory=tmp_path / "c")
    assert not cached and len(list((tmp_path / "c").glob("*.bin"))) == 1
    assert oct((tmp_path / "c").stat().st_mode & 0o777) == "0o700"
    prg2, cached2 = opencl.build_program(ctx, device._device, src, directory=tmp_path / "c")
    assert cached2 and hasattr(prg2, opencl.KERNEL_NAME)
    key = opencl.cache_key(device._device, opencl.BUILD_OPTIONS, src)
    assert key != opencl.cache_key(device._device, opencl.BUILD_OPTIONS + ("-DX=1",), src)
    assert key != opencl.cache_key(device._device, opencl.BUILD_OPTIONS, src + "\n")
    # A corrupt cached binary is rebuilt, not fatal.
    (tmp_path / "c" / f"{key}.bin").write_bytes(b"garbage")
    _, cached3 = opencl.build_program(ctx, device._device, src, directory=tmp_path / "c")
    assert not cached3


def test_device_open_reads_the_cache_second_time(device, cache_home):
    assert list((cache_home / "miner" / "opencl").glob("*.bin"))
    again = opencl.OpenCLDevice(SPEC, PLATFORM, INDEX)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache_home))
        again.open()
    try:
        assert again.program_was_cached
    finally:
        again.close()


def test_detect_and_bad_specs():
    found = opencl.OpenCLBackend.detect()
    assert found[0].spec == "opencl:0:0" and found[0].backend == "opencl"
    with pytest.raises(ConfigError):
        opencl.OpenCLBackend.create(["opencl:9:9"], {})
    with pytest.raises(ConfigError):
        opencl.OpenCLBackend.create(["opencl:x"], {})
    assert SPEC in [d.name for d in opencl.OpenCLBackend.create([f"opencl:{PLATFORM}"], {})]


# -- the run loop against a DeviceContext ------------------------------------------------------

def make_job(job_id: str, difficulty: float) -> Job:
    return Job(job_id=job_id, prevhash=sha256d(job_id.encode()), coinb1=b"\x01" * 40, coinb2=b"\x02" * 30,
               merkle_branch=(sha256d(b"b1"),), version=0x20000000, nbits=0x1D00FFFF, ntime=0x65000000,
               clean=True, extranonce1=b"\xaa\xbb\xcc\xdd", extranonce2_size=4, difficulty=difficulty)


class SliceContext:
    """A DeviceContext that hands out one job's nonce range in slices, like the engine does,
    and re-hashes every submitted nonce on the host."""

    def __init__(self, job: Job, start: int, count: int):
        self.lock = threading.Lock()
        self._generation = 1
        self._stopping = False
        self.set_job(job, start, count)
        self.submitted: list[tuple[int, int]] = []  # (generation, nonce)
        self.bad: list[int] = []
        self.hashed = 0
        self.on_hashes = None

    def set_job(self, job, start, count):
        with self.lock:
            self.job, self.pos, self.end = job, start, start + count
            self.en2 = b"\x00\x00\x00\x07"
            self.root = job.merkle_root(self.en2)

    @property
    def stopping(self):
        return self._stopping

    @property
    def generation(self):
        return self._generation

    def next_work(self, nonce_count=1 << 32, *, timeout=None, version_rolling=False):
        with self.lock:
            if self.pos >= self.end:
                self._stopping = True
                return None
            n = min(nonce_count, self.end - self.pos)
            w = Work(self.job, self.en2, self.job.ntime, self.job.version, self.pos, n, self._generation,
                     self.root, self.job.header(self.en2, merkle_root=self.root))
            self.pos += n
            return w

    def wait_generation(self, generation, timeout):
        return self._generation != generation

    def submit(self, work, nonce, *, version=None, claimed_target=None):
        h = core.sha256d(work.header[:76] + nonce.to_bytes(4, "little"))
        ok = int.from_bytes(h, "little") <= work.target
        with self.lock:
            (self.submitted if ok else self.bad).append((work.generation, nonce) if ok else nonce)
        return ok

    def hashes(self, n):
        self.hashed += n
        if self.on_hashes:
            self.on_hashes(self)

    def add_generation_listener(self, fn):
        pass


def test_run_submits_every_hit_and_counts_every_hash(device):
    job = make_job("j1", 2 ** -16)  # target ~2^240: a few hits per 2^18 nonces
    ctx = SliceContext(job, 5000, 1 << 18)
    device.tuner = g.LaunchTuner(target_ms=30, start=1 << 14)
    device.run(ctx)
    header = job.header(ctx.en2, merkle_root=ctx.root)
    expect = core.scan(header, 5000, 1 << 18, job.share_target)
    assert sorted(n for _, n in ctx.submitted) == expect and expect
    assert ctx.bad == [] and ctx.hashed == 1 << 18
    stats = device.last_run_stats
    assert stats["launches"] >= 4 and stats["kernel_seconds"] > 0  # 2^18 in launches of at most x2 growth from 2^14


def test_run_switches_on_new_generation_and_stops(device):
    old, new = make_job("old", 2 ** -14), make_job("new", 2 ** -14)
    ctx = SliceContext(old, 0, 1 << 24)
    device.tuner = g.LaunchTuner(fixed=1 << 14)

    def switch(c):
        if c.hashed >= 1 << 15 and c.job is old:
            c.set_job(new, 0, 1 << 16)
            c._generation = 2
    ctx.on_hashes = switch
    device.run(ctx)
    gen2 = sorted(n for gen, n in ctx.submitted if gen == 2)
    header_new = new.header(ctx.en2, merkle_root=new.merkle_root(ctx.en2))
    assert gen2 == core.scan(header_new, 0, 1 << 16, new.share_target)
    # The old job's remaining 2^24 nonces were abandoned: at most the in-flight launches ran after the switch.
    assert ctx.hashed <= (1 << 15) + 3 * (1 << 14) + (1 << 16)
    assert ctx.bad == []


def test_missing_pyopencl_or_platform_is_one_clear_error(monkeypatch):
    from miner.errors import BackendUnavailable

    def no_pyopencl():
        raise BackendUnavailable("OpenCL needs pyopencl: install miner[opencl] (test)")
    monkeypatch.setattr(opencl, "_cl", no_pyopencl)
    assert opencl.OpenCLBackend.detect() == []
    with pytest.raises(BackendUnavailable, match=r"miner\[opencl\]"):
        opencl.OpenCLBackend.create([], {})
    monkeypatch.undo()
    monkeypatch.setattr(opencl, "_platforms", lambda cl: [])
    with pytest.raises(BackendUnavailable, match="no platform"):
        opencl.OpenCLBackend.create(["opencl:0:0"], {})


def test_top_word_ties_are_settled_by_the_full_compare(device):
    import random as _r
    rnd = _r.Random(224)
    header = bytes(rnd.getrandbits(8) for _ in range(80))
    nonce = rnd.randrange(1000, 1 << 31)
    value = int.from_bytes(core.sha256d(header[:76] + nonce.to_bytes(4, "little")), "little")
    for target, expect_hit in ((value, True), (value - 1, False), (value | ((1 << 224) - 1), True)):
        hits = device.scan(header, nonce - 300, 600, target)
        assert hits == core.scan(header, nonce - 300, 600, target)
        assert (nonce in hits) is expect_hit


def test_gpu_watts_come_from_the_device_itself_not_gpu_0(cache_home, monkeypatch):
    """The real device objects in the real engine, NVML present: PoCL's CPU device is not an NVIDIA
    board and has no PCI bus id, so NVML is not asked and --gpu-watts applies (before, every GPU got
    GPU 0's watts, looked up by a default index)."""
    import asyncio
    import sys

    from miner.cli.mine import benchmark_job
    from miner.engine import Engine
    from miner.fleet import power
    from test_power import FakePynvml, args

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    fake = FakePynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(power, "_nvml", power._Nvml())
    ns = args("--gpu-watts", "42")
    dev = opencl.OpenCLBackend.create([SPEC], {"gpu_launch": 1 << 16})[0]
    # the callback the miner command builds: the power flags parsed once into a PowerConfig
    engine = Engine([dev], None, benchmark_job=benchmark_job(),
                    watts_for=power.watts_for([dev.kind], power.PowerConfig.from_args(ns)))

    async def mine_until_hashing():
        task = asyncio.create_task(engine.run(time_limit=120))
        while not task.done() and engine.snapshot().devices[0].hashrate["av"] == 0:
            await asyncio.sleep(0.2)
        engine.stop("test over")
        await task

    asyncio.run(mine_until_hashing())
    d = engine.snapshot().devices[0]
    info = dev.info()
    assert d.hashrate["av"] > 0 and info["vendor"] and "vendor_id" in info
    assert opencl.pci_bus_id(opencl._cl(), dev._device) is None and "pci_bus_id" not in info
    assert d.watts == 42.0
    assert fake.lookups == []


def test_a_failed_build_is_one_line_with_the_compiler_error(device, tmp_path):
    """A real PoCL build failure (a kernel with an undeclared name) becomes one DeviceError line
    that keeps the compiler's own error, not pyopencl's many-line dump."""
    from miner.errors import DeviceError
    ctx = cl.Context([device._device])
    bad = "__kernel void k(__global uint *a) { a[0] = not_declared_anywhere; }"
    with pytest.raises(DeviceError) as e:
        opencl.build_program(ctx, device._device, bad, directory=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "not_declared_anywhere" in msg and msg.startswith("OpenCL kernel build failed on ")
    assert "unknown target CPU" not in msg and "pocl-opencl-icd" not in msg   # no hint for a plain source error
    assert not list(tmp_path.glob("*.bin"))


def test_an_llvm_that_does_not_know_the_cpu_gets_a_hint():
    """The log PoCL 3.0 (LLVM 14) prints for every build on an AMD Zen 5 core, as pyopencl words it."""
    log_text = ("clBuildProgram failed: BUILD_PROGRAM_FAILURE - clBuildProgram failed: BUILD_PROGRAM_FAILURE\n\n"
                "Build on <pyopencl.Device 'pthread-AMD EPYC' on 'Portable Computing Language'>:\n\n"
                "error: unknown target CPU 'generic'\nDevice pthread-AMD EPYC failed to build the program\n\n"
                "(options: -cl-std=CL1.2)")
    assert opencl.build_summary(log_text) == ("clBuildProgram failed: BUILD_PROGRAM_FAILURE; "
                                              "error: unknown target CPU 'generic'")
    assert "apt-get install pocl-opencl-icd" in opencl.build_hint(log_text)
    assert opencl.build_hint("error: use of undeclared identifier 'x'") == ""


def _unbuildable_devices():
    """Detected devices on which a kernel does not build here (none on most hosts)."""
    return [found.spec for found in opencl.OpenCLBackend.detect() if not builds(found.spec)]


@pytest.mark.parametrize("spec", _unbuildable_devices() or [None])
def test_a_device_that_cannot_build_fails_alone_with_a_clear_line(spec, tmp_path, monkeypatch):
    """A platform whose compiler fails here (the pip PoCL on a CPU newer than its LLVM) fails its own
    device's open with one clear line; the working device beside it still opens. On hosts where every
    device builds there is nothing to fail, and the working device must still open."""
    from miner.errors import DeviceError
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if spec is not None:
        bad = opencl.OpenCLBackend.create([spec], {})[0]
        with pytest.raises(DeviceError) as e:
            bad.open()
        assert "\n" not in str(e.value) and "OpenCL kernel build failed" in str(e.value)
    good = opencl.OpenCLBackend.create([SPEC], {})[0]
    good.open()
    good.close()
