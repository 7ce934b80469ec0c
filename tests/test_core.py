"""The C double-SHA-256 core against hashlib, with every usable implementation forced in turn."""
from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import miner.core as core
from miner.engine.difficulty import DIFF1_TARGET, target_from_difficulty, target_from_nbits
from miner.errors import CoreError

VECTORS = Path(__file__).parent / "vectors"
MAX = 1 << 32
ALL = (1 << 256) - 1
IMPLS = core.implementations()


def ref_hash(header: bytes, nonce: int) -> int:
    """hashlib's sha256d of header with nonce, as the little-endian integer compared with targets."""
    h = header[:76] + struct.pack("<I", nonce)
    return int.from_bytes(hashlib.sha256(hashlib.sha256(h).digest()).digest(), "little")


def ref_scan(header: bytes, start: int, count: int, target: int) -> list[int]:
    return [n for n in range(start, start + count) if ref_hash(header, n) <= target]


@pytest.fixture(autouse=True)
def _restore_selection():
    yield
    core.select(None)


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    return request.param


def test_every_compiled_implementation_is_usable_here():
    # This machine (and CI's) has SHA-NI and AVX2; a silent self-test failure would drop one.
    names = {n.split("(")[0] for n in IMPLS}
    assert "portable" in names
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        flags = Path("/proc/cpuinfo").read_text().split()
        if "sha_ni" in flags:
            assert {"shani(4-lane)", "shani(3-lane)", "shani(2-lane)", "shani(1-lane)"} <= set(IMPLS)
            if "avx" in flags:
                assert {"shani(4-lane,vex)", "shani(3-lane,vex)", "shani(2-lane,vex)", "shani(1-lane,vex)"} <= set(IMPLS)
        if "avx2" in flags:
            assert "avx2(8-way)" in IMPLS
        if "avx512f" in flags and "avx512bw" in flags:
            assert {"avx512(16-way)", "avx512(32-way)"} <= set(IMPLS)
    if sys.platform == "linux" and os.uname().machine == "aarch64":
        if "sha2" in Path("/proc/cpuinfo").read_text().split():
            assert {"armv8(2-lane)", "armv8(1-lane)"} <= set(IMPLS)


@pytest.mark.parametrize("length", [0, 1, 31, 32, 55, 56, 63, 64, 65, 80, 119, 120, 200, 1000])
def test_sha256d_matches_hashlib(length):
    data = random.Random(length).randbytes(length)
    assert core.sha256d(data) == hashlib.sha256(hashlib.sha256(data).digest()).digest()
    assert core.sha256d(bytearray(data)) == core.sha256d(memoryview(data))


def test_random_headers_and_targets_match_hashlib(impl):
    rng = random.Random(7)
    for _ in range(3):
        header = rng.randbytes(80)
        start = rng.randrange(0, MAX - 600)
        count = rng.randrange(200, 600)  # odd counts leave partial lane groups
        hashes = [ref_hash(header, n) for n in range(start, start + count)]
        # Targets from "every nonce" down to "about one in 64", plus one taken from
        # a real hash so that equality on the top limb is decided by the lower limbs.
        pick = hashes[rng.randrange(count)]
        for target in (ALL, 1 << 255, 1 << 250, pick, pick - 1, rng.getrandbits(256)):
            want = [start + i for i, h in enumerate(hashes) if h <= target]
            assert core.scan(header, start, count, target, impl=impl) == want, (impl, hex(target))


@pytest.mark.parametrize("block", json.loads((VECTORS / "block_headers.json").read_text())["headers"],
                         ids=lambda b: b["name"])
def test_real_block_found_at_its_own_target(impl, block):
    header = bytes.fromhex(block["header"])
    nonce = block["nonce"]
    target = target_from_nbits(int(block["nbits"], 16))
    assert ref_hash(header, nonce) <= target  # the vector is what it says
    lo = max(0, nonce - 3000)
    hi = min(MAX, nonce + 3001)
    assert core.scan(header, lo, hi - lo, target, impl=impl) == [nonce]
    # The displayed hash is the digest reversed.
    h = header[:76] + struct.pack("<I", nonce)
    assert core.sha256d(h)[::-1].hex() == block["hash_display"]


def test_equality_at_the_target_boundary(impl):
    rng = random.Random(11)
    header = rng.randbytes(80)
    for nonce in (0, 5, 12345, MAX - 1):
        h = ref_hash(header, nonce)
        assert core.scan(header, nonce, 1, h, impl=impl) == [nonce]
        assert core.scan(header, nonce, 1, h - 1, impl=impl) == []
        # Only the top limb equal: the lower limbs decide both ways.
        top = h >> 224 << 224
        assert core.scan(header, nonce, 1, top + (1 << 224) - 1, impl=impl) == [nonce]
        assert core.scan(header, nonce, 1, top - 1, impl=impl) == []


def test_low_target_boundary_with_zero_top_limb(impl):
    # Genesis: the real hash is below 2^224, so the early filter path decides; its
    # exact value as target hits, one less misses.
    block = json.loads((VECTORS / "block_headers.json").read_text())["headers"][0]
    header, nonce = bytes.fromhex(block["header"]), block["nonce"]
    h = ref_hash(header, nonce)
    assert h < 1 << 224
    assert core.scan(header, nonce - 8, 17, h, impl=impl) == [nonce]
    assert core.scan(header, nonce - 8, 17, h - 1, impl=impl) == []


def test_range_end_at_two_to_the_32(impl):
    header = random.Random(3).randbytes(80)
    for k in (1, 2, 3, 5, 15, 17, 33):
        assert core.scan(header, MAX - k, k, ALL, impl=impl) == list(range(MAX - k, MAX))
    target = 1 << 252
    assert core.scan(header, MAX - 333, 333, target, impl=impl) == ref_scan(header, MAX - 333, 333, target)
    with pytest.raises(ValueError, match="2\\^32"):
        core.scan(header, MAX - 3, 4, ALL, impl=impl)


def test_many_hits_beyond_one_output_buffer(impl):
    # Every nonce meets 2^256-1; the Python side drains the C buffer repeatedly.
    header = bytes(80)
    assert core.scan(header, 1000, 1001, ALL, impl=impl) == list(range(1000, 2001))
    assert core.scan(header, 1000, 1001, 1 << 400, impl=impl) == list(range(1000, 2001))


@pytest.mark.parametrize("difficulty", [0.001, 1e-6, 1e-9])
def test_fractional_difficulty_targets_above_2_224(impl, difficulty):
    target = target_from_difficulty(difficulty)
    assert target > 1 << 224
    header = random.Random(int(1 / difficulty)).randbytes(80)
    if difficulty >= 1e-6:
        # Hits are too rare for a small window: plant one by taking a hash just under the
        # target's top limb. Scan around a nonce whose hash we make the target.
        hashes = {n: ref_hash(header, n) for n in range(5000, 5400)}
        best = min(hashes, key=hashes.get)
        t = max(target, hashes[best])  # at least one hit, top limb non-zero
        assert core.scan(header, 5000, 400, t, impl=impl) == sorted(n for n, h in hashes.items() if h <= t)
        assert core.scan(header, 5000, 400, target, impl=impl) == sorted(
            n for n, h in hashes.items() if h <= target)
    else:
        want = ref_scan(header, 77, 800, target)
        assert want  # 1e-9 is about 2^254: many hits
        assert core.scan(header, 77, 800, target, impl=impl) == want


def test_targets_near_two_to_the_256(impl):
    header = random.Random(5).randbytes(80)
    for target in (ALL - 1, ALL - (1 << 200), (1 << 256) - (1 << 252)):
        assert core.scan(header, 9, 300, target, impl=impl) == ref_scan(header, 9, 300, target)


def test_abort_flag_stops_a_scan():
    flag = core.AbortFlag()
    flag.set()
    hits, nxt = core.scan_abortable(bytes(80), 100, 1 << 20, ALL, abort=flag)
    assert (hits, nxt) == ([], 100)
    flag.clear()
    hits, nxt = core.scan_abortable(bytes(80), 100, 10, ALL, abort=flag)
    assert (hits, nxt) == (list(range(100, 110)), 110)


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        ((bytes(79), 0, 1, 1), ValueError, "80 bytes"),
        ((bytes(81), 0, 1, 1), ValueError, "80 bytes"),
        (("00" * 80, 0, 1, 1), TypeError, "bytes"),
        ((None, 0, 1, 1), TypeError, "bytes"),
        ((bytes(80), -1, 1, 1), ValueError, "start"),
        ((bytes(80), MAX, 1, 1), ValueError, "start"),
        ((bytes(80), MAX - 1, 2, 1), ValueError, "2\\^32"),
        ((bytes(80), 0, MAX + 1, 1), ValueError, "2\\^32"),
        ((bytes(80), 0, -1, 1), ValueError, "2\\^32"),
        ((bytes(80), 0, 1, -1), ValueError, "negative"),
        ((bytes(80), 0, 1, 1.5), TypeError, "target"),
        ((bytes(80), 0.0, 1, 1), TypeError, "start"),
        ((bytes(80), 0, "1", 1), TypeError, "count"),
        ((bytes(80), True, 1, 1), TypeError, "start"),
    ],
)
def test_bad_arguments_raise_clear_errors(args, exc, msg):
    with pytest.raises(exc, match=msg):
        core.scan(*args)


def test_sha256d_rejects_text():
    with pytest.raises(TypeError, match="bytes"):
        core.sha256d("abc")


def test_count_zero_is_empty():
    assert core.scan(bytes(80), 5, 0, ALL) == []
    assert core.scan(bytes(80), MAX - 1, 0, ALL) == []


def test_select_and_selected():
    auto = core.selected()
    assert auto in IMPLS
    if len(IMPLS) > 1:
        assert auto != "portable"  # portable is chosen only when nothing else is usable
    for name in IMPLS:
        assert core.select(name) == name
        assert core.selected() == name
        short = name.split("(")[0]
        assert core.resolve(short).split("(")[0] == short
    with pytest.raises(CoreError, match="unknown core implementation 'nope'"):
        core.select("nope")
    assert core.select(None) == auto  # measured once, then stable


def _selected_in_child(env_value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINER_CORE=env_value)
    code = "import miner.core as c; print(c.selected()); print(c.scan(bytes(80), 0, 3, 2**256 - 1))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("short", sorted({n.split("(")[0] for n in IMPLS}))
def test_miner_core_env_forces_a_choice(short):
    res = _selected_in_child(short)
    assert res.returncode == 0, res.stderr
    chosen, hits = res.stdout.split("\n")[:2]
    assert chosen.split("(")[0] == short
    assert hits == "[0, 1, 2]"


def test_miner_core_env_unknown_name_is_a_clear_error():
    res = _selected_in_child("sparc")
    assert res.returncode != 0
    assert "unknown core implementation 'sparc'" in res.stderr
    assert "Segmentation" not in res.stderr


def test_fractional_difficulty_helper_agrees():
    # The difficulty-1 target is below 2^224, the 0.001 one above: the two paths the core has.
    assert DIFF1_TARGET < 1 << 224 < target_from_difficulty(0.001)


def test_scan_releases_the_gil():
    # While one thread is inside the C scan, another keeps running Python code.
    # With the GIL held the main loop below could not run at all between the two events.
    import threading

    started, finished = threading.Event(), threading.Event()

    def worker():
        started.set()
        core.scan(bytes(80), 0, 1 << 22, 0)
        finished.set()

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    spins = 0
    while not finished.is_set():
        spins += 1
    t.join()
    assert spins > 10_000


def test_the_genesis_header_comes_from_the_c_core_and_matches_block_0():
    block0 = json.loads((VECTORS / "block_headers.json").read_text())["headers"][0]
    assert core.GENESIS_HEADER == bytes.fromhex(block0["header"])[:76] + struct.pack("<I", block0["nonce"])
    assert core.GENESIS_NONCE == block0["nonce"] == 2083236893


def test_implementations_keep_the_c_tables_preference_order():
    from miner.core import _ffi, _lib
    table = [_ffi.string(_lib.miner_impl_name(i)).decode() for i in range(_lib.miner_impl_count())]
    assert table[-1] == "portable"  # the C table lists fastest first, portable last
    usable = core.implementations()
    assert usable == [n for n in table if n in usable]
    assert core.resolve(usable[0].split("(")[0]) == usable[0]  # a short name means its family's first


def test_the_c_abi_is_declared_once_in_core_h():
    import re
    from pathlib import Path
    from miner.core import _lib
    csrc = Path(__file__).resolve().parents[1] / "csrc"
    declared = re.findall(r"\b(miner_\w+)\s*\(", re.sub(r"/\*.*?\*/", "", (csrc / "core.h").read_text(), flags=re.S))
    assert len(declared) >= 8 and all(hasattr(_lib, name) for name in declared)  # the built module has each
    assert not re.search(r"\bminer_\w+\s*\(", (csrc / "build_core.py").read_text())  # and nothing is retyped
