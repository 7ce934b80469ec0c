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


# -- the flow a new user follows: `miner emulate MODEL`, then exactly the command it prints ------------
def _emulate_cmd(*args: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "miner", "emulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    lines = [proc.stdout.readline() for _ in range(2)]
    return proc, lines


def _printed_command(line: str, real_pool) -> list[str]:
    """'mine with: miner --device SPEC -o POOL -u USER' -> argv, with the placeholders filled in."""
    assert line.startswith("mine with: miner "), line
    argv = line[len("mine with: miner "):].split()
    assert argv.count("POOL") == 1 and argv.count("USER") == 1, argv
    return [real_pool.url if a == "POOL" else real_pool.user if a == "USER" else a for a in argv]


def _mine_as_printed(real_pool, *emulate_args: str, shares: int = 3):
    emu, lines = _emulate_cmd(*emulate_args, "--duration", "200")
    try:
        assert emu.poll() is None, emu.stderr.read()
        argv = _printed_command(lines[1], real_pool)
        proc, events, errors = _miner(*argv, "--time-limit", "150")
        try:
            real_pool.wait_shares(shares, timeout=120)
        finally:
            code = _stop(proc)
    finally:
        emu.terminate()
        emu.wait(10)
    stderr = "".join(errors)
    assert code == 0 and "Traceback" not in stderr, stderr
    assert "re-initialising" not in stderr and "no golden nonce" not in stderr, stderr
    assert real_pool.valid >= shares and real_pool.invalid == 0, real_pool.reasons()
    results = [e["result"] for e in events if e.get("event") == "share"]
    assert results.count("accepted") >= shares, results
    return argv


def test_emulate_bm1370_chain_mines_exactly_as_printed(real_pool):
    argv = _mine_as_printed(real_pool, "bm1370", "--chips", "4")
    assert argv[0] == "--device" and ",diff=" in argv[1] and ",chips=4" in argv[1]


@pytest.mark.parametrize("real_pool", [0.0001], indirect=True)
def test_emulate_erupter_mines_exactly_as_printed(real_pool):
    argv = _mine_as_printed(real_pool, "erupter")
    assert argv[1].startswith("erupter:/dev/pts/") and ",diff=" in argv[1]


def test_emulate_erupter_without_numpy_says_what_to_install(tmp_path):
    """numpy hidden (as on a machine without the emulate extra): one line naming the install, exit 2."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoNumpy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'numpy':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NoNumpy())\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "miner", "emulate", "erupter", "--duration", "1"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tempfile.gettempdir())
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "numpy" in lines[0] and "pip install" in lines[0] and "[emulate]" in lines[0], lines
