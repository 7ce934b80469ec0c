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


@pytest.fixture(params=MULTI)
def impl(request) -> str:
    return request.param


def test_matches_hashlib_for_every_version_count(impl):
    rng = random.Random(310)
    for nv in (1, 2, 3, 4, 8):
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


def test_more_hits_than_one_call_holds_and_the_end_of_the_range(impl):
    # Every (nonce, version) meets 2^256-1: 8000 pairs, many times the C call's buffer.
    header = bytes(range(80))
    versions = [0x20000000 | v << 13 for v in range(8)]
    pairs, nxt = core.scan_versions(header, versions, 5, 1000, ALL, impl=impl)
    assert pairs == [(n, v) for n in range(5, 1005) for v in versions] and nxt == 1005
    pairs, nxt = core.scan_versions(header, versions[:2], MAX - 21, 21, ALL >> 3, impl=impl)
    assert pairs == ref_pairs(header, versions[:2], MAX - 21, 21, ALL >> 3) and nxt == MAX


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
