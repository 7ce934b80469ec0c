"""Frozen chip facts: one record per ASIC model, read by drivers and emulators alike.

Adding a chip means adding a record here, not a branch in every function.
Figures come from public datasheets and the open Bitaxe firmware (core counts,
default clocks, job intervals); nominal J/TH are the makers' published
efficiencies for machines built on each chip and are only used to estimate
watts when nothing measures them.
"""
from __future__ import annotations

from dataclasses import dataclass

from miner.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ChipFacts:
    model: str                 # "BM1370"
    chip_id: int               # value of register 0x00 bits 31..16 (0x1370)
    cores: int                 # big cores
    small_cores: int           # hashing engines; hashes per clock per chip
    default_freq_mhz: float
    midstates: int             # midstates per job the host computes (0: chip hashes the full header)
    rolls_versions: bool       # chip rolls version bits itself (BIP 310 mask 0x1fffe000)
    reply_len: int             # bytes of one RX frame (nonce or register reply)
    job_interval_s: float      # how often the host sends fresh work (the chip never idles in between)
    min_ticket_diff: int       # smallest ticket difficulty the ticket-mask register encodes
    default_ticket_diff: int   # what the driver programs unless told otherwise
    nominal_j_per_th: float

    def hashrate(self, freq_mhz: float, chips: int = 1) -> float:
        """Nominal hashes per second of ``chips`` chips at ``freq_mhz``: one hash per small core per clock."""
        return freq_mhz * 1e6 * self.small_cores * chips

    def watts(self, freq_mhz: float, chips: int = 1) -> float:
        return self.hashrate(freq_mhz, chips) / 1e12 * self.nominal_j_per_th


BM1397 = ChipFacts("BM1397", 0x1397, 168, 672, 425.0, 4, False, 9, 1.0, 1, 256, 34.0)
BM1366 = ChipFacts("BM1366", 0x1366, 112, 894, 485.0, 0, True, 11, 2.0, 1, 256, 21.5)
BM1368 = ChipFacts("BM1368", 0x1368, 80, 1276, 490.0, 0, True, 11, 0.5, 1, 256, 17.5)
BM1370 = ChipFacts("BM1370", 0x1370, 128, 2040, 525.0, 0, True, 11, 0.5, 1, 256, 15.0)

BM13XX: dict[str, ChipFacts] = {c.model.lower(): c for c in (BM1397, BM1366, BM1368, BM1370)}
BY_CHIP_ID: dict[int, ChipFacts] = {c.chip_id: c for c in BM13XX.values()}


@dataclass(frozen=True, slots=True)
class IcarusFacts:
    """An Icarus-protocol stick: fixed clock, one work at a time, 4- or 5-byte replies."""
    model: str
    hashrate: float            # nominal H/s used until full-range timing has measured it
    reply_len: int
    watts: float
    baud: int = 115200


ICARUS_MODELS: dict[str, IcarusFacts] = {
    "erupter": IcarusFacts("Block Erupter", 336e6, 4, 2.5),
    "u1": IcarusFacts("Antminer U1", 1.6e9, 5, 2.0),
    "u3": IcarusFacts("Antminer U3", 63e9, 5, 60.0),
    "icarus": IcarusFacts("Icarus", 380e6, 4, 20.0),
}


def chip(model: str) -> ChipFacts:
    try:
        return BM13XX[model.lower()]
    except KeyError:
        raise ConfigError(f"unknown BM13xx chip {model!r}; choose from: {', '.join(BM13XX)}") from None
