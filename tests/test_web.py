"""The web dashboard's REST API over real HTTP (aiohttp), on a MinerControl with real snapshot
dataclasses, the real Curtailer, ShareLog and HistoryRing; and the same control read through the
cgminer API and /metrics, so the three views are checked against each other."""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from fleet_control import FakeControl, api_ask

pytest.importorskip("aiohttp", reason="the web tests need aiohttp (pip install '.[test]')")

from miner.engine.stats import HistoryRing, ShareLog  # noqa: E402
from miner.errors import ConfigError  # noqa: E402
from miner.fleet import web  # noqa: E402
from miner.fleet.api import ApiServer  # noqa: E402
from miner.fleet.curtail import Curtailer  # noqa: E402
from miner.fleet.metrics import MetricsServer  # noqa: E402

TOKEN = "t0ken-Zq8"


def request(port, method, path, body=None, headers=None, raw_body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    ctype = r.getheader("Content-Type", "")
    return r.status, dict(r.getheaders()), (json.loads(text) if "json" in ctype else text)


@pytest.fixture
def control():
    c = FakeControl()
    c.share_log, c.history_ring = ShareLog(), HistoryRing()
    # Share events name both quantities: target_difficulty (the job's) and share_difficulty (achieved).
    c.share_log.add_event({"result": "accepted", "device": "asic0", "pool": 0, "job_id": "j1",
                           "share_difficulty": 2048.5, "target_difficulty": 1024.0, "reason": None}, now=1000.0)
    c.share_log.add_event({"result": "rejected", "device": "cpu1", "pool": 0, "job_id": "j2",
                           "share_difficulty": 1500.0, "target_difficulty": 1024.0, "reason": "low difficulty"},
                          now=1001.0)
    c.share_log.add_event({"result": "stale", "device": "asic0", "pool": 0, "job_id": "j0",
                           "target_difficulty": 1024.0, "share_difficulty": 4096.0,
                           "reason": "job replaced by a clean job"}, now=1002.0)
    for i, hashes in enumerate((0, 5e12, 11e12)):
        c.history_ring.sample(hashes, now=100.0 + 5 * i, wall=2000.0 + 5 * i)
    return c


@pytest.fixture
def server(control):
    curtailer = Curtailer(control)
    srv = web.WebServer(control, curtailer, port=0).start()
    yield srv
    srv.close()


@pytest.fixture
def token_server(control):
    srv = web.WebServer(control, Curtailer(control), port=0, token=TOKEN).start()
    yield srv
    srv.close()


def post(port, path, body=None, headers=None):
    return request(port, "POST", path, {} if body is None else body, headers)


# -- reads ------------------------------------------------------------------------------------
def test_summary_has_windows_counts_best_share_and_pause_state(server, control):
    st, h, s = request(server.port, "GET", "/api/v1/summary")
    assert st == 200 and h["Content-Type"].startswith("application/json")
    snap = control.snapshot()
    assert set(s["hashrate"]) == {"5s", "1m", "5m", "15m", "av"}
    assert s["hashrate"]["1m"] == pytest.approx(snap.hashrate["1m"])
    assert (s["accepted"], s["rejected"], s["stale"]) == (snap.accepted, snap.rejected, snap.stale) == (21, 2, 2)
    assert s["best_share"] == snap.best_share and s["paused"] is False and s["pause_reasons"] == []
    assert s["active_pool"] == 0 and s["watts"] == 18.0 and s["j_per_th"] is not None
    assert "no-store" in h["Cache-Control"] and h["X-Content-Type-Options"] == "nosniff"


def test_devices_pools_shares_history(server, control):
    _, _, d = request(server.port, "GET", "/api/v1/devices")
    assert [x["name"] for x in d["devices"]] == ["asic0", "cpu1"]
    a = d["devices"][0]
    assert (a["kind"], a["model"], a["temperature_c"], a["watts"], a["hw_errors"]) == ("asic", "BM1370", 55.5, 18.0, 2)
    assert a["j_per_th"] == pytest.approx(18.0 / 1.2, rel=0.05) and d["devices"][1]["watts"] is None

    _, _, p = request(server.port, "GET", "/api/v1/pools")
    assert [x["id"] for x in p["pools"]] == [0, 1] and p["active"] == 0
    assert p["pools"][0]["active"] and p["pools"][0]["difficulty"] == 1024.0
    assert p["pools"][0]["last_share_time"] is not None and "password" not in json.dumps(p)

    _, _, s = request(server.port, "GET", "/api/v1/shares")
    got = [(x["result"], x["device"], x["target_difficulty"], x["share_difficulty"], x["reason"]) for x in s["shares"]]
    assert got == [("stale", "asic0", 1024.0, 4096.0, "job replaced by a clean job"),     # newest first
                   ("rejected", "cpu1", 1024.0, 1500.0, "low difficulty"),
                   ("accepted", "asic0", 1024.0, 2048.5, None)]

    _, _, hist = request(server.port, "GET", "/api/v1/history")
    assert hist["interval_s"] == 5.0
    assert hist["points"] == [[2005.0, 1e12], [2010.0, 1.2e12]]


def test_share_log_keeps_the_last_50_and_history_one_hour():
    log = ShareLog()
    for i in range(120):
        log.add_event({"result": "accepted", "device": "d", "share_difficulty": float(i), "target_difficulty": 1.0})
    items = log.items()
    assert len(items) == 50 and log.count == 120 and items[-1].share_difficulty == 119.0
    ring = HistoryRing()
    for i in range(800):
        ring.sample(i * 10.0, now=float(i * 5), wall=float(i * 5))
    pts = ring.points()
    assert len(pts) == 720 and pts[-1] == (3995.0, 2.0) and pts[0][0] == 3995.0 - 719 * 5


def test_the_three_views_agree(server, control):
    """The page's JSON, the cgminer API and /metrics read one snapshot source: same counts."""
    api = ApiServer(control, port=0).start()
    metrics = MetricsServer(control, port=0).start()
    try:
        _, _, s = request(server.port, "GET", "/api/v1/summary")
        cg = api_ask(api.port, "summary")["SUMMARY"][0]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=10).read().decode()
        prom = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                if ln and not ln.startswith("#")}
        assert s["accepted"] == cg["Accepted"] == sum(v for k, v in prom.items()
                                                      if k.startswith("miner_shares_total") and 'result="accepted"' in k)
        assert s["rejected"] == cg["Rejected"] and s["hw_errors"] == cg["Hardware Errors"]
        assert int(s["best_share"]) == cg["Best Share"] == int(prom["miner_best_share_difficulty"])
        _, _, info = request(server.port, "GET", "/api/system/info")
        assert info["sharesAccepted"] == s["accepted"] and info["sharesRejected"] == s["rejected"]
    finally:
        api.close()
        metrics.close()


def test_events_stream_state_objects(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/v1/events")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    events, data = [], []
    t0 = time.monotonic()
    while len(events) < 2 and time.monotonic() - t0 < 10:
        line = r.fp.readline().decode().rstrip("\n")
        if line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            events.append(json.loads("".join(data)))
            data = []
    conn.close()
    assert len(events) == 2
    st = events[-1]
    assert set(st) >= {"summary", "devices", "pools", "shares", "history_last"}
    assert st["summary"]["accepted"] == 21 and st["history_last"] == [2010.0, 1.2e12] and st["auth"] is False


def test_page_and_assets_are_self_contained(server):
    st, h, html = request(server.port, "GET", "/")
    assert st == 200 and h["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in h["Content-Security-Policy"] and h["X-Frame-Options"] == "DENY"
    for asset, ctype in (("/app.js", "text/javascript"), ("/app.css", "text/css")):
        st, h, body = request(server.port, "GET", asset)
        assert st == 200 and h["Content-Type"].startswith(ctype) and len(body) > 1000
        assert "http://" not in body and "https://" not in body     # no CDN, no external font
    assert "https://" not in html and "http://" not in html


# -- controls -----------------------------------------------------------------------------------
def test_pause_and_resume_go_through_the_curtailer(server, control):
    st, _, r = post(server.port, "/api/v1/pause")
    assert st == 200 and r["paused"] is True
    assert r["pause_reasons"] == [{"source": "web", "label": "web", "reason": "paused over HTTP"}]
    assert control.calls[-1] == ("pause", "web: paused over HTTP")
    assert request(server.port, "GET", "/api/v1/summary")[2]["paused"] is True
    server.curtailer.hold("schedule", "window 22:00-06:00 local time")
    st, _, r = post(server.port, "/api/v1/resume")
    assert st == 200 and r["result"] == "still paused" and r["paused"] is True
    assert [x["source"] for x in r["pause_reasons"]] == ["schedule"]
    server.curtailer.release("schedule")
    assert request(server.port, "GET", "/api/v1/summary")[2]["paused"] is False


def test_resume_also_clears_an_api_pause(server, control):
    server.curtailer.hold("api", "paused by API command")
    st, _, r = post(server.port, "/api/v1/resume")
    assert st == 200 and r["result"] == "resumed" and not control.paused


def test_switch_pool_and_bad_ids(server, control):
    st, _, r = post(server.port, "/api/v1/pools/1/switch")
    assert st == 200 and r["pool"] == 1 and ("switch_pool", 1) in control.calls
    assert request(server.port, "GET", "/api/v1/pools")[2]["active"] == 1
    st, _, r = post(server.port, "/api/v1/pools/abc/switch")
    assert st == 400 and "not a number" in r["error"]
    st, _, r = post(server.port, "/api/v1/pools/99/switch")
    assert st == 404 and "no pool 99" in r["error"]


def test_device_disable_enable_and_unknown_device(server, control):
    st, _, r = post(server.port, "/api/v1/devices/cpu1/disable")
    assert st == 200 and ("disable_device", "cpu1") in control.calls
    dev = request(server.port, "GET", "/api/v1/devices")[2]["devices"][1]
    assert dev["enabled"] is False and dev["status"] == "disabled"
    st, _, _ = post(server.port, "/api/v1/devices/cpu1/enable")
    assert st == 200 and request(server.port, "GET", "/api/v1/devices")[2]["devices"][1]["enabled"] is True
    st, _, r = post(server.port, "/api/v1/devices/gpu7/enable")
    assert st == 404 and "no device" in r["error"]
    assert request(server.port, "POST", "/api/v1/devices/cpu1/explode", {})[0] == 404


def test_axeos_pause_resume_from_a_tool_without_a_body(server, control):
    st, _, r = request(server.port, "POST", "/api/system/pause")
    assert st == 200 and control.paused
    st, _, r = request(server.port, "POST", "/api/system/resume")
    assert st == 200 and not control.paused
    # ... but not from a browser page: that carries an Origin.
    st, _, _ = request(server.port, "POST", "/api/system/pause", headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert st == 415 and not control.paused


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_paths_and_methods(server):
    st, _, r = request(server.port, "GET", "/api/v1/nothing")
    assert st == 404 and r == {"error": "no such path: /api/v1/nothing", "status": 404}
    st, h, r = request(server.port, "GET", "/api/v1/pause")
    assert st == 405 and "POST" in h["Allow"] and "error" in r
    assert request(server.port, "DELETE", "/api/v1/summary")[0] == 405


def test_bad_json_and_bodies(server, control):
    p = server.port
    st, _, r = request(p, "POST", "/api/v1/pause", raw_body=b"{nope", headers={"Content-Type": "application/json"})
    assert st == 400 and r["error"] == "body is not valid JSON"
    st, _, r = request(p, "POST", "/api/v1/pause", raw_body=b"[1,2]", headers={"Content-Type": "application/json"})
    assert st == 400 and r["error"] == "body must be a JSON object"
    st, _, r = request(p, "POST", "/api/v1/pause", raw_body=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert st == 400
    st, _, r = request(p, "POST", "/api/v1/pause", raw_body=b"{" + b" " * (web.MAX_BODY + 10) + b"}",
                       headers={"Content-Type": "application/json"})
    assert st == 413 and "over" in r["error"]
    assert not control.paused


def test_cross_site_posts_are_refused(server, control):
    p = server.port
    # A form on another site: urlencoded (or text/plain) body, cross-site Origin.
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}
    assert request(p, "POST", "/api/v1/pause", raw_body=b"a=1", headers=form)[0] == 403
    assert request(p, "POST", "/api/v1/pause", raw_body=b"a=1",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert request(p, "POST", "/api/v1/pause", raw_body=b"{}", headers={"Content-Type": "text/plain"})[0] == 415
    assert post(p, "/api/v1/pause", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert post(p, "/api/v1/pause", headers={"Origin": "null"})[0] == 403
    # A page that rebinds its own DNS name to 127.0.0.1 sends its name as Host.
    assert request(p, "GET", "/api/v1/summary", headers={"Host": "evil.example"})[0] == 421
    assert not control.paused
    # Same origin from the page itself works.
    assert post(p, "/api/v1/pause", headers={"Origin": f"http://127.0.0.1:{p}"})[0] == 200


def test_token_required_for_controls(token_server, control):
    p = token_server.port
    assert request(p, "GET", "/api/v1/summary")[0] == 200          # reading needs no token
    st, h, r = post(p, "/api/v1/pause")
    assert st == 401 and "token" in r["error"] and "Bearer" in h["WWW-Authenticate"]
    st, _, r = post(p, "/api/v1/pause", headers={"Authorization": "Bearer wrong"})
    assert st == 403 and r["error"] == "wrong token"
    assert post(p, "/api/v1/pause", headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert request(p, "POST", "/api/system/pause")[0] == 401
    assert not control.paused
    st, _, r = post(p, "/api/v1/pause", headers={"Authorization": f"Bearer {TOKEN}"})
    assert st == 200 and control.paused
    st, _, _ = request(p, "POST", "/api/system/resume", headers={"Authorization": f"Bearer {TOKEN}"})
    assert st == 200 and not control.paused


def test_non_loopback_bind_needs_a_token(control, monkeypatch):
    with pytest.raises(ConfigError, match="--web-token"):
        web.WebServer(control, bind="0.0.0.0", port=0)
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    srv = web.start(control, argparse.Namespace(web_port=0, web_bind="0.0.0.0", web_token=None), None)
    try:
        assert srv.token == TOKEN and srv.bind == "0.0.0.0"
        assert post(srv.port, "/api/v1/pause")[0] == 401
        assert request(srv.port, "GET", "/api/v1/summary", headers={"Host": "miner.lan"})[0] == 200
    finally:
        srv.close()


def test_limits_headers_connections_idle(control, monkeypatch):
    monkeypatch.setattr(web, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(web, "IDLE_S", 1.0)
    srv = web.WebServer(control, port=0).start()
    try:
        st, _, _ = request(srv.port, "GET", "/api/v1/summary", headers={"X-Big": "x" * (web.MAX_FIELD + 100)})
        assert st in (400, 431)
        st, _, _ = request(srv.port, "GET", "/api/v1/summary", headers={f"X-H{i}": "1" for i in range(web.MAX_HEADERS + 5)})
        assert st in (400, 431)
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(4)]
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as extra:
            extra.sendall(b"GET /api/v1/summary HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert extra.recv(4096).startswith(b"HTTP/1.1 503")
        # The held connections never finish a request: the watchdog closes them.
        for s in held:
            s.sendall(b"GET /api/v1/summary HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        for s in held:
            s.settimeout(8)
            assert s.recv(4096) == b""
            s.close()
        assert time.monotonic() - t0 < 6
        assert request(srv.port, "GET", "/api/v1/summary")[0] == 200
    finally:
        srv.close()


def test_wiring_starts_and_closes_the_web_server(control):
    from miner.fleet import wiring
    parser = argparse.ArgumentParser()
    wiring.add_arguments(parser)
    args = parser.parse_args(["--web-port", "0"])
    handle = wiring.start(control, args)
    try:
        assert handle.web_port and handle.curtailer is not None
        assert post(handle.web_port, "/api/v1/pause")[0] == 200
        assert "web" in handle.curtailer.reasons()
    finally:
        handle.close()
        handle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", handle.web_port), timeout=2).close()


def test_without_aiohttp_one_line_says_what_to_install():
    code = ("import sys; sys.modules['aiohttp'] = None\n"
            "from miner.cli import main\n"
            "sys.exit(main(['--benchmark', '--time-limit', '5', '--web-port', '0']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert lines == ["miner: error: the web dashboard needs aiohttp: pip install 'miner[web]'"], r.stderr
    assert "Traceback" not in r.stderr


# -- AxeOS compatibility ------------------------------------------------------------------------
def test_axeos_system_info_matches_the_recorded_reply():
    """Every AxeOS field we send has AxeOS's name and JSON type (tests/vectors/axeos_system_info.json)."""
    from pathlib import Path
    vec = json.loads((Path(__file__).parent / "vectors" / "axeos_system_info.json").read_text())
    kinds = {"number": (int, float), "string": (str,)}
    for name, kind in vec["fields"].items():   # the vector is self-consistent
        assert isinstance(vec["reply"][name], kinds[kind]) and not isinstance(vec["reply"][name], bool), name
    c = FakeControl()
    srv = web.WebServer(c, port=0).start()
    try:
        _, _, info = request(srv.port, "GET", "/api/system/info")
    finally:
        srv.close()
    claimed = {"hashRate", "power", "temp", "sharesAccepted", "sharesRejected", "bestDiff", "bestSessionDiff",
               "uptimeSeconds", "stratumURL", "stratumPort", "stratumUser", "fallbackStratumURL",
               "fallbackStratumPort", "fallbackStratumUser", "stratumDiff", "isUsingFallbackStratum", "version",
               "hostname", "ASICModel", "frequency"}
    assert set(info) == claimed
    for name, value in info.items():
        assert name in vec["fields"], f"{name} is not an AxeOS field"
        assert isinstance(value, kinds[vec["fields"][name]]) and not isinstance(value, bool), (name, value)
    snap = c.snapshot()
    assert info["hashRate"] == pytest.approx(snap.hashrate["1m"] / 1e9)       # AxeOS reports GH/s
    assert (info["stratumURL"], info["stratumPort"], info["stratumUser"]) == ("127.0.0.1", 3333, "bc1qexample.worker0")
    assert info["fallbackStratumPort"] == 3334 and info["isUsingFallbackStratum"] == 0
    assert info["power"] == 18.0 and info["temp"] == 55.5 and info["bestDiff"] == "123k"


def test_toml_keys_and_the_non_loopback_refusal_at_the_command_line(tmp_path):
    from miner.cli import command
    cfg = tmp_path / "farm.toml"
    cfg.write_text('web-port = 8181\nweb-bind = "0.0.0.0"\nweb-token = "abc"\n')
    args = command.parse_args(["-c", str(cfg)])
    assert (args.web_port, args.web_bind, args.web_token) == (8181, "0.0.0.0", "abc")
    # Beyond loopback without a token: the miner refuses to start, with one line and exit code 2.
    r = subprocess.run([sys.executable, "-m", "miner", "--benchmark", "--time-limit", "5", "--web-port", "0",
                        "--web-bind", "0.0.0.0"], capture_output=True, text=True, timeout=60, cwd="/",
                       env={k: v for k, v in __import__("os").environ.items() if k != web.TOKEN_ENV})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(err) == 1 and "--web-token" in err[0], r.stderr
