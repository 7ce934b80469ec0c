"""End to end: an emulated BM1370 chain and an emulated Icarus stick, each mining through `miner`
(engine, Stratum client, ASIC driver) against the real third-party pool, which judges every share.

The emulators run in this process on real pseudo-terminals; the miner is a separate process that
opens the pty path given with --device, exactly as a user would after `miner emulate`.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from miner.drivers.chips import BM1370, ICARUS_MODELS
from miner.drivers.emu.models import EmulatedBM13xx, EmulatedIcarus
from miner.drivers.emu.emulator import PtyServer


def _miner(*args: str):
    proc = subprocess.Popen([sys.executable, "-m", "miner", *args, "--json", "--status-interval", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    events: list[dict] = []
    errors: list[str] = []

    def pump(stream, sink, parse):
        for line in stream:
            try:
                sink.append(parse(line))
            except ValueError:
                errors.append(line)
    threading.Thread(target=pump, args=(proc.stdout, events, json.loads), daemon=True).start()
    threading.Thread(target=pump, args=(proc.stderr, errors, str), daemon=True).start()
    return proc, events, errors


def _stop(proc) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _check(real_pool, emulator, spec: str, shares: int = 3):
    server = PtyServer(emulator)
    proc, events, errors = _miner("-o", real_pool.url, "-u", real_pool.user, "-p", real_pool.password,
                                  "--device", spec.format(path=server.path), "--time-limit", "120")
    try:
        real_pool.wait_shares(shares, timeout=90)
    finally:
        code = _stop(proc)
        server.close()
    time.sleep(0.2)
    stderr = "".join(errors)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert real_pool.valid >= shares and real_pool.invalid == 0, real_pool.reasons()
    results = [e["result"] for e in events if e.get("event") == "share"]
    assert results.count("accepted") >= shares and "rejected" not in results, results
    last = [e for e in events if e.get("event") == "hashrate"][-1]
    assert last["hw_errors"] == 0 and last["rejected"] == 0
    return events


def test_emulated_bm1370_chain_gets_accepted_shares(real_pool):
    emu = EmulatedBM13xx(BM1370, 4, diff=1e-4)
    _check(real_pool, emu, "bm1370:{path},chips=4,diff=0.0001,ramp_delay=0")
    assert emu.jobs >= 1 and emu.addresses == [0, 64, 128, 192]


@pytest.mark.parametrize("real_pool", [0.0001], indirect=True)
def test_emulated_icarus_stick_gets_accepted_shares(real_pool):
    emu = EmulatedIcarus(ICARUS_MODELS["erupter"], diff=1e-5)
    _check(real_pool, emu, "erupter:{path},diff=0.00001,golden_timeout=15")
