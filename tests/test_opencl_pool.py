"""`miner --device opencl:P:D` (the OpenCL kernel on PoCL) against the real third-party pool.

The pool validates every share itself; its verdicts come from its own event lines.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

os.environ.setdefault("POCL_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"miner-pocl-cache-{os.getuid()}"))
pytest.importorskip("pyopencl")

from miner.backends.opencl import OpenCLBackend  # noqa: E402

if not OpenCLBackend.detect():
    pytest.skip("no OpenCL platform (pip install 'pyopencl[pocl]')", allow_module_level=True)
from opencl_device import SKIP_REASON, working_spec  # noqa: E402

SPEC = working_spec()
if SPEC is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)


# PoCL hashes a few hundred kH/s: a low pool difficulty gives a share every second or so.
@pytest.mark.parametrize("real_pool", [0.0001], indirect=True)
def test_opencl_device_gets_accepted_shares_from_the_real_pool(real_pool, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "miner", "-o", real_pool.url, "-u", real_pool.user,
                             "-p", "gpu-pw", "--device", SPEC, "--time-limit", "150", "--json",
                             "--status-interval", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path), env=env)
    events: list[dict] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda: events.extend(json.loads(line) for line in proc.stdout), daemon=True),
               threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)]
    for t in readers:
        t.start()
    try:
        real_pool.wait_shares(3, timeout=120)
        # Shares can come faster than the first 1 s status line; wait for one hashrate report.
        deadline = time.monotonic() + 15
        while not any(e["event"] == "hashrate" for e in list(events)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    time.sleep(0.2)
    stderr = "".join(errors)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "gpu-pw" not in stderr
    assert real_pool.valid >= 3 and real_pool.invalid == 0, real_pool.reasons()
    shares = [e for e in events if e["event"] == "share"]
    assert len([e for e in shares if e["result"] == "accepted"]) >= 3
    assert not [e for e in shares if e["result"] == "rejected"]
    rates = [e for e in events if e["event"] == "hashrate"]
    assert rates and rates[-1]["hw_errors"] == 0
    # Only the OpenCL device mined: the CPU backend was not asked for.
    assert {e["device"] for e in shares if e["result"] == "accepted"} == {SPEC}
    # The kernel binary went to the cache under XDG_CACHE_HOME, created private.
    cache = tmp_path / "cache" / "miner" / "opencl"
    assert list(cache.glob("*.bin")) and (cache.stat().st_mode & 0o777) == 0o700, stderr
