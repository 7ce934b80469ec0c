"""Human-sized numbers: the one formatter for every rate, difficulty and efficiency the miner prints.

``human(13.76e6, "H/s")`` is "13.76 MH/s", ``human(5755301.6, "J/TH")`` "5.76 MJ/TH",
``human(12345)`` (a difficulty) "12.35k". Values of 1 and more are scaled by powers of 1000 to
[1, 1000) and shown with two decimals; values below 1 (small pool difficulties such as 0.002) keep
three significant digits and no prefix. The status line, the panel, the exit summary, `miner bench`
and `miner profit` all print through it; the API and /metrics give raw numbers.
"""
from __future__ import annotations

import math

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
