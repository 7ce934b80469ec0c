"""Watts per device and J/TH."""
from __future__ import annotations

import argparse
import os
import sys
import types

import pytest

from miner.fleet import power
from miner.errors import ConfigError
from miner.fleet.power import RaplMeter, device_watts, joules_per_terahash, parse_device_watts


def args(*argv: str, root: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    power.add_arguments(p)
    ns = p.parse_args(list(argv))
    ns.powercap_root = root
    return ns


def make_rapl(root, zones: dict[str, int], max_range: int = 262143328850) -> None:
    """A powercap tree laid out as the kernel lays it out (package zones and a core sub-zone)."""
    for name, uj in zones.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "energy_uj"), "w") as f:
            f.write(f"{uj}\n")
        with open(os.path.join(d, "max_energy_range_uj"), "w") as f:
            f.write(f"{max_range}\n")


def set_energy(root, name: str, uj: int) -> None:
    with open(os.path.join(root, name, "energy_uj"), "w") as f:
        f.write(f"{uj}\n")


def test_joules_per_terahash():
    assert joules_per_terahash(18.0, 1.2e12) == pytest.approx(15.0)
    assert joules_per_terahash(3250.0, 200e12) == pytest.approx(16.25)
    assert joules_per_terahash(None, 1e12) is None
    assert joules_per_terahash(10.0, 0.0) is None


def test_asic_uses_driver_estimate_then_configured():
    a = args("--asic-watts", "20")
    assert device_watts("asic", {"watts": 17.5, "model": "BM1370", "frequency_mhz": 525}, a) == 17.5
    assert device_watts("asic", {"model": "BM1370"}, a) == 20.0
    assert device_watts("asic", {}, args()) is None


def test_per_device_value_overrides_everything():
    a = args("--device-watts", "bm1370:/dev/ttyUSB0=12.5", "--device-watts", "cpu=65,opencl=150",
             "--cpu-watts", "40")
    assert device_watts("asic", {"watts": 17.5, "spec": "bm1370:/dev/ttyUSB0"}, a) == 12.5
    assert device_watts("asic", {"watts": 17.5, "name": "bm1370:/dev/ttyUSB1"}, a) == 17.5
    assert device_watts("cpu", {}, a) == 65.0
    assert device_watts("opencl", {}, a) == 150.0
    assert parse_device_watts(["a:b=c=3"]) == {"a:b=c": 3.0}   # the value is after the last '='


@pytest.mark.parametrize("bad", ["cpu", "=5", "cpu=abc", "cpu=-1", "cpu=nan"])
def test_bad_device_watts_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="--device-watts"):
        parse_device_watts([bad])


def test_bad_kind_watts_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit):
        args("--cpu-watts", "-3")
    assert "watts" in capsys.readouterr().err


BUS0, BUS1 = "0000:01:00.0", "0000:41:00.0"


def test_gpu_falls_back_to_configured_without_nvml(monkeypatch):
    monkeypatch.setattr(power, "nvml_watts", lambda info: None)
    assert device_watts("cuda", {"pci_bus_id": BUS0}, args("--gpu-watts", "220")) == 220.0
    assert device_watts("opencl", {}, args()) is None
    monkeypatch.setattr(power, "nvml_watts", lambda info: 187.25)
    assert device_watts("cuda", {"pci_bus_id": BUS0}, args("--gpu-watts", "220")) == 187.25


class FakePynvml(types.ModuleType):
    """nvidia-ml-py's surface as the power module uses it: init once, handles, power in milliwatts."""

    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init, self.inits = fail_init, 0
        self.power_mw = {0: 187250, 1: 301000}
        self.bus = {BUS0.encode(): 0, BUS1.encode(): 1}
        self.lookups: list = []

    def nvmlInit(self):  # noqa: N802 - the library's names
        self.inits += 1
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802
        self.lookups.append(("index", i))
        if i not in self.power_mw:
            raise RuntimeError("Invalid Argument")
        return i

    def nvmlDeviceGetHandleByPciBusId(self, bus):  # noqa: N802
        self.lookups.append(("bus", bus))
        if bus not in self.bus:
            raise RuntimeError("Not Found")
        return self.bus[bus]

    def nvmlDeviceGetPowerUsage(self, handle):  # noqa: N802
        return self.power_mw[handle]


def test_nvml_reading_in_watts_initialised_once(monkeypatch):
    fake = FakePynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(power, "_nvml", power._Nvml())
    assert device_watts("cuda", {"pci_bus_id": BUS0}, args("--gpu-watts", "220")) == 187.25
    nv_cl = {"pci_bus_id": BUS1, "vendor": "NVIDIA Corporation", "vendor_id": 0x10DE}
    assert device_watts("opencl", nv_cl, args()) == 301.0
    assert device_watts("cuda", {"pci_bus_id": "0000:07:00.0"}, args("--gpu-watts", "220")) == 220.0  # no such GPU
    # Not NVML's to answer: an OpenCL device of another vendor, or a device that gave no bus id.
    fake.lookups.clear()
    amd = {"pci_bus_id": BUS0, "vendor": "Advanced Micro Devices, Inc.", "vendor_id": 0x1002}
    assert device_watts("opencl", amd, args("--gpu-watts", "150")) == 150.0
    assert device_watts("cuda", {}, args("--gpu-watts", "220")) == 220.0
    assert fake.lookups == []
    assert fake.inits == 1


def test_nvml_unavailable_falls_back_and_is_not_retried(monkeypatch):
    fake = FakePynvml(fail_init=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(power, "_nvml", power._Nvml())
    for _ in range(3):
        assert device_watts("cuda", {"pci_bus_id": BUS0}, args("--gpu-watts", "220")) == 220.0
    assert fake.inits == 1


@pytest.mark.gpu
def test_real_nvml_reads_a_plausible_power():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - no NVIDIA driver: skip cleanly
        pytest.skip(f"no NVML here: {e}")
    bus = pynvml.nvmlDeviceGetPciInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).busId
    w = power._Nvml().watts({"pci_bus_id": bus.decode() if isinstance(bus, bytes) else bus})
    assert w is not None and 1.0 < w < 2000.0


def test_rapl_delta_and_wrap(tmp_path):
    root = str(tmp_path)
    make_rapl(root, {"intel-rapl:0": 1_000_000, "intel-rapl:0:0": 500_000, "intel-rapl:1": 2_000_000},
              max_range=10_000_000)
    m = RaplMeter(root)
    assert [os.path.basename(z) for z in m._zones] == ["intel-rapl:0", "intel-rapl:1"]  # sub-zone skipped
    # package 0 and package 1 are summed; the core sub-zone is inside package 0 already
    assert m.watts(now=10.0, prime_s=0) is None      # first call primes; no interval yet
    set_energy(root, "intel-rapl:0", 4_000_000)     # +3 J
    set_energy(root, "intel-rapl:1", 3_000_000)     # +1 J
    assert m.watts(now=12.0) == pytest.approx(2.0)  # 4 J / 2 s
    set_energy(root, "intel-rapl:0", 1_000_000)     # wrapped at 10 J: +7 J
    set_energy(root, "intel-rapl:1", 4_000_000)     # +1 J
    assert m.watts(now=14.0) == pytest.approx(4.0)  # 8 J / 2 s
    set_energy(root, "intel-rapl:1", 9_000_000)     # +5 J
    assert m.watts(now=14.5) == pytest.approx(4.0)  # asked again within 1 s: the last reading
    assert m.watts(now=15.0) == pytest.approx(5.0)  # 5 J / 1 s


def test_cpu_uses_rapl_when_readable_else_configured(tmp_path):
    root = str(tmp_path / "powercap")
    make_rapl(root, {"intel-rapl:0": 5_000_000})
    a = args("--cpu-watts", "65", root=root)
    w = device_watts("cpu", {}, a)          # first call primes with a short real interval
    assert w == pytest.approx(0.0, abs=1e-6)  # counter did not move: 0 W, not the configured 65
    # Unreadable (as energy_uj is for non-root on Linux >= 5.10): the configured value.
    # A directory in its place fails open() for root too.
    unreadable = tmp_path / "locked"
    make_rapl(str(unreadable), {"intel-rapl:0": 1})
    os.remove(unreadable / "intel-rapl:0" / "energy_uj")
    os.mkdir(unreadable / "intel-rapl:0" / "energy_uj")
    assert device_watts("cpu", {}, args("--cpu-watts", "65", root=str(unreadable))) == 65.0
    assert device_watts("cpu", {}, args(root=str(unreadable))) is None


def test_cpu_without_powercap_uses_configured(tmp_path):
    assert device_watts("cpu", {}, args("--cpu-watts", "35", root=str(tmp_path / "none"))) == 35.0
    assert device_watts("cpu", {}, args(root=str(tmp_path / "none"))) is None


def test_efficiency_hashrate_avoids_the_cold_5m_window():
    hr = {"5s": 1.2e12, "1m": 1.1e12, "5m": 0.3e12, "15m": 0.1e12, "av": 1.19e12}
    assert power.efficiency_hashrate(hr, 60.0) == 1.19e12     # 5 m window still warming up
    assert power.efficiency_hashrate(hr, 300.0) == 0.3e12
    assert power.efficiency_hashrate({"av": 0.0}, 10.0) == 0.0


def test_power_flags_are_parsed_once_at_start(monkeypatch):
    config = power.PowerConfig.from_args(args("--device-watts", "asic0=18", "--cpu-watts", "64", "--gpu-watts", "150",
                                              root="/nonexistent/powercap"))
    calls = []
    real = power.parse_device_watts
    monkeypatch.setattr(power, "parse_device_watts", lambda items: calls.append(items) or real(items))
    watts = power.watts_for(["cpu", "cpu", "asic", "opencl"], config)
    snap = types.SimpleNamespace
    for _ in range(100):  # snapshots
        assert watts(snap(kind="asic", name="asic0"), {"watts": 17.5}) == 18.0
        assert watts(snap(kind="cpu", name="cpu0"), {}) == 32.0      # the package shared by 2 threads
        assert watts(snap(kind="opencl", name="gpu0"), {}) == 150.0
    assert calls == []


def test_bad_power_flags_fail_at_start():
    with pytest.raises(ConfigError, match="--device-watts"):
        power.PowerConfig.from_args(args("--device-watts", "asic0"))
