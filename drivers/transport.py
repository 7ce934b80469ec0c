"""Byte pipes to a board: pyserial (port path or URL) and direct pyusb bulk endpoints.

A driver speaks its protocol over a Transport and never cares which one it
got. Every I/O failure that means "the board went away" becomes DeviceGone so
the driver's run loop can close, report and reopen.
"""
from __future__ import annotations

import errno
import logging
import time
from abc import ABC, abstractmethod

from miner.errors import ConfigError, DeviceError, DeviceGone, NoSuchDevice
from miner.install import pip_install

log = logging.getLogger(__name__)


class Transport(ABC):
    """open() / close() (idempotent), write(), read(n, timeout) -> up to n bytes (fewer on timeout)."""

    name: str = "?"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read(self, n: int, timeout: float) -> bytes: ...

    def set_baud(self, baud: int) -> None:
        """Change the line rate (BM13xx chains run init at 115200 and may go faster)."""

    def flush_input(self) -> None:
        while self.read(4096, 0.0):
            pass

    def read_exact(self, n: int, timeout: float) -> bytes:
        """n bytes, or fewer when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            buf += self.read(n - len(buf), left)
        return bytes(buf)


class SerialTransport(Transport):
    """A tty path (/dev/ttyUSB0, /dev/pts/5) or any pyserial URL (socket://host:port, loop://)."""

    def __init__(self, url: str, baud: int = 115200) -> None:
        self.name = url
        self.url = url
        self.baud = baud
        self._port = None

    def open(self) -> None:
        import serial  # a core dependency; imported here so importing drivers stays cheap
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1, write_timeout=2.0,
                                               do_not_open=True)
            if "://" not in self.url:
                self._port.exclusive = True  # a second miner on the same tty would garble both
            self._port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES or \
                    "Permission denied" in str(exc):
                raise DeviceError(f"cannot open {self.url}: permission denied; add your user to the group "
                                  f"that owns it (often 'dialout': sudo usermod -aG dialout $USER)") from exc
            if "://" not in self.url and (getattr(exc, "errno", None) == errno.ENOENT or
                                          "No such file or directory" in str(exc)):
                raise NoSuchDevice(f"no such port {self.url}") from exc
            raise DeviceGone(f"cannot open {self.url}: {exc}") from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished port may fail; it is closed either way
                pass

    def _need(self):
        if self._port is None:
            raise DeviceGone(f"{self.url} is not open")
        return self._port

    def write(self, data: bytes) -> None:
        import serial
        try:
            self._need().write(data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceGone(f"{self.url}: write failed: {exc}") from exc

    def read(self, n: int, timeout: float) -> bytes:
        import serial
        port = self._need()
        try:
            port.timeout = max(timeout, 0.0)
            return port.read(n)
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's socket handler after the peer closed mid-read.
            raise DeviceGone(f"{self.url}: read failed: {exc}") from exc

    def set_baud(self, baud: int) -> None:
        self.baud = baud
        if self._port is not None and "://" not in self.url:
            self._port.baudrate = baud


# -- direct USB -----------------------------------------------------------------
FTDI_VID = 0x0403
CP210X_VID = 0x10C4


def ftdi_baud_divisor(baud: int, clock: int = 3_000_000) -> tuple[int, int]:
    """(wValue, wIndex) for FTDI SIO_SET_BAUDRATE: divisor clock/baud in eighths.

    The three fraction bits are encoded out of order (0, 1/2, 1/4, 1/8, 3/8,
    5/8, 3/4, 7/8 -> 0, 3, 2, 4, 1, 5, 6, 7): the low two go to wValue bits
    14-15 and the third to wIndex bit 0. Divisors 1 and 1.5 have special codes.
    """
    if baud <= 0:
        raise ConfigError(f"baud must be positive, got {baud}")
    div8 = (clock * 8 + baud // 2) // baud
    if div8 < 10:
        return 0, 0          # divisor 1: 3 Mbaud
    if div8 < 14:
        return 1, 0          # divisor 1.5: 2 Mbaud
    div8 = max(div8, 16)     # no divisors between 1.5 and 2
    whole, frac = div8 >> 3, div8 & 7
    code = (0, 3, 2, 4, 1, 5, 6, 7)[frac]
    whole = min(whole, 0x3FFF)
    return whole | ((code & 3) << 14), code >> 2


class USBTransport(Transport):
    """Bulk endpoints of an FTDI or CP210x bridge, claimed with pyusb, baud set by control transfers.

    Used when no kernel serial driver owns the bridge (or it was detached).
    FTDI prefixes every IN packet with two modem-status bytes; they are stripped.
    """

    FTDI_RESET, FTDI_SET_FLOW, FTDI_SET_BAUD, FTDI_SET_DATA = 0x00, 0x02, 0x03, 0x04
    CP_IFC_ENABLE, CP_SET_LINE_CTL, CP_SET_BAUDRATE = 0x00, 0x03, 0x1E

    def __init__(self, vid: int, pid: int, *, bus: int | None = None, address: int | None = None,
                 baud: int = 115200, backend=None) -> None:
        self.vid, self.pid, self.bus, self.address = vid, pid, bus, address
        self.baud = baud
        self.backend = backend
        self.name = f"usb:{vid:04x}:{pid:04x}" + (f"@{bus}:{address}" if bus is not None else "")
        self._dev = None
        self._ep_in = self._ep_out = None
        self._pending = bytearray()

    @property
    def bridge(self) -> str:
        return "ftdi" if self.vid == FTDI_VID else "cp210x" if self.vid == CP210X_VID else "raw"

    def open(self) -> None:
        try:
            import usb.core
            import usb.util
        except ImportError as exc:
            raise DeviceError(f"direct USB needs pyusb: {pip_install('usb')}") from exc
        try:
            kw = {"idVendor": self.vid, "idProduct": self.pid}
            if self.bus is not None:
                kw["bus"] = self.bus
            if self.address is not None:
                kw["address"] = self.address
            dev = usb.core.find(backend=self.backend, **kw)
            if dev is None:
                raise DeviceGone(f"{self.name}: no such USB device")
            try:
                if dev.is_kernel_driver_active(0):
                    dev.detach_kernel_driver(0)
            except (NotImplementedError, usb.core.USBError):
                pass
            dev.set_configuration()
            intf = dev.get_active_configuration()[(0, 0)]
            self._ep_out = usb.util.find_descriptor(intf, custom_match=lambda e: usb.util.endpoint_direction(
                e.bEndpointAddress) == usb.util.ENDPOINT_OUT)
            self._ep_in = usb.util.find_descriptor(intf, custom_match=lambda e: usb.util.endpoint_direction(
                e.bEndpointAddress) == usb.util.ENDPOINT_IN)
            if self._ep_in is None or self._ep_out is None:
                raise DeviceError(f"{self.name}: no bulk endpoints")
            usb.util.claim_interface(dev, 0)
            self._dev = dev
            self._configure()
        except usb.core.USBError as exc:
            self._dev = None
            raise DeviceGone(f"{self.name}: {exc}") from exc
        except usb.core.NoBackendError as exc:
            raise DeviceError("libusb is not installed: apt install libusb-1.0-0 (Debian/Ubuntu), "
                              "brew install libusb (macOS)") from exc

    def _configure(self) -> None:
        dev = self._dev
        if self.bridge == "ftdi":
            dev.ctrl_transfer(0x40, self.FTDI_RESET, 0, 1)          # reset the chip's buffers
            dev.ctrl_transfer(0x40, self.FTDI_SET_DATA, 0x0008, 1)  # 8 data bits, no parity, 1 stop
            dev.ctrl_transfer(0x40, self.FTDI_SET_FLOW, 0, 1)       # no flow control
        elif self.bridge == "cp210x":
            dev.ctrl_transfer(0x41, self.CP_IFC_ENABLE, 1, 0)
            dev.ctrl_transfer(0x41, self.CP_SET_LINE_CTL, 0x0800, 0)  # 8N1
        self.set_baud(self.baud)

    def set_baud(self, baud: int) -> None:
        self.baud = baud
        if self._dev is None:
            return
        if self.bridge == "ftdi":
            value, index = ftdi_baud_divisor(baud)
            # Single-port bridges (FT232R, FT230X): wIndex carries only the third fraction bit.
            self._dev.ctrl_transfer(0x40, self.FTDI_SET_BAUD, value, index)
        elif self.bridge == "cp210x":
            self._dev.ctrl_transfer(0x41, self.CP_SET_BAUDRATE, 0, 0, baud.to_bytes(4, "little"))

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                import usb.util
                usb.util.dispose_resources(dev)
            except Exception:  # the device may already be gone
                pass

    def write(self, data: bytes) -> None:
        import usb.core
        if self._dev is None:
            raise DeviceGone(f"{self.name} is not open")
        try:
            self._ep_out.write(data, timeout=2000)
        except usb.core.USBError as exc:
            raise DeviceGone(f"{self.name}: write failed: {exc}") from exc

    def read(self, n: int, timeout: float) -> bytes:
        import usb.core
        if self._dev is None:
            raise DeviceGone(f"{self.name} is not open")
        deadline = time.monotonic() + timeout
        while len(self._pending) < n:
            left = deadline - time.monotonic()
            try:
                pkt = bytes(self._ep_in.read(self._ep_in.wMaxPacketSize, timeout=max(1, int(left * 1000))))
            except usb.core.USBTimeoutError:
                pkt = b""
            except usb.core.USBError as exc:
                raise DeviceGone(f"{self.name}: read failed: {exc}") from exc
            if self.bridge == "ftdi":
                pkt = pkt[2:]  # modem and line status
            self._pending += pkt
            if not pkt and time.monotonic() >= deadline:
                break
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out
