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
    assert "margin/day      +0.008188 USD  (profitable)" in out
    assert "15.00 J/TH" in out
    assert "difficulty      1.5e+14  (given with --difficulty)" in out


def test_profit_command_states_default_difficulty(capsys):
    code, out, _ = run("--hashrate", "1.2T", "--watts", "18", "--price", "85000", "--energy-cost", "0.2",
                       capsys=capsys)
    assert code == 0
    assert f"difficulty      {profit.DEFAULT_DIFFICULTY:.6g}  (built-in default: the network difficulty in late 2025" in out
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


def test_the_hand_calculation_with_sats_month_pool_fee_and_currency(capsys):
    """1.2 TH/s at 18 W, difficulty 1.5e14, 0.02 BTC fees per block: 1.2e12 * 86400 / (1.5e14 * 2^32)
    * 3.145 = 5.0613e-7 BTC/day by hand; a 2 % pool fee keeps 98 % of it."""
    by_hand = 1.2e12 * 86400 / (1.5e14 * 4294967296) * 3.145
    assert by_hand == pytest.approx(5.06e-7, rel=1e-3)
    argv = ("--hashrate", "1.2T", "--watts", "18", "--price", "90000", "--energy-cost", "0.06",
            "--difficulty", "1.5e14", "--fee", "0.02")
    code, out, _ = run(*argv, capsys=capsys)
    assert code == 0
    assert f"BTC per day     {by_hand:.10f}  ({by_hand * 1e8:,.1f} sats)" in out
    assert f"BTC per month   {by_hand * 30:.10f}  ({by_hand * 30e8:,.0f} sats, 30 days)" in out
    assert f"revenue/day     {by_hand * 90000:.6f} USD  (BTC price 90000 USD)" in out
    assert "pool fee        0 %" in out
    code, out, _ = run(*argv, "--pool-fee", "2", "--currency", "EUR", capsys=capsys)
    assert code == 0
    assert f"BTC per day     {by_hand * 0.98:.10f}" in out and "pool fee        2 %" in out
    assert f"revenue/day     {by_hand * 0.98 * 90000:.6f} EUR" in out and "0.06 EUR/kWh" in out
    cost = 18 * 24 / 1000 * 0.06
    assert f"margin/month    {(by_hand * 0.98 * 90000 - cost) * 30:+.4f} EUR" in out
    with pytest.raises(SystemExit):
        p = argparse.ArgumentParser()
        profit.add_arguments(p)
        p.parse_args(list(argv) + ["--pool-fee", "100"])
