"""The `miner` command with --mqtt-url, end to end: a real mosquitto, the real test pool
(stratum-pool-sha256), real miner processes.

- discovery and retained state appear; the state's share counts are the pool's, the API's and /metrics';
- OFF on the miner's topic stops hashing within a second while the pool session stays up, ON brings
  it back, garbage changes nothing;
- killing the broker keeps mining going; restarting it restores telemetry and commands; a retained
  pause survives a broker restart and a miner restart;
- the last will shows offline when the miner is killed;
- four miners obey one message on the fleet topic, and a group topic reaches only its group.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from fleet_control import api_ask
from mqtt_broker import Broker, Watcher, free_port, retained

pytestmark = pytest.mark.slow


class MinerProc:
    """A `miner` process; its stderr lines are kept (and printed when a test fails)."""

    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "miner", *args, "--log-level", "info"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
        self.lines: list[str] = []
        self.api_port: int | None = None
        self.metrics_port: int | None = None
        self._api = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", line):
                self.api_port = int(m.group(1))
                self._api.set()
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                self.metrics_port = int(m.group(1))

    def api(self, cmd: str) -> dict:
        assert self._api.wait(30), self.text()
        return api_ask(self.api_port, cmd)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a /metrics sample over the series matching labels."""
        from prometheus_client.parser import text_string_to_metric_families
        assert self.metrics_port, self.text()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def count(self, pattern: str) -> int:
        return sum(1 for ln in list(self.lines) if re.search(pattern, ln))

    def text(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def term(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def pool_miner(pool, broker_port: int, ident: str, *extra: str) -> MinerProc:
    return MinerProc("-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", "1",
                     "--mqtt-url", f"mqtt://127.0.0.1:{broker_port}", "--mqtt-id", ident, "--mqtt-interval", "0.5",
                     "--api-port", "0", "--api-allow", "W:127.0.0.1", "--metrics-port", "0", "--time-limit", "150", "--status-interval", "60",
                     *extra)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.kill()


@pytest.fixture
def procs(request):
    started: list[MinerProc] = []
    yield started
    rep = getattr(request.node, "rep_call", None)
    for m in started:
        if rep is not None and rep.failed:
            print(f"---- miner {m.proc.args} ----\n{m.text()[-6000:]}")
        m.kill()


def state_after(w: Watcher, topic: str, wall: float, pred=lambda s: True, timeout: float = 10.0) -> dict:
    """The first state published at or after unix time `wall` that satisfies pred."""
    return w.wait_json(topic, lambda s: s["time"] >= wall and pred(s), timeout)


def test_discovery_state_pause_resume_and_garbage(real_pool, broker, procs):
    m = pool_miner(real_pool, broker.port, "rig1")
    procs.append(m)
    w = Watcher(broker.port, "miner/#")
    st = w.wait_json("miner/rig1/state", lambda s: s["accepted"] >= 2 and s["pool_status"] == "alive", 60)
    assert st["pool_url"] == real_pool.url and st["hashrate_5s"] > 0 and st["mining"] == "ON"

    # what a client connecting now (Home Assistant starting up) gets from the broker, retained
    held = retained(broker.port, "#")
    assert held["miner/rig1/availability"] == b"online"
    assert "miner/rig1/state" in held and "miner/rig1/device/cpu0" in held
    for t in ("switch/miner_rig1_mining", "select/miner_rig1_pool", "sensor/miner_rig1_hashrate",
              "sensor/miner_rig1_accepted", "sensor/miner_rig1_rejected", "sensor/miner_rig1_best_share"):
        assert f"homeassistant/{t}/config" in held, t
    assert json.loads(held["homeassistant/select/miner_rig1_pool/config"])["options"] == [real_pool.url]

    # OFF: hashing stops within a second; the pool session stays up
    wall0, t0 = time.time(), time.monotonic()
    w.publish("miner/rig1/set/mining", "OFF")
    st = w.wait_json("miner/rig1/state", lambda s: s["paused"], 5)
    assert time.monotonic() - t0 < 1.0
    assert st["mining"] == "OFF" and list(st["pause_reasons"]) == ["mqtt"]
    s1 = state_after(w, "miner/rig1/state", wall0 + 1.0)
    s2 = state_after(w, "miner/rig1/state", wall0 + 2.0)
    assert s2["total_hashes"] == pytest.approx(s1["total_hashes"], rel=1e-5)
    assert s2["pool_status"] == "alive"
    assert m.api("pools")["POOLS"][0]["Status"] == "Alive"

    # the numbers agree: the pool's verdicts, the API's summary, /metrics and the MQTT state (frozen while paused)
    summary = m.api("summary")["SUMMARY"][0]
    s3 = state_after(w, "miner/rig1/state", time.time())
    assert s3["accepted"] == summary["Accepted"] == real_pool.valid == m.metric("miner_shares_total",
                                                                                 result="accepted")
    assert s3["rejected"] == summary["Rejected"] == real_pool.invalid
    assert m.metric("miner_paused") == 1.0
    assert s3["best_share"] == summary["Best Share"] == m.metric("miner_best_share_difficulty")  # one value in every view

    # garbage: one warning, nothing changes
    w.publish("miner/rig1/set/mining", "garbage")
    s4 = state_after(w, "miner/rig1/state", time.time() + 0.6)
    assert s4["paused"] and s4["pause_reasons"] == s3["pause_reasons"]
    assert s4["total_hashes"] == pytest.approx(s1["total_hashes"], rel=1e-5)
    assert m.count(r"MQTT: ignored command on miner/rig1/set/mining: expected ON or OFF, got 'garbage'") == 1

    # ON: hashing is back, and the pool accepts new shares on the same session
    valid = real_pool.valid
    wall1 = time.time()
    w.publish("miner/rig1/set/mining", "ON")
    s5 = w.wait_json("miner/rig1/state", lambda s: s["time"] >= wall1 + 1.0 and not s["paused"], 10)
    assert s5["total_hashes"] > s4["total_hashes"] * (1 + 1e-3)
    real_pool.wait_shares(valid + real_pool.invalid + 2, 30)
    assert m.count(r"pool 0: connecting to") == 1, m.text()   # one session from start to end
    w.close()


def test_broker_loss_keeps_mining_and_a_retained_pause_survives_restarts(real_pool, broker, procs):
    m = pool_miner(real_pool, broker.port, "rig2")
    procs.append(m)
    w = Watcher(broker.port, "miner/#")
    w.wait_json("miner/rig2/state", lambda s: s["accepted"] >= 1, 60)
    w.close()

    # the broker dies: mining goes on, and the loss is logged once however many retries fail
    broker.kill()
    n = len(real_pool.shares())
    real_pool.wait_shares(n + 3, 30)
    time.sleep(3.5)                      # retries at 1 s, 2 s ... all refused
    assert m.count(r"MQTT: connection to .* lost") == 1, m.text()
    assert m.count(r"MQTT: cannot reach") == 0
    assert m.proc.poll() is None

    # it comes back on the same port: telemetry and commands are restored
    broker.start()
    wall = time.time()
    w = Watcher(broker.port, "miner/#")
    st = w.wait_json("miner/rig2/state", lambda s: s["time"] >= wall, 40)
    assert st["accepted"] >= 1 and not st["paused"]
    assert m.count(r"MQTT: connected to") == 2
    w.publish("miner/fleet/set/mining", "OFF", retain=True)
    st = w.wait_json("miner/rig2/state", lambda s: s["paused"], 5)
    assert list(st["pause_reasons"]) == ["mqtt-fleet"]
    w.close()

    # a broker restart (persistence keeps retained messages): still paused, still obeying
    broker.stop()
    broker.start()
    wall = time.time()
    w = Watcher(broker.port, "miner/#")
    st = w.wait_json("miner/rig2/state", lambda s: s["time"] >= wall, 40)
    assert st["paused"] and list(st["pause_reasons"]) == ["mqtt-fleet"]
    assert m.count(r"MQTT: connected to") == 3

    # a clean stop says offline ...
    assert m.term() == 0
    w.wait(lambda: w.last("miner/rig2/availability") == b"offline", 10, "offline after SIGTERM")
    w.close()

    # ... and a new miner process starts paused: it re-reads the retained command
    m2 = pool_miner(real_pool, broker.port, "rig2")
    procs.append(m2)
    w = Watcher(broker.port, "miner/#")
    wall = time.time()
    st = w.wait_json("miner/rig2/state", lambda s: s["time"] >= wall + 2.0, 60)
    assert st["paused"] and list(st["pause_reasons"]) == ["mqtt-fleet"] and st["total_hashes"] == 0
    w.publish("miner/fleet/set/mining", "ON", retain=True)
    w.wait_json("miner/rig2/state", lambda s: not s["paused"] and s["total_hashes"] > 0, 10)
    w.close()


def test_last_will_shows_offline_when_the_miner_is_killed(real_pool, broker, procs):
    m = pool_miner(real_pool, broker.port, "rig3")
    procs.append(m)
    w = Watcher(broker.port, "miner/rig3/availability")
    w.wait(lambda: w.last("miner/rig3/availability") == b"online", 60, "online")
    m.proc.send_signal(signal.SIGKILL)   # no goodbye: only the broker's last will can tell
    m.proc.wait(10)
    w.wait(lambda: w.last("miner/rig3/availability") == b"offline", 10, "the last will")
    w.close()
    assert retained(broker.port, "miner/rig3/availability") == {"miner/rig3/availability": b"offline"}


def test_unreachable_broker_at_start_never_stops_mining(procs):
    port = free_port()
    m = MinerProc("--benchmark", "-t", "1", "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--mqtt-id", "rig4",
                  "--mqtt-interval", "0.5", "--time-limit", "90", "--status-interval", "60")
    procs.append(m)
    time.sleep(5)                        # attempts at 0, 1, 3 s ... each refused
    assert m.count(r"MQTT: cannot reach mqtt://127\.0\.0\.1:\d+ \(Connection refused\)") == 1, m.text()
    with tempfile.TemporaryDirectory() as tmp:
        b = Broker(tmp, port=port).start()
        try:
            w = Watcher(port, "miner/rig4/state")
            st = w.wait_json("miner/rig4/state", lambda s: True, 40)
            assert st["uptime"] > 4 and st["total_hashes"] > 0 and st["hashrate_5s"] > 0
            w.close()
        finally:
            b.kill()


def test_one_message_on_the_fleet_topic_pauses_four_miners_and_a_group_only_its_own(broker, procs):
    ids = [f"fleet{i}" for i in range(4)]
    for i, ident in enumerate(ids):
        extra = ["--mqtt-group", "row1"] if i < 2 else ["--mqtt-group", "row2"]
        procs.append(MinerProc("--benchmark", "-t", "1", "--mqtt-url", f"mqtt://127.0.0.1:{broker.port}",
                               "--mqtt-id", ident, "--mqtt-interval", "1", "--time-limit", "120",
                               "--status-interval", "60", *extra))
    w = Watcher(broker.port, "miner/+/state")
    topics = [f"miner/{i}/state" for i in ids]

    def all_states(pred):
        return all((s := w.last_json(t)) is not None and pred(s) for t in topics)

    w.wait(lambda: all_states(lambda s: s["hashrate_5s"] > 0 and not s["paused"]), 60, "four miners mining")
    w.publish("miner/fleet/set/mining", "OFF")
    w.wait(lambda: all_states(lambda s: s["paused"] and "mqtt-fleet" in s["pause_reasons"]), 10, "all paused")
    w.publish("miner/fleet/set/mining", "ON")
    w.wait(lambda: all_states(lambda s: not s["paused"]), 10, "all mining again")

    w.publish("miner/group/row1/set/mining", "OFF")
    w.wait(lambda: all(w.last_json(t)["paused"] for t in topics[:2]), 10, "row1 paused")
    time.sleep(1.5)                      # two telemetry intervals: row2 would have said so by now
    assert not any(w.last_json(t)["paused"] for t in topics[2:])
    w.publish("miner/group/row1/set/mining", "ON")
    w.wait(lambda: all_states(lambda s: not s["paused"]), 10, "row1 mining again")
    w.close()
