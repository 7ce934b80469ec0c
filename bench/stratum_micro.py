"""Stratum client micro-benchmarks: ``python bench/stratum_micro.py [--rounds N]``.

Measures, in one run, the medians of: parsing a mining.notify line into a Job, the host re-check of
a share before it is sent, and the submit round trip (our line out, the pool's reply in, accounting
done) over loopback against a minimal in-process pool that answers every submit with true.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import time

from miner.engine.job import Job, Share
from miner.sha256 import sha256d
from miner.stratum import codec

NOTIFY = json.dumps({"id": None, "method": "mining.notify", "params": [
    "bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
    "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
    ["6e4e6aa7164803e7b3619ddf3a36504080e0644a1b6285905589b25e6d38c1aa"] * 12,
    "00000002", "1c2ac4af", "504e86b9", True]}).encode()


def _job_from_notify(line: bytes) -> Job:
    n = codec.parse_line(line).body
    return Job(n.job_id, n.prevhash, n.coinb1, n.coinb2, n.merkle_branch, n.version, n.nbits, n.ntime, n.clean,
               bytes.fromhex("08000002"), 4, difficulty=1e-12)


def _median_us(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


async def _submit_round_trip(rounds: int) -> float:
    from miner.stratum import PoolConfig, PoolManager, Timeouts

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            m = msg.get("method")
            if m == "mining.subscribe":
                res = [[["mining.notify", "s"]], "08000002", 4]
            elif m == "mining.authorize":
                writer.write(codec.encode({"id": None, "method": "mining.set_difficulty", "params": [1e-12]}))
                writer.write(NOTIFY + b"\n")
                res = True
            else:
                res = m == "mining.submit" or {}
            writer.write(codec.reply(msg["id"], res))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    jobs: list[Job] = []
    done: list[float] = []
    mgr = PoolManager([PoolConfig(f"stratum+tcp://127.0.0.1:{port}", "bench")], on_job=jobs.append,
                      on_event=lambda k, d: done.append(time.perf_counter()) if k == "share" else None,
                      timeouts=Timeouts(silence=60.0))
    task = asyncio.create_task(mgr.run())
    while not jobs:
        await asyncio.sleep(0.01)
    job = jobs[-1]
    times = []
    for i in range(rounds):
        en2 = job.extranonce2_bytes(i)
        h = sha256d(job.header(en2, job.ntime, i))
        share = Share(job, en2, job.ntime, i, job.version, h)
        n = len(done)
        t = time.perf_counter()
        mgr.submit(share)
        while len(done) == n:
            await asyncio.sleep(0)
        times.append(done[-1] - t)
    await mgr.close()
    await task
    server.close()
    return statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    job = _job_from_notify(NOTIFY)
    en2 = job.extranonce2_bytes(1)
    h = sha256d(job.header(en2, job.ntime, 7))
    share = Share(job, en2, job.ntime, 7, job.version, h)
    from miner.stratum.manager import PoolManager
    parse = _median_us(lambda: _job_from_notify(NOTIFY), args.rounds)
    check = _median_us(lambda: PoolManager._host_check(share), args.rounds)
    rtt = asyncio.run(_submit_round_trip(min(args.rounds, 500)))
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.processor() or 'cpu'})")
    print(f"notify line -> Job (12-step branch): median {parse:.1f} us over {args.rounds}")
    print(f"share host re-check:                 median {check:.1f} us over {args.rounds}")
    print(f"submit round trip over loopback:     median {rtt:.1f} us over {min(args.rounds, 500)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
