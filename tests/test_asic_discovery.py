"""Discovery (pyusb and pyserial's port list), direct-USB transport, device specs, the ASIC backend.

USB runs through miner.drivers.emu.usbsim, a real pyusb backend object whose
devices route bulk transfers to the emulators; pyusb's own descriptor, string
and transfer code runs unchanged on top of it.
"""
from __future__ import annotations

import pytest
import usb.backend.libusb0
import usb.backend.libusb1
import usb.backend.openusb
from serial.tools import list_ports, list_ports_common

from asic_ctx import TestContext, mine_until, run_device, session_job
from miner.engine.backend import load_backend
from miner.backends.asic import ASICBackend
from miner.drivers import create_device, discovery, parse_si, parse_spec
from miner.drivers.emu import usbsim
from miner.drivers.chips import BM1370, BM1397, ICARUS_MODELS
from miner.drivers.emu.models import EmulatedBM13xx, EmulatedIcarus
from miner.drivers.transport import ftdi_baud_divisor
from miner.errors import BackendUnavailable, ConfigError


@pytest.fixture
def usb_bus():
    boards: list[usbsim.SimBoard] = []
    discovery.set_usb_backend(usbsim.SimBackend(boards))
    yield boards
    discovery.set_usb_backend(None)
    for b in boards:
        if b.device is not None:
            b.device.close()


@pytest.fixture
def no_serial_ports(monkeypatch):
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [])


def test_usb_discovery_by_id_and_product_string(usb_bus, no_serial_ports):
    usb_bus += [usbsim.SimBoard(0x0403, 0x6015, "CompacF Bitcoin Miner", address=5),
                usbsim.SimBoard(0x0403, 0x6015, "Some Other FT230X Gadget", address=6),
                usbsim.SimBoard(0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller", address=7),
                usbsim.SimBoard(0x046D, 0xC52B, "Unifying Receiver", address=8)]
    found = ASICBackend.detect()
    assert [d.spec for d in found] == ["bm1397:usb:0403:6015@1:5", "erupter:usb:10c4:ea60@1:7"]
    assert found[0].details["product"] == "CompacF Bitcoin Miner"


def test_serial_port_discovery(usb_bus, monkeypatch):
    port = list_ports_common.ListPortInfo("/dev/ttyUSB3")
    port.vid, port.pid, port.product = 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"
    other = list_ports_common.ListPortInfo("/dev/ttyS0")
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [port, other])
    found = discovery.detect()
    assert [d.spec for d in found] == ["erupter:/dev/ttyUSB3"]


def test_missing_libusb_says_how_to_install(monkeypatch, no_serial_ports):
    discovery.set_usb_backend(None)
    for mod in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
        monkeypatch.setattr(mod, "get_backend", lambda *a, **k: None)
    with pytest.raises(BackendUnavailable, match="libusb.*apt install libusb-1.0-0"):
        ASICBackend.detect()


@pytest.mark.parametrize("vid,pid,product,baud", [(0x0403, 0x6015, "CompacF Bitcoin Miner", 115385),
                                                  (0x10C4, 0xEA60, "CP2102", 115200)])
def test_direct_usb_transport_mines_with_baud_set_by_control_transfer(usb_bus, vid, pid, product, baud):
    emu = EmulatedBM13xx(BM1397 if vid == 0x0403 else BM1370, 1, diff=1e-5 if vid == 0x0403 else 1e-4)
    usb_bus.append(usbsim.SimBoard(vid, pid, product, emu))
    model = "bm1397" if vid == 0x0403 else "bm1370"
    dev = create_device(f"{model}:usb:{vid:04x}:{pid:04x}@1:2,diff={emu.test_diff},ramp_delay=0,job_interval=1")
    ctx = TestContext(session_job(difficulty=emu.test_diff))
    t = mine_until(dev, ctx, lambda: len(ctx.shares) >= 2, 20)
    assert t.error is None and ctx.hw_errors == 0 and ctx.all_shares_valid()
    board = usb_bus[0]
    assert board.baud == baud  # FTDI: 3 MHz / 26 is the nearest divisor to 115200
    requests = [r[1] for r in board.control_log]
    assert (0x03 if vid == 0x0403 else 0x1E) in requests


def test_unplugged_usb_board_is_reported_and_reopened(usb_bus):
    emu = EmulatedBM13xx(BM1370, 1, diff=1e-4)
    board = usbsim.SimBoard(0x10C4, 0xEA60, "CP2102", emu)
    usb_bus.append(board)
    dev = create_device("bm1370:usb:10c4:ea60,diff=1e-4,ramp_delay=0")
    ctx = TestContext(session_job(difficulty=1e-4))
    t = run_device(dev, ctx)
    try:
        assert ctx.wait_for(lambda: len(ctx.submitted) >= 2, 10)
        board.unplugged = True
        assert ctx.wait_for(lambda: dev.info()["disconnects"] >= 1, 5)
        seen = len(ctx.submitted)
        board.unplugged = False
        assert ctx.wait_for(lambda: len(ctx.submitted) > seen + 2, 15), dev.info()
    finally:
        ctx.stop()
        t.join(5)
    assert t.error is None and dev.info()["reopens"] >= 2


def test_ftdi_divisors():
    assert ftdi_baud_divisor(115200) == (26, 0)
    assert ftdi_baud_divisor(3_000_000) == (0, 0)
    assert ftdi_baud_divisor(2_000_000) == (1, 0)
    # 3 MHz / 1.5M*... : a fractional divisor sets the encoded eighths
    value, index = ftdi_baud_divisor(1_000_000 * 3 // 7)  # divisor 7.0
    assert value == 7 and index == 0
    assert usbsim._ftdi_baud(*ftdi_baud_divisor(921600)) == pytest.approx(921600, rel=0.01)


def test_specs():
    assert parse_spec("bm1370:/dev/pts/5,chips=4,diff=0.001,freq=490") == \
        ("bm1370", "/dev/pts/5", {"chips": 4, "diff": 0.001, "freq": 490.0})
    assert parse_spec("icarus:socket://127.0.0.1:4000") == ("icarus", "socket://127.0.0.1:4000", {})
    assert parse_spec("erupter:usb:10c4:ea60@1:7,hashrate=336M")[2] == {"hashrate": 336e6}
    assert parse_si("1.2T") == 1.2e12 and parse_si("336MH/s") == 336e6 and parse_si("0.5") == 0.5
    for bad, msg in [("bm9999:/dev/x", "DRIVER"), ("bm1370:", "no port"), ("bm1370:/dev/x,chips", "key=value"),
                     ("bm1370:/dev/x,color=red", "unknown option"), ("bm1370:/dev/x,diff=abc", "number"),
                     ("icarus:usb:zz:1", "usb:VVVV:PPPP")]:
        with pytest.raises(ConfigError, match=msg):
            create_device(bad)


def test_backend_registry_and_device_info(tmp_path):
    backend = load_backend("asic")
    assert backend is ASICBackend
    devs = backend.create(["icarus:loop://", "bm1370:/dev/null-not-there,chips=3,freq=500"], {})
    assert [type(d).__name__ for d in devs] == ["IcarusDevice", "BM13xxDevice"]
    assert devs[0].kind == "asic" and devs[1].info()["model"] == "BM1370"


def test_importing_drivers_does_not_import_pyusb():
    import subprocess
    import sys
    code = "import sys, miner.drivers; miner.drivers.parse_spec('bm1370:/dev/x'); print('usb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_icarus_over_loop_url_is_not_an_icarus():
    # loop:// echoes the golden work back: 64 bytes of echo are not the golden nonce
    dev = create_device("icarus:loop://,golden_timeout=0.3")
    from miner.errors import DeviceError
    with pytest.raises(DeviceError, match="golden"):
        dev.open()
    dev.close()
    assert ICARUS_MODELS["icarus"].reply_len == 4 and EmulatedIcarus  # models stay importable


def test_a_new_chip_record_is_all_it_takes(usb_bus, no_serial_ports, monkeypatch):
    # One record added to the chip table: the --device driver names, USB discovery and
    # `miner emulate` all pick it up, and the driver mines on its emulator over USB.
    import argparse
    import dataclasses

    from miner.drivers import chips, drivers
    from miner.drivers.bm13xx import BM13xxDevice
    from miner.drivers.emu import emulate

    new = dataclasses.replace(BM1370, key="bm1372", model="BM1372", chip_id=0x1372, boards=(
        chips.UsbBoard(0x10C4, 0xEA60, "BM1372 Test Board", "a test board (BM1372)"),))
    monkeypatch.setitem(chips.CHIPS, "bm1372", new)
    assert drivers()["bm1372"] == "miner.drivers.bm13xx"
    parser = argparse.ArgumentParser()
    emulate.add_arguments(parser)
    assert parser.parse_args(["bm1372"]).emulate_model == "bm1372"
    emu = emulate.build_device("bm1372", 1, diff=1e-4)
    assert emu.facts is new
    usb_bus.append(usbsim.SimBoard(0x10C4, 0xEA60, "BM1372 Test Board", emu, address=9))
    found = discovery.detect()
    assert [d.spec for d in found] == ["bm1372:usb:10c4:ea60@1:9"]  # the product string beats the bridge
    dev = create_device(found[0].spec + ",diff=1e-4,ramp_delay=0")
    assert isinstance(dev, BM13xxDevice) and dev.facts is new
    ctx = TestContext(session_job(difficulty=1e-4))
    t = mine_until(dev, ctx, lambda: len(ctx.shares) >= 2, 20)
    assert t.error is None and ctx.hw_errors == 0 and dev.info()["model"] == "BM1372"
