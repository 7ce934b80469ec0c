"""fleet.add_arguments / fleet.start: flags, what gets started, close()."""
from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
import urllib.request

import pytest

from fleet_control import FakeControl
from miner.fleet import wiring as fleet
from miner.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    fleet.add_arguments(p)
    return p.parse_args(list(argv))


def test_nothing_started_when_nothing_asked():
    before = threading.active_count()
    h = fleet.start(FakeControl(), parse())
    assert h.api is None and h.metrics is None and h.curtailer is None
    assert h.api_port is None and h.metrics_port is None
    assert threading.active_count() == before
    h.close()
    h.close()


def test_defaults_and_dest_names():
    a = parse()
    assert a.api_listen is False and a.api_port is None and a.api_bind is None and a.api_allow is None
    assert a.metrics_port is None and a.metrics_bind == "127.0.0.1"
    assert a.pause_window is None and a.price_interval == 300.0 and a.profit_pause is False
    a = parse("--api-allow", "W:127.0.0.1", "--api-allow", "10.0.0.0/8", "--pause-window", "22:00-06:00",
              "--pause-window", "12:00-13:00", "--device-watts", "cpu=65")
    assert a.api_allow == ["W:127.0.0.1", "10.0.0.0/8"]
    assert a.pause_window == ["22:00-06:00", "12:00-13:00"] and a.device_watts == ["cpu=65"]


def test_abbreviations_off_so_subcommand_flags_pass_through():
    p = argparse.ArgumentParser()
    fleet.add_arguments(p)
    sub = p.add_subparsers(dest="command")
    sp = sub.add_parser("profit")
    sp.add_argument("--price", type=float)
    assert p.parse_args(["profit", "--price", "85000"]).price == 85000.0


def test_start_api_metrics_and_schedule_then_close():
    c = FakeControl()
    h = fleet.start(c, parse("--api-port", "0", "--api-allow", "W:127.0.0.1", "--metrics-port", "0",
                             "--pause-window", "00:00-24:00"))
    try:
        assert h.api.bind == "127.0.0.1" and h.metrics.bind == "127.0.0.1"
        with socket.create_connection(("127.0.0.1", h.api_port), timeout=5) as s:
            s.sendall(b"summary")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        assert json.loads(raw[:-1])["SUMMARY"][0]["MHS 5s"] > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{h.metrics_port}/metrics", timeout=5) as r:
            assert b"miner_paused" in r.read()
        # the all-day window pauses through the same curtailer the API uses
        for _ in range(100):
            if c.snapshot().paused:
                break
            threading.Event().wait(0.02)
        assert c.snapshot().pause_reason == "schedule: window 00:00-24:00 local time"
    finally:
        h.close()
    h.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", h.api_port), timeout=1).close()


def test_api_listen_alone_uses_port_4028_on_loopback(monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, control, bind, port, allow, curtailer):
            seen.update(bind=bind, port=port, allow=allow)
            self.port = port

        def start(self):
            return self

        def close(self):
            pass
    import miner.fleet.api
    monkeypatch.setattr(miner.fleet.api, "ApiServer", Recorder)
    fleet.start(FakeControl(), parse("--api-listen")).close()
    assert seen == {"bind": "127.0.0.1", "port": 4028, "allow": None}


def test_exposed_bind_is_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="miner.fleet.wiring"):
        h = fleet.start(FakeControl(), parse("--metrics-port", "0", "--metrics-bind", "0.0.0.0"))
        h.close()
    assert "beyond this machine" in caplog.text


@pytest.mark.parametrize("argv,msg", [
    (["--api-port", "0", "--api-allow", "W:not-an-ip"], "--api-allow"),
    (["--max-energy-price", "0.2"], "--price-command"),
    (["--pause-window", "7-9"], "pause window"),
])
def test_bad_settings_are_config_errors_and_leave_nothing_running(argv, msg):
    before = threading.active_count()
    with pytest.raises(ConfigError, match=msg):
        fleet.start(FakeControl(), parse(*argv))
    assert threading.active_count() == before


def test_port_taken_is_a_config_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            fleet.start(FakeControl(), parse("--api-port", str(port)))
        with pytest.raises(ConfigError, match="cannot listen"):
            fleet.start(FakeControl(), parse("--metrics-port", str(port)))
