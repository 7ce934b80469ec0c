"""MQTT bridge against a real mosquitto: payloads, Home Assistant discovery, the overlap of pause
reasons, pool commands, bounds on what a broker sends, credentials and TLS.

The miner side is the real MqttBridge and Curtailer over fleet_control.FakeControl (the engine is
not under test here); tests/test_mqtt_e2e.py runs the real `miner` command against the real pool.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from fleet_control import FakeControl, device
from miner.errors import ConfigError
from miner.fleet import hass, mqtt
from miner.fleet.api import ApiCommands
from miner.fleet.curtail import Curtailer
from mqtt_broker import Broker, Watcher, retained

jinja2 = pytest.importorskip("jinja2")


# -- pure parts ------------------------------------------------------------------------------------
def test_broker_url_forms_and_defaults():
    u = mqtt.parse_url("mqtt://10.0.0.5")
    assert (u.host, u.port, u.tls, u.username, u.password) == ("10.0.0.5", 1883, False, None, None)
    u = mqtt.parse_url("mqtts://rig%40farm:p%3Ass@broker.lan:8884")
    assert (u.host, u.port, u.tls, u.username, u.password) == ("broker.lan", 8884, True, "rig@farm", "p:ss")
    assert mqtt.parse_url("mqtts://b").port == 8883
    assert str(u) == "mqtts://rig@farm@broker.lan:8884" and "p:ss" not in str(u)


@pytest.mark.parametrize("bad", ["http://h", "mqtt://", "mqtt://u:hunter2@h:99999", "mqtt://u:hunter2@h/topic",
                                 "h:1883"])
def test_bad_broker_url_is_one_clear_error_without_the_password(bad):
    with pytest.raises(ConfigError) as e:
        mqtt.parse_url(bad)
    assert "hunter2" not in str(e.value) and "--mqtt-url" in str(e.value)


@pytest.mark.parametrize("payload,want", [(b"ON", True), (b"off", False), (b" OFF\n", False), (b"1", True),
                                          (b"0", False), (b"true", True), (b'{"mining": "OFF"}', False),
                                          (b'{"state": true}', True)])
def test_switch_payloads(payload, want):
    assert mqtt.parse_switch(payload) is want


@pytest.mark.parametrize("payload", [b"", b"maybe", b"\xff\xfe", b"{", b"[1]", b'{"mining": null}', b"ONN"])
def test_malformed_switch_payloads_are_refused(payload):
    assert mqtt.parse_switch(payload) is None


def test_state_numbers_are_the_apis_numbers():
    """One snapshot feeds both: the counters and the derived figures agree with the API summary."""
    ctl = FakeControl(devices=(device(0, watts=18.0, temp=61.0), device(1, kind="cpu", watts=None, temp=None)))
    snap = ctl.snapshot()
    state = mqtt.state_payload(snap)
    api = ApiCommands(ctl)
    api._snap = snap
    row = api.summary(None)["SUMMARY"][0]
    assert state["accepted"] == row["Accepted"] and state["rejected"] == row["Rejected"]
    assert state["stale"] == row["Stale"] and state["hw_errors"] == row["Hardware Errors"]
    assert int(state["best_share"]) == row["Best Share"]
    assert state["jth"] == pytest.approx(row["J/TH"], abs=1e-3) and state["watts"] == row["Watts"] == 18.0
    assert state["hashrate_5s"] / 1e6 == pytest.approx(row["MHS 5s"], abs=1e-6)
    assert state["total_hashes"] / 1e6 == pytest.approx(row["Total MH"], rel=1e-6)
    assert state["pool_url"] == "stratum+tcp://127.0.0.1:3333" and state["difficulty"] == 1024.0
    assert state["temperature_c"] == 61.0 and state["mining"] == "ON" and state["paused"] is False
    json.loads(mqtt.encode(state))


def test_nan_from_a_sensor_is_null_not_invalid_json():
    ctl = FakeControl(devices=(device(0, temp=float("nan")),))
    obj = json.loads(mqtt.encode(mqtt.state_payload(ctl.snapshot())))
    assert obj["temperature_c"] is None


# -- Home Assistant discovery schema -----------------------------------------------------------------
REQUIRED = {"sensor": {"state_topic"}, "switch": {"command_topic"}, "select": {"command_topic", "options"}}


def test_discovery_payloads_follow_home_assistants_schema():
    """Topic <prefix>/<component>/<object_id>/config with object_id = unique_id in [a-zA-Z0-9_-];
    each platform's required keys; one device block; availability; and every value_template, rendered
    by Jinja2 as Home Assistant does, gives a value from a real state payload."""
    ctl = FakeControl(devices=(device(0, watts=18.0, temp=61.0),))
    snap = ctl.snapshot()
    msgs = hass.discovery_messages("rig.7", "miner/rig.7", "homeassistant", snap, "0.1.0")
    state = json.loads(mqtt.encode(mqtt.state_payload(snap)))
    env = jinja2.Environment()
    uids, components = set(), set()
    for topic, cfg in msgs.items():
        m = re.fullmatch(r"homeassistant/(sensor|switch|select)/([a-zA-Z0-9_-]+)/config", topic)
        assert m, topic
        component, oid = m.groups()
        components.add(component)
        assert cfg["unique_id"] == oid and oid not in uids
        uids.add(oid)
        assert REQUIRED[component] <= cfg.keys(), (topic, cfg.keys())
        assert cfg["device"]["identifiers"] == ["miner_rig_7"] and cfg["device"]["name"] == "rig.7"
        assert cfg["availability_topic"] == "miner/rig.7/availability"
        assert (cfg["payload_available"], cfg["payload_not_available"]) == ("online", "offline")
        if "state_topic" in cfg:
            assert cfg["state_topic"] == "miner/rig.7/state"
            value = env.from_string(cfg["value_template"]).render(value_json=state)
            assert value not in ("", "None"), (topic, cfg["value_template"])
            if "unit_of_measurement" in cfg or cfg.get("state_class"):
                float(value)
        json.dumps(cfg, allow_nan=False)
    assert components == {"sensor", "switch", "select"}
    sw = msgs["homeassistant/switch/miner_rig_7_mining/config"]
    assert (sw["payload_on"], sw["payload_off"], sw["command_topic"]) == ("ON", "OFF", "miner/rig.7/set/mining")
    assert env.from_string(sw["value_template"]).render(value_json=state) == sw["state_on"]
    sel = msgs["homeassistant/select/miner_rig_7_pool/config"]
    assert sel["options"] == [p.url for p in snap.pools]
    assert env.from_string(sel["value_template"]).render(value_json=state) in sel["options"]
    names = {cfg["name"] for cfg in msgs.values()}
    assert {"Hashrate", "Power", "Efficiency", "Accepted shares", "Rejected shares", "Best share",
            "Temperature", "Mining", "Pool"} <= names


def test_discovery_leaves_out_what_the_miner_does_not_know():
    ctl = FakeControl(devices=(device(0, kind="cpu", watts=None, temp=None),), pools=())
    names = {cfg["name"] for cfg in hass.discovery_messages("r", "miner/r", "ha", ctl.snapshot(), "v").values()}
    assert "Power" not in names and "Temperature" not in names and "Pool" not in names
    assert "Mining" in names and "Hashrate" in names


# -- against a real broker ------------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.kill()


def make_bridge(port: int, ctl=None, curtailer=None, **kw) -> tuple[mqtt.MqttBridge, FakeControl, Curtailer]:
    ctl = ctl or FakeControl()
    cur = curtailer or Curtailer(ctl)
    kw.setdefault("interval", 0.5)
    b = mqtt.MqttBridge(ctl, cur, mqtt.parse_url(f"mqtt://127.0.0.1:{port}"), kw.pop("ident", "rig1"), **kw)
    return b.start(), ctl, cur


def test_retained_state_devices_availability_and_discovery(broker):
    bridge, ctl, _ = make_bridge(broker.port)
    try:
        w = Watcher(broker.port, "miner/#", "homeassistant/#")
        w.wait(lambda: w.last("miner/rig1/availability") == b"online", what="online")
        st = w.wait_json("miner/rig1/state", lambda s: True)
        assert st["accepted"] == ctl.snapshot().accepted
        dev = w.wait_json("miner/rig1/device/asic0", lambda d: True)
        assert dev["temperature_c"] == 55.5 and dev["kind"] == "asic" and dev["watts"] == 18.0
        assert w.wait_json("miner/rig1/device/cpu1", lambda d: True)["kind"] == "cpu"
        # a client arriving later gets it all from the broker's retained store
        held = retained(broker.port, "#")
        for t in ("miner/rig1/state", "miner/rig1/availability", "miner/rig1/device/asic0",
                  "homeassistant/switch/miner_rig1_mining/config", "homeassistant/select/miner_rig1_pool/config",
                  "homeassistant/sensor/miner_rig1_hashrate/config"):
            assert t in held, t
        # telemetry repeats at the interval
        n = len(w.on("miner/rig1/state"))
        time.sleep(1.6)
        assert len(w.on("miner/rig1/state")) >= n + 2
        w.close()
    finally:
        bridge.close()
    assert retained(broker.port, "miner/rig1/availability")["miner/rig1/availability"] == b"offline"


def test_mqtt_pause_is_one_reason_among_api_schedule_and_other_topics(broker):
    """ON on one topic clears only that topic's reason; the miner mines only when none holds."""
    bridge, ctl, cur = make_bridge(broker.port, groups=["row3"])
    try:
        w = Watcher(broker.port, "miner/rig1/state")
        w.wait_json("miner/rig1/state", lambda s: True)
        w.publish("miner/fleet/set/mining", "OFF")
        w.wait_json("miner/rig1/state", lambda s: s["paused"] and "mqtt-fleet" in s["pause_reasons"])
        cur.hold("api", "paused by API command")
        w.publish("miner/group/row3/set/mining", "OFF")
        st = w.wait_json("miner/rig1/state", lambda s: "mqtt-group-row3" in s["pause_reasons"])
        assert set(st["pause_reasons"]) == {"mqtt-fleet", "api", "mqtt-group-row3"} and st["mining"] == "OFF"
        w.publish("miner/rig1/set/mining", "ON")       # its own topic never said OFF: nothing to clear
        w.publish("miner/fleet/set/mining", "ON")
        st = w.wait_json("miner/rig1/state", lambda s: "mqtt-fleet" not in s["pause_reasons"])
        assert st["paused"] and set(st["pause_reasons"]) == {"api", "mqtt-group-row3"}
        cur.release("api")
        w.publish("miner/group/row3/set/mining", "on")
        st = w.wait_json("miner/rig1/state", lambda s: not s["paused"])
        assert st["pause_reasons"] == {} and st["mining"] == "ON" and not ctl.reasons
        # a group this miner is not in, and another miner's topic, do nothing here
        w.publish("miner/group/row4/set/mining", "OFF")
        w.publish("miner/rig2/set/mining", "OFF")
        time.sleep(0.5)
        assert not ctl.paused
        w.close()
    finally:
        bridge.close()


def test_garbage_gets_one_warning_and_changes_nothing(broker, caplog):
    bridge, ctl, cur = make_bridge(broker.port)
    try:
        w = Watcher(broker.port, "miner/rig1/state")
        w.wait_json("miner/rig1/state", lambda s: True)
        w.publish("miner/rig1/set/mining", "OFF")
        w.wait_json("miner/rig1/state", lambda s: s["paused"])
        calls = list(ctl.calls)
        with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
            w.publish("miner/rig1/set/mining", b"\x00\xffjunk")
            w.publish("miner/rig1/set/pool", "pool-nine")
            time.sleep(0.5)
        warnings = [r.getMessage() for r in caplog.records if r.name == "miner.fleet.mqtt"]
        assert len(warnings) == 2, warnings
        assert "set/mining" in warnings[0] and "nothing changed" in warnings[0]
        assert "set/pool" in warnings[1] and "'pool-nine'" in warnings[1]
        assert ctl.calls == calls and ctl.paused and list(cur.reasons()) == ["mqtt"]
        # a flood of garbage is one more line at most, not one line per message
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
            for _ in range(50):
                w.publish("miner/rig1/set/mining", "???", qos=0)
            time.sleep(0.5)
        assert len([r for r in caplog.records if r.name == "miner.fleet.mqtt"]) <= 1
        assert ctl.calls == calls
        w.close()
    finally:
        bridge.close()


def test_pool_commands_by_id_and_by_url(broker):
    bridge, ctl, _ = make_bridge(broker.port)
    try:
        w = Watcher(broker.port, "miner/rig1/state")
        w.wait_json("miner/rig1/state", lambda s: s["pool_id"] == 0)
        w.publish("miner/rig1/set/pool", "1")
        w.wait_json("miner/rig1/state", lambda s: s["pool_id"] == 1)
        w.publish("miner/rig1/set/pool", "stratum+tcp://127.0.0.1:3333")   # what the HA select sends
        w.wait_json("miner/rig1/state", lambda s: s["pool_url"] == "stratum+tcp://127.0.0.1:3333")
        assert [c for c in ctl.calls if c[0] == "switch_pool"] == [("switch_pool", 1), ("switch_pool", 0)]
        w.close()
    finally:
        bridge.close()


def test_a_command_over_the_size_limit_is_refused_and_a_huge_one_never_arrives(broker, caplog):
    bridge, ctl, _ = make_bridge(broker.port)
    try:
        w = Watcher(broker.port, "miner/rig1/state")
        w.wait_json("miner/rig1/state", lambda s: True)
        with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
            w.publish("miner/rig1/set/mining", b"OFF" + b" " * 4000)
            # Over the client's MQTT 5 Maximum Packet Size: the broker drops it instead of sending it.
            w.publish("miner/rig1/set/mining", b"OFF" + b" " * (2 * mqtt.MAX_PACKET_BYTES))
            time.sleep(1.0)
        msgs = [r.getMessage() for r in caplog.records if r.name == "miner.fleet.mqtt"]
        assert len(msgs) == 1 and "4003 bytes" in msgs[0], msgs
        assert not ctl.paused and bridge.connected
        n = len(w.on("miner/rig1/state"))
        w.wait(lambda: len(w.on("miner/rig1/state")) > n, what="telemetry after the huge message")
        w.close()
    finally:
        bridge.close()


class RogueBroker:
    """A broker that accepts the connection, then announces a 100 MB PUBLISH. Only a fake can misbehave
    like this: mosquitto honours the client's Maximum Packet Size."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(4096)                                   # CONNECT
                conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))  # CONNACK v5: success, no properties
                n, length = 100_000_000, bytearray()
                while True:                                       # remaining length as a variable byte integer
                    b, n = n % 128, n // 128
                    length.append(b | (0x80 if n else 0))
                    if not n:
                        break
                conn.sendall(bytes([0x30]) + bytes(length) + b"\x00\x05miner" + b"x" * 1000)
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def test_a_broker_announcing_a_huge_packet_is_cut_off_before_it_is_read(caplog):
    rogue = RogueBroker()
    ctl = FakeControl()
    with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
        bridge = mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url(f"mqtt://127.0.0.1:{rogue.port}"), "rig1")
        bridge.start()
        try:
            end = time.monotonic() + 10
            while bridge._client.oversized == 0 and time.monotonic() < end:
                time.sleep(0.05)
            assert bridge._client.oversized >= 1
            # the packet buffer never grew past what arrived before the cut
            assert len(bridge._client._in_packet.get("packet", b"")) < mqtt.MAX_PACKET_BYTES
        finally:
            bridge.close()
            rogue.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "miner.fleet.mqtt"]
    assert any("100000000-byte packet" in m for m in msgs), msgs
    assert not ctl.paused


def test_credentials_are_used_and_never_logged(tmp_path, caplog):
    pw_file = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw_file), "rig", "s3cr3t-Pw"], check=True,
                   capture_output=True)
    b = Broker(tmp_path, anonymous=False, extra=f"password_file {pw_file}\n").start()
    try:
        ctl = FakeControl()
        with caplog.at_level(logging.DEBUG):
            bad = mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url(f"mqtt://rig:wrong-Pw@127.0.0.1:{b.port}"),
                                  "rig1").start()
            end = time.monotonic() + 10
            while "refused" not in caplog.text and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(2.5)                 # several retries with back-off: still one line
            bad.close()
            good = mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url(f"mqtt://rig:s3cr3t-Pw@127.0.0.1:{b.port}"),
                                   "rig1").start()
            w_end = time.monotonic() + 10
            while not good.connected and time.monotonic() < w_end:
                time.sleep(0.05)
            assert good.connected
            good.close()
        refused = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(refused) == 1 and "rig@127.0.0.1" in refused[0].getMessage()
        assert "s3cr3t-Pw" not in caplog.text and "wrong-Pw" not in caplog.text
    finally:
        b.kill()


def test_tls_is_verified_against_the_given_ca(tmp_path, caplog):
    from test_stratum_session import make_ca_and_cert
    ca, cert, key = make_ca_and_cert(tmp_path)
    b = Broker(tmp_path, extra=f"certfile {cert}\nkeyfile {key}\n").start()
    try:
        ctl = FakeControl()
        url = mqtt.parse_url(f"mqtts://127.0.0.1:{b.port}")
        with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
            untrusted = mqtt.MqttBridge(ctl, Curtailer(ctl), url, "rig1").start()
            end = time.monotonic() + 10
            while "cannot reach" not in caplog.text and time.monotonic() < end:
                time.sleep(0.05)
            assert not untrusted.connected
            untrusted.close()
        assert "certificate verify failed" in caplog.text
        for kw in ({"cafile": str(ca)}, {"insecure": True}):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
                bridge = mqtt.MqttBridge(ctl, Curtailer(ctl), url, "rig1", **kw).start()
                try:
                    end = time.monotonic() + 10
                    while not bridge.connected and time.monotonic() < end:
                        time.sleep(0.05)
                    assert bridge.connected, kw
                finally:
                    bridge.close()
            assert ("verification is OFF" in caplog.text) == ("insecure" in kw)
    finally:
        b.kill()


def test_without_paho_the_flag_says_what_to_install():
    code = ("import sys; sys.modules['paho'] = None\n"
            "from miner.cli import main\n"
            "sys.exit(main(['--benchmark', '-t', '1', '--time-limit', '5', '--mqtt-url', 'mqtt://127.0.0.1:1']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tempfile.gettempdir())
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and " INFO " not in ln]
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert lines == ["miner: error: --mqtt-url needs the paho-mqtt package: pip install 'miner[mqtt]'"], p.stderr


def test_flags_and_config_key(tmp_path):
    from miner.cli import command as cli
    f = tmp_path / "rig.toml"
    f.write_text('mqtt-url = "mqtt://10.0.0.2"\nmqtt-id = "rack1-slot4"\nmqtt-group = ["row1", "hall-b"]\n'
                 'mqtt-interval = 30\n')
    ns = cli.parse_args(["-c", str(f)])
    assert ns.mqtt_url == "mqtt://10.0.0.2" and ns.mqtt_id == "rack1-slot4" and ns.mqtt_group == ["row1", "hall-b"]
    assert ns.mqtt_interval == 30.0 and ns.mqtt_prefix == "miner" and ns.mqtt_fleet_topic is None
    for bad in (["--mqtt-id", "fleet"], ["--mqtt-id", "a/b"], ["--mqtt-interval", "0.01"],
                ["--mqtt-fleet-topic", "miner/#"], ["--mqtt-group", "row+1"]):
        with pytest.raises(ConfigError):
            cli.parse_args(bad)
    assert cli.parse_args(["--mqtt-fleet-topic", ""]).mqtt_fleet_topic == ""


def test_an_anonymous_broker_beyond_this_machine_is_warned_about(caplog):
    ctl = FakeControl()
    with caplog.at_level(logging.WARNING, logger="miner.fleet.mqtt"):
        mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url("mqtt://192.0.2.1"), "rig1")
        mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url("mqtt://localhost"), "rig1")
        mqtt.MqttBridge(ctl, Curtailer(ctl), mqtt.parse_url("mqtt://u:p@192.0.2.1"), "rig1")
    warned = [r.getMessage() for r in caplog.records if "no login" in r.getMessage()]
    assert len(warned) == 1 and "192.0.2.1" in warned[0]
