"""The live panel as a user sees it: 80 columns through rich's own console, and the whole miner
under a real pseudo-terminal (keys, Ctrl-C), its screen rebuilt by pyte, a VT100 emulator."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time

import pyte
import pytest
from rich.console import Console

from miner.cli.status import build_panel, short_name, status_line
from miner.engine.stats import DeviceSnapshot, MinerSnapshot, PoolSnapshot

RATES = {"5s": 1.234e12, "1m": 1.2e12, "5m": 1.2e12, "15m": 1.2e12, "av": 1.199e12}


def _device(i: int, name: str) -> DeviceSnapshot:
    return DeviceSnapshot(id=i, name=name, kind="asic", model="BM1370", status="alive", enabled=True,
                          hashrate=dict(RATES), accepted=1393, rejected=2, stale=1, hw_errors=3,
                          difficulty_accepted=1393.0, best_share=51234.0, last_share_time=None,
                          temperature_c=61.0, watts=18.0, frequency_mhz=525.0, elapsed=3600.0)


def _snap(devices, pools=True) -> MinerSnapshot:
    pool = PoolSnapshot(id=0, url="stratum+tcp://pool.example.com:3333", user="w", status="alive", priority=0,
                        active=True, accepted=2786, rejected=4, stale=2, difficulty=4096.0,
                        difficulty_accepted=1.0, difficulty_rejected=0.0, difficulty_stale=0.0, best_share=51234.0,
                        blocks=0, jobs=10, last_share_time=None, reject_reasons={}, version_mask=0x1FFFE000,
                        connected_since=None)
    return MinerSnapshot(version="0.1.0", started_at=0.0, elapsed=3723.0, paused=False, pause_reason="",
                         hashrate={k: v * len(devices) for k, v in RATES.items()}, effective_hashrate=2.3e12,
                         accepted=2786, rejected=4, stale=2, hw_errors=6, difficulty_accepted=1.0,
                         difficulty_rejected=0.0, difficulty_stale=0.0, best_share=51234.0, blocks=0,
                         network_difficulty=1.5e14, watts=36.0, devices=tuple(devices),
                         pools=(pool,) if pools else (), current_pool=0, utility=1.0)


def _render(snap, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(build_panel(snap, width))
    return buf.getvalue().splitlines()


TWO_STICKS = ["bm1370:/dev/ttyUSB0", "bm1370:/dev/ttyUSB1"]


@pytest.mark.parametrize("width", [80, 60])
def test_panel_fits_and_keeps_each_device_on_one_line(width):
    lines = _render(_snap([_device(i, n) for i, n in enumerate(TWO_STICKS)]), width)
    assert all(len(ln) <= width for ln in lines), "\n".join(lines)
    for name in ("bm1370:ttyUSB0", "bm1370:ttyUSB1"):  # the two sticks can be told apart
        row = [ln for ln in lines if name in ln]
        assert len(row) == 1, "\n".join(lines)
        # the rates and A/R/HW sit on the device's own line: nothing wraps
        assert "1.23 TH/s" in row[0] and "1.2 TH/s" in row[0] and "1393/2/3" in row[0], row[0]
        if width >= 72:
            assert "51.23k" in row[0] and " 18 " in row[0] and "61" in row[0], row[0]
    assert "pool.example.com:3333" in lines[0] and "diff 4.10k" in lines[0], lines[0]


def test_long_ports_keep_the_part_that_differs():
    assert short_name("bm1370:/dev/ttyUSB0") == "bm1370:ttyUSB0"
    assert short_name("icarus:socket://127.0.0.1:4000") == "icarus:tcp:4000"
    assert short_name("icarus:socket://10.0.0.5:4000", 24) == "icarus:10.0.0.5:4000"
    assert short_name("bm1397:usb:0403:6015@1:7") == "bm1397:usb@1:7"
    a, b = (short_name(f"erupter:/dev/serial/by-id/usb-Silicon_Labs_CP2102_USB_to_UART_{s}-if00-port0", 18)
            for s in ("0001", "0002"))
    assert len(a) <= 18 and a.endswith("UART_0001") and b.endswith("UART_0002"), (a, b)


def test_offline_benchmark_shows_no_share_counts():
    snap = _snap([_device(0, "cpu0")], pools=False)
    lines = _render(snap, 80)
    text = "\n".join(lines)
    assert "offline benchmark" in text and "A/R/HW" not in text and "best" not in text
    assert "effective" not in text
    line = status_line(snap)
    assert "A:" not in line and "best" not in line and "offline benchmark" in line


# -- the real thing under a pty ------------------------------------------------------------------------
class Terminal:
    """A miner process on a pty 80x24, read through pyte."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        self.proc = subprocess.Popen([sys.executable, "-m", "miner", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, cwd=tempfile.gettempdir(), start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.raw = b""

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                self.raw += data
                self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.2)
            if predicate(self.text()):
                return True
            if self.proc.poll() is not None:
                self.pump(0.3)
                return predicate(self.text())
        return False

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> int:
        """Wait for the exit, reading the screen up to the end, then close the pty."""
        end = time.monotonic() + 20
        while self.proc.poll() is None and time.monotonic() < end:
            self.pump(0.2)
        self.pump(0.5)
        if self.proc.poll() is None:
            self.proc.kill()
        os.close(self.master)
        return self.proc.wait(5)


def test_panel_under_a_pty_keys_and_ctrl_c_leave_no_border():
    t = Terminal("--benchmark", "-t", "1", "--time-limit", "60")
    try:
        # name and both rates (5 s and average) on the device's one line
        assert t.wait_for(lambda s: any(ln.startswith("\u2502 cpu0 ") and ln.count("MH/s") == 2
                                        for ln in s.splitlines()) and "q quit" in s), t.text()
        t.send(b"p")
        assert t.wait_for(lambda s: "PAUSED" in s), t.text()
        t.send(b"p")
        assert t.wait_for(lambda s: "PAUSED" not in s and "q quit" in s), t.text()
        t.send(b"\x03")  # Ctrl-C through the line discipline: SIGINT, as a user's key press
        code = t.close()
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
    screen = t.text()
    assert code == 0, screen
    assert "benchmark summary" in screen, screen
    # the panel (rounded corners) is gone; only the summary table (square corners) remains
    assert "\u256d" not in screen and "\u2570" not in screen, screen
    assert "^C" not in screen, screen


def test_q_quits_the_panel():
    t = Terminal("--benchmark", "-t", "1", "--time-limit", "60")
    assert t.wait_for(lambda s: "q quit" in s), t.text()
    t.send(b"q")
    assert t.close() == 0
    assert "benchmark summary" in t.text() and "\u256d" not in t.text(), t.text()


def test_without_a_terminal_status_lines_appear_at_once():
    """stderr redirected: no panel, but plain status lines, the first within seconds even with the
    default 10 s interval, so a short run shows one."""
    proc = subprocess.run([sys.executable, "-m", "miner", "--benchmark", "-t", "1", "--time-limit", "4"],
                          capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir(),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "H/s (avg" in ln]
    assert lines and "offline benchmark" in lines[0], proc.stderr
    assert "\u256d" not in proc.stderr and "\x1b[" not in proc.stderr


def test_keys_mode_is_undone_by_restore_terminal(monkeypatch):
    """The path a second Ctrl-C takes (os._exit skips every finally): restore_terminal() gives the
    terminal its echo and line mode back."""
    from miner.cli import status
    master, slave = pty.openpty()
    with os.fdopen(slave, "r") as tty_in:
        monkeypatch.setattr(sys, "stdin", tty_in)
        keys = status._Keys({"q": lambda: None})
        keys.open()
        assert not termios.tcgetattr(slave)[3] & termios.ECHO
        status.restore_terminal()
        mode = termios.tcgetattr(slave)
        assert mode[3] & termios.ECHO and mode[3] & termios.ICANON and not status._OPEN_KEYS
    os.close(master)
