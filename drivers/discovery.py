"""Finding boards: USB ids and product strings through pyusb, serial ports through pyserial.

The USB ids come from the chip table (each record's ``boards``,
miner.drivers.chips); this module only walks the buses. Tests install a pyusb backend of their own (usbsim) with
set_usb_backend(); None means pyusb's default (libusb).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from miner.engine.backend import DetectedDevice
from miner.errors import BackendUnavailable
from miner.install import pip_install

log = logging.getLogger(__name__)

LIBUSB_HINT = ("libusb is not installed, so boards without a serial driver cannot be found: "
               "apt install libusb-1.0-0 (Debian/Ubuntu), dnf install libusb1 (Fedora), brew install libusb (macOS)")

_backend = None


def set_usb_backend(backend) -> None:
    """Use ``backend`` (a usb.backend.IBackend) for discovery and direct-USB transports; None resets."""
    global _backend
    _backend = backend


def usb_backend():
    return _backend


@dataclass(frozen=True)
class BoardId:
    vid: int
    pid: int
    product: str | None
    driver: str
    description: str


def board_ids() -> list[BoardId]:
    """Every board of every chip record; ids with a product string first, so that a specific
    board wins over a generic bridge with the same id."""
    from miner.drivers.chips import CHIPS
    out = [BoardId(b.vid, b.pid, b.product, key, b.description) for key, facts in CHIPS.items() for b in facts.boards]
    return sorted(out, key=lambda b: b.product is None)


def match(vid: int | None, pid: int | None, product: str | None) -> BoardId | None:
    for b in board_ids():
        if b.vid == vid and b.pid == pid and (b.product is None or (product or "").strip() == b.product):
            return b
    return None


def serial_ports() -> list[DetectedDevice]:
    from serial.tools import list_ports
    out = []
    for p in list_ports.comports():
        b = match(p.vid, p.pid, p.product)
        if b is not None:
            out.append(DetectedDevice("asic", f"{b.driver}:{p.device}", f"{b.description} on {p.device}",
                                      {"vid": p.vid, "pid": p.pid, "serial": p.serial_number,
                                       "product": p.product, "port": p.device}))
    return out


def usb_devices() -> list[DetectedDevice]:
    """Boards on the USB bus; raises BackendUnavailable (with the install hint) without pyusb or libusb."""
    try:
        import usb.core
        import usb.util
    except ImportError as exc:
        raise BackendUnavailable(f"direct USB needs pyusb: {pip_install('usb')}") from exc
    try:
        found = list(usb.core.find(find_all=True, backend=_backend))
    except usb.core.NoBackendError as exc:
        raise BackendUnavailable(LIBUSB_HINT) from exc
    out = []
    for dev in found:
        product = None
        try:
            if dev.iProduct:
                product = usb.util.get_string(dev, dev.iProduct)
        except (usb.core.USBError, ValueError, NotImplementedError):
            pass  # no permission to read strings; the id may still match a generic entry
        b = match(dev.idVendor, dev.idProduct, product)
        if b is None:
            continue
        spec = f"{b.driver}:usb:{dev.idVendor:04x}:{dev.idProduct:04x}@{dev.bus}:{dev.address}"
        out.append(DetectedDevice("asic", spec, f"{b.description} at USB {dev.bus}:{dev.address}",
                                  {"vid": dev.idVendor, "pid": dev.idProduct, "product": product,
                                   "bus": dev.bus, "address": dev.address}))
    return out


def detect() -> list[DetectedDevice]:
    """Serial ports first (a kernel driver owns those boards); USB-only boards after, without duplicates."""
    found = serial_ports()
    try:
        usb_found = usb_devices()
    except BackendUnavailable as exc:
        if not found:
            raise
        log.warning("%s", exc)
        usb_found = []
    seen = {(d.details.get("vid"), d.details.get("pid")) for d in found}
    for d in usb_found:
        # A board that has a tty is listed once, by its tty; pyserial cannot tell us the bus address.
        if (d.details["vid"], d.details["pid"]) in seen and len(found) >= len(usb_found):
            continue
        found.append(d)
    return found
