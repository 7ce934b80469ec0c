"""Numbers for people: the one formatter and the one SI-suffix parser.

Formatting: ``human(13.76e6, "H/s")`` is "13.76 MH/s", ``human(5755301.6, "J/TH")`` "5.76 MJ/TH",
``human(12345)`` (a difficulty) "12.35k". Values of 1 and more are scaled by powers of 1000 to
[1, 1000) and shown with two decimals; values below 1 (small pool difficulties such as 0.002) keep
three significant digits and no prefix. The status line, the panel, the exit summary, `miner bench`
and `miner profit` all print through it; the API and /metrics give raw numbers.

Parsing: ``parse_si("1.2T") == 1.2e12``, ``parse_si("480 MH/s") == 4.8e8``, ``parse_si("0.001") == 0.001``.
A suffix k, M, G, T, P or E (either case: "m" is mega, never milli) may follow the number, then an
optional unit H or H/s; spaces between them are allowed.
"""
from __future__ import annotations

import math
import re
from typing import Callable

PREFIXES = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")


def human(value: float | None, unit: str = "", digits: int | None = None) -> str:
    """``value`` with an SI prefix; "-" for None (unknown), "inf"/"nan" as such.

    ``digits`` asks for that many significant digits instead of two decimals, for narrow columns
    (the 80-column panel): ``human(12.345e6, "H/s", digits=3)`` is "12.3 MH/s"."""
    if value is None:
        return "-"
    v = float(value)
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    sign, v = ("-", -v) if v < 0 else ("", v)
    if v < 1:
        text, prefix = f"{v:.3g}", ""
    else:
        i = 0
        while i < len(PREFIXES) - 1 and (round(v, 2) if digits is None else float(f"{v:.{digits}g}")) >= 1000:
            v /= 1000.0
            i += 1
        text = f"{v:.2f}" if digits is None else f"{v:.{digits}g}"
        prefix = PREFIXES[i]
    suffix = f" {prefix}{unit}" if unit else prefix
    return f"{sign}{text}{suffix}"


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


def flag_number(kind: type = float, low: float | None = None, high: float | None = None,
                *, above: bool = False) -> Callable[[str], float]:
    """The one argparse type for a number typed by a user (a TOML value comes here as its text too).

    ``flag_number(low=0)`` accepts a finite float >= 0; ``above=True`` makes ``low`` exclusive;
    ``kind=int`` wants a whole number. NaN and infinities are always refused. The error gives the
    range; argparse puts the flag's name before it, so the command line says it all in one line."""
    import argparse

    noun = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        want = f"{noun} from {low:g} to {high:g}"
    elif low is not None:
        want = f"{noun} {'above' if above else 'of at least'} {low:g}"
    elif high is not None:
        want = f"{noun} of at most {high:g}"
    else:
        want = noun

    def convert(text: str):
        try:
            v = kind(str(text).strip())
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if (not math.isfinite(v) or (low is not None and (v <= low if above else v < low))
                or (high is not None and v > high)):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return v
    return convert


port_number = flag_number(int, 0, 65535)
