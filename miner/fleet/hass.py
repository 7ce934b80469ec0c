"""Home Assistant MQTT discovery: the retained config messages that make a rig appear by itself.

Home Assistant subscribes to <discovery prefix>/<component>/<object id>/config
(prefix "homeassistant" by default). Each config message is one entity, as a JSON
object with the same keys as that platform's YAML configuration (full key names
are used here; the short forms are optional). An empty retained message on a
config topic removes the entity.

Every entity carries:
  - unique_id, which is also its object id (then no node id is needed);
  - the same `device` block (identifiers, name, manufacturer, model, sw_version),
    which groups the entities under one device in Home Assistant;
  - availability_topic with payload_available "online" / payload_not_available
    "offline": the miner's availability topic, whose last will is "offline";
  - an `origin` block naming the software that sent the discovery.

Sensors read one key of the retained state JSON through value_template; the
switch turns mining on and off through the miner's set/mining topic; the select
switches pool through set/pool, its options being the configured pool URLs.
"""
from __future__ import annotations

import re
from typing import Any

from miner.engine.stats import MinerSnapshot

_SLUG_RE = re.compile(r"[^A-Za-z0-9_-]+")

AVAILABLE, NOT_AVAILABLE = "online", "offline"


def slug(text: str) -> str:
    """A topic level and Home Assistant object id from any name: [A-Za-z0-9_-] only."""
    s = _SLUG_RE.sub("_", text).strip("_")
    return s or "x"


def _sensor(key: str, name: str, template: str, unit: str | None = None, device_class: str | None = None,
            state_class: str | None = "measurement", icon: str | None = None, precision: int | None = None,
            diagnostic: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "name": name, "value_template": template}
    if unit:
        out["unit_of_measurement"] = unit
    if device_class:
        out["device_class"] = device_class
    if state_class:
        out["state_class"] = state_class
    if icon:
        out["icon"] = icon
    if precision is not None:
        out["suggested_display_precision"] = precision
    if diagnostic:
        out["entity_category"] = "diagnostic"
    return out


def discovery_messages(ident: str, base: str, discovery_prefix: str, snap: MinerSnapshot,
                       version: str) -> dict[str, dict[str, Any]]:
    """{config topic: payload} for every entity of this miner.

    ident is the miner's id, base its topic root (<prefix>/<id>). Power, J/TH and
    temperature appear only when the snapshot knows them; the pool select only when
    there are pools (not in --benchmark).
    """
    uid = f"miner_{slug(ident)}"
    state = f"{base}/state"
    common = {
        "availability_topic": f"{base}/availability",
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": {"identifiers": [uid], "name": ident, "manufacturer": "miner",
                   "model": "SHA-256d miner", "sw_version": version},
        "origin": {"name": "miner", "sw_version": version},
    }
    # Hashrates in GH/s, the unit AxeOS and most rig dashboards show; the state JSON keeps H/s.
    sensors = [
        _sensor("hashrate", "Hashrate", "{{ value_json.hashrate_1m / 1e9 }}", "GH/s",
                icon="mdi:pickaxe", precision=3),
        _sensor("hashrate_15m", "Hashrate 15m", "{{ value_json.hashrate_15m / 1e9 }}", "GH/s",
                icon="mdi:pickaxe", precision=3),
        _sensor("accepted", "Accepted shares", "{{ value_json.accepted }}", state_class="total_increasing",
                icon="mdi:check"),
        _sensor("rejected", "Rejected shares", "{{ value_json.rejected }}", state_class="total_increasing",
                icon="mdi:close"),
        _sensor("best_share", "Best share", "{{ value_json.best_share }}", icon="mdi:trophy", precision=0),
        _sensor("difficulty", "Pool difficulty", "{{ value_json.difficulty }}", diagnostic=True),
        _sensor("uptime", "Uptime", "{{ value_json.uptime | int }}", "s", device_class="duration",
                state_class=None, diagnostic=True),
        _sensor("pause_reason", "Pause reason", "{{ value_json.pause_reason or 'none' }}", state_class=None,
                icon="mdi:pause-circle", diagnostic=True),
    ]
    if snap.watts is not None:
        sensors.append(_sensor("power", "Power", "{{ value_json.watts }}", "W", device_class="power",
                               precision=1))
        sensors.append(_sensor("efficiency", "Efficiency", "{{ value_json.jth }}", "J/TH",
                               icon="mdi:lightning-bolt", precision=2))
    if any(d.temperature_c is not None for d in snap.devices):
        sensors.append(_sensor("temperature", "Temperature", "{{ value_json.temperature_c }}", "°C",
                               device_class="temperature", precision=1))
    out: dict[str, dict[str, Any]] = {}
    for s in sensors:
        key = s.pop("key")
        oid = f"{uid}_{key}"
        out[f"{discovery_prefix}/sensor/{oid}/config"] = {
            "name": s.pop("name"), "unique_id": oid, "state_topic": state, **s, **common}
    oid = f"{uid}_mining"
    out[f"{discovery_prefix}/switch/{oid}/config"] = {
        "name": "Mining", "unique_id": oid, "icon": "mdi:pickaxe",
        "command_topic": f"{base}/set/mining", "state_topic": state,
        "value_template": "{{ value_json.mining }}",
        "payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF",
        # Retained and QoS 1: the miner re-reads its last command when it (or the broker) restarts.
        "retain": True, "qos": 1, **common}
    if snap.pools:
        oid = f"{uid}_pool"
        out[f"{discovery_prefix}/select/{oid}/config"] = {
            "name": "Pool", "unique_id": oid, "icon": "mdi:server-network",
            "command_topic": f"{base}/set/pool", "state_topic": state,
            "value_template": "{{ value_json.pool_url }}",
            "options": [p.url for p in snap.pools], "qos": 1, **common}
    return out
