"""Mining economics: expected BTC per day, revenue, energy cost, margin; the `miner profit` command.

    btc/day     = hashrate * 86400 / (difficulty * 2^32) * (subsidy + fees per block) * (1 - pool fee)
    revenue/day = btc/day * BTC price
    cost/day    = watts * 24 / 1000 * energy price per kWh
    margin/day  = revenue/day - cost/day

difficulty * 2^32 is the expected number of hashes per block at that network
difficulty (a difficulty-1 target is met once per ~2^32 hashes). The result is
an expectation: actual solo earnings are a lottery, pool earnings follow it
minus the pool's fee.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass

from miner.errors import ConfigError
from miner.units import flag_number, human, parse_si

log = logging.getLogger(__name__)

SUBSIDY_BTC = 3.125             # block subsidy since the April 2024 halving (height 840,000)
HASHES_PER_DIFF1 = 2 ** 32
SATS_PER_BTC = 100_000_000
DAYS_PER_MONTH = 30             # "per month" figures are 30 days
DEFAULT_CURRENCY = "USD"
# Used only when neither --difficulty nor a live job gives one; the output says so.
DEFAULT_DIFFICULTY = 1.5e14     # network difficulty order of magnitude in late 2025 (~150 T)



def parse_hashrate(text: str) -> float:
    """'1.2T', '500G', '480 MH/s', '1e12' -> hashes per second."""
    try:
        value = parse_si(text)
    except ValueError:
        raise ConfigError(f"hashrate {text!r} is not a number with an optional SI suffix (k M G T P E), e.g. 1.2T"
                          ) from None
    if value <= 0:
        raise ConfigError(f"hashrate must be positive, got {text!r}")
    return value


def format_hashrate(hs: float) -> str:
    return human(hs, "H/s")


def btc_per_day(hashrate_hs: float, difficulty: float, fee_btc: float = 0.0, subsidy_btc: float = SUBSIDY_BTC) -> float:
    if difficulty <= 0 or not math.isfinite(difficulty):
        raise ConfigError(f"network difficulty must be a positive number, got {difficulty!r}")
    return hashrate_hs * 86400.0 / (difficulty * HASHES_PER_DIFF1) * (subsidy_btc + fee_btc)


def energy_cost_per_day(watts: float, price_per_kwh: float) -> float:
    return watts * 24.0 / 1000.0 * price_per_kwh


@dataclass(frozen=True)
class Economics:
    hashrate: float          # H/s
    watts: float
    difficulty: float
    btc_price: float
    energy_price: float      # per kWh, same currency as btc_price
    fee_btc: float = 0.0
    subsidy_btc: float = SUBSIDY_BTC
    pool_fee_pct: float = 0.0   # the pool's cut, percent of what the hashrate earns

    @property
    def btc_per_day(self) -> float:
        gross = btc_per_day(self.hashrate, self.difficulty, self.fee_btc, self.subsidy_btc)
        return gross * (1.0 - self.pool_fee_pct / 100.0)

    @property
    def sats_per_day(self) -> float:
        return self.btc_per_day * SATS_PER_BTC

    @property
    def revenue_per_day(self) -> float:
        return self.btc_per_day * self.btc_price

    @property
    def cost_per_day(self) -> float:
        return energy_cost_per_day(self.watts, self.energy_price)

    @property
    def margin_per_day(self) -> float:
        return self.revenue_per_day - self.cost_per_day

    @property
    def breakeven_energy_price(self) -> float | None:
        """Energy price per kWh at which revenue equals cost."""
        kwh = self.watts * 24.0 / 1000.0
        return self.revenue_per_day / kwh if kwh > 0 else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `miner profit`."""
    parser.add_argument("--hashrate", required=True, help="hashrate with SI suffix, e.g. 1.2T or 480M")
    parser.add_argument("--watts", required=True, type=flag_number(low=0), help="power draw in watts")
    parser.add_argument("--price", required=True, type=flag_number(low=0), help="BTC price in your currency")
    parser.add_argument("--energy-cost", dest="energy_cost", required=True, type=flag_number(low=0),
                        help="energy price per kWh, same currency as --price")
    parser.add_argument("--difficulty", type=flag_number(low=0), default=None,
                        help=f"network difficulty (default {DEFAULT_DIFFICULTY:.3g})")
    parser.add_argument("--fee", type=flag_number(low=0), default=0.0,
                        help="expected transaction fees per block in BTC (default 0)")
    parser.add_argument("--subsidy", type=flag_number(low=0), default=SUBSIDY_BTC,
                        help=f"block subsidy in BTC (default {SUBSIDY_BTC})")
    parser.add_argument("--pool-fee", dest="pool_fee", type=flag_number(low=0, high=99.99), default=0.0,
                        metavar="PCT",
                        help="the pool's fee in percent, taken from the BTC earned (default 0)")
    parser.add_argument("--currency", default=DEFAULT_CURRENCY, metavar="CODE",
                        help=f"the currency of --price and --energy-cost, shown with every amount "
                             f"(a label; nothing is converted; default {DEFAULT_CURRENCY})")


def report(e: Economics, difficulty_source: str, currency: str = DEFAULT_CURRENCY) -> str:
    """The `miner profit` text; difficulty_source says where e.difficulty came from."""
    c = currency
    jth = e.watts / (e.hashrate / 1e12)
    be = e.breakeven_energy_price
    month = DAYS_PER_MONTH
    lines = [
        f"hashrate        {format_hashrate(e.hashrate)}  at {e.watts:g} W  ({human(jth, 'J/TH')})",
        f"difficulty      {e.difficulty:.6g}  ({difficulty_source})",
        f"reward/block    {e.subsidy_btc:g} BTC subsidy + {e.fee_btc:g} BTC fees",
        f"pool fee        {e.pool_fee_pct:g} %",
        f"BTC per day     {e.btc_per_day:.10f}  ({e.sats_per_day:,.1f} sats)",
        f"BTC per month   {e.btc_per_day * month:.10f}  ({e.sats_per_day * month:,.0f} sats, {month} days)",
        f"revenue/day     {e.revenue_per_day:.6f} {c}  (BTC price {e.btc_price:g} {c})",
        f"cost/day        {e.cost_per_day:.6f} {c}  ({e.watts * 24 / 1000:.4g} kWh at {e.energy_price:g} {c}/kWh)",
        f"margin/day      {e.margin_per_day:+.6f} {c}  ({'profitable' if e.margin_per_day >= 0 else 'UNPROFITABLE'})",
        f"margin/month    {e.margin_per_day * month:+.4f} {c}",
    ]
    if be is not None:
        lines.append(f"break-even      energy at {be:.6g} {c}/kWh")
    lines.append("formula: BTC/day = hashrate * 86400 / (difficulty * 2^32) * (subsidy + fees) * (1 - pool fee)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        hashrate = parse_hashrate(args.hashrate)
        difficulty = args.difficulty if args.difficulty is not None else DEFAULT_DIFFICULTY
        if difficulty <= 0:
            raise ConfigError("--difficulty must be positive")
        e = Economics(hashrate=hashrate, watts=args.watts, difficulty=difficulty, btc_price=args.price,
                      energy_price=args.energy_cost, fee_btc=args.fee, subsidy_btc=args.subsidy,
                      pool_fee_pct=getattr(args, "pool_fee", 0.0))
        source = ("given with --difficulty" if args.difficulty is not None else
                  "built-in default: the network difficulty in late 2025; pass --difficulty for a current figure")
        text = report(e, source, getattr(args, "currency", DEFAULT_CURRENCY))
    except ConfigError as err:
        print(f"miner profit: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0
