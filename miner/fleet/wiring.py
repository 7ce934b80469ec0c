"""Wiring for fleet monitoring and control: flags, and start()/close() of the API,
/metrics, MQTT and curtailment around a running MinerControl.

    handle = fleet.start(control, args)   # starts only what the flags ask for
    ...
    handle.close()                        # idempotent
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import threading

from miner.fleet import curtail, mqtt, power, web
from miner.errors import ConfigError, MinerError
from miner.engine.stats import MinerControl
from miner.units import port_number

log = logging.getLogger(__name__)

DEFAULT_API_PORT = 4028


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every fleet flag on the main `miner` command (API, metrics, power, curtailment).

    Turns off abbreviated long options on `parser`: argparse matches prefixes of
    the main parser's flags against every argument, subcommand arguments included,
    so `miner profit --price 85000` would be refused as an ambiguous abbreviation
    of --price-command/--price-url/... (and config keys are full names anyway).
    """
    parser.allow_abbrev = False
    g = parser.add_argument_group("monitoring API (cgminer-compatible)")
    g.add_argument("--api-listen", dest="api_listen", action="store_true",
                   help=f"serve the cgminer-compatible API (default 127.0.0.1:{DEFAULT_API_PORT})")
    g.add_argument("--api-port", dest="api_port", type=port_number, default=None, metavar="PORT",
                   help=f"API port (default {DEFAULT_API_PORT}; implies --api-listen)")
    g.add_argument("--api-bind", dest="api_bind", default=None, metavar="ADDR",
                   help="API address (default 127.0.0.1; implies --api-listen)")
    g.add_argument("--api-allow", dest="api_allow", action="append", metavar="[W:]CIDR[,...]",
                   help="clients allowed: W:CIDR may run privileged commands, CIDR may read; repeatable")
    m = parser.add_argument_group("Prometheus")
    m.add_argument("--metrics-port", dest="metrics_port", type=port_number, default=None, metavar="PORT",
                   help="serve Prometheus /metrics on this port")
    m.add_argument("--metrics-bind", dest="metrics_bind", default="127.0.0.1", metavar="ADDR",
                   help="metrics address (default 127.0.0.1)")
    power.add_arguments(parser)
    curtail.add_arguments(parser)
    mqtt.add_arguments(parser)
    web.add_arguments(parser)


class FleetHandle:
    """What fleet.start() started; close() stops it all, once."""

    def __init__(self) -> None:
        self.api = None
        self.metrics = None
        self.web = None
        self.curtailer: curtail.Curtailer | None = None
        self.mqtt: mqtt.MqttBridge | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def api_port(self) -> int | None:
        return self.api.port if self.api else None

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port if self.metrics else None

    @property
    def web_port(self) -> int | None:
        return self.web.port if self.web else None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for part in (self.mqtt, self.web, self.api, self.metrics, self.curtailer):  # mqtt first: it says offline
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing one part must not leave the others running
                    log.exception("fleet: closing %s failed", type(part).__name__)

    def __enter__(self) -> "FleetHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _warn_if_exposed(what: str, bind: str, note: str) -> None:
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback:
        log.warning("%s listens on %s, beyond this machine: %s", what, bind, note)


def start(control: MinerControl, args: argparse.Namespace) -> FleetHandle:
    """Start the API, metrics and curtailment that args ask for. Raises ConfigError on bad settings."""
    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    handle = FleetHandle()
    try:
        curtailer = curtail.build(control, args)
        want_api = bool(g("api_listen") or g("api_port") is not None or g("api_bind"))
        want_mqtt = bool(g("mqtt_url"))
        want_web = g("web_port") is not None
        if curtailer.sources or want_api or want_mqtt or want_web:
            handle.curtailer = curtailer
            curtailer.start()
            if curtailer.sources:
                log.info("curtailment sources: %s", ", ".join(s.key for s in curtailer.sources))
        if want_api:
            from miner.fleet.api import ApiServer  # lazy: nothing to import when the API is off
            _warn_if_exposed("API", g("api_bind") or "127.0.0.1",
                             "only loopback and --api-allow addresses are answered")
            port = g("api_port")
            handle.api = ApiServer(control, bind=g("api_bind") or "127.0.0.1",
                                   port=DEFAULT_API_PORT if port is None else port,
                                   allow=g("api_allow"), curtailer=curtailer).start()
        if g("metrics_port") is not None:
            from miner.fleet.metrics import MetricsServer
            _warn_if_exposed("metrics", g("metrics_bind") or "127.0.0.1",
                             "/metrics has no authentication; firewall it")
            facts = handle.curtailer.status if handle.curtailer else None
            handle.metrics = MetricsServer(control, bind=g("metrics_bind") or "127.0.0.1",
                                           port=g("metrics_port"), facts=facts).start()
        if want_mqtt:
            handle.mqtt = mqtt.start(control, curtailer, args)
        if want_web:
            handle.web = web.start(control, args, handle.curtailer)
    except MinerError:
        handle.close()
        raise
    except (OSError, ValueError) as e:
        handle.close()
        raise ConfigError(f"fleet monitoring: {e}") from e
    return handle
