"""`miner` against the real third-party pool (stratum-pool-sha256 under node), as a user runs it.

The pool validates every share itself; its verdicts come from its own event lines.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time


def start_miner(*args: str) -> tuple[subprocess.Popen, list[dict], list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "miner", *args, "--json", "--status-interval", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    events: list[dict] = []
    errors: list[str] = []

    def read_out():
        for line in proc.stdout:
            events.append(json.loads(line))

    def read_err():
        for line in proc.stderr:
            errors.append(line)

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    return proc, events, errors


def stop_miner(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cpu_mining_gets_accepted_shares_from_the_real_pool(real_pool):
    proc, events, errors = start_miner("-o", real_pool.url, "-u", real_pool.user, "-p", "s3cret-pw",
                                       "-t", "1", "--time-limit", "120")
    try:
        real_pool.wait_shares(4, timeout=90)
    finally:
        code = stop_miner(proc)
    time.sleep(0.2)
    stderr = "".join(errors)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "s3cret-pw" not in stderr  # passwords never reach logs
    assert real_pool.valid >= 4 and real_pool.invalid == 0, real_pool.reasons()
    shares = [e for e in events if e["event"] == "share"]
    accepted = [e for e in shares if e["result"] == "accepted"]
    assert len(accepted) >= 4
    assert not [e for e in shares if e["result"] == "rejected"]
    # the engine's account matches the pool's: every share the pool saw was one we sent
    assert len(accepted) <= real_pool.valid
    last = [e for e in events if e["event"] == "hashrate"][-1]
    assert last["final"] and last["hw_errors"] == 0 and last["rejected"] == 0 and last["accepted"] >= 4
