"""The cgminer-compatible API over real loopback TCP sockets."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from fleet_control import FakeControl, device
from miner.fleet import api
from miner.fleet.api import ApiServer, access_for, parse_allow, parse_request, split_addpool
from miner.fleet.curtail import Curtailer
from miner.errors import ConfigError


def query(port: int, data: bytes, close_write: bool = False, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def ask(port: int, data: bytes | str, **kw) -> dict:
    raw = query(port, data.encode() if isinstance(data, str) else data, **kw)
    assert raw.endswith(b"\0") and raw.count(b"\0") == 1, raw[-40:]
    return json.loads(raw[:-1])


@pytest.fixture
def control():
    return FakeControl()


@pytest.fixture
def server(control):
    srv = ApiServer(control, port=0, allow=["W:127.0.0.1"]).start()
    yield srv
    srv.close()


@pytest.fixture
def readonly(control):
    srv = ApiServer(control, port=0).start()   # no --api-allow: loopback may read only
    yield srv
    srv.close()


def test_summary_text_and_json_forms(server, control):
    for req in ("summary", '{"command":"summary"}', "summary|", '{"command": "summary", "parameter": ""}'):
        r = ask(server.port, req)
        st = r["STATUS"][0]
        assert st["STATUS"] == "S" and st["Code"] == 11 and st["Msg"] == "Summary"
        assert set(st) == {"STATUS", "When", "Code", "Msg", "Description"}
        assert abs(st["When"] - time.time()) < 5
        s = r["SUMMARY"][0]
        for key in ("Elapsed", "MHS av", "MHS 5s", "MHS 1m", "MHS 5m", "MHS 15m", "Accepted", "Rejected",
                    "Stale", "Hardware Errors", "Difficulty Accepted", "Difficulty Rejected", "Best Share",
                    "Utility", "Watts", "J/TH", "Paused", "Network Difficulty"):
            assert key in s, key
        assert r["id"] == 1
    snap = control.snapshot()
    assert s["MHS 5s"] == pytest.approx(snap.hashrate["5s"] / 1e6)
    assert s["GHS 5s"] == pytest.approx(snap.hashrate["5s"] / 1e9)
    assert s["Accepted"] == snap.accepted == 21
    assert s["Hardware Errors"] == 4
    assert s["Difficulty Accepted"] == snap.difficulty_accepted
    # Only the ASIC reports watts (18 W); J/TH = 18 / (2.352 TH/s over 5 min)
    assert s["Watts"] == 18.0
    assert s["J/TH"] == pytest.approx(18.0 / (snap.hashrate["5m"] / 1e12), rel=1e-3)
    assert s["Paused"] is False


def test_version_config_pools_devs_edevs_stats(server, control):
    v = ask(server.port, "version")
    assert v["STATUS"][0]["Code"] == 22 and v["VERSION"][0]["API"] == api.API_VERSION
    assert v["VERSION"][0]["CGMiner"] == "0.1.0"

    c = ask(server.port, "config")["CONFIG"][0]
    assert c["ASC Count"] == 1 and c["CPU Count"] == 1 and c["Pool Count"] == 2

    p = ask(server.port, "pools")
    assert p["STATUS"][0]["Msg"] == "2 Pool(s)"
    p0, p1 = p["POOLS"]
    assert p0["POOL"] == 0 and p0["URL"] == "stratum+tcp://127.0.0.1:3333" and p0["Status"] == "Alive"
    assert p0["Stratum Active"] is True and p1["Stratum Active"] is False
    assert p0["User"] == "bc1qexample.worker0" and p0["Accepted"] == 10 and p1["Priority"] == 1
    assert p0["Stratum Difficulty"] == 1024.0 and p0["Has Vmask"] is True

    d = ask(server.port, "devs")
    assert d["STATUS"][0]["Code"] == 9
    asc, cpu = d["DEVS"]
    assert asc["ASC"] == 0 and asc["Name"] == "BM1370" and asc["Temperature"] == 55.5
    assert asc["MHS 5s"] == pytest.approx(1.2e6) and asc["Watts"] == 18.0
    assert asc["J/TH"] == pytest.approx(18.0 / 1.176, rel=1e-3)
    assert asc["Frequency"] == 525.0 and asc["Device"] == "asic0" and asc["Enabled"] == "Y"
    assert cpu["CPU"] == 0 and cpu["Watts"] is None and cpu["J/TH"] is None

    control.devices = (control.devices[0], device(1, kind="cpu", watts=None).__class__(
        **{**device(1, kind="cpu").__dict__, "enabled": False, "status": "disabled"}))
    assert len(ask(server.port, "devs")["DEVS"]) == 2
    e = ask(server.port, "edevs")["DEVS"]
    assert [x["Device"] for x in e] == ["asic0"]

    s = ask(server.port, "stats")
    assert s["STATUS"][0]["Code"] == 70
    assert s["STATS"][1]["ID"] == "ASC0" and s["STATS"][1]["Elapsed"] == 600
    assert any(x["ID"] == "POOL0" for x in s["STATS"])


def test_joined_commands_keyed_by_command(server):
    r = ask(server.port, "summary+pools+devs+summary")
    assert list(r) == ["summary", "pools", "devs", "id"]
    assert r["summary"][0]["STATUS"][0]["Code"] == 11 and "SUMMARY" in r["summary"][0]
    assert r["pools"][0]["POOLS"][0]["POOL"] == 0
    r = ask(server.port, '{"command":"version+bogus+switchpool","parameter":"1"}')
    assert r["version"][0]["STATUS"][0]["STATUS"] == "S"
    assert r["bogus"][0]["STATUS"][0]["Code"] == 14
    assert r["switchpool"][0]["STATUS"][0]["STATUS"] == "E"   # privileged commands do not join


def test_bad_input_gets_error_replies(server, control):
    st = ask(server.port, "nosuchcommand")["STATUS"][0]
    assert (st["STATUS"], st["Code"], st["Msg"]) == ("E", 14, "Invalid command")
    assert ask(server.port, '{"command": "summ', close_write=True)["STATUS"][0]["Code"] == 23
    assert ask(server.port, "{not json}")["STATUS"][0]["Code"] == 23
    assert ask(server.port, "[1,2]\n")["STATUS"][0]["Code"] == 14
    assert ask(server.port, '{"parameter":"1"}')["STATUS"][0]["Code"] == 24
    assert ask(server.port, '{"command":["summary"]}')["STATUS"][0]["Code"] == 24
    assert ask(server.port, '{"command":"switchpool","parameter":{"a":1}}')["STATUS"][0]["Code"] == 23
    assert ask(server.port, b"\xff\xfe\x00")["STATUS"][0]["Code"] == 14
    big = ask(server.port, b"summary|" + b"x" * (api.MAX_REQUEST + 10))
    assert big["STATUS"][0]["STATUS"] == "E" and "too large" in big["STATUS"][0]["Msg"]
    # and the server still answers afterwards
    assert ask(server.port, "version")["STATUS"][0]["STATUS"] == "S"


def test_deeply_nested_json_is_invalid_json_not_a_traceback(server, caplog):
    # About 6 KB of nesting: deeper than Python's JSON parser can recurse (it raised RecursionError,
    # logged a traceback and closed the connection without a reply).
    for deep in ('{"command":' + "[" * 3000 + "]" * 3000 + "}", '{"command":' + "[" * 4000):
        st = ask(server.port, deep, close_write=True)["STATUS"][0]
        assert (st["STATUS"], st["Code"], st["Msg"]) == ("E", 23, "Invalid JSON")
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    assert ask(server.port, "version")["STATUS"][0]["STATUS"] == "S"


def test_unauthorized_privileged_command_refused(readonly, control):
    for cmd in ("switchpool|1", "addpool|stratum+tcp://h:1,u,p", "enablepool|0", "disablepool|0",
                "removepool|1", "pause", "resume", "quit", "restart", "privileged"):
        st = ask(readonly.port, cmd)["STATUS"][0]
        name = cmd.split("|")[0]
        assert st["STATUS"] == "E" and st["Code"] == 45
        assert st["Msg"] == f"Access denied to '{name}' command"
    assert control.calls == []
    assert not control.quit_called.is_set()
    # report commands still work for a read-only client
    assert ask(readonly.port, "summary")["STATUS"][0]["STATUS"] == "S"


def test_privileged_pool_commands(server, control, caplog):
    assert ask(server.port, "privileged")["STATUS"][0]["Code"] == 46
    st = ask(server.port, "switchpool|1")["STATUS"][0]
    assert st["STATUS"] == "S" and st["Code"] == 27 and st["Msg"] == "Switching to pool 1:'stratum+tcp://127.0.0.1:3334'"
    assert ("switch_pool", 1) in control.calls
    assert ask(server.port, "pools")["POOLS"][1]["Stratum Active"] is True

    assert ask(server.port, '{"command":"disablepool","parameter":0}')["STATUS"][0]["Code"] == 48
    assert ask(server.port, "enablepool|0")["STATUS"][0]["Code"] == 47
    assert ("disable_pool", 0) in control.calls and ("enable_pool", 0) in control.calls

    assert ask(server.port, "switchpool")["STATUS"][0]["Code"] == 25
    bad = ask(server.port, "switchpool|7")["STATUS"][0]
    assert bad["Code"] == 26 and bad["Msg"] == "Invalid pool id 7 - range is 0 - 1"
    assert ask(server.port, "switchpool|x")["STATUS"][0]["Code"] == 26

    with caplog.at_level(logging.DEBUG):
        st = ask(server.port, r"addpool|stratum+tcp://10.0.0.1:3333,worker.1,s3cr\,et")["STATUS"][0]
    assert st["Code"] == 55 and st["Msg"] == "Added pool 2: 'stratum+tcp://10.0.0.1:3333'"
    assert ("add_pool", "stratum+tcp://10.0.0.1:3333", "worker.1", "s3cr,et") in control.calls
    assert "s3cr" not in caplog.text
    assert ask(server.port, "addpool")["STATUS"][0]["Code"] == 52
    st = ask(server.port, "addpool|onlyurl,hunter2")["STATUS"][0]
    assert st["Code"] == 53 and "hunter2" not in st["Msg"]
    # an engine refusal becomes an error status, not a dead connection
    st = ask(server.port, "addpool|nourl,u,p")["STATUS"][0]
    assert st["STATUS"] == "E" and "bad pool URL" in st["Msg"]

    assert ask(server.port, "removepool|2")["STATUS"][0]["Code"] == 68
    st = ask(server.port, "removepool|1")["STATUS"][0]   # the active one
    assert st["STATUS"] == "E" and "active" in st["Msg"]


def test_pause_resume_reach_engine_quickly(server, control):
    t0 = time.monotonic()
    assert ask(server.port, "pause")["STATUS"][0]["Code"] == 200
    assert control.snapshot().paused
    s = ask(server.port, "summary")["SUMMARY"][0]
    assert s["Paused"] is True and "api" in s["Pause Reason"]
    assert ask(server.port, "resume")["STATUS"][0]["Code"] == 201
    assert not control.snapshot().paused
    assert time.monotonic() - t0 < 1.0


def test_api_resume_keeps_other_pause_reasons(control):
    cur = Curtailer(control)
    srv = ApiServer(control, port=0, allow=["W:127.0.0.0/8"], curtailer=cur).start()
    try:
        cur.hold("schedule", "window 22:00-06:00 local time")
        ask(srv.port, "pause")
        st = ask(srv.port, "resume")["STATUS"][0]
        assert st["STATUS"] == "I" and st["Code"] == 202 and "schedule" in st["Msg"]
        assert control.snapshot().paused
        cur.release("schedule")
        assert not control.snapshot().paused
    finally:
        srv.close()


def test_quit_and_restart_reply_then_act(server, control):
    assert ask(server.port, "quit") == {"STATUS": "BYE"}
    assert control.quit_called.wait(2)
    assert ask(server.port, '{"command":"restart"}') == {"STATUS": "RESTART"}
    assert control.restart_called.wait(2)


def test_connection_limit_and_slow_clients(server):
    # MAX_CONNECTIONS clients that connect and send nothing hold every slot...
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(api.MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        r = ask(server.port, "summary")
        assert r["STATUS"][0]["STATUS"] == "E" and r["STATUS"][0]["Code"] == api.MSG_BUSY
    finally:
        for s in idle:
            s.close()
    # ...and are dropped after the request timeout; then service is back.
    deadline = time.monotonic() + api.REQUEST_TIMEOUT_S + 3
    while time.monotonic() < deadline:
        r = ask(server.port, "summary")
        if r["STATUS"][0]["STATUS"] == "S":
            break
        time.sleep(0.2)
    assert r["STATUS"][0]["STATUS"] == "S"


def test_many_parallel_clients_all_answered(server):
    results, errors = [], []

    def one():
        try:
            results.append(ask(server.port, "summary+pools"))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(results) == 40
    ok = [r for r in results if "summary" in r]
    busy = [r for r in results if r.get("STATUS", [{}])[0].get("Code") == api.MSG_BUSY]
    assert len(ok) + len(busy) == 40 and ok


def test_snapshot_failure_is_an_error_reply(server, control, monkeypatch):
    def boom():
        raise RuntimeError("engine hiccup")
    monkeypatch.setattr(control, "snapshot", boom)
    st = ask(server.port, "summary")["STATUS"][0]
    assert st["STATUS"] == "E" and "RuntimeError" in st["Msg"]


def test_non_finite_values_stay_valid_json(server, control):
    control.devices = (device(0, temp=float("nan"), watts=float("inf")),)
    raw = query(server.port, b"devs")
    assert b"NaN" not in raw and b"Infinity" not in raw
    d = json.loads(raw[:-1])["DEVS"][0]
    assert d["Temperature"] is None and d["Watts"] is None


def test_access_rules():
    rules = parse_allow(["W:127.0.0.1,192.168.1.0/24", "w:10.0.0.0/8", "::1"])
    assert access_for("127.0.0.1", rules) == "write"
    assert access_for("127.0.0.2", rules) == "read"            # loopback reads by default
    assert access_for("192.168.1.77", rules) == "read"
    assert access_for("10.1.2.3", rules) == "write"
    assert access_for("8.8.8.8", rules) is None
    assert access_for("::ffff:10.1.2.3", rules) == "write"     # IPv4-mapped
    assert access_for("::1", []) == "read"
    assert access_for("garbage", rules) is None
    with pytest.raises(ConfigError, match="--api-allow"):
        parse_allow(["W:300.1.1.1"])


def test_parse_request_and_addpool_escapes():
    r = parse_request(b"switchpool|1\n")
    assert (r.command, r.parameter) == ("switchpool", "1")
    r = parse_request(b'{"command":"switchpool","parameter":2}')
    assert (r.command, r.parameter) == ("switchpool", "2")
    assert parse_request(b'{"command":"switchpool","parameter":1.0}').parameter == "1"
    assert parse_request(b'{"command":"x","parameter":true}').error["Code"] == 23
    assert split_addpool(r"a\,b,c\\,d") == ["a,b", "c\\", "d"]


def test_bind_conflict_is_a_config_error(server, control):
    with pytest.raises(ConfigError, match="cannot listen"):
        ApiServer(control, port=server.port).start()


def test_silent_client_is_dropped_after_timeout(server, monkeypatch):
    monkeypatch.setattr(api, "REQUEST_TIMEOUT_S", 0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""          # closed by the server, no reply to nothing
        assert 0.4 < time.monotonic() - t0 < 3.0
    assert ask(server.port, "version")["STATUS"][0]["STATUS"] == "S"
