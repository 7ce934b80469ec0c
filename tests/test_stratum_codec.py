"""The Stratum codec: the real accepted share byte for byte, real pools' reply shapes, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from miner.errors import ConfigError, ProtocolError
from miner.engine.job import Job, Share, recheck
from miner.sha256 import sha256d
from miner.stratum import PoolConfig, codec
from miner.stratum.config import parse_url

VECTORS = Path(__file__).parent / "vectors"


def session_vector():
    return json.loads((VECTORS / "stratum_session.json").read_text())


def test_real_accepted_share_byte_for_byte():
    """tests/vectors/stratum_session.json: a share a real pool accepted (Stratum docs, testnet3)."""
    v = session_vector()
    lines = v["lines"]
    sub = codec.parse_line(json.dumps(lines[1]["json"]))
    assert isinstance(sub, codec.Response)
    s = codec.parse_subscribe_result(sub.result)
    assert s.extranonce1 == bytes.fromhex("08000002") and s.extranonce2_size == 4
    assert s.session_id == "ae6812eb4cd7735a302a8a9dd95cf71f"

    note = codec.parse_line(json.dumps(lines[3]["json"]))
    assert isinstance(note, codec.ServerRequest) and note.id is None
    n = note.body
    assert isinstance(n, codec.Notify) and n.job_id == "bf" and n.clean is False
    job = Job(n.job_id, n.prevhash, n.coinb1, n.coinb2, n.merkle_branch, n.version, n.nbits, n.ntime, n.clean,
              s.extranonce1, s.extranonce2_size, difficulty=1)

    sent = lines[4]["json"]
    en2 = bytes.fromhex(sent["params"][2])
    ntime, nonce = int(sent["params"][3], 16), int(sent["params"][4], 16)
    exp = v["expect"]
    assert job.merkle_root(en2).hex() == exp["merkle_root"]
    header = job.header(en2, ntime, nonce)
    assert header.hex() == exp["header"]
    c = recheck(job.header(en2, ntime), nonce, job.version)
    assert c.hash[::-1].hex() == exp["hash_display"]
    assert c.meets(job.share_target)
    share = Share(job, en2, ntime, nonce, job.version, c.hash)
    assert abs(share.share_difficulty - exp["share_difficulty_approx"]) < 0.01
    # The submit line as the pool received it: same params; our id and key order are our own.
    line = codec.request(4, "mining.submit", share.submit_params("slush.miner1"))
    assert line == b'{"id":4,"method":"mining.submit","params":["slush.miner1","bf","00000001","504e86ed","b2957c02"]}\n'
    assert json.loads(line) == {"id": sent["id"], "method": sent["method"], "params": sent["params"]}
    reply = codec.parse_line(json.dumps(lines[5]["json"]))
    assert reply == codec.Response(4, True, None)


# -- real pools' shapes (docs/PROTOCOLS.md) ---------------------------------------------------
def test_subscribe_shapes():
    # Flat subscription pair, as some pools send it.
    s = codec.parse_subscribe_result([["mining.notify", "abc"], "0a0b0c0d0e0f101112", 3])
    assert s.session_id == "abc" and len(s.extranonce1) == 9 and s.extranonce2_size == 3
    # Only mining.notify in a nested list, and an empty list.
    assert codec.parse_subscribe_result([[["mining.notify", "x1"]], "00", 8]).session_id == "x1"
    assert codec.parse_subscribe_result([[], "00", 8]).session_id is None
    assert codec.parse_subscribe_result([None, "", 4]).extranonce1 == b""


@pytest.mark.parametrize("result,size", [([[], "00", 0], 0), ([[], "00", 17], 17), ([[], "00", "4"], "4"),
                                         ([[], "00", True], True), ([[], "00", 2.0], 2.0)])
def test_subscribe_rejects_bad_extranonce2_size(result, size):
    with pytest.raises(ProtocolError, match="extranonce2_size"):
        codec.parse_subscribe_result(result)


@pytest.mark.parametrize("result", [None, [], ["a"], {"x": 1}, [[], "0g", 4], [[], "abc", 4], [[], 5, 4]])
def test_subscribe_rejects_malformed(result):
    with pytest.raises(ProtocolError):
        codec.parse_subscribe_result(result)


@pytest.mark.parametrize("result,mask", [
    ({"version-rolling": True, "version-rolling.mask": "1fffe000"}, 0x1FFFE000),
    ({"version-rolling": True, "version-rolling.mask": "0x3fffe000"}, 0x1FFFE000),   # wider: intersect
    ({"version-rolling": True, "version-rolling.mask": "00ffe000"}, 0x00FFE000),
    ({}, 0), (None, 0), (False, 0), ({"version-rolling": False}, 0), ([], 0),
    ({"version-rolling": True}, 0),
])
def test_configure_result(result, mask):
    assert codec.parse_configure_result(result, 0x1FFFE000) == mask


def test_configure_bad_mask():
    with pytest.raises(ProtocolError):
        codec.parse_configure_result({"version-rolling": True, "version-rolling.mask": "zz"}, 0x1FFFE000)


@pytest.mark.parametrize("error,reason", [
    ([23, "Low difficulty share", None], "Low difficulty share (23)"),
    ([21, "Job not found (=stale)", None], "Job not found (=stale) (21)"),
    ({"code": 22, "message": "Duplicate share"}, "Duplicate share (22)"),
    ("stale-prevblk", "stale-prevblk"),
    (None, "rejected"),
    (42, "42"),
])
def test_error_reasons(error, reason):
    assert codec.error_reason(error) == reason


def test_notify_clean_is_last_element_and_prevhash_swapped():
    params = ["j1", "00000001" + "00" * 28, "01", "02", [], "20000000", "1d00ffff", "5f5e1000", False, "extra", True]
    n = codec.parse_line(json.dumps({"id": None, "method": "mining.notify", "params": params})).body
    assert n.clean is True
    assert n.prevhash[:4] == bytes.fromhex("01000000")
    assert (n.version, n.nbits, n.ntime) == (0x20000000, 0x1D00FFFF, 0x5F5E1000)


def test_server_requests():
    p = codec.parse_line
    assert p('{"id":null,"method":"mining.set_difficulty","params":[16383.75]}').body == codec.SetDifficulty(16383.75)
    assert p('{"id":null,"method":"mining.set_difficulty","params":[0.01]}').body.difficulty == 0.01
    assert p('{"id":null,"method":"mining.set_extranonce","params":["aabb",6]}').body == \
        codec.SetExtranonce(b"\xaa\xbb", 6)
    assert p('{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}').body.mask == 0x1FFFE000
    assert p('{"id":7,"method":"client.reconnect","params":["pool.example",3334,5]}').body == \
        codec.Reconnect("pool.example", 3334, 5.0)
    assert p('{"id":7,"method":"client.reconnect","params":[]}').body == codec.Reconnect(None, None, 0.0)
    assert p('{"id":3,"method":"client.get_version","params":[]}').body == codec.GetVersion()
    assert p('{"id":3,"method":"mining.ping"}').body == codec.Ping()
    assert p('{"id":null,"method":"client.show_message","params":["hello"]}').body == codec.ShowMessage("hello")
    r = p('{"id":9,"method":"mining.frobnicate","params":[]}')
    assert r.id == 9 and r.body == codec.UnknownMethod("mining.frobnicate")


@pytest.mark.parametrize("line,why", [
    ("{nope", "invalid JSON"),
    ("[1,2]", "JSON object"),
    ('{"id":1}', "neither"),
    ('{"result":true,"error":null}', "without an id"),
    ('{"id":1.5,"result":true}', "id must"),
    ('{"id":null,"method":5,"params":[]}', "method"),
    ('{"id":null,"method":"mining.notify","params":{}}', "params must be a list"),
    ('{"id":null,"method":"mining.notify","params":["j","00",  "", "", [], "20000000","1d00ffff","5f5e1000",true]}',
     "prevhash"),
    ('{"id":null,"method":"mining.notify","params":["j","' + "00" * 32 + '","zz","",[],"20000000","1d00ffff","5f5e1000",true]}',
     "coinb1"),
    ('{"id":null,"method":"mining.notify","params":["j","' + "00" * 32 + '","","",["00"],"20000000","1d00ffff","5f5e1000",true]}',
     "merkle_branch"),
    ('{"id":null,"method":"mining.notify","params":["j","' + "00" * 32 + '","","",[],"2000000","1d00ffff","5f5e1000",true]}',
     "version"),
    ('{"id":null,"method":"mining.notify","params":["j","' + "00" * 32 + '","","",[],"20000000","1d00ffff","5f5e1000","yes"]}',
     "clean_jobs"),
    ('{"id":null,"method":"mining.notify","params":[1,"' + "00" * 32 + '","","",[],"20000000","1d00ffff","5f5e1000",true]}',
     "job_id"),
    ('{"id":null,"method":"mining.notify","params":["j"]}', "expected 9"),
    ('{"id":null,"method":"mining.set_difficulty","params":[0]}', "positive"),
    ('{"id":null,"method":"mining.set_difficulty","params":[-1]}', "positive"),
    ('{"id":null,"method":"mining.set_difficulty","params":[NaN]}', "finite"),
    ('{"id":null,"method":"mining.set_difficulty","params":[Infinity]}', "finite"),
    ('{"id":null,"method":"mining.set_difficulty","params":["abc"]}', "number"),
    ('{"id":null,"method":"mining.set_difficulty","params":[true]}', "number"),
    ('{"id":null,"method":"mining.set_difficulty","params":[]}', "missing"),
    ('{"id":null,"method":"mining.set_extranonce","params":["aabb",0]}', "outside 1..16"),
    ('{"id":null,"method":"mining.set_extranonce","params":["aabb",17]}', "outside 1..16"),
    ('{"id":null,"method":"mining.set_extranonce","params":["aab",4]}', "odd-length"),
    ('{"id":1,"method":"client.reconnect","params":["h",70000,0]}', "port"),
    ('{"id":1,"method":"client.reconnect","params":["h",3333,-1]}', "wait"),
])
def test_bad_lines_raise_protocol_error(line, why):
    with pytest.raises(ProtocolError, match=why):
        codec.parse_line(line)


def test_overlong_line_rejected():
    with pytest.raises(ProtocolError, match="exceeds"):
        codec.parse_line(b"{" + b" " * codec.MAX_LINE + b"}")


def test_framer_splits_and_drops_oversize_lines():
    f = codec.LineFramer(limit=100)
    out = f.feed(b'{"a":1}\r\n{"b"')
    assert out == [b'{"a":1}']
    assert f.feed(b':2}\n\n') == [b'{"b":2}']
    out = f.feed(b"x" * 150)
    assert len(out) == 1 and isinstance(out[0], codec.LineTooLong)
    assert f.feed(b"y" * 500) == []               # still inside the dropped line
    assert f.feed(b'yyy\n{"c":3}\n') == [b'{"c":3}']
    big = codec.LineFramer()
    out = big.feed(b"z" * (codec.MAX_LINE + 1) + b'\n{"ok":1}\n')
    assert isinstance(out[0], codec.LineTooLong) and out[1] == b'{"ok":1}'


def test_builders():
    assert codec.request(1, "mining.configure", codec.configure_params(0x1FFFE000)) == (
        b'{"id":1,"method":"mining.configure","params":[["version-rolling"],'
        b'{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}\n')
    assert codec.reply(5, "pong") == b'{"id":5,"result":"pong","error":null}\n'


def test_rolled_share_submits_version_bits():
    v = session_vector()
    n = codec.parse_line(json.dumps(v["lines"][3]["json"])).body
    job = Job(n.job_id, n.prevhash, n.coinb1, n.coinb2, n.merkle_branch, n.version, n.nbits, n.ntime, True,
              bytes.fromhex("08000002"), 4, difficulty=1e-9, version_mask=0x1FFFE000)
    rolled = job.rolled_version(0x00002000)
    c = recheck(job.header(b"\0\0\0\1"), 0, rolled)
    assert c.meets(job.share_target)
    share = Share(job, b"\0\0\0\1", job.ntime, 0, rolled, c.hash)
    assert share.submit_params("w")[-1] == "00002000"
    assert sha256d(job.header(b"\0\0\0\1", job.ntime, 0, rolled)) == share.hash


# -- URLs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("url,expect", [
    ("stratum+tcp://pool.example:3333", ("pool.example", 3333, False)),
    ("stratum+ssl://pool.example:443", ("pool.example", 443, True)),
    ("stratum+tls://[::1]:4333", ("::1", 4333, True)),
    ("127.0.0.1:3333", ("127.0.0.1", 3333, False)),
])
def test_parse_url(url, expect):
    assert parse_url(url) == expect


@pytest.mark.parametrize("url,why", [
    ("http://pool:80", "scheme"), ("stratum+tcp://pool", "no port"), ("stratum+tcp://:3333", "no host"),
    ("stratum+tcp://pool:99999", "(?i)port"), ("", "empty"), ("stratum+tcp://pool:3333/x", "path"),
])
def test_parse_url_errors(url, why):
    with pytest.raises(ConfigError, match=why):
        parse_url(url)


def test_pool_config_hides_password():
    c = PoolConfig("stratum+tcp://u:hunter2@pool.example:3333", "w", "s3cret-pw")
    assert "s3cret-pw" not in repr(c) and "hunter2" not in c.safe_url
    with pytest.raises(ConfigError) as e:
        PoolConfig("ftp://u:hunter2@pool:1", "w")
    assert "hunter2" not in str(e.value)
    with pytest.raises(ConfigError):
        PoolConfig("stratum+tcp://pool:1", "")
