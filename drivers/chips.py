"""Frozen chip facts: one record per ASIC model, read by drivers, discovery and emulators alike.

Adding a chip means adding one record to CHIPS below, and nothing else: the
--device driver names (miner.drivers.drivers()), USB discovery
(miner.drivers.discovery) and `miner emulate` (miner.drivers.emu.emulate) are
all derived from this table. A record's class names its driver module and its
emulator; a record's ``boards`` are the USB boards known to carry the chip.
Figures come from public datasheets and the open Bitaxe firmware (core counts,
default clocks, job intervals); nominal J/TH are the makers' published
efficiencies for machines built on each chip and are only used to estimate
watts when nothing measures them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from miner.errors import ConfigError


@dataclass(frozen=True, slots=True)
class UsbBoard:
    """A USB board (or bridge) that carries a chip. product None: the id alone is a generic bridge,
    so a board found by it still has to pass the driver's detection (golden work, chip-id read)."""
    vid: int
    pid: int
    product: str | None
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChipFacts:
    """A BM13xx chip: chained behind one UART, addressed, clocked by the host."""
    DRIVER: ClassVar[str] = "miner.drivers.bm13xx"
    EMULATOR: ClassVar[str] = "EmulatedBM13xx"      # in miner.drivers.emu.models

    key: str                   # driver name in --device specs and `miner emulate` ("bm1370")
    model: str                 # "BM1370"
    chip_id: int               # value of register 0x00 bits 31..16 (0x1370)
    cores: int                 # big cores
    small_cores: int           # hashing engines; hashes per clock per chip
    default_freq_mhz: float
    midstates: int             # midstates per job the host computes (0: chip hashes the full header)
    rolls_versions: bool       # chip rolls version bits itself (BIP 310 mask 0x1fffe000)
    reply_len: int             # bytes of one RX frame (nonce or register reply)
    job_interval_s: float      # how often the host sends fresh work (the chip never idles in between)
    min_ticket_diff: int = 1   # smallest ticket difficulty the ticket-mask register encodes
    default_ticket_diff: int = 256  # what the driver programs unless told otherwise
    nominal_j_per_th: float
    boards: tuple[UsbBoard, ...] = ()

    def hashrate(self, freq_mhz: float, chips: int = 1) -> float:
        """Nominal hashes per second of ``chips`` chips at ``freq_mhz``: one hash per small core per clock."""
        return freq_mhz * 1e6 * self.small_cores * chips

    def watts(self, freq_mhz: float, chips: int = 1) -> float:
        return self.hashrate(freq_mhz, chips) / 1e12 * self.nominal_j_per_th


@dataclass(frozen=True, slots=True, kw_only=True)
class IcarusFacts:
    """An Icarus-protocol stick: fixed clock, one work at a time, 4- or 5-byte replies."""
    DRIVER: ClassVar[str] = "miner.drivers.icarus"
    EMULATOR: ClassVar[str] = "EmulatedIcarus"      # in miner.drivers.emu.models

    key: str                   # driver name in --device specs and `miner emulate` ("erupter")
    model: str
    hashrate: float            # nominal H/s used until full-range timing has measured it
    reply_len: int
    watts: float
    baud: int = 115200
    boards: tuple[UsbBoard, ...] = ()


Facts = Union[ChipFacts, IcarusFacts]

BM1397 = ChipFacts(key="bm1397", model="BM1397", chip_id=0x1397, cores=168, small_cores=672,
                   default_freq_mhz=425.0, midstates=4, rolls_versions=False, reply_len=9, job_interval_s=1.0,
                   nominal_j_per_th=34.0,
                   boards=(UsbBoard(0x0403, 0x6015, "CompacF Bitcoin Miner", "GekkoScience Compac F (BM1397)"),))
BM1366 = ChipFacts(key="bm1366", model="BM1366", chip_id=0x1366, cores=112, small_cores=894,
                   default_freq_mhz=485.0, midstates=0, rolls_versions=True, reply_len=11, job_interval_s=2.0,
                   nominal_j_per_th=21.5)
BM1368 = ChipFacts(key="bm1368", model="BM1368", chip_id=0x1368, cores=80, small_cores=1276,
                   default_freq_mhz=490.0, midstates=0, rolls_versions=True, reply_len=11, job_interval_s=0.5,
                   nominal_j_per_th=17.5)
BM1370 = ChipFacts(key="bm1370", model="BM1370", chip_id=0x1370, cores=128, small_cores=2040,
                   default_freq_mhz=525.0, midstates=0, rolls_versions=True, reply_len=11, job_interval_s=0.5,
                   nominal_j_per_th=15.0)

# CP2102 and PL2303 are generic bridges, so the golden work decides.
ICARUS = IcarusFacts(key="icarus", model="Icarus", hashrate=380e6, reply_len=4, watts=20.0,
                     boards=(UsbBoard(0x067B, 0x2303, None, "PL2303 bridge (Icarus)"),
                             UsbBoard(0x0403, 0x6001, None, "FT232R bridge (Icarus)")))
ERUPTER = IcarusFacts(key="erupter", model="Block Erupter", hashrate=336e6, reply_len=4, watts=2.5,
                      boards=(UsbBoard(0x10C4, 0xEA60, None, "CP2102 bridge (Block Erupter / Antminer U1-U3)"),))
U1 = IcarusFacts(key="u1", model="Antminer U1", hashrate=1.6e9, reply_len=5, watts=2.0)
U3 = IcarusFacts(key="u3", model="Antminer U3", hashrate=63e9, reply_len=5, watts=60.0)

# The chip table: driver name -> record. The one list to extend.
CHIPS: dict[str, Facts] = {f.key: f for f in (ICARUS, ERUPTER, U1, U3, BM1397, BM1366, BM1368, BM1370)}


def _family(cls: type) -> dict[str, Facts]:
    return {k: f for k, f in CHIPS.items() if isinstance(f, cls)}


BM13XX: dict[str, ChipFacts] = _family(ChipFacts)  # type: ignore[assignment]
ICARUS_MODELS: dict[str, IcarusFacts] = _family(IcarusFacts)  # type: ignore[assignment]
BY_CHIP_ID: dict[int, ChipFacts] = {c.chip_id: c for c in BM13XX.values()}


def facts_for(key: str) -> Facts:
    """The record of driver name ``key``; ConfigError naming the known ones otherwise."""
    try:
        return CHIPS[key.lower()]
    except KeyError:
        raise ConfigError(f"unknown chip or board {key!r}; choose from: {', '.join(CHIPS)}") from None


def chip(model: str) -> ChipFacts:
    f = CHIPS.get(model.lower())
    if not isinstance(f, ChipFacts):
        raise ConfigError(f"unknown BM13xx chip {model!r}; choose from: {', '.join(BM13XX)}")
    return f
