"""`miner pool-check`: connect to the first pool, show the handshake and its first job, disconnect.

It speaks to one pool through one StratumSession (no failover: there is nothing to fail over to)
and prints each step of the handshake as the pool answered it:

    connect      127.0.0.1:3333 (TCP) in 2 ms
    configure    version rolling mask 1fffe000 granted (asked 1fffe000)
    subscribe    extranonce1 f8000001, extranonce2 4 bytes
    authorize    worker tester.worker1 accepted
    difficulty   0.001
    first job    id 1 (clean), version 20000000, ntime 6553f0c0, nbits 1d00ffff (network difficulty 1),
                 3 merkle branches, prevhash 0000...
    OK

Exit codes are the miner's: 0 the pool works, 2 a usage mistake (bad URL, no worker),
3 the pool cannot be reached or refused us.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from miner.cli.mine import EXIT_NO_POOL, EXIT_OK, EXIT_USAGE
from miner.cli.options import PoolOptions, add_pool_arguments, positive_float
from miner.engine.difficulty import network_difficulty
from miner.errors import ConfigError, MinerError, PoolError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The same pool flags as mining; unset ones stay out of the namespace so that -c FILE's
    # values (read by the main parser) are not hidden by this copy's defaults.
    add_pool_arguments(parser, suppress_defaults=True)
    parser.add_argument("--timeout", type=positive_float, default=20.0, metavar="SECONDS",
                        help="give up when no job arrives within this many seconds (default 20)")


def run(args: argparse.Namespace) -> int:
    try:
        options = PoolOptions.from_args(args)
    except ConfigError as e:
        print(f"miner: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    # The handshake is printed here, step by step; the session's own log lines would repeat it.
    stratum_log = logging.getLogger("miner.stratum")
    quiet = stratum_log.getEffectiveLevel() > logging.DEBUG
    if quiet:
        stratum_log.setLevel(logging.WARNING)
    try:
        return asyncio.run(check(options, float(getattr(args, "timeout", 20.0))))
    except MinerError as e:
        print(f"miner: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if quiet:
            stratum_log.setLevel(logging.NOTSET)


def _line(step: str, text: str) -> None:
    print(f"  {step:<12} {text}", flush=True)


async def check(options: PoolOptions, timeout: float) -> int:
    from miner import __version__
    from miner.stratum.config import make_ssl_context
    from miner.stratum.session import Endpoint, StratumSession, Timeouts

    pool = options.pools[0]
    print(f"pool-check {pool.safe_url} as {pool.user}", flush=True)
    ssl_context = make_ssl_context(options.cafile, options.insecure) if pool.tls else None
    jobs: asyncio.Queue = asyncio.Queue()
    kw = options.manager_kwargs()
    session = StratumSession(
        0, Endpoint(pool.host, pool.port, pool.tls), pool.user, pool.password,
        on_job=jobs.put_nowait, on_event=lambda kind, data: None, agent=f"miner/{__version__}",
        version_rolling=kw["version_rolling"], version_mask=kw["version_mask"],
        suggest_difficulty=kw["suggest_difficulty"], extranonce_subscribe=kw["extranonce_subscribe"],
        ssl_context=ssl_context, timeouts=Timeouts(connect=min(10.0, timeout), handshake=min(15.0, timeout)),
        label=f"{pool.host}:{pool.port}")
    t0 = time.perf_counter()
    try:
        await session.start()
    except PoolError as e:
        print(f"FAILED: {e}", flush=True)
        return EXIT_NO_POOL
    try:
        _line("connect", f"{pool.host}:{pool.port} ({'TLS' if pool.tls else 'TCP'}) and handshake in "
                         f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        if not options.version_rolling:
            _line("configure", "not sent (--no-version-rolling)")
        elif session.version_mask:
            _line("configure", f"version rolling mask {session.version_mask:08x} granted "
                               f"(asked {options.version_mask:08x})")
        else:
            _line("configure", f"no version rolling (asked {options.version_mask:08x})")
        _line("subscribe", f"extranonce1 {session.extranonce1.hex()}, extranonce2 {session.extranonce2_size} bytes")
        _line("authorize", f"worker {pool.user} accepted")
        try:
            job = await asyncio.wait_for(jobs.get(), timeout)
        except asyncio.TimeoutError:
            print(f"FAILED: no job within {timeout:g} s after authorizing", flush=True)
            return EXIT_NO_POOL
        _line("difficulty", f"{float(job.difficulty):g}")
        _line("first job", f"id {job.job_id}{' (clean)' if job.clean else ''}, version {job.version:08x}, "
                           f"ntime {job.ntime:08x}, nbits {job.nbits:08x} "
                           f"(network difficulty {network_difficulty(job.nbits):.6g}), "
                           f"{len(job.merkle_branch)} merkle branches")
        print("OK", flush=True)
        return EXIT_OK
    finally:
        await session.close()
