"""Every emulator fault mode is detected, counted, and never turns into a share.

The emulators inject the faults (wrong nonces, garbage bytes, bad CRCs,
duplicates, silence, a disconnect mid-job); the drivers run against them over
real pseudo-terminals (TCP for the disconnect, where the port survives it) and
the test context re-hashes every submission as the engine does.
"""
from __future__ import annotations

import pytest

from asic_ctx import TestContext, run_device, session_job
from miner.drivers.bm13xx import BM13xxDevice
from miner.drivers.chips import BM1370, ICARUS_MODELS
from miner.drivers.emu.models import EmulatedBM13xx, EmulatedIcarus
from miner.drivers.emu.emulator import Faults, PtyServer, TcpServer
from miner.drivers.icarus import IcarusDevice
from miner.drivers.transport import SerialTransport
from miner.errors import ConfigError

BM_DIFF = 1e-4
IC_DIFF = 1e-5


def _run(kind, faults, *, tcp=False, nonces=12, timeout=20.0, options=None):
    if kind == "bm1370":
        emu = EmulatedBM13xx(BM1370, 2, diff=BM_DIFF, faults=Faults.parse(faults))
        make = lambda url: BM13xxDevice("chain", SerialTransport(url), BM1370,  # noqa: E731
                                        {"diff": BM_DIFF, "ramp_delay": 0, **(options or {})})
        job = session_job(difficulty=BM_DIFF)
    else:
        emu = EmulatedIcarus(ICARUS_MODELS["erupter"], diff=IC_DIFF, faults=Faults.parse(faults))
        make = lambda url: IcarusDevice("stick", SerialTransport(url), ICARUS_MODELS["erupter"],  # noqa: E731
                                        {"diff": IC_DIFF, "golden_timeout": 15, **(options or {})})
        job = session_job(difficulty=IC_DIFF * 10, version_mask=0)
    server = TcpServer(emu) if tcp else PtyServer(emu)
    dev = make(server.url if tcp else server.path)
    ctx = TestContext(job)
    t = run_device(dev, ctx)
    try:
        ok = ctx.wait_for(lambda: dev.info()["valid"] >= nonces, timeout)
    finally:
        # Faults injected after this point may never reach the stopping driver: compare
        # the driver's counts with what was injected while it was still reading.
        ctx.fault_log_at_stop = list(emu.fault_log)
        ctx.stop()
        t.join(5)
        server.close()
    assert ok, (dev.info(), emu.stats())
    assert t.error is None
    # Invariants for every fault: shares are real, hardware errors match between driver and host.
    assert ctx.all_shares_valid()
    assert ctx.hw_errors == dev.info()["hw_errors"]
    assert sum(1 for *_, good in ctx.submitted if not good) == ctx.hw_errors
    return emu, dev, ctx


def mining_injections(emu, kind: str, ctx=None) -> int:
    """Faults injected while mining (Icarus also answers the golden work and a park packet first),
    up to the moment the driver was told to stop when ``ctx`` is given."""
    first_mining_job = 3 if isinstance(emu, EmulatedIcarus) else 1
    log = getattr(ctx, "fault_log_at_stop", emu.fault_log)
    return sum(1 for k, jobs in log if k == kind and jobs >= first_mining_job)


@pytest.mark.parametrize("kind", ["bm1370", "icarus"])
def test_wrong_nonces_are_hardware_errors(kind):
    emu, dev, ctx = _run(kind, ["wrong-nonce=3"])
    at_stop, injected = mining_injections(emu, "wrong-nonce", ctx), mining_injections(emu, "wrong-nonce")
    assert at_stop >= 3
    # each wrong nonce was caught on the host (the last one may still be in flight at stop)
    assert at_stop - 1 <= dev.info()["hw_errors"] <= injected
    if kind == "bm1370":
        assert sum(dev.info()["chip_hw_errors"].values()) == dev.info()["hw_errors"]


@pytest.mark.parametrize("kind", ["bm1370", "icarus"])
def test_garbage_bytes_are_skipped(kind):
    emu, dev, ctx = _run(kind, ["garbage=2"])
    assert emu.injected["garbage"] >= 3
    info = dev.info()
    assert info["garbage_bytes"] > 0
    if kind == "bm1370":
        assert info["hw_errors"] == 0  # framing resynchronises on the preamble
    else:
        # unframed 4-byte replies: noise is found by re-aligning on a valid nonce; noise that cannot
        # be told apart counts as a hardware error, never as a share
        assert info["hw_errors"] <= emu.injected["garbage"]


def test_bad_crc_frames_are_dropped():
    emu, dev, ctx = _run("bm1370", ["bad-crc=3"])
    at_stop, injected = mining_injections(emu, "bad-crc", ctx), mining_injections(emu, "bad-crc")
    assert at_stop >= 3
    info = dev.info()
    assert at_stop - 1 <= info["crc_errors"] <= injected and info["hw_errors"] == 0
    assert info["nonces"] <= emu.replies - info["crc_errors"]


@pytest.mark.parametrize("kind", ["bm1370", "icarus"])
def test_duplicates_are_filtered(kind):
    emu, dev, ctx = _run(kind, ["duplicate=2"])
    at_stop, injected = mining_injections(emu, "duplicate", ctx), mining_injections(emu, "duplicate")
    assert at_stop >= 3
    assert at_stop - 1 <= dev.info()["duplicates"] <= injected
    keys = [(w.extranonce2, n, v) for w, n, v, _ in ctx.submitted]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("kind", ["bm1370", "icarus"])
def test_silence_is_detected_and_recovered(kind):
    after = 4 if kind == "bm1370" else 10  # past the Icarus golden-work replies
    emu, dev, ctx = _run(kind, [f"silence={after}"], nonces=after + 6, options={"silence": 1.0})
    assert emu.injected["silence"] == 1
    assert dev.info()["silences"] >= 1  # re-initialised (BM13xx) / golden re-check (Icarus), then mined on


@pytest.mark.parametrize("kind", ["bm1370", "icarus"])
def test_disconnect_mid_job_reconnects(kind):
    after = 4 if kind == "bm1370" else 10  # past the Icarus golden-work replies
    emu, dev, ctx = _run(kind, [f"disconnect={after}"], tcp=True, nonces=after + 6)
    assert emu.injected["disconnect"] == 1
    info = dev.info()
    assert info["disconnects"] >= 1 and info["reopens"] >= 2


def test_fault_flags_are_validated():
    with pytest.raises(ConfigError, match="unknown fault"):
        Faults.parse(["melt"])
    with pytest.raises(ConfigError, match="integer"):
        Faults.parse(["garbage=x"])
    assert Faults.parse(["wrong_nonce=7", "silence"]).every == {"wrong-nonce": 7, "silence": 5}
