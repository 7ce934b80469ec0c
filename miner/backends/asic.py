"""The "asic" backend: USB and serial ASIC boards through the drivers in miner.drivers.

Device specs (``--device DRIVER:TARGET[,key=value...]``) are parsed by miner.drivers.parse_spec;
with none given, every board that discovery finds is used.
"""
from __future__ import annotations

from typing import Any

from miner.drivers import create_device
from miner.engine.backend import Backend, DetectedDevice, Device


class ASICBackend(Backend):
    name = "asic"
    extra = "usb"

    @classmethod
    def detect(cls) -> list[DetectedDevice]:
        from miner.drivers import discovery
        return discovery.detect()

    @classmethod
    def create(cls, specs: list[str], options: dict[str, Any]) -> list[Device]:
        if not specs:
            specs = [d.spec for d in cls.detect()]
        return [create_device(s) for s in specs]
