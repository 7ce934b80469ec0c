"""`miner emulate` as a user runs it: a separate process on a pseudo-terminal, then the driver mines on it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from asic_ctx import TestContext, mine_until, session_job
from miner.drivers import create_device


def _emulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "miner", "emulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_emulate_prints_the_spec_and_serves_a_chain():
    proc = _emulate("bm1370", "--chips", "2", "--diff", "0.0001", "--duration", "30", "--stats")
    try:
        first = proc.stdout.readline()
        spec_line = proc.stdout.readline()
        assert first.startswith("emulated bm1370 on /dev/pts/"), first
        spec = spec_line.split("--device ", 1)[1].split()[0]
        assert spec.endswith(",diff=0.0001,chips=2")
        dev = create_device(spec + ",ramp_delay=0")
        ctx = TestContext(session_job(difficulty=1e-4))
        t = mine_until(dev, ctx, lambda: len(ctx.shares) >= 2, 20)
        assert t.error is None and dev.info()["chips"] == 2 and ctx.hw_errors == 0
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("args,message", [
    (["bm1370", "--fault", "melt"], "unknown fault 'melt'"),
    (["icarus", "--fault", "bad-crc"], "no CRC"),
    (["bm1370", "--hashrate", "fast"], "--hashrate 'fast'"),
    (["bm1370", "--chips", "0"], "--chips must be 1..128"),
    (["bm1370", "--tcp", "x:y"], "expected [HOST:]PORT"),
])
def test_emulate_bad_flags_give_one_line(args, message):
    proc = _emulate(*args, "--duration", "1")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, (out, err)
    assert message in err and "Traceback" not in err
