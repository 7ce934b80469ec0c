"""MQTT telemetry and control, with Home Assistant discovery (paho-mqtt, extra miner[mqtt]).

Topics, with --mqtt-prefix P (default "miner") and --mqtt-id ID (default the host name):

  P/ID/availability          "online" / "offline", retained; "offline" is also the last will,
                             so the broker publishes it when the miner dies without a goodbye
  P/ID/state                 JSON summary, retained, every --mqtt-interval s and on every change
  P/ID/device/DEV            JSON per device, retained, with the state
  P/ID/set/mining            ON / OFF                                  (subscribed, QoS 1)
  P/ID/set/pool              a pool id (0, 1, ..) or a configured pool URL
  P/group/NAME/set/mining    ON / OFF for every miner in --mqtt-group NAME
  P/fleet/set/mining         ON / OFF for every miner (--mqtt-fleet-topic; "" turns it off)
  homeassistant/...          discovery configs, retained (--mqtt-discovery-prefix; "" turns it off)

Each command topic is its own pause reason in the Curtailer ("mqtt", "mqtt-group-NAME",
"mqtt-fleet"), beside schedule, price and API: mining runs only while no reason holds,
so ON on one topic never overrides OFF on another. Subscriptions are made afresh on
every connect, so the broker hands back the retained commands and a pause survives a
broker or miner restart.

Threads: paho's network thread (connect, back-off, callbacks) and "mqtt-telemetry",
which reads the same MinerControl.snapshot() as the API and /metrics, checks it for a
state change every TICK_S and publishes. A pool switch waits on the pool manager, so it
runs on a worker thread and never holds up the network thread.

Bounds: the CONNECT packet asks the broker for at most MAX_PACKET_BYTES per packet
(MQTT 5 Maximum Packet Size; a broker drops larger messages rather than send them);
command payloads over MAX_COMMAND_BYTES are refused with one warning.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from miner.errors import ConfigError, MinerError
from miner.engine.stats import MinerControl, MinerSnapshot
from miner.fleet import hass
from miner.fleet.api import finite_json
from miner.fleet.curtail import Curtailer
from miner.fleet.power import efficiency_hashrate, joules_per_terahash
from miner.units import flag_number

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "miner"
DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 0.5
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
TICK_S = 0.25               # how often the snapshot is checked for a change of state
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
MAX_PACKET_BYTES = 64 * 1024
MAX_COMMAND_BYTES = 1024
WARN_EVERY_S = 10.0         # malformed commands: one warning per topic per this many seconds at most
CLOSE_TIMEOUT_S = 2.0
INSTALL_HINT = "--mqtt-url needs the paho-mqtt package: pip install 'miner[mqtt]'"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ON = {"on", "1", "true", "resume", "start"}
_OFF = {"off", "0", "false", "pause", "stop"}


# -- configuration ---------------------------------------------------------------------
@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        """The URL as logs show it: never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_url(url: str) -> BrokerUrl:
    """mqtt://[USER[:PASS]@]HOST[:PORT] or mqtts://...; ConfigError naming the URL without its password."""
    try:
        u = urllib.parse.urlsplit(str(url).strip())
        port = u.port
    except ValueError as e:
        raise ConfigError(f"--mqtt-url {_redact(url)!r}: {e}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"--mqtt-url {_redact(url)!r} must start with mqtt:// or mqtts://")
    if not u.hostname:
        raise ConfigError(f"--mqtt-url {_redact(url)!r} has no host")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ConfigError(f"--mqtt-url {_redact(url)!r}: expected mqtt://[USER[:PASS]@]HOST[:PORT], nothing after")
    tls = u.scheme == "mqtts"
    unq = lambda s: urllib.parse.unquote(s) if s is not None else None  # noqa: E731
    return BrokerUrl(u.hostname, port or (8883 if tls else 1883), tls, unq(u.username), unq(u.password))


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", str(url))


def default_id() -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.") or "miner"
    return name[:64]


def _name(flag: str, reserved: tuple[str, ...] = ()):
    def conv(s: str) -> str:
        if not _NAME_RE.match(s) or s in reserved:
            extra = f", and not {' or '.join(reserved)}" if reserved else ""
            raise argparse.ArgumentTypeError(
                f"{flag} {s!r}: 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit{extra}")
        return s
    return conv


def _topic(flag: str, allow_empty: bool = False):
    def conv(s: str) -> str:
        s = s.strip().strip("/") if s else ""
        if not s and allow_empty:
            return ""
        if not s or any(c in s for c in "+#\0") or "//" in s:
            raise argparse.ArgumentTypeError(f"{flag} {s!r}: a topic without wildcards (+, #) or empty levels")
        return s
    return conv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("MQTT telemetry and control (needs miner[mqtt])")
    g.add_argument("--mqtt-url", dest="mqtt_url", metavar="URL",
                   help="broker mqtt://[USER[:PASS]@]HOST[:PORT] (1883), or mqtts:// for TLS (8883)")
    g.add_argument("--mqtt-cert", dest="mqtt_cert", metavar="FILE",
                   help="CA certificate file to verify an mqtts:// broker with a private CA")
    g.add_argument("--mqtt-insecure", dest="mqtt_insecure", action="store_true",
                   help="do not verify the broker's TLS certificate (warns; not recommended)")
    g.add_argument("--mqtt-id", dest="mqtt_id", type=_name("--mqtt-id", ("fleet", "group")), metavar="NAME",
                   help="this miner's name in topics (default: the host name)")
    g.add_argument("--mqtt-prefix", dest="mqtt_prefix", type=_topic("--mqtt-prefix"), default=DEFAULT_PREFIX,
                   metavar="ROOT", help=f"topic root (default {DEFAULT_PREFIX}: topics are {DEFAULT_PREFIX}/ID/...)")
    g.add_argument("--mqtt-interval", dest="mqtt_interval", type=flag_number(low=MIN_INTERVAL_S),
                   default=DEFAULT_INTERVAL_S,
                   metavar="S", help=f"seconds between telemetry messages (default {DEFAULT_INTERVAL_S:g}; "
                                     "state changes are sent at once)")
    g.add_argument("--mqtt-fleet-topic", dest="mqtt_fleet_topic", type=_topic("--mqtt-fleet-topic", True),
                   default=None, metavar="TOPIC",
                   help="ON/OFF here pauses or resumes every miner (default ROOT/fleet/set/mining; '' for none)")
    g.add_argument("--mqtt-group", dest="mqtt_group", action="append", type=_name("--mqtt-group"), metavar="NAME",
                   help="also obey ROOT/group/NAME/set/mining; repeatable")
    g.add_argument("--mqtt-discovery-prefix", dest="mqtt_discovery_prefix",
                   type=_topic("--mqtt-discovery-prefix", True), default=DEFAULT_DISCOVERY_PREFIX, metavar="P",
                   help=f"Home Assistant discovery prefix (default {DEFAULT_DISCOVERY_PREFIX}; '' for none)")


# -- payloads ---------------------------------------------------------------------------
def _round(v: float | None, n: int = 3) -> float | None:
    return None if v is None else round(v, n)


def state_payload(s: MinerSnapshot, reasons: dict[str, str] | None = None) -> dict[str, Any]:
    """The state JSON: one snapshot, the same numbers the API and /metrics give."""
    hr = s.hashrate
    pool = next((p for p in s.pools if p.id == s.current_pool), None)
    temps = [d.temperature_c for d in s.devices if d.temperature_c is not None]
    if not reasons:     # paused from outside the Curtailer: the engine's own reason string
        reasons = {"engine": s.pause_reason} if s.paused else {}
    return {
        "time": round(time.time(), 3), "version": s.version, "uptime": round(s.elapsed, 1),
        "mining": "OFF" if s.paused else "ON", "paused": s.paused,
        "pause_reasons": dict(reasons), "pause_reason": s.pause_reason,
        # H/s, by cgminer's windows; total_hashes is what was hashed since start
        "hashrate_5s": hr.get("5s", 0.0), "hashrate_1m": hr.get("1m", 0.0), "hashrate_5m": hr.get("5m", 0.0),
        "hashrate_15m": hr.get("15m", 0.0), "hashrate_av": hr.get("av", 0.0),
        "total_hashes": hr.get("av", 0.0) * s.elapsed, "effective_hashrate": s.effective_hashrate,
        "accepted": s.accepted, "rejected": s.rejected, "stale": s.stale, "hw_errors": s.hw_errors,
        "difficulty_accepted": s.difficulty_accepted, "best_share": s.best_share, "blocks": s.blocks,
        "pool_id": pool.id if pool else None, "pool_url": pool.url if pool else None,
        "pool_user": pool.user if pool else None, "pool_status": pool.status if pool else None,
        "difficulty": pool.difficulty if pool else None, "network_difficulty": s.network_difficulty,
        "watts": _round(s.watts, 2), "jth": _round(joules_per_terahash(s.watts, efficiency_hashrate(hr, s.elapsed))),
        "temperature_c": max(temps) if temps else None,
        "devices": len(s.devices),
    }


def device_payload(d, s: MinerSnapshot) -> dict[str, Any]:
    hr, elapsed = d.hashrate, d.elapsed or s.elapsed
    return {
        "name": d.name, "kind": d.kind, "model": d.model, "status": d.status, "enabled": d.enabled,
        "hashrate_5s": hr.get("5s", 0.0), "hashrate_1m": hr.get("1m", 0.0), "hashrate_15m": hr.get("15m", 0.0),
        "hashrate_av": hr.get("av", 0.0), "accepted": d.accepted, "rejected": d.rejected, "stale": d.stale,
        "hw_errors": d.hw_errors, "best_share": d.best_share, "temperature_c": d.temperature_c,
        "watts": _round(d.watts, 2), "jth": _round(joules_per_terahash(d.watts, efficiency_hashrate(hr, elapsed))),
        "frequency_mhz": d.frequency_mhz,
    }


def encode(obj: Any) -> bytes:
    # NaN/inf from a broken sensor become null: every subscriber must be able to parse the JSON.
    return json.dumps(finite_json(obj), separators=(",", ":"), allow_nan=False).encode()


def parse_switch(payload: bytes) -> bool | None:
    """ON/OFF (and 1/0, true/false, resume/pause), any case -> True (mine) / False (pause); else None."""
    try:
        text = payload.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("{"):    # {"mining": "ON"} or {"state": false}, as some automations send
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        v = obj.get("mining", obj.get("state")) if isinstance(obj, dict) else None
        text = str(v).lower() if isinstance(v, (str, bool, int)) else ""
    return True if text in _ON else False if text in _OFF else None


def _show(payload: bytes) -> str:
    text = payload[:40].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(payload) > 40 else "")


# -- the client ---------------------------------------------------------------------------
def _why(err: BaseException | None) -> str:
    if err is None:
        return "connection failed"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class PacketTooLarge(ConnectionError):
    pass


def _bounded_client_class(paho):
    """paho's Client, refusing any incoming packet over MAX_PACKET_BYTES before reading it.

    paho reads a whole packet into memory, however long its header says it is, and
    socket.recv(n) allocates n bytes up front. MQTT 5 makes a packet over the client's
    Maximum Packet Size a protocol error; this raises in the receive path as soon as
    the length is known, so paho drops the connection and reconnects with back-off.
    The hook is paho's private _sock_recv (paho-mqtt 2.x, pinned below 3 in pyproject);
    tests/test_mqtt.py has a broker that sends such a packet.
    """
    class BoundedClient(paho.Client):
        last_error: BaseException | None = None
        oversized = 0

        def _sock_recv(self, bufsize: int) -> bytes:
            pkt = self._in_packet
            if pkt.get("have_remaining") and pkt.get("remaining_length", 0) > MAX_PACKET_BYTES:
                self.oversized += 1
                log.warning("MQTT: the broker sent a %d-byte packet, over the %d-byte limit; dropping the "
                            "connection", pkt["remaining_length"], MAX_PACKET_BYTES)
                raise PacketTooLarge(f"packet of {pkt['remaining_length']} bytes")
            return super()._sock_recv(bufsize)

        def reconnect(self):
            try:
                return super().reconnect()
            except OSError as e:
                self.last_error = e
                raise

    return BoundedClient


class Link:
    """Connection states, logged once per change."""
    CONNECTING, UP, DOWN, CLOSED = "connecting", "up", "down", "closed"


class MqttBridge:
    """Publishes telemetry and obeys commands for one MinerControl over one broker connection."""

    def __init__(self, control: MinerControl, curtailer: Curtailer, url: BrokerUrl, ident: str, *,
                 prefix: str = DEFAULT_PREFIX, interval: float = DEFAULT_INTERVAL_S,
                 fleet_topic: str | None = None, groups: list[str] | None = None,
                 discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX, cafile: str | None = None,
                 insecure: bool = False, version: str = "") -> None:
        try:
            import paho.mqtt.client as paho
            from paho.mqtt.enums import CallbackAPIVersion
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError as e:
            raise ConfigError(INSTALL_HINT) from e
        self.control, self.curtailer, self.url, self.ident = control, curtailer, url, ident
        self.interval, self.version = interval, version
        self.base = f"{prefix}/{ident}"
        self.availability_topic = f"{self.base}/availability"
        self.state_topic = f"{self.base}/state"
        self.discovery_prefix = discovery_prefix
        fleet = f"{prefix}/fleet/set/mining" if fleet_topic is None else fleet_topic
        # topic -> (handler, pause-reason key)
        self.commands: dict[str, tuple[Callable[[str, str, bytes], None], str]] = {
            f"{self.base}/set/mining": (self._on_mining, "mqtt"),
            f"{self.base}/set/pool": (self._on_pool, ""),
        }
        for g in groups or ():
            self.commands[f"{prefix}/group/{g}/set/mining"] = (self._on_mining, f"mqtt-group-{g}")
        if fleet:
            self.commands[fleet] = (self._on_mining, "mqtt-fleet")

        self._link = Link.CONNECTING
        self._link_lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool_worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mqtt-pool")
        self._warned: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._discovery: dict[str, bytes] = {}   # config topic -> payload last published
        self._device_topics: dict[int, str] = {}
        self._resend_discovery = threading.Event()   # set on connect: the broker may have lost them
        self.published = 0                       # telemetry messages sent (state + devices)

        c = _bounded_client_class(paho)(CallbackAPIVersion.VERSION2, client_id=f"miner-{ident}",
                                        protocol=paho.MQTTv5)
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_connect_fail = self._on_connect_fail
        if url.username is not None:
            c.username_pw_set(url.username, url.password)
        if url.tls:
            from miner.stratum.config import make_ssl_context  # the pool's TLS rules: verified by default
            ctx = make_ssl_context(cafile, False)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                log.warning("MQTT: TLS certificate verification is OFF (--mqtt-insecure): the broker's "
                            "identity is not checked")
            c.tls_set_context(ctx)      # paho checks the host name as the context says
        elif cafile or insecure:
            log.warning("MQTT: --mqtt-cert/--mqtt-insecure apply to mqtts:// only; %s is plain TCP", url)
        if url.username is None and not _is_loopback(url.host):
            log.warning("MQTT: no login for %s, a broker beyond this machine: whoever may publish there can "
                        "pause this miner; give mqtt://USER:PASS@... and restrict the topics in the broker", url)
        c.will_set(self.availability_topic, hass.NOT_AVAILABLE, qos=1, retain=True)
        # Back-off doubles from a first delay of 1-2 s, drawn per process: rigs that lose the broker
        # together (a broker restart) do not all come back in the same instant.
        c.reconnect_delay_set(RECONNECT_MIN_S * (1.0 + random.random()), RECONNECT_MAX_S)
        self._props = Properties(PacketTypes.CONNECT)
        self._props.MaximumPacketSize = MAX_PACKET_BYTES
        self._client = c

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "MqttBridge":
        log.info("MQTT: %s as %s (topics %s/..., commands on %s)", self.url, self.ident, self.base,
                 ", ".join(self.commands))
        self._client.connect_async(self.url.host, self.url.port, keepalive=KEEPALIVE_S, clean_start=True,
                                   properties=self._props)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._telemetry_loop, name="mqtt-telemetry", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Say offline (a clean stop is not a crash, but the rig is gone all the same), then disconnect."""
        with self._link_lock:
            was_up = self._link == Link.UP
            self._link = Link.CLOSED
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if was_up:
            try:
                info = self._client.publish(self.availability_topic, hass.NOT_AVAILABLE, qos=1, retain=True)
                info.wait_for_publish(CLOSE_TIMEOUT_S)
            except (RuntimeError, ValueError, OSError) as e:
                log.debug("MQTT: offline not delivered: %s", e)
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._pool_worker.shutdown(wait=False, cancel_futures=True)

    @property
    def connected(self) -> bool:
        return self._link == Link.UP

    def _set_link(self, new: str, level: int, msg: str, *args) -> bool:
        with self._link_lock:
            if self._link == Link.CLOSED or self._link == new:
                return False
            self._link = new
        log.log(level, msg, *args)
        return True

    # -- paho callbacks (paho's network thread) ---------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            # Refused (bad credentials, say): paho drops the connection and retries with back-off.
            self._set_link(Link.DOWN, logging.WARNING, "MQTT: %s refused the connection: %s; mining goes on, "
                           "retrying with back-off", self.url, reason_code)
            return
        self._set_link(Link.UP, logging.INFO, "MQTT: connected to %s", self.url)
        if self._link == Link.CLOSED:
            return
        client.publish(self.availability_topic, hass.AVAILABLE, qos=1, retain=True)
        self._resend_discovery.set()    # a broker without persistence lost them: send them all again
        # Fresh subscriptions: the broker replays each retained command, so a pause set while
        # this miner (or the broker) was away is obeyed now.
        client.subscribe([(t, 1) for t in self.commands])
        self._kick.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        self._set_link(Link.DOWN, logging.WARNING, "MQTT: connection to %s lost (%s); mining goes on, "
                       "reconnecting with back-off up to %d s", self.url, reason_code, RECONNECT_MAX_S)

    def _on_connect_fail(self, client, _userdata) -> None:
        err = getattr(client, "last_error", None)
        self._set_link(Link.DOWN, logging.WARNING, "MQTT: cannot reach %s (%s); mining goes on, retrying with "
                       "back-off up to %d s", self.url, _why(err), RECONNECT_MAX_S)

    def _on_message(self, _client, _userdata, msg) -> None:
        entry = self.commands.get(msg.topic)
        if entry is None:
            return
        payload = bytes(msg.payload)
        if not payload:
            return          # a retained command being cleared: no command, nothing to do
        if len(payload) > MAX_COMMAND_BYTES:
            self._warn(msg.topic, f"{len(payload)} bytes, over the {MAX_COMMAND_BYTES}-byte limit")
            return
        handler, key = entry
        try:
            handler(msg.topic, key, payload)
        except Exception:   # a bug in one command must not end command handling
            log.exception("MQTT: command on %s failed", msg.topic)

    # -- commands ----------------------------------------------------------------------------
    def _warn(self, topic: str, why: str) -> None:
        """One warning line per malformed command, at most one per topic per WARN_EVERY_S."""
        now = time.monotonic()
        if now - self._warned.get(topic, -math.inf) < WARN_EVERY_S:
            self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
            return
        self._warned[topic] = now
        n = self._suppressed.pop(topic, 0)
        log.warning("MQTT: ignored command on %s: %s; nothing changed%s", topic, why,
                    f" ({n} more ignored since the last warning)" if n else "")

    def _on_mining(self, topic: str, key: str, payload: bytes) -> None:
        want = parse_switch(payload)
        if want is None:
            self._warn(topic, f"expected ON or OFF, got {_show(payload)}")
            return
        if want:
            self.curtailer.release(key, f"ON on {topic}")
        else:
            self.curtailer.hold(key, f"OFF on {topic}")
        self._kick.set()

    def _on_pool(self, topic: str, _key: str, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace").strip()
        pools = self.control.snapshot().pools
        if not pools:
            self._warn(topic, "no pool is configured (offline benchmark)")
            return
        pid = next((p.id for p in pools if p.url == text), None)
        if pid is None and text.isdigit():
            pid = next((p.id for p in pools if p.id == int(text)), None)
        if pid is None:
            self._warn(topic, f"{_show(payload)} is neither a pool id ({', '.join(str(p.id) for p in pools)}) "
                              "nor a configured pool URL")
            return
        self._pool_worker.submit(self._switch_pool, topic, pid)

    def _switch_pool(self, topic: str, pid: int) -> None:
        try:
            self.control.switch_pool(pid)
            log.info("MQTT: switching to pool %d (command on %s)", pid, topic)
        except (MinerError, TimeoutError, concurrent.futures.TimeoutError) as e:
            log.warning("MQTT: switching to pool %d failed: %s", pid, e)
        self._kick.set()

    # -- telemetry ------------------------------------------------------------------------------
    @staticmethod
    def _signature(s: MinerSnapshot) -> tuple:
        """What counts as a change of state: pause, pools and their states, device states."""
        return (s.paused, s.pause_reason, s.current_pool, tuple((p.id, p.url, p.status) for p in s.pools),
                tuple((d.id, d.status) for d in s.devices))

    def _telemetry_loop(self) -> None:
        last_sig: tuple | None = None
        next_due = 0.0
        while not self._stop.is_set():
            kicked = self._kick.wait(TICK_S)
            self._kick.clear()
            if self._stop.is_set() or self._link != Link.UP:
                last_sig = None     # publish everything once the link is back
                continue
            try:
                snap = self.control.snapshot()
                sig = self._signature(snap)
                now = time.monotonic()
                if kicked or sig != last_sig or now >= next_due:
                    self.publish(snap)
                    last_sig, next_due = sig, now + self.interval
            except Exception:   # telemetry must never take mining down
                log.exception("MQTT: telemetry failed")
                self._stop.wait(1.0)

    def publish(self, snap: MinerSnapshot) -> None:
        """State, devices and (when changed) discovery, all retained."""
        c = self._client
        if self.discovery_prefix:
            self._publish_discovery(snap)
        c.publish(self.state_topic, encode(state_payload(snap, self.curtailer.reasons())), qos=0, retain=True)
        for d in snap.devices:
            topic = self._device_topics.get(d.id)
            if topic is None:
                names = set(self._device_topics.values())
                topic = f"{self.base}/device/{hass.slug(d.name)}"
                if topic in names:
                    topic = f"{topic}-{d.id}"
                self._device_topics[d.id] = topic
            c.publish(topic, encode(device_payload(d, snap)), qos=0, retain=True)
        self.published += 1 + len(snap.devices)

    def _publish_discovery(self, snap: MinerSnapshot) -> None:
        if self._resend_discovery.is_set():
            self._resend_discovery.clear()
            self._discovery = {}
        msgs = {t: encode(p) for t, p in
                hass.discovery_messages(self.ident, self.base, self.discovery_prefix, snap, self.version).items()}
        if msgs == self._discovery:
            return
        for topic in self._discovery.keys() - msgs.keys():
            self._client.publish(topic, b"", qos=1, retain=True)    # an entity that no longer applies
        for topic, payload in msgs.items():
            if self._discovery.get(topic) != payload:
                self._client.publish(topic, payload, qos=1, retain=True)
        self._discovery = msgs


def start(control: MinerControl, curtailer: Curtailer, args: argparse.Namespace) -> MqttBridge:
    """The bridge the --mqtt-* flags describe, started. Raises ConfigError on bad settings."""
    import miner
    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    url = parse_url(g("mqtt_url"))
    if g("mqtt_cert"):
        try:
            open(g("mqtt_cert"), "rb").close()
        except OSError as e:
            raise ConfigError(f"--mqtt-cert {g('mqtt_cert')}: {e.strerror}") from e
    return MqttBridge(control, curtailer, url, g("mqtt_id") or default_id(),
                      prefix=g("mqtt_prefix") or DEFAULT_PREFIX, interval=g("mqtt_interval") or DEFAULT_INTERVAL_S,
                      fleet_topic=g("mqtt_fleet_topic"), groups=g("mqtt_group"),
                      discovery_prefix=g("mqtt_discovery_prefix", DEFAULT_DISCOVERY_PREFIX) or "",
                      cafile=g("mqtt_cert"), insecure=bool(g("mqtt_insecure")),
                      version=miner.__version__).start()


__all__ = ["BrokerUrl", "MqttBridge", "add_arguments", "device_payload", "parse_switch", "parse_url",
           "start", "state_payload"]
