"""Pool flags for the miner's command line, and the `pool-check` command.

add_arguments() adds the pool flags to any parser (the lead's `miner` wires them into mining and
into `pool-check`); pools_from_args() and manager_options() turn the parsed flags into what
PoolManager takes. -o/-u/-p repeat: the i-th -u/-p belongs to the i-th -o, and a missing one
repeats the last given (so one -u serves several pools).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys

from miner.errors import ConfigError, MinerError
from miner.stratum.config import PoolConfig

log = logging.getLogger(__name__)


def _mask(text: str) -> int:
    try:
        v = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"version mask must be hex like 1fffe000, got {text!r}") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("version mask must fit in 32 bits")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError("must be a positive number")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pool")
    g.add_argument("-o", "--url", dest="pool_urls", action="append", default=None, metavar="URL",
                   help="pool URL: stratum+tcp://host:port, stratum+ssl:// or stratum+tls://; repeat for "
                        "failover pools in priority order")
    g.add_argument("-u", "--user", dest="pool_users", action="append", default=None, metavar="WORKER",
                   help="worker name for the matching -o (the last one repeats)")
    g.add_argument("-p", "--pass", dest="pool_passwords", action="append", default=None, metavar="PASSWORD",
                   help="password for the matching -o (default x); never logged")
    g.add_argument("--cert", dest="pool_cafile", default=None, metavar="FILE",
                   help="CA certificate(s) (PEM) to verify a TLS pool signed by a private CA")
    g.add_argument("--insecure", dest="pool_insecure", action="store_true", default=False,
                   help="do NOT verify TLS pool certificates (warned at start)")
    g.add_argument("--no-version-rolling", dest="version_rolling", action="store_false", default=True,
                   help="do not ask pools for BIP 310 version rolling")
    g.add_argument("--version-mask", dest="version_mask", type=_mask, default=0x1FFFE000, metavar="HEX",
                   help="version bits we offer to roll (default 1fffe000)")
    g.add_argument("--suggest-diff", dest="suggest_difficulty", type=_positive, default=None, metavar="D",
                   help="send mining.suggest_difficulty D after authorizing")
    g.add_argument("--extranonce-subscribe", dest="extranonce_subscribe", action="store_true", default=False,
                   help="send mining.extranonce.subscribe (for pools and proxies that change extranonce)")


def pools_from_args(args: argparse.Namespace) -> list[PoolConfig]:
    urls = getattr(args, "pool_urls", None) or []
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ConfigError("no pool given; use -o stratum+tcp://host:port -u WORKER")
    users = _as_list(getattr(args, "pool_users", None))
    passwords = _as_list(getattr(args, "pool_passwords", None))
    if not users:
        raise ConfigError("no worker name given; use -u WORKER")
    out = []
    for i, url in enumerate(urls):
        user = users[min(i, len(users) - 1)]
        password = passwords[min(i, len(passwords) - 1)] if passwords else "x"
        out.append(PoolConfig(url, user, password))
    return out


def _as_list(v) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def manager_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for PoolManager from the parsed flags."""
    return {
        "version_rolling": getattr(args, "version_rolling", True),
        "version_mask": getattr(args, "version_mask", 0x1FFFE000),
        "suggest_difficulty": getattr(args, "suggest_difficulty", None),
        "extranonce_subscribe": getattr(args, "extranonce_subscribe", False),
        "cafile": getattr(args, "pool_cafile", None),
        "insecure": getattr(args, "pool_insecure", False),
    }


def run(args: argparse.Namespace) -> int:
    """`pool-check`: connect to the first pool, handshake, wait for a job, report it, disconnect."""
    try:
        pool = pools_from_args(args)[0]
        return asyncio.run(_check(pool, manager_options(args), getattr(args, "timeout", 20.0)))
    except MinerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


async def _check(pool: PoolConfig, options: dict, timeout: float) -> int:
    from miner.stratum.manager import PoolManager

    jobs, failures = [], []
    mgr = PoolManager([pool], on_job=jobs.append, failover_after=1,
                      on_event=lambda k, d: failures.append(d["reason"]) if k == "pool" and d["state"] == "failed"
                      else None, **options)
    task = asyncio.create_task(mgr.run())
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not jobs and not failures and loop.time() < end:
        await asyncio.sleep(0.05)
    await mgr.close(timeout=1.0)
    await task
    if not jobs:
        print(f"{pool.safe_url}: FAILED: {failures[0] if failures else f'no job within {timeout:.0f} s'}")
        return 1
    j = jobs[0]
    rolling = f"version rolling mask {j.version_mask:08x}" if j.version_mask else "no version rolling"
    print(f"{pool.safe_url}: OK: job {j.job_id}, difficulty {float(j.difficulty):g}, extranonce1 "
          f"{j.extranonce1.hex()}, extranonce2 {j.extranonce2_size} bytes, {rolling}, network difficulty "
          f"{(0xFFFF << 208) / max(1, j.network_target):.6g}")
    return 0
