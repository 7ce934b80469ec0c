"""A pyusb backend with simulated boards: USB enumeration and bulk transfers routed to emulators.

It implements usb.backend.IBackend, so pyusb's own Device/Configuration/
Endpoint code runs unchanged on top of it: discovery reads real descriptors
and string descriptors, USBTransport claims the interface, sets the baud with
the bridge's control requests (recorded here and decoded back to a rate) and
moves bytes over bulk endpoints; FTDI IN packets carry their two status bytes.
Install it with miner.drivers.discovery.set_usb_backend(SimBackend([...])).
"""
from __future__ import annotations

import array
import errno
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import usb.backend
import usb.core

from miner.drivers.emu.emulator import EmulatedDevice

EP_IN, EP_OUT = 0x81, 0x02
PACKET = 64


@dataclass
class SimBoard:
    vid: int
    pid: int
    product: str
    device: EmulatedDevice | None = None
    manufacturer: str = "Sim"
    serial: str = "SIM0001"
    bus: int = 1
    address: int = 2
    unplugged: bool = False
    control_log: list[tuple[int, int, int, int, bytes]] = field(default_factory=list)
    baud: int | None = None
    claimed: bool = False

    @property
    def bridge(self) -> str:
        return {0x0403: "ftdi", 0x10C4: "cp210x"}.get(self.vid, "raw")


def _ftdi_baud(value: int, index: int, clock: int = 3_000_000) -> int:
    whole = value & 0x3FFF
    code = ((value >> 14) & 3) | ((index & 1) << 2)  # single-port bridges: wIndex bit 0 is the third bit
    eighths = {0: 0, 3: 1, 2: 2, 4: 3, 1: 4, 5: 5, 6: 6, 7: 7}[code]
    if whole == 0 and code == 0:
        return clock
    if whole == 1 and code == 0:
        return clock * 2 // 3
    return round(clock * 8 / (whole * 8 + eighths))


class SimBackend(usb.backend.IBackend):
    def __init__(self, boards: list[SimBoard]) -> None:
        self.boards = boards
        self._lock = threading.Lock()

    # -- enumeration --------------------------------------------------------
    def enumerate_devices(self):
        return iter([b for b in self.boards if not b.unplugged])

    def get_device_descriptor(self, dev: SimBoard):
        return SimpleNamespace(bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
                               bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=dev.vid, idProduct=dev.pid,
                               bcdDevice=0x0100, iManufacturer=1, iProduct=2, iSerialNumber=3,
                               bNumConfigurations=1, address=dev.address, bus=dev.bus, port_number=1,
                               port_numbers=(1,), speed=2)

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError(config)
        return SimpleNamespace(bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1,
                               bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=50,
                               extra_descriptors=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        if intf != 0 or alt != 0:
            raise IndexError(intf)
        return SimpleNamespace(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                               bNumEndpoints=2, bInterfaceClass=0xFF, bInterfaceSubClass=0xFF,
                               bInterfaceProtocol=0xFF, iInterface=0, extra_descriptors=[])

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if ep not in (0, 1):
            raise IndexError(ep)
        return SimpleNamespace(bLength=7, bDescriptorType=5, bEndpointAddress=(EP_IN, EP_OUT)[ep],
                               bmAttributes=2, wMaxPacketSize=PACKET, bInterval=0, bRefresh=0,
                               bSynchAddress=0, extra_descriptors=[])

    # -- handles --------------------------------------------------------------
    def _alive(self, dev: SimBoard) -> SimBoard:
        if dev.unplugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)
        return dev

    def open_device(self, dev):
        return self._alive(dev)

    def close_device(self, dev_handle):
        pass

    def set_configuration(self, dev_handle, config_value):
        self._alive(dev_handle)

    def get_configuration(self, dev_handle):
        return 1

    def set_interface_altsetting(self, dev_handle, intf, altsetting):
        pass

    def claim_interface(self, dev_handle, intf):
        self._alive(dev_handle).claimed = True

    def release_interface(self, dev_handle, intf):
        dev_handle.claimed = False

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def detach_kernel_driver(self, dev_handle, intf):
        pass

    # -- transfers ----------------------------------------------------------------
    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        dev = self._alive(dev_handle)
        if dev.device is not None:
            dev.device.feed(bytes(data))
        return len(data)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        dev = self._alive(dev_handle)
        room = len(buff) - (2 if dev.bridge == "ftdi" else 0)
        data = dev.device.take(room, min(timeout, 50) / 1000.0) if dev.device is not None else b""
        if dev.bridge == "ftdi":
            data = b"\x01\x60" + data  # modem status, line status: every FTDI packet starts with them
        elif not data:
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        buff[:len(data)] = array.array("B", data)
        return len(data)

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        dev = self._alive(dev_handle)
        if bmRequestType & 0x80:  # IN: only string descriptors are asked for
            if bRequest != 0x06 or wValue >> 8 != 3:
                raise usb.core.USBError("Pipe error", -9, errno.EPIPE)
            index = wValue & 0xFF
            if index == 0:
                raw = bytes((4, 3, 0x09, 0x04))  # one language: en-US
            else:
                text = {1: dev.manufacturer, 2: dev.product, 3: dev.serial}.get(index, "")
                enc = text.encode("utf-16-le")
                raw = bytes((2 + len(enc), 3)) + enc
            n = min(len(raw), len(data))
            for i in range(n):
                data[i] = raw[i]
            return n
        payload = bytes(data) if data is not None else b""
        dev.control_log.append((bmRequestType, bRequest, wValue, wIndex, payload))
        if dev.bridge == "ftdi" and bRequest == 0x03:
            dev.baud = _ftdi_baud(wValue, wIndex)
        elif dev.bridge == "cp210x" and bRequest == 0x1E:
            dev.baud = int.from_bytes(payload, "little")
        return len(payload)
