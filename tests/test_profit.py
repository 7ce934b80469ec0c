"""Profit arithmetic and the `miner profit` command."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from miner.fleet import profit
from miner.errors import ConfigError
from miner.fleet.profit import Economics, btc_per_day, energy_cost_per_day, parse_hashrate


def run(*argv: str, capsys) -> tuple[int, str, str]:
    p = argparse.ArgumentParser()
    profit.add_arguments(p)
    code = profit.run(p.parse_args(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("text,hs", [("1.2T", 1.2e12), ("500G", 5e11), ("480 MH/s", 4.8e8), ("12k", 12e3),
                                     ("3P", 3e15), ("1E", 1e18), ("1e12", 1e12), ("250", 250.0), ("7.5 TH", 7.5e12)])
def test_parse_hashrate(text, hs):
    assert parse_hashrate(text) == pytest.approx(hs)


@pytest.mark.parametrize("bad", ["", "T", "1.2X", "-5T", "0", "1.2 T T", "nan"])
def test_parse_hashrate_rejects(bad):
    with pytest.raises(ConfigError, match="hashrate"):
        parse_hashrate(bad)


def test_formula_by_hand():
    # 1 TH/s at difficulty 1e14: 1e12 * 86400 / (1e14 * 2^32) = 2.0116567611694336e-07 blocks/day
    blocks = 1e12 * 86400 / (1e14 * 4294967296)
    assert blocks == pytest.approx(2.0116567611694336e-07)
    assert btc_per_day(1e12, 1e14) == pytest.approx(blocks * 3.125)
    assert btc_per_day(1e12, 1e14, fee_btc=0.125) == pytest.approx(blocks * 3.25)
    assert energy_cost_per_day(18, 0.08) == pytest.approx(0.03456)      # 0.432 kWh * 0.08
    e = Economics(hashrate=1.2e12, watts=18, difficulty=1.5e14, btc_price=85000, energy_price=0.08)
    assert e.btc_per_day == pytest.approx(5.0291e-07, rel=1e-4)
    assert e.revenue_per_day == pytest.approx(0.042748, rel=1e-4)
    assert e.margin_per_day == pytest.approx(0.042748 - 0.03456, rel=1e-3)
    assert e.breakeven_energy_price == pytest.approx(0.042748 / 0.432, rel=1e-4)
    with pytest.raises(ConfigError):
        btc_per_day(1e12, 0)


def test_profit_command_output(capsys):
    code, out, err = run("--hashrate", "1.2T", "--watts", "18", "--price", "85000", "--energy-cost", "0.08",
                         "--difficulty", "1.5e14", capsys=capsys)
    assert code == 0 and err == ""
    assert "BTC per day     0.0000005029" in out
    assert "revenue/day     0.042748" in out
    assert "cost/day        0.034560" in out
    assert "margin/day      +0.008188  (profitable)" in out
    assert "15.00 J/TH" in out
    assert "note:" not in out


def test_profit_command_states_default_difficulty(capsys):
    code, out, _ = run("--hashrate", "1.2T", "--watts", "18", "--price", "85000", "--energy-cost", "0.2",
                       capsys=capsys)
    assert code == 0
    assert f"built-in default {profit.DEFAULT_DIFFICULTY:.4g}" in out
    assert "UNPROFITABLE" in out


def test_profit_command_fee_and_bad_input(capsys):
    code, out, _ = run("--hashrate", "1T", "--watts", "10", "--price", "100000", "--energy-cost", "0.05",
                       "--difficulty", "1e14", "--fee", "0.125", capsys=capsys)
    assert code == 0 and "3.125 BTC subsidy + 0.125 BTC fees" in out
    code, out, err = run("--hashrate", "fast", "--watts", "10", "--price", "1", "--energy-cost", "1", capsys=capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "hashrate" in err and "Traceback" not in err


def test_miner_profit_subcommand_end_to_end():
    p = subprocess.run([sys.executable, "-m", "miner", "profit", "--hashrate", "1.2T", "--watts", "18",
                        "--price", "85000", "--energy-cost", "0.08", "--difficulty", "1.5e14", "--fee", "0.02"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "revenue/day" in p.stdout and "3.125 BTC subsidy + 0.02 BTC fees" in p.stdout
