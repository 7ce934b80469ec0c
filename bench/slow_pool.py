"""A slow pool: ``python bench/slow_pool.py`` -- the scripted test pool answers every submit after 40 s.

With the default Timeouts (what `miner` uses) the session is probed, the pool answers the probe, the session
is kept and every share is counted as the pool judged it. Prints the counts; figure in docs/BENCHMARKS.md.
"""
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakepool import FakePool, mine_share  # noqa: E402
from miner.stratum import PoolConfig, PoolManager  # noqa: E402

async def main():
    pool = await FakePool(difficulty=1e-4).start()
    jobs, events = [], []
    mgr = PoolManager([PoolConfig(pool.url, "w", "x")], on_job=jobs.append, on_event=lambda k, d: events.append((k, d)))
    task = asyncio.create_task(mgr.run())
    while not [d for k, d in events if k == "pool" and d["state"] == "connected"]:
        await asyncio.sleep(0.05)
    pool.submit_delay = 40.0
    t0 = time.monotonic()
    for n in range(5):
        mgr.submit(await asyncio.to_thread(mine_share, jobs[-1], n))
    while len([d for k, d in events if k == "share"]) < 5:
        await asyncio.sleep(0.2)
    s = mgr.snapshots()[0]
    print(f"after {time.monotonic() - t0:.1f} s: pool accepted {len(pool.accepted)}; miner accepted {s.accepted} "
          f"rejected {s.rejected} stale {s.stale}; connections {len(pool.clients)}; "
          f"probes {len(pool.client.requests('mining.authorize')) - 1}")
    await mgr.close()
    await task
    await pool.stop()

asyncio.run(main())
