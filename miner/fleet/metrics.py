"""Prometheus /metrics from MinerControl snapshots.

A custom collector on its own CollectorRegistry: every scrape takes one fresh
snapshot, so values are consistent with each other and nothing in the miner
has to update metric objects. Counters come from the engine's own running
totals (they only reset when the miner restarts, which Prometheus handles).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from miner.errors import ConfigError
from miner.fleet.power import efficiency_hashrate, joules_per_terahash
from miner.engine.stats import MinerControl

log = logging.getLogger(__name__)

WINDOWS = ("5s", "1m", "5m", "15m", "av")


class MinerCollector(Collector):
    def __init__(self, control: MinerControl, facts: Callable[[], dict[str, Any]] | None = None) -> None:
        self.control = control
        self.facts = facts or (lambda: {})

    def collect(self) -> Iterator[Metric]:
        s = self.control.snapshot()
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
                                "hashrate implied by accepted share difficulty", value=s.effective_hashrate)

        dev_hr = GaugeMetricFamily("miner_device_hashrate_hashes_per_second", "hashrate per device",
                                   labels=["device", "kind", "window"])
        dev_hw = CounterMetricFamily("miner_device_hardware_errors", "nonces that failed the host re-check",
                                     labels=["device", "kind"])
        dev_sh = CounterMetricFamily("miner_device_shares", "shares found per device by result",
                                     labels=["device", "kind", "result"])
        dev_up = GaugeMetricFamily("miner_device_up", "1 when the device is alive (hashing or paused)",
                                   labels=["device", "kind", "status"])
        dev_w = GaugeMetricFamily("miner_device_watts", "device power draw where known", labels=["device", "kind"])
        dev_t = GaugeMetricFamily("miner_device_temperature_celsius", "device temperature where known",
                                  labels=["device", "kind"])
        dev_f = GaugeMetricFamily("miner_device_frequency_mhz", "chip clock where known", labels=["device", "kind"])
        dev_j = GaugeMetricFamily("miner_device_joules_per_terahash", "device efficiency where watts are known",
                                  labels=["device", "kind"])
        for d in s.devices:
            lab = [d.name, d.kind]
            for w in WINDOWS:
                dev_hr.add_metric(lab + [w], d.hashrate.get(w, 0.0))
            dev_hw.add_metric(lab, d.hw_errors)
            for result, n in (("accepted", d.accepted), ("rejected", d.rejected), ("stale", d.stale)):
                dev_sh.add_metric(lab + [result], n)
            dev_up.add_metric(lab + [d.status], 1.0 if d.status in ("alive", "paused") else 0.0)
            if d.watts is not None:
                dev_w.add_metric(lab, d.watts)
                j = joules_per_terahash(d.watts, efficiency_hashrate(d.hashrate, d.elapsed or s.elapsed))
                if j is not None:
                    dev_j.add_metric(lab, j)
            if d.temperature_c is not None:
                dev_t.add_metric(lab, d.temperature_c)
            if d.frequency_mhz is not None:
                dev_f.add_metric(lab, d.frequency_mhz)
        yield from (dev_hr, dev_hw, dev_sh, dev_up, dev_w, dev_t, dev_f, dev_j)

        yield CounterMetricFamily("miner_hardware_errors", "nonces that failed the host re-check, all devices",
                                  value=s.hw_errors)
        pool_sh = CounterMetricFamily("miner_shares", "shares submitted by pool and result",
                                      labels=["pool", "url", "result"])
        pool_diff_sh = CounterMetricFamily("miner_share_difficulty", "sum of share difficulty by pool and result",
                                           labels=["pool", "url", "result"])
        pool_diff = GaugeMetricFamily("miner_pool_difficulty", "current share difficulty set by the pool",
                                      labels=["pool", "url"])
        pool_up = GaugeMetricFamily("miner_pool_up", "1 when the pool connection is alive", labels=["pool", "url"])
        pool_state = GaugeMetricFamily("miner_pool_state", "pool connection state (1 for the current state)",
                                       labels=["pool", "url", "state"])
        pool_act = GaugeMetricFamily("miner_pool_active", "1 for the pool being mined on", labels=["pool", "url"])
        pool_rej = CounterMetricFamily("miner_pool_rejects", "rejected shares by pool and reason",
                                       labels=["pool", "url", "reason"])
        pool_jobs = CounterMetricFamily("miner_pool_jobs", "jobs (mining.notify) received", labels=["pool", "url"])
        pool_blocks = CounterMetricFamily("miner_pool_blocks", "blocks found", labels=["pool", "url"])
        for p in s.pools:
            lab = [str(p.id), p.url]
            for result, n, dsum in (("accepted", p.accepted, p.difficulty_accepted),
                                    ("rejected", p.rejected, p.difficulty_rejected),
                                    ("stale", p.stale, p.difficulty_stale)):
                pool_sh.add_metric(lab + [result], n)
                pool_diff_sh.add_metric(lab + [result], dsum)
            pool_diff.add_metric(lab, p.difficulty)
            pool_up.add_metric(lab, 1.0 if p.status == "alive" else 0.0)
            for st in ("alive", "dead", "disabled", "connecting"):
                pool_state.add_metric(lab + [st], 1.0 if p.status == st else 0.0)
            pool_act.add_metric(lab, 1.0 if p.active else 0.0)
            for reason, n in sorted(p.reject_reasons.items()):
                pool_rej.add_metric(lab + [reason], n)
            pool_jobs.add_metric(lab, p.jobs)
            pool_blocks.add_metric(lab, p.blocks)
        yield from (pool_sh, pool_diff_sh, pool_diff, pool_up, pool_state, pool_act, pool_rej, pool_jobs,
                    pool_blocks)

        if s.network_difficulty is not None:
            yield GaugeMetricFamily("miner_network_difficulty", "network difficulty from the current job's nbits",
                                    value=s.network_difficulty)
        yield GaugeMetricFamily("miner_best_share_difficulty", "best share difficulty since start",
                                value=s.best_share)
        if s.watts is not None:
            yield GaugeMetricFamily("miner_watts", "total power draw of devices with known watts", value=s.watts)
            j = joules_per_terahash(s.watts, efficiency_hashrate(s.hashrate, s.elapsed))
            if j is not None:
                yield GaugeMetricFamily("miner_joules_per_terahash", "efficiency, total", value=j)

        yield GaugeMetricFamily("miner_paused", "1 while mining is paused", value=1.0 if s.paused else 0.0)
        facts = self.facts()
        reasons = facts.get("reasons") or {}
        pr = GaugeMetricFamily("miner_pause_reason", "active pause reasons (1 each)", labels=["source", "reason"])
        if isinstance(reasons, dict) and reasons:
            for k, v in sorted(reasons.items()):
                pr.add_metric([k, v], 1.0)
        elif s.paused:
            pr.add_metric(["engine", s.pause_reason or "unknown"], 1.0)
        yield pr
        for key, name, doc in (
                ("energy_price", "miner_energy_price_per_kwh", "last energy price from the price feed"),
                ("revenue_per_day", "miner_expected_revenue_per_day", "expected revenue per day at current rate"),
                ("energy_cost_per_day", "miner_energy_cost_per_day", "energy cost per day at current watts"),
                ("btc_per_day", "miner_expected_btc_per_day", "expected BTC per day at current rate")):
            v = facts.get(key)
            if isinstance(v, (int, float)):
                yield GaugeMetricFamily(name, doc, value=float(v))


class MetricsServer:
    """/metrics over HTTP on its own registry (never the process-global one)."""

    def __init__(self, control: MinerControl, bind: str = "127.0.0.1", port: int = 9100,
                 facts: Callable[[], dict[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MinerCollector(control, facts))
        self.bind, self.requested_port = bind, port
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> "MetricsServer":
        try:
            self._server, self._thread = start_http_server(self.requested_port, addr=self.bind,
                                                           registry=self.registry)
        except OSError as e:
            raise ConfigError(f"metrics cannot listen on {self.bind}:{self.requested_port}: {e.strerror or e}") from e
        self.port = self._server.server_port
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
