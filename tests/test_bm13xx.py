"""BM13xx: wire-format vectors, and the driver against its emulator over a real pseudo-terminal."""
from __future__ import annotations

import pytest

from asic_ctx import TestContext, run_device, session_job
from miner.drivers import bm13xx_proto as P
from miner.drivers.bm13xx import BM13xxDevice
from miner.drivers.chips import BM1366, BM1368, BM1370, BM1397
from miner.drivers.emu.models import EmulatedBM13xx
from miner.drivers.emu.emulator import PtyServer
from miner.drivers.transport import SerialTransport
from miner.errors import DeviceError, DeviceGone, ProtocolError

TEST_DIFF = 1e-4


# -- vectors (docs/PROTOCOLS.md, the checked frames) -------------------------------
@pytest.mark.parametrize("frame", ["55AA5305000003", "55AA520500000A", "55AA510900A49000FFFF1C"])
def test_crc5_vectors(frame):
    raw = bytes.fromhex(frame)
    assert P.crc5(raw[2:-1]) == raw[-1]
    assert P.parse_tx(raw)[0] == raw[2]


def test_builders_reproduce_vectors():
    assert P.chain_inactive().hex().upper() == "55AA5305000003"
    assert P.read_reg(P.REG_CHIP_ID).hex().upper() == "55AA520500000A"
    assert P.write_reg(P.REG_VERSION_MASK, P.version_mask_value(0x1FFFE000)).hex().upper() == \
        "55AA510900A49000FFFF1C"


def test_crc16_ccitt_false_check_value():
    # The catalogue check value of CRC-16/CCITT-FALSE over "123456789".
    assert P.crc16_ccitt_false(b"123456789") == 0x29B1


def test_bad_crc_rejected():
    raw = bytearray(P.read_reg(0))
    raw[-1] ^= 1
    with pytest.raises(ProtocolError):
        P.parse_tx(bytes(raw))
    job = bytearray(P.job_frame(bytes(82)))
    job[10] ^= 0xFF
    with pytest.raises(ProtocolError):
        P.parse_tx(bytes(job))


def test_job_payload_round_trip_and_layout():
    header = bytes(range(76)) + bytes(4)
    payload = P.full_header_job(0x18, header)
    assert len(payload) == 82 and payload[0] == 0x18 and payload[1] == 1
    assert payload[6:10] == header[72:76] and payload[78:82] == header[0:4]
    assert payload[14:18] == header[64:68]  # merkle root's last word comes first
    assert P.header_from_full_job(payload) == (0x18, header)
    frame = P.job_frame(payload)
    assert frame[3] == 86 and P.parse_tx(frame) == (P.JOB, payload)


def test_registers():
    assert P.ticket_mask_value(256) == bytes.fromhex("000000ff")
    assert P.ticket_diff_from_value(P.ticket_mask_value(1000)) == 512  # largest power of two below
    assert P.ticket_diff_from_value(P.ticket_mask_value(1)) == 1
    assert P.version_mask_from_value(P.version_mask_value(0x1FFFE000)) == 0x1FFFE000
    for mhz in (50, 200, 425, 490, 525, 600):
        pll = P.pll_for(mhz)
        assert abs(pll.mhz - mhz) < 3 and P.PLL.from_value(pll.value()) == pll


def test_reply_reader_resyncs_and_counts():
    good = P.build_reply(True, (0x12345678).to_bytes(4, "little"), 0, 0x10, 3, 11)
    bad = bytearray(good)
    bad[-1] ^= 0x02
    r = P.ReplyReader(11)
    out = r.feed(b"\x01\x02\x03" + bytes(bad) + good[:5])
    out += r.feed(good[5:])
    assert [x.nonce for x in out] == [0x12345678] and out[0].version == 3 and out[0].is_nonce
    assert r.bad_crc == 1 and r.garbage >= 3


# -- driver against emulator on a pty ----------------------------------------------
def _chain(facts, chips, options=None, diff=TEST_DIFF, **emu):
    device = EmulatedBM13xx(facts, chips, diff=diff, **emu)
    server = PtyServer(device)
    opts = {"diff": diff, "ramp_delay": 0, **(options or {})}
    dev = BM13xxDevice("chain", SerialTransport(server.path), facts, opts)
    return device, server, dev


def _mine(dev, ctx, shares=3, timeout=15.0):
    t = run_device(dev, ctx)
    try:
        assert ctx.wait_for(lambda: len(ctx.shares) >= shares, timeout), dev.info()
    finally:
        ctx.stop()
        t.join(5)
    assert t.error is None and not t.is_alive()


def test_bm1370_chain_over_pty_rolls_versions():
    emu, server, dev = _chain(BM1370, 4, {"freq": 490})
    ctx = TestContext(session_job(difficulty=TEST_DIFF))
    try:
        _mine(dev, ctx, shares=4)
    finally:
        server.close()
    info = dev.info()
    assert info["chips"] == 4 and info["model"] == "BM1370" and info["frequency_mhz"] == 490
    assert emu.addresses == [0, 64, 128, 192]
    # the PLL was ramped up in steps, not jumped
    assert emu.freq_history[0] == 50 and emu.freq_history[-1] == 490 and len(emu.freq_history) > 5
    assert emu.freq_history == sorted(emu.freq_history)
    assert emu.version_mask == 0x1FFFE000
    assert ctx.hw_errors == 0 and info["hw_errors"] == 0 and ctx.all_shares_valid()
    rolled = {s.version for s in ctx.shares} - {ctx.job.version}
    assert rolled, "the chip's rolled versions reached the host"
    assert all((v ^ ctx.job.version) & ~0x1FFFE000 == 0 for v in rolled)
    assert ctx.hash_count == info["valid"] * int(TEST_DIFF * 2 ** 32)
    assert info["watts"] == pytest.approx(BM1370.watts(490, 4))


@pytest.mark.parametrize("facts", [BM1366, BM1368])
def test_bm1366_bm1368_over_pty(facts):
    emu, server, dev = _chain(facts, 1)
    ctx = TestContext(session_job(difficulty=TEST_DIFF))
    try:
        _mine(dev, ctx, shares=2)
    finally:
        server.close()
    assert dev.info()["model"] == facts.model and ctx.hw_errors == 0 and ctx.all_shares_valid()


def test_bm1397_midstates_over_pty():
    # A fixed job interval: the emulator's midstate hashing is far slower than the 30 ms a real
    # 2-chip BM1397 chain takes per job, which the driver would otherwise pace itself by.
    emu, server, dev = _chain(BM1397, 2, {"job_interval": 2}, diff=1e-5)
    ctx = TestContext(session_job(difficulty=1e-5))
    try:
        _mine(dev, ctx, shares=4, timeout=20)
    finally:
        server.close()
    assert ctx.hw_errors == 0 and ctx.all_shares_valid()
    assert {s.version for s in ctx.shares} != {ctx.job.version}  # nonces from more than one midstate


def test_ticket_mask_programmed_and_claimed():
    emu, server, dev = _chain(BM1370, 1, {"diff": 300}, diff=TEST_DIFF)
    try:
        dev.open()
        ctx = TestContext()
        assert ctx.wait_for(lambda: emu.ticket_diff == 256, 2) and dev.ticket_diff == 256
    finally:
        dev.close()
        server.close()


def test_new_generation_sends_new_job_at_once():
    emu, server, dev = _chain(BM1370, 1, {"job_interval": 30})
    ctx = TestContext(session_job(difficulty=TEST_DIFF))
    t = run_device(dev, ctx)
    try:
        assert ctx.wait_for(lambda: emu.jobs >= 1, 5)
        ctx.new_generation()
        assert ctx.wait_for(lambda: emu.jobs >= 2, 2)
        assert ctx.works[-1].generation == 2
    finally:
        ctx.stop()
        t.join(5)
        server.close()


def test_wrong_chip_model_is_refused():
    emu, server, dev = _chain(BM1366, 1)
    dev = BM13xxDevice("x", SerialTransport(server.path), BM1370, {"ramp_delay": 0})
    try:
        with pytest.raises(DeviceError, match="1366"):
            dev.open()
    finally:
        dev.close()
        server.close()


def test_no_chain_on_the_port_is_device_gone():
    emu, server, dev = _chain(BM1370, 1)
    emu.close()  # nothing answers on the port
    try:
        with pytest.raises(DeviceGone, match="no BM1370"):
            dev.open()
    finally:
        dev.close()
        server.close()


# -- property: framing survives any noise ------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(nonces=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8),
       noise=st.lists(st.binary(max_size=12).filter(lambda b: b"\xaa\x55" not in b), min_size=9, max_size=9),
       reply_len=st.sampled_from([9, 11]))
def test_reply_reader_never_invents_nonces(nonces, noise, reply_len):
    stream = b""
    for i, n in enumerate(nonces):
        stream += noise[i] + P.build_reply(True, n.to_bytes(4, "little"), 0, 8 * i % 128, i, reply_len)
    stream += noise[-1]
    r = P.ReplyReader(reply_len)
    got = []
    for i in range(0, len(stream), 5):  # arrives in arbitrary chunks
        got += r.feed(stream[i:i + 5])
    # Noise without a preamble never hides or invents a reply. (Noise that holds AA 55 can, with
    # CRC5's 1-in-32 odds, pass as a frame and swallow the start of a real one: the host re-check
    # then catches the bogus nonce; that is why every nonce is re-hashed.)
    assert [x.nonce for x in got] == nonces


@settings(max_examples=100, deadline=None)
@given(header=st.integers(0, 255), payload=st.binary(max_size=40))
def test_command_frames_round_trip(header, payload):
    hdr = header if header != P.JOB else P.JOB + 1
    assert P.parse_tx(P.command(hdr, payload)) == (hdr, payload)
    assert P.parse_tx(P.job_frame(payload)) == (P.JOB, payload)
