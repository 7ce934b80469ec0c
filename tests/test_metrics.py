"""Prometheus /metrics scraped over real HTTP and parsed with prometheus_client's own parser."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from fleet_control import FakeControl, device
from miner.fleet.curtail import Curtailer
from miner.errors import ConfigError
from miner.fleet.metrics import MetricsServer


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def value(samples, name, **labels):
    hits = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, samples.get(name))
    return hits[0]


@pytest.fixture
def control():
    return FakeControl()


def test_scrape_has_every_required_metric(control):
    cur = Curtailer(control)
    srv = MetricsServer(control, port=0, facts=cur.status).start()
    try:
        m = scrape(srv.port)
        snap = control.snapshot()
        # hashrate per device
        assert value(m, "miner_device_hashrate_hashes_per_second", device="asic0", window="5s") == 1.2e12
        assert value(m, "miner_device_hashrate_hashes_per_second", device="cpu1", window="15m") == pytest.approx(
            1.2e12 * 0.97)
        assert value(m, "miner_hashrate_hashes_per_second", window="5s") == snap.hashrate["5s"]
        # shares by pool and result (counters get the _total suffix)
        assert value(m, "miner_shares_total", pool="0", result="accepted") == 10
        assert value(m, "miner_shares_total", pool="1", result="accepted") == 11
        assert value(m, "miner_shares_total", pool="0", result="rejected") == 1
        assert value(m, "miner_shares_total", pool="0", result="stale") == 1
        assert value(m, "miner_pool_rejects_total", pool="0", reason="low difficulty") == 1
        # current difficulty: pool share difficulty and network difficulty
        assert value(m, "miner_pool_difficulty", pool="0") == 1024.0
        assert value(m, "miner_network_difficulty") == 1.5e14
        # pool connection state
        assert value(m, "miner_pool_up", pool="0") == 1.0
        assert value(m, "miner_pool_state", pool="0", state="alive") == 1.0
        assert value(m, "miner_pool_state", pool="0", state="dead") == 0.0
        assert value(m, "miner_pool_active", pool="0") == 1.0
        assert value(m, "miner_pool_active", pool="1") == 0.0
        # hardware errors
        assert value(m, "miner_device_hardware_errors_total", device="asic0") == 2
        assert value(m, "miner_hardware_errors_total") == 4
        # watts and temperature where known, J/TH from them
        assert value(m, "miner_device_watts", device="asic0") == 18.0
        assert not [s for s in m["miner_device_watts"] if s.labels["device"] == "cpu1"]
        assert value(m, "miner_device_temperature_celsius", device="asic0") == 55.5
        assert value(m, "miner_device_joules_per_terahash", device="asic0") == pytest.approx(18.0 / 1.176)
        assert value(m, "miner_watts") == 18.0
        assert value(m, "miner_joules_per_terahash") == pytest.approx(18.0 / (snap.hashrate["5m"] / 1e12))
        # pause state and reason
        assert value(m, "miner_paused") == 0.0
        assert "miner_pause_reason" not in m
        assert value(m, "miner_info", version="0.1.0") == 1.0
    finally:
        srv.close()


def test_pause_state_and_reason_follow_curtailment(control):
    cur = Curtailer(control)
    srv = MetricsServer(control, port=0, facts=cur.status).start()
    try:
        cur.hold("energy-price", "energy price above 0.3/kWh")
        m = scrape(srv.port)
        assert value(m, "miner_paused") == 1.0
        assert value(m, "miner_pause_reason", source="energy-price") == 1.0
        cur.release("energy-price", "price fell")
        m = scrape(srv.port)
        assert value(m, "miner_paused") == 0.0
        assert "miner_pause_reason" not in m
    finally:
        srv.close()


def test_values_change_between_scrapes_and_registry_is_private(control):
    srv = MetricsServer(control, port=0).start()
    try:
        assert value(scrape(srv.port), "miner_device_watts", device="asic0") == 18.0
        control.devices = (device(0, watts=25.0, temp=None, hw=9),)
        m = scrape(srv.port)
        assert value(m, "miner_device_watts", device="asic0") == 25.0
        assert value(m, "miner_device_hardware_errors_total", device="asic0") == 9
        assert "miner_device_temperature_celsius" not in m
        assert REGISTRY.get_sample_value("miner_paused") is None   # nothing leaked into the global registry
    finally:
        srv.close()


def test_unknown_network_difficulty_and_watts_are_absent(control):
    c = FakeControl(devices=[device(0, kind="cpu", watts=None, temp=None)], network_difficulty=None)
    srv = MetricsServer(c, port=0).start()
    try:
        m = scrape(srv.port)
        assert "miner_network_difficulty" not in m
        assert "miner_watts" not in m and "miner_joules_per_terahash" not in m
    finally:
        srv.close()


def test_port_in_use_is_a_config_error(control):
    srv = MetricsServer(control, port=0).start()
    try:
        with pytest.raises(ConfigError, match="metrics cannot listen"):
            MetricsServer(control, port=srv.port).start()
    finally:
        srv.close()
    srv.close()  # idempotent


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_metrics_only_on_metrics_path(control):
    srv = MetricsServer(control, port=0).start()
    try:
        assert http_status(srv.port, "/metrics") == 200
        assert http_status(srv.port, "/metrics?name[]=miner_paused") == 200
        for path in ("/", "/favicon.ico", "/metricsx", "/metrics/", "/api/metrics"):
            assert http_status(srv.port, path) == 404, path
    finally:
        srv.close()


def _closed_by_server_within(sock: socket.socket, limit: float, trickle: bool) -> float:
    """Seconds until the server closed ``sock`` (sending one header byte every 0.5 s if trickle)."""
    import select
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if trickle:
            try:
                sock.sendall(b"X")
            except OSError:
                return time.monotonic() - t0
        if select.select([sock], [], [], 0.5)[0]:
            try:
                if sock.recv(65536) == b"":
                    return time.monotonic() - t0
            except OSError:
                return time.monotonic() - t0
    raise AssertionError(f"connection still open after {limit} s")


def test_idle_and_trickling_clients_are_dropped_and_connections_bounded(control):
    from miner.fleet import metrics as m
    srv = MetricsServer(control, port=0).start()
    try:
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        assert _closed_by_server_within(idle, m.REQUEST_TIMEOUT_S + 3, trickle=False) >= m.REQUEST_TIMEOUT_S - 0.5
        idle.close()
        trickle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        trickle.sendall(b"GET /metrics HTTP/1.0\r\n")     # then a header one byte at a time
        _closed_by_server_within(trickle, m.REQUEST_TIMEOUT_S + 3, trickle=True)
        trickle.close()
        # More clients than slots: the extra one gets 503 at once; scrapes work again once the idle ones go.
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(m.MAX_CONNECTIONS)]
        time.sleep(0.3)
        assert http_status(srv.port, "/metrics") == 503
        time.sleep(m.REQUEST_TIMEOUT_S + 1)
        assert http_status(srv.port, "/metrics") == 200
        for s in held:
            s.close()
    finally:
        srv.close()
