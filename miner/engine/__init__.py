"""The engine seam: one dispatcher over every device.

- ``engine``: the Engine (job generations, work ranges, the host re-check, accounting) and ExitReason,
  why a run ended (the command maps it to an exit code).
- ``backend``: the one device interface (Device, Work, DeviceContext) and the backend registry.
- ``job``: immutable Job and Share, header assembly.
- ``difficulty``: target and difficulty arithmetic.
- ``stats``: rate meters and the snapshot every view reads.

``from miner.engine import Engine`` works; the engine module itself is imported only then.
"""
from __future__ import annotations

_LAZY = {"Engine": "miner.engine.engine", "ExitReason": "miner.engine.engine", "default_threads": "miner.engine.engine"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'miner.engine' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
