"""ASIC board drivers (installed as miner.drivers): the driver table behind the "asic" backend
(miner.backends.asic).

Device specs (``--device``), one board each:

    DRIVER:TARGET[,key=value...]
    DRIVER  icarus, erupter, u1, u3 (Icarus protocol) or bm1397, bm1366, bm1368, bm1370
    TARGET  a tty path (/dev/ttyUSB0, /dev/pts/5), a pyserial URL (socket://127.0.0.1:4000, loop://)
            or usb:VVVV:PPPP[@BUS:ADDR] for direct USB through pyusb
    keys    diff (ticket difficulty; below 1 only for emulators in test mode), freq (MHz),
            chips (expected count), hashrate (Icarus estimate before timing), baud, job_interval,
            silence (seconds without nonces before a re-init), ramp_delay, reconnect (0/1)

Drivers register lazily: name -> (module, factory); importing this package
imports neither pyusb nor any driver module.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from miner.engine.backend import Device
from miner.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

# driver name -> (module, chip/model key). One line per driver; the module owns its facts.
DRIVERS: dict[str, tuple[str, str]] = {
    "icarus": ("miner.drivers.icarus", "icarus"),
    "erupter": ("miner.drivers.icarus", "erupter"),
    "u1": ("miner.drivers.icarus", "u1"),
    "u3": ("miner.drivers.icarus", "u3"),
    "bm1397": ("miner.drivers.bm13xx", "bm1397"),
    "bm1366": ("miner.drivers.bm13xx", "bm1366"),
    "bm1368": ("miner.drivers.bm13xx", "bm1368"),
    "bm1370": ("miner.drivers.bm13xx", "bm1370"),
}

_NUMERIC = {"diff", "freq", "hashrate", "job_interval", "silence", "ramp_delay", "golden_timeout"}
_INTEGER = {"chips", "baud"}


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """'bm1370:/dev/pts/5,chips=4' -> ('bm1370', '/dev/pts/5', {'chips': 4}). ConfigError on mistakes."""
    driver, sep, rest = spec.partition(":")
    driver = driver.strip().lower()
    if not sep or driver not in DRIVERS:
        raise ConfigError(f"device spec {spec!r}: expected DRIVER:PORT with DRIVER one of {', '.join(DRIVERS)}")
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


_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}


def parse_si(text: str) -> float:
    """'1.2T', '336M', '1.2TH/s', '0.001' -> float. ValueError on anything else."""
    t = text.strip()
    for suffix in ("H/s", "h/s", "H", "h"):
        if t.endswith(suffix) and len(t) > len(suffix):
            t = t[:-len(suffix)]
            break
    mult = 1.0
    if t and t[-1].lower() in _SI and t[-1].isalpha():
        mult, t = _SI[t[-1].lower()], t[:-1]
    value = float(t) * mult
    if value != value or value < 0:
        raise ValueError(text)
    return value


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
    module_name, key = DRIVERS[driver]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"driver {driver} unavailable ({exc})") from exc
    return module.create(key, target, options, make_transport)


__all__ = ["DRIVERS", "parse_spec", "parse_si", "create_device", "make_transport"]
