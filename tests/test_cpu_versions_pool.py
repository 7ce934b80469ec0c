"""CPU mining with BIP 310 version rolling end to end: the miner CLI against a pool that grants a mask.

The pool (tests/fakepool.py) rebuilds every submitted header from the job, the
extranonce2, ntime, nonce and the submitted version bits, and accepts a share
only when that header's double SHA-256 meets the difficulty, as pools do.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import miner.core as core
from test_api_pool import PoolThread, wait_for


def test_cpu_shares_with_rolled_versions_are_accepted():
    p = PoolThread(difficulty=0.002)  # one share per ~8.6 M hashes
    pool = p.pool
    cmd = [sys.executable, "-m", "miner", "-o", pool.url, "-u", "worker.1", "-p", "x", "-t", "1",
           "--time-limit", "120", "--log-level", "info"]
    # The same core code in the miner as in this process, so the check below applies to it.
    env = {**os.environ, "MINER_CORE": core.selected()}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    try:
        assert wait_for(lambda: len(pool.accepted) >= 12, 90), "".join(lines)
    finally:
        proc.terminate()
        proc.wait(10)
        p.close()
    assert not pool.rejected, pool.rejected
    # mining.submit's sixth parameter: the rolled bits, always inside the granted mask
    bits = [int(params[5], 16) for params in pool.accepted]
    assert all(b & ~0x1FFFE000 == 0 for b in bits)
    if core.max_versions() >= 2:
        # the CPU hashes several versions per nonce: shares arrive under more than one
        assert len(set(bits)) > 1, bits
