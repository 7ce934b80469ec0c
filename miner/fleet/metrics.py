"""Prometheus /metrics from MinerControl snapshots.

A custom collector on its own CollectorRegistry: every scrape takes one fresh
snapshot, so values are consistent with each other and nothing in the miner
has to update metric objects. Counters come from the engine's own running
totals (they only reset when the miner restarts, which Prometheus handles).

The HTTP side serves /metrics only (404 elsewhere), one request per connection, with the API's
bounds: a client idle for REQUEST_TIMEOUT_S is dropped and at most MAX_CONNECTIONS are served at once.
"""
from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from miner.errors import ConfigError
from miner.fleet.power import efficiency_hashrate, joules_per_terahash
from miner.engine.stats import MinerControl, MinerSnapshot

log = logging.getLogger(__name__)

WINDOWS = ("5s", "1m", "5m", "15m", "av")
REQUEST_TIMEOUT_S = 3.0     # a client that sends no full request in this time is disconnected (as the API)
MAX_CONNECTIONS = 16        # clients served at once (as the API)


class MinerCollector(Collector):
    """One snapshot per scrape, turned into metric families: miner-wide, per device, per pool, fleet facts."""

    def __init__(self, control: MinerControl, facts: Callable[[], dict[str, Any]] | None = None) -> None:
        self.control = control
        self.facts = facts or (lambda: {})

    def collect(self) -> Iterator[Metric]:
        s = self.control.snapshot()
        yield from _miner_metrics(s)
        yield from _device_metrics(s)
        yield from _pool_metrics(s)
        yield from _totals(s)
        yield from _fleet_metrics(s, self.facts())


def _miner_metrics(s: MinerSnapshot) -> Iterator[Metric]:
    info = InfoMetricFamily("miner", "miner build")
    info.add_metric([], {"version": s.version})
    yield info
    yield GaugeMetricFamily("miner_uptime_seconds", "seconds since the miner started", value=s.elapsed)
    total = GaugeMetricFamily("miner_hashrate_hashes_per_second", "total hashrate by averaging window",
                              labels=["window"])
    for w in WINDOWS:
        total.add_metric([w], s.hashrate.get(w, 0.0))
    yield total
    yield GaugeMetricFamily("miner_effective_hashrate_hashes_per_second",
                            "hashrate implied by accepted shares at their job's difficulty", value=s.effective_hashrate)


def _device_metrics(s: MinerSnapshot) -> Iterator[Metric]:
    lab = ["device", "kind"]
    hashrate = GaugeMetricFamily("miner_device_hashrate_hashes_per_second", "hashrate per device",
                                 labels=lab + ["window"])
    hw = CounterMetricFamily("miner_device_hardware_errors", "nonces that failed the host re-check", labels=lab)
    shares = CounterMetricFamily("miner_device_shares", "shares found per device by result", labels=lab + ["result"])
    up = GaugeMetricFamily("miner_device_up", "1 when the device is alive (hashing or paused)",
                           labels=lab + ["status"])
    watts = GaugeMetricFamily("miner_device_watts", "device power draw where known", labels=lab)
    temp = GaugeMetricFamily("miner_device_temperature_celsius", "device temperature where known", labels=lab)
    freq = GaugeMetricFamily("miner_device_frequency_mhz", "chip clock where known", labels=lab)
    jth = GaugeMetricFamily("miner_device_joules_per_terahash", "device efficiency where watts are known", labels=lab)
    for d in s.devices:
        v = [d.name, d.kind]
        for w in WINDOWS:
            hashrate.add_metric(v + [w], d.hashrate.get(w, 0.0))
        hw.add_metric(v, d.hw_errors)
        for result, n in (("accepted", d.accepted), ("rejected", d.rejected), ("stale", d.stale)):
            shares.add_metric(v + [result], n)
        up.add_metric(v + [d.status], 1.0 if d.status in ("alive", "paused") else 0.0)
        if d.watts is not None:
            watts.add_metric(v, d.watts)
            j = joules_per_terahash(d.watts, efficiency_hashrate(d.hashrate, d.elapsed or s.elapsed))
            if j is not None:
                jth.add_metric(v, j)
        if d.temperature_c is not None:
            temp.add_metric(v, d.temperature_c)
        if d.frequency_mhz is not None:
            freq.add_metric(v, d.frequency_mhz)
    yield from (hashrate, hw, shares, up, watts, temp, freq, jth)


def _pool_metrics(s: MinerSnapshot) -> Iterator[Metric]:
    lab = ["pool", "url"]
    shares = CounterMetricFamily("miner_shares", "shares submitted by pool and result", labels=lab + ["result"])
    diff_sum = CounterMetricFamily("miner_share_difficulty",
                                   "sum of the job difficulty credited per share, by pool and result",
                                   labels=lab + ["result"])
    diff = GaugeMetricFamily("miner_pool_difficulty", "current share difficulty set by the pool", labels=lab)
    up = GaugeMetricFamily("miner_pool_up", "1 when the pool connection is alive", labels=lab)
    state = GaugeMetricFamily("miner_pool_state", "pool connection state (1 for the current state)",
                              labels=lab + ["state"])
    active = GaugeMetricFamily("miner_pool_active", "1 for the pool being mined on", labels=lab)
    rejects = CounterMetricFamily("miner_pool_rejects", "rejected shares by pool and reason", labels=lab + ["reason"])
    jobs = CounterMetricFamily("miner_pool_jobs", "jobs (mining.notify) received", labels=lab)
    blocks = CounterMetricFamily("miner_pool_blocks", "blocks found", labels=lab)
    for p in s.pools:
        v = [str(p.id), p.url]
        for result, n, dsum in (("accepted", p.accepted, p.difficulty_accepted),
                                ("rejected", p.rejected, p.difficulty_rejected),
                                ("stale", p.stale, p.difficulty_stale)):
            shares.add_metric(v + [result], n)
            diff_sum.add_metric(v + [result], dsum)
        diff.add_metric(v, p.difficulty)
        up.add_metric(v, 1.0 if p.status == "alive" else 0.0)
        for st in ("alive", "dead", "disabled", "connecting"):
            state.add_metric(v + [st], 1.0 if p.status == st else 0.0)
        active.add_metric(v, 1.0 if p.active else 0.0)
        for reason, n in sorted(p.reject_reasons.items()):
            rejects.add_metric(v + [reason], n)
        jobs.add_metric(v, p.jobs)
        blocks.add_metric(v, p.blocks)
    yield from (shares, diff_sum, diff, up, state, active, rejects, jobs, blocks)


def _totals(s: MinerSnapshot) -> Iterator[Metric]:
    yield CounterMetricFamily("miner_hardware_errors", "nonces that failed the host re-check, all devices",
                              value=s.hw_errors)
    if s.network_difficulty is not None:
        yield GaugeMetricFamily("miner_network_difficulty", "network difficulty from the current job's nbits",
                                value=s.network_difficulty)
    yield GaugeMetricFamily("miner_best_share_difficulty", "best share difficulty since start", value=s.best_share)
    if s.watts is not None:
        yield GaugeMetricFamily("miner_watts", "total power draw of devices with known watts", value=s.watts)
        j = joules_per_terahash(s.watts, efficiency_hashrate(s.hashrate, s.elapsed))
        if j is not None:
            yield GaugeMetricFamily("miner_joules_per_terahash", "efficiency, total", value=j)


_FACTS = (("energy_price", "miner_energy_price_per_kwh", "last energy price from the price feed"),
          ("revenue_per_day", "miner_expected_revenue_per_day", "expected revenue per day at current rate"),
          ("energy_cost_per_day", "miner_energy_cost_per_day", "energy cost per day at current watts"),
          ("btc_per_day", "miner_expected_btc_per_day", "expected BTC per day at current rate"))


def _fleet_metrics(s: MinerSnapshot, facts: dict[str, Any]) -> Iterator[Metric]:
    """Pause state and reasons, and what curtailment computed (present only when it did)."""
    yield GaugeMetricFamily("miner_paused", "1 while mining is paused", value=1.0 if s.paused else 0.0)
    reasons = facts.get("reasons") or {}
    pr = GaugeMetricFamily("miner_pause_reason", "active pause reasons (1 each)", labels=["source", "reason"])
    if isinstance(reasons, dict) and reasons:
        for k, v in sorted(reasons.items()):
            pr.add_metric([k, v], 1.0)
    elif s.paused:
        pr.add_metric(["engine", s.pause_reason or "unknown"], 1.0)
    yield pr
    for key, name, doc in _FACTS:
        v = facts.get(key)
        if isinstance(v, (int, float)):
            yield GaugeMetricFamily(name, doc, value=float(v))


class _Handler(BaseHTTPRequestHandler):
    """GET /metrics (and HEAD); 404 for any other path.

    The request line and headers must arrive within REQUEST_TIMEOUT_S in all (a timer closes the
    socket otherwise), so neither an idle client nor one trickling a byte at a time holds a slot.
    """

    server: "_Server"
    timeout = REQUEST_TIMEOUT_S        # per read; the timer below bounds the whole request
    protocol_version = "HTTP/1.0"      # one request per connection: nothing is held open between scrapes

    def handle(self) -> None:
        self._timer = threading.Timer(REQUEST_TIMEOUT_S, self._give_up)
        self._timer.daemon = True
        self._timer.start()
        try:
            super().handle()
        finally:
            self._timer.cancel()

    def _give_up(self) -> None:
        log.debug("metrics: %s sent no complete request in %.0f s; closing", self.client_address[0],
                  REQUEST_TIMEOUT_S)
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._timer.cancel()   # the request is in; writing the reply is not bounded by it
        return ok

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        if urlsplit(self.path).path != "/metrics":
            self._reply(404, b"not found: the metrics are at /metrics\n", "text/plain; charset=utf-8", body)
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            data = encoder(self.server.registry)
        except Exception:   # a failing snapshot is a 500 for this scrape, not a dead server
            log.exception("metrics: scrape failed")
            self._reply(500, b"scrape failed\n", "text/plain; charset=utf-8", body)
            return
        self._reply(200, data, content_type, body)

    def _reply(self, code: int, data: bytes, content_type: str, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS clients at once; one more is closed at once, never queued on a thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], registry: CollectorRegistry) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.registry = registry
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(addr, _Handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("metrics: too many connections (%d); refusing %s", MAX_CONNECTIONS, client_address[0])
            try:
                request.settimeout(0.5)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    """/metrics over HTTP on its own registry (never the process-global one)."""

    def __init__(self, control: MinerControl, bind: str = "127.0.0.1", port: int = 9100,
                 facts: Callable[[], dict[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MinerCollector(control, facts))
        self.bind, self.requested_port = bind, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> "MetricsServer":
        try:
            self._server = _Server((self.bind, self.requested_port), self.registry)
        except OSError as e:
            raise ConfigError(f"metrics cannot listen on {self.bind}:{self.requested_port}: {e.strerror or e}") from e
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics", daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        log.info("Prometheus metrics on http://%s:%d/metrics", self.bind, self.port)
        return self

    def close(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
