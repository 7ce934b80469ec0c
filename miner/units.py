"""The one parser of numbers with SI suffixes: hashrates and device options typed by users.

    parse_si("1.2T") == 1.2e12      parse_si("480 MH/s") == 4.8e8      parse_si("0.001") == 0.001

A suffix k, M, G, T, P or E (either case: "m" is mega, never milli) may follow the
number, then an optional unit H or H/s; spaces between them are allowed.
"""
from __future__ import annotations

import math
import re

SI_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}
_SI_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtTpPeE]?)\s*(?:[hH](?:/s)?)?\s*$")


def parse_si(text: str) -> float:
    """'1.2T', '336M', '1.2TH/s', '480 MH/s', '1e12', '0.5' -> float (>= 0). ValueError on anything else."""
    m = _SI_RE.match(str(text))
    if not m:
        raise ValueError(f"not a number with an optional SI suffix: {text!r}")
    value = float(m.group(1)) * SI_SCALE[m.group(2).lower()]
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value
