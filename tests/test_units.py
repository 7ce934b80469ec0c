"""One human-size formatter for every rate, difficulty and J/TH the miner prints."""
from __future__ import annotations

import dataclasses

import pytest

from fleet_control import FakeControl
from miner.units import human


@pytest.mark.parametrize("value,unit,text", [
    (13.76e6, "H/s", "13.76 MH/s"), (294.66e6, "H/s", "294.66 MH/s"), (999.999e3, "H/s", "1.00 MH/s"),
    (512.0, "H/s", "512.00 H/s"), (1.2e12, "H/s", "1.20 TH/s"), (0.0, "H/s", "0 H/s"),
    (5755301.6, "J/TH", "5.76 MJ/TH"), (15.0, "J/TH", "15.00 J/TH"),
    (0.002, "", "0.002"), (0.000123456, "", "0.000123"), (1.45854, "", "1.46"), (12345.0, "", "12.35k"),
    (float("inf"), "", "inf"), (None, "W", "-"), (-2500.0, "W", "-2.50 kW"), (1e30, "H/s", "1000000.00 YH/s"),
])
def test_human(value, unit, text):
    assert human(value, unit) == text


def test_every_printed_view_is_human_sized():
    """The status line, the panel, the exit summary and `miner profit` print J/TH and rates through it
    (a CPU at 58 W and 10 MH/s once read '5800000.0 J/TH')."""
    import io

    from rich.console import Console

    from miner.cli.status import build_panel, print_summary, status_line
    from miner.fleet.profit import Economics, report

    snap = FakeControl().snapshot()
    snap = dataclasses.replace(snap, watts=58.0, elapsed=30.0, effective_hashrate=9.87e6,
                               hashrate={k: 10e6 for k in ("5s", "1m", "5m", "15m", "av")})
    line = status_line(snap)
    assert "58 W 5.80 MJ/TH" in line and "10.00 MH/s" in line
    out = io.StringIO()
    Console(file=out, width=200).print(build_panel(snap))
    assert "effective 9.87 MH/s" in out.getvalue() and "5.80 MJ/TH" in out.getvalue()
    out = io.StringIO()
    print_summary(snap, out)
    assert "effective hashrate 9.87 MH/s; hashing 10.00 MH/s" in out.getvalue()
    e = Economics(hashrate=1.2e12, watts=18.0, difficulty=1.5e14, btc_price=85000.0, energy_price=0.08)
    assert "1.20 TH/s  at 18 W  (15.00 J/TH)" in report(e, False)
