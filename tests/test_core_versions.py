"""miner.core.scan_versions: several header versions per nonce with a shared message schedule, against hashlib."""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest

import miner.core as core
from miner.engine.difficulty import target_from_nbits
from miner.errors import CoreError
from test_core import ALL, MAX, VECTORS, ref_hash

MULTI = [name for name in core.implementations() if core.max_versions(name) > 0]


def with_version(header: bytes, version: int) -> bytes:
    return version.to_bytes(4, "little") + header[4:]


def ref_pairs(header: bytes, versions: list[int], start: int, count: int, target: int) -> list[tuple[int, int]]:
    return [(n, v) for n in range(start, start + count) for v in versions
            if ref_hash(with_version(header, v), n) <= target]


def test_avx512_cpus_have_the_multi_version_code():
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        flags = Path("/proc/cpuinfo").read_text().split()
        if "avx512f" in flags and "avx512bw" in flags:
            assert {"avx512(16-way)", "avx512(32-way)"} <= set(MULTI)
            assert core.max_versions("avx512") == 8
    assert core.max_versions("portable") == 0


def test_sha_ni_cpus_have_the_multi_version_code_at_every_lane_count_that_pays():
    # 2 lanes: versions as the lanes, sharing the first hash's K+W (the fastest SHA-NI path with 8 versions).
    if "shani(2-lane)" in core.implementations():
        assert {"shani(4-lane)", "shani(3-lane)", "shani(2-lane)"} <= set(MULTI)
        assert core.max_versions("shani(2-lane)") == 8
        assert "shani(1-lane)" not in MULTI


@pytest.fixture(params=MULTI)
def impl(request) -> str:
    return request.param


def test_matches_hashlib_for_every_version_count(impl):
    rng = random.Random(310)
    for nv in range(1, 9):  # every count: the SHA-NI 2-lane code splits versions into groups of 4, 2 and 1
        header = rng.randbytes(80)
        versions = rng.sample(range(1 << 32), nv)
        start, count = rng.randrange(MAX - 3000), rng.randrange(1, 700)
        target = ALL >> 4  # one hash in 16: hits in every lane for every version
        pairs, nxt = core.scan_versions(header, versions, start, count, target, impl=impl)
        assert pairs == ref_pairs(header, versions, start, count, target)
        assert nxt == start + count


def test_real_block_found_only_under_its_real_version(impl):
    for block in json.loads((VECTORS / "block_headers.json").read_text())["headers"]:
        header, nonce = bytes.fromhex(block["header"]), block["nonce"]
        real = int.from_bytes(header[:4], "little")
        others = [v for v in (0x20000000, 0x20002000, 0x3FFFE000, 1) if v != real][:3]
        versions = others[:1] + [real] + others[1:]
        pairs, _ = core.scan_versions(header, versions, nonce - 70, 200, target_from_nbits(int(block["nbits"], 16)),
                                      impl=impl)
        assert pairs == [(nonce, real)], block["name"]


def test_real_block_at_every_position_of_eight_and_five_versions(impl):
    # The real version in each slot: the first or second group of four, and the tails of five.
    block = json.loads((VECTORS / "block_headers.json").read_text())["headers"][-1]
    header, nonce = bytes.fromhex(block["header"]), block["nonce"]
    real = int.from_bytes(header[:4], "little")
    target = target_from_nbits(int(block["nbits"], 16))
    others = [v for v in (0x20000000 | k << 13 for k in range(9)) if v != real]
    for nv in (8, 5):
        for pos in range(nv):
            versions = others[:pos] + [real] + others[pos:nv - 1]
            pairs, _ = core.scan_versions(header, versions, nonce - 3, 7, target, impl=impl)
            assert pairs == [(nonce, real)], (nv, pos)


def test_exact_target_boundary_for_every_version_count(impl):
    # The target equal to one pair's hash finds it; one below it does not (the exact 256-bit compare).
    rng = random.Random(1402)
    header = rng.randbytes(80)
    for nv in range(1, 9):
        versions = rng.sample(range(1 << 32), nv)
        start = rng.randrange(MAX - 100)
        hashes = {(n, v): ref_hash(with_version(header, v), n) for n in range(start, start + 40) for v in versions}
        pair, value = min(hashes.items(), key=lambda kv: kv[1])
        assert core.scan_versions(header, versions, start, 40, value, impl=impl)[0] == [pair]
        assert core.scan_versions(header, versions, start, 40, value - 1, impl=impl)[0] == []


def test_more_hits_than_one_call_holds_and_the_end_of_the_range(impl):
    # Every (nonce, version) meets 2^256-1: 8000 pairs, many times the C call's buffer.
    header = bytes(range(80))
    versions = [0x20000000 | v << 13 for v in range(8)]
    pairs, nxt = core.scan_versions(header, versions, 5, 1000, ALL, impl=impl)
    assert pairs == [(n, v) for n in range(5, 1005) for v in versions] and nxt == 1005
    for nv in (2, 5, 8):  # the 2^32 end: the last nonces of the range, in every version group
        pairs, nxt = core.scan_versions(header, versions[:nv], MAX - 21, 21, ALL >> 3, impl=impl)
        assert pairs == ref_pairs(header, versions[:nv], MAX - 21, 21, ALL >> 3) and nxt == MAX


def test_abort_stops_before_any_work(impl):
    flag = core.AbortFlag()
    flag.set()
    assert core.scan_versions(bytes(80), [1, 2], 0, 1 << 20, ALL, abort=flag, impl=impl) == ([], 0)


def test_bad_arguments():
    header = bytes(80)
    if MULTI:
        impl = MULTI[0]
        with pytest.raises(ValueError, match="distinct"):
            core.scan_versions(header, [7, 7], 0, 10, ALL, impl=impl)
        with pytest.raises(ValueError, match="1 to 8 versions"):
            core.scan_versions(header, list(range(9)), 0, 10, ALL, impl=impl)
        with pytest.raises(ValueError, match="1 to 8 versions"):
            core.scan_versions(header, [], 0, 10, ALL, impl=impl)
        with pytest.raises(ValueError, match="32-bit"):
            core.scan_versions(header, [1 << 32], 0, 10, ALL, impl=impl)
        with pytest.raises(TypeError, match="ints"):
            core.scan_versions(header, [1.5], 0, 10, ALL, impl=impl)
        with pytest.raises(TypeError, match="list of ints"):
            core.scan_versions(header, b"\x01\x02", 0, 10, ALL, impl=impl)
        with pytest.raises(ValueError, match="2\\^32"):
            core.scan_versions(header, [1], MAX - 1, 2, ALL, impl=impl)
        with pytest.raises(ValueError, match="80 bytes"):
            core.scan_versions(header[:79], [1], 0, 1, ALL, impl=impl)
    with pytest.raises(CoreError, match="cannot scan several versions"):
        core.scan_versions(header, [1, 2], 0, 10, ALL, impl="portable")
