"""A real MQTT broker for tests: the distribution's mosquitto on a free loopback port with its own
config file, and a paho subscriber that records what it sees.

    broker = Broker(tmp_path).start()       # listener 127.0.0.1:PORT, anonymous, persistence on
    watch = Watcher(broker.port, "miner/#") # every message, retained ones included
    broker.kill(); broker.start()           # same port, same persistence file
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO_HINT = "the MQTT tests need the distribution's mosquitto (apt-get install -y mosquitto; .ci/run does it)"


def mosquitto_path() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if exe is None:
        pytest.fail(MOSQUITTO_HINT)
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp: Path, *, port: int | None = None, persistence: bool = True, extra: str = "",
                 anonymous: bool = True) -> None:
        self.dir = Path(tmp) / f"mosquitto-{id(self):x}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        # Started as root, mosquitto drops to the user "mosquitto", who cannot read pytest's private
        # tmp folders; naming the current user keeps it (ignored when not root).
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", f"allow_anonymous {'true' if anonymous else 'false'}",
                 f"persistence {'true' if persistence else 'false'}",
                 f"persistence_location {self.dir}/", "log_dest stdout", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true"]
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "broker.log"

    def start(self, timeout: float = 10.0) -> "Broker":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([mosquitto_path(), "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening\n" + self.log_text())

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving; clients see their connection drop."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (retained messages) and exits."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


class Watcher:
    """A paho client subscribed to `topics`; keeps every message (topic, payload, retain, time)."""

    def __init__(self, port: int, *topics: str, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.topics = topics or ("#",)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"watcher-{id(self):x}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "watcher could not connect to the broker"

    def _on_connect(self, client, _u, _f, rc, _p) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])
            self.connected.set()

    def _on_message(self, _c, _u, msg) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))
            self.cond.notify_all()

    def publish(self, topic: str, payload, retain: bool = False, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def on(self, topic: str) -> list[bytes]:
        with self.cond:
            return [m[1] for m in self.messages if m[0] == topic]

    def last(self, topic: str):
        got = self.on(topic)
        return got[-1] if got else None

    def last_json(self, topic: str) -> dict | None:
        raw = self.last(topic)
        return json.loads(raw) if raw else None

    def wait(self, pred, timeout: float = 20.0, what: str = "condition"):
        """Wait until pred() is truthy (checked on every message and every 0.1 s); returns its value."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; topics seen: "
                                         f"{sorted({m[0] for m in self.messages})}")
                self.cond.wait(min(left, 0.1))

    def wait_json(self, topic: str, pred, timeout: float = 20.0) -> dict:
        def check():
            for raw in reversed(self.on(topic)):
                if raw:
                    obj = json.loads(raw)
                    return obj if pred(obj) else None
            return None
        return self.wait(check, timeout, f"a message on {topic} matching the condition")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic_filter: str, settle: float = 0.5) -> dict[str, bytes]:
    """What the broker holds retained under a filter, read by a fresh client."""
    w = Watcher(port, topic_filter)
    time.sleep(settle)
    out = {t: p for t, p, r, _ in w.messages if r}
    w.close()
    return out
