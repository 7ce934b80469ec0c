"""A local Stratum pool for benchmarks: the test suite's scriptable pool, serving on loopback,
sending a fresh clean job every --clean-every seconds. Prints its URL as the first stdout line.

    python bench/localpool.py --difficulty 0.01 --clean-every 2
"""
import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from fakepool import FakePool, make_job  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--difficulty", type=float, default=0.01)
    ap.add_argument("--clean-every", type=float, default=2.0)
    ap.add_argument("--no-rolling", action="store_true")
    a = ap.parse_args()
    pool = FakePool(difficulty=a.difficulty, configure_result={} if a.no_rolling else None)
    await pool.start()
    print(pool.url, flush=True)
    n = 1
    while True:
        await asyncio.sleep(a.clean_every)
        n += 1
        pool.job = make_job(n, a.difficulty, prev_seed=n)
        for c in list(pool.clients):
            if not c.closed:
                c.notify(pool.job, clean=True)
        print(f"job {n} accepted={len(pool.accepted)} rejected={len(pool.rejected)}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
