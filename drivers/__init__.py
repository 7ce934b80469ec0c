"""ASIC board drivers (installed as miner.drivers): the driver table behind the "asic" backend
(miner.backends.asic).

Device specs (``--device``), one board each:

    DRIVER:TARGET[,key=value...]
    DRIVER  a key of the chip table miner.drivers.chips.CHIPS: icarus, erupter, u1, u3
            (Icarus protocol) or bm1397, bm1366, bm1368, bm1370
    TARGET  a tty path (/dev/ttyUSB0, /dev/pts/5), a pyserial URL (socket://127.0.0.1:4000, loop://)
            or usb:VVVV:PPPP[@BUS:ADDR] for direct USB through pyusb
    keys    diff (ticket difficulty; below 1 only for emulators in test mode), freq (MHz),
            chips (expected count), hashrate (Icarus estimate before timing), baud, job_interval,
            silence (seconds without nonces before a re-init), ramp_delay, reconnect (0/1)

Driver names come from the chip table (each record names its driver module),
imported lazily: importing this package imports neither pyusb nor any driver module.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from miner.engine.backend import Device
from miner.errors import BackendUnavailable, ConfigError
from miner.units import parse_si

log = logging.getLogger(__name__)



def drivers() -> dict[str, str]:
    """Driver name -> driver module, one per record of the chip table (read live, so a record
    added at run time is usable at once)."""
    from miner.drivers.chips import CHIPS
    return {key: facts.DRIVER for key, facts in CHIPS.items()}


_NUMERIC = {"diff", "freq", "hashrate", "job_interval", "silence", "ramp_delay", "golden_timeout"}
_INTEGER = {"chips", "baud"}


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """'bm1370:/dev/pts/5,chips=4' -> ('bm1370', '/dev/pts/5', {'chips': 4}). ConfigError on mistakes."""
    driver, sep, rest = spec.partition(":")
    driver = driver.strip().lower()
    known = drivers()
    if not sep or driver not in known:
        raise ConfigError(f"device spec {spec!r}: expected DRIVER:PORT with DRIVER one of {', '.join(known)}")
    target, *pairs = rest.split(",")
    if not target:
        raise ConfigError(f"device spec {spec!r}: no port, URL or usb:VID:PID after '{driver}:'")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip().lower()
        if not eq:
            raise ConfigError(f"device spec {spec!r}: option {pair!r} needs key=value")
        if key not in _NUMERIC | _INTEGER | {"reconnect"}:
            raise ConfigError(f"device spec {spec!r}: unknown option {key!r}; known: "
                              f"{', '.join(sorted(_NUMERIC | _INTEGER | {'reconnect'}))}")
        try:
            if key in _NUMERIC:
                options[key] = parse_si(value)
            elif key in _INTEGER:
                options[key] = int(value)
            else:
                options[key] = value.strip().lower() not in ("0", "no", "false", "off")
        except ValueError:
            raise ConfigError(f"device spec {spec!r}: option {key!r} needs a number, got {value!r}") from None
    return driver, target, options


def make_transport(target: str, baud: int):
    from miner.drivers.transport import SerialTransport, USBTransport
    if target.lower().startswith("usb:"):
        body, _, where = target[4:].partition("@")
        try:
            vid, pid = (int(x, 16) for x in body.split(":"))
            bus = address = None
            if where:
                bus, address = (int(x) for x in where.split(":"))
        except ValueError:
            raise ConfigError(f"USB target {target!r}: expected usb:VVVV:PPPP[@BUS:ADDR] (hex ids)") from None
        from miner.drivers import discovery
        return USBTransport(vid, pid, bus=bus, address=address, baud=baud, backend=discovery.usb_backend())
    return SerialTransport(target, baud)


def create_device(spec: str) -> Device:
    driver, target, options = parse_spec(spec)
    try:
        module = importlib.import_module(drivers()[driver])
    except ImportError as exc:
        raise BackendUnavailable(f"driver {driver} unavailable ({exc})") from exc
    return module.create(driver, target, options, make_transport)


__all__ = ["drivers", "parse_spec", "parse_si", "create_device", "make_transport"]
