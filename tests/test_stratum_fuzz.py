"""Fuzz the codec and the session's line handling with 12,000 seeded inputs.

Every input must either parse or raise ProtocolError (never anything else), and the session must
survive all of them: no exception escapes, and every job it builds is usable (an 80-byte header).
"""
from __future__ import annotations

import json
import random

from miner.errors import ProtocolError
from miner.stratum import codec
from miner.stratum.session import Endpoint, StratumSession

SEED_LINES = [
    {"id": 1, "result": [[["mining.set_difficulty", "b4b6"], ["mining.notify", "ae68"]], "08000002", 4], "error": None},
    {"id": None, "method": "mining.notify", "params": [
        "bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
        "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
        ["6e4e6aa7164803e7b3619ddf3a36504080e0644a1b6285905589b25e6d38c1aa"], "00000002", "1c2ac4af", "504e86b9", False]},
    {"id": None, "method": "mining.set_difficulty", "params": [16383.75]},
    {"id": None, "method": "mining.set_extranonce", "params": ["0a0b0c0d", 4]},
    {"id": None, "method": "mining.set_version_mask", "params": ["1fffe000"]},
    {"id": 9, "method": "client.reconnect", "params": ["127.0.0.1", 3333, 0]},
    {"id": 4, "result": False, "error": [23, "Low difficulty share", None]},
    {"id": 5, "result": None, "error": {"code": 21, "message": "Job not found"}},
    {"id": 6, "method": "client.get_version", "params": []},
    {"id": None, "method": "client.show_message", "params": ["hello"]},
    {"id": 2, "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"}, "error": None},
]

ODD_VALUES = [None, True, False, 0, -1, 17, 2 ** 70, 1.5, float("nan"), "", "zz", "0" * 65, [], {}, [[]],
              "1fffe000", 1e308, "ffffffff" * 9]


def mutate_struct(rng: random.Random, obj):
    """Replace one value somewhere in the JSON structure with an odd one."""
    if isinstance(obj, dict) and obj:
        k = rng.choice(list(obj))
        obj = dict(obj)
        obj[k] = mutate_struct(rng, obj[k]) if rng.random() < 0.6 else rng.choice(ODD_VALUES)
        return obj
    if isinstance(obj, list) and obj:
        obj = list(obj)
        op = rng.random()
        i = rng.randrange(len(obj))
        if op < 0.5:
            obj[i] = mutate_struct(rng, obj[i]) if rng.random() < 0.6 else rng.choice(ODD_VALUES)
        elif op < 0.75:
            del obj[i]
        else:
            obj.insert(i, rng.choice(ODD_VALUES))
        return obj
    return rng.choice(ODD_VALUES)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6 and b:
            del b[rng.randrange(len(b)):rng.randrange(len(b) + 1)]
        elif op < 0.8:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.choice([b"{", b"}", b"[", b"]", b",", b'"', b"\\u0000", b"null", b"1e999", b"\xff"])
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def generate(n: int, seed: int = 20261122):
    rng = random.Random(seed)
    for i in range(n):
        base = rng.choice(SEED_LINES)
        kind = i % 3
        if kind == 0:
            yield json.dumps(mutate_struct(rng, base), allow_nan=True).encode()
        elif kind == 1:
            yield mutate_bytes(rng, json.dumps(base).encode())
        else:
            yield json.dumps(mutate_struct(rng, mutate_struct(rng, base)), allow_nan=True).encode()


def test_fuzz_parser_12000_inputs():
    parsed = errors = 0
    for line in generate(12_000):
        try:
            codec.parse_line(line)
            parsed += 1
        except ProtocolError:
            errors += 1
    assert parsed + errors == 12_000
    assert parsed > 1000 and errors > 1000    # the generator exercises both sides


def test_fuzz_session_survives_12000_inputs(caplog):
    jobs = []
    s = StratumSession(0, Endpoint("127.0.0.1", 1, False), "w", "p", on_job=jobs.append,
                       on_event=lambda k, d: None, agent="fuzz/1", version_rolling=True,
                       version_mask=0x1FFFE000, suggest_difficulty=None, extranonce_subscribe=False,
                       ssl_context=None)
    s.extranonce1, s.extranonce2_size = bytes.fromhex("08000002"), 4
    s._end = lambda reason: None          # keep handling lines even after "too many bad lines"
    framer = codec.LineFramer()
    for line in generate(12_000, seed=7):
        for item in framer.feed(line + b"\n"):
            if isinstance(item, bytes):
                s._handle_line(item)
    assert jobs, "no job ever built"
    for job in jobs:
        assert 1 <= job.extranonce2_size <= 16
        assert job.difficulty > 0
        assert len(job.header(job.extranonce2_bytes(1))) == 80
    assert not [r for r in caplog.records if r.exc_info]


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_framer_is_independent_of_packet_boundaries(lines, cuts):
    stream = b"".join(line + b"\n" for line in lines)
    whole = codec.LineFramer(limit=150).feed(stream)
    f = codec.LineFramer(limit=150)
    pieces, last = [], 0
    for c in sorted(set(min(c, len(stream)) for c in cuts)) + [len(stream)]:
        pieces += f.feed(stream[last:c])
        last = c
    norm = lambda out: [x if isinstance(x, bytes) else "too long" for x in out]
    assert norm(pieces) == norm(whole)
    expect = [l.rstrip(b"\r") if len(l) <= 150 else "too long" for l in lines if l.strip() or len(l) > 150]
    assert norm(whole) == expect
