"""Curtailment: overlapping pause reasons, schedule windows, price feeds with hysteresis, profitability."""
from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import logging
import sys
import threading
import time
from dataclasses import replace

import pytest

from fleet_control import FakeControl, device
from miner.fleet import curtail
from miner.fleet import wiring as fleet
from miner.fleet.curtail import (Curtailer, Feed, MiningRate, PriceSource, ProfitSource, ScheduleSource, in_window,
                           parse_number, parse_window)
from miner.errors import ConfigError, ProtocolError


def py(code: str) -> str:
    """A shell command running this Python: a real subprocess, portable to any CI runner."""
    return f'"{sys.executable}" -c "{code}"'


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    fleet.add_arguments(p)
    return p.parse_args(list(argv))


# -- the reason set -------------------------------------------------------------------
def test_overlapping_reasons_resume_only_when_all_clear():
    c = FakeControl()
    cur = Curtailer(c)
    cur.hold("schedule", "window 22:00-06:00 local time")
    cur.hold("energy-price", "energy price above 0.3/kWh")
    assert c.snapshot().paused
    cur.release("schedule", "window over")
    snap = c.snapshot()
    assert snap.paused and snap.pause_reason == "energy-price: energy price above 0.3/kWh"
    cur.hold("energy-price", "energy price above 0.3/kWh")    # same reason again: no new call
    assert c.calls.count(("pause", "energy-price: energy price above 0.3/kWh")) == 1
    cur.release("energy-price")
    assert not c.snapshot().paused
    cur.release("energy-price")                               # releasing twice is harmless
    assert cur.changes == 4


def test_changed_reason_text_never_resumes_in_between():
    c = FakeControl()
    cur = Curtailer(c)
    cur.hold("api", "first")
    cur.hold("api", "second")
    # the new reason is added before the old one is removed: the engine never sees an empty set
    assert c.calls == [("pause", "api: first"), ("pause", "api: second"), ("resume", "api: first")]
    assert c.snapshot().pause_reason == "api: second"


def test_state_changes_are_logged_with_reason(caplog):
    cur = Curtailer(FakeControl())
    with caplog.at_level(logging.INFO, logger="miner.fleet.curtail"):
        cur.hold("schedule", "window 22:00-06:00 local time")
        cur.release("schedule", "outside all pause windows")
    text = caplog.text
    assert "pause by schedule: window 22:00-06:00 local time" in text
    assert "schedule cleared (outside all pause windows)" in text


# -- schedule ---------------------------------------------------------------------------
def test_parse_window_and_midnight_crossing():
    assert parse_window("22:00-06:00") == (1320, 360)
    assert parse_window(" 9:30 - 17:45 ") == (570, 1065)
    assert parse_window("00:00-24:00") == (0, 1440)
    night = parse_window("22:00-06:00")
    assert in_window(23 * 60, night) and in_window(0, night) and in_window(5 * 60 + 59, night)
    assert not in_window(6 * 60, night) and not in_window(12 * 60, night) and not in_window(21 * 60 + 59, night)
    day = parse_window("09:00-17:00")
    assert in_window(9 * 60, day) and not in_window(17 * 60, day)
    for bad in ("22-06", "25:00-06:00", "10:00-10:00", "10:60-11:00", "24:30-01:00", "x"):
        with pytest.raises(ConfigError, match="pause window"):
            parse_window(bad)


def test_schedule_source_pauses_in_window_and_resumes_after():
    c = FakeControl()
    cur = Curtailer(c)
    now = [dt.datetime(2026, 1, 5, 21, 59)]
    src = ScheduleSource(["22:00-06:00", "12:00-12:30"], now=lambda: now[0])
    src.poll(cur)
    assert not c.snapshot().paused
    now[0] = dt.datetime(2026, 1, 5, 22, 0)
    src.poll(cur)
    assert c.snapshot().pause_reason == "schedule: window 22:00-06:00 local time"
    now[0] = dt.datetime(2026, 1, 6, 3, 0)
    src.poll(cur)
    assert c.snapshot().paused
    now[0] = dt.datetime(2026, 1, 6, 6, 0)
    src.poll(cur)
    assert not c.snapshot().paused
    now[0] = dt.datetime(2026, 1, 6, 12, 10)
    src.poll(cur)
    assert c.snapshot().pause_reason == "schedule: window 12:00-12:30 local time"


def test_background_loop_reacts_within_a_second():
    c = FakeControl()
    inside = threading.Event()
    src = ScheduleSource(["10:00-14:00"], now=lambda: dt.datetime(2026, 1, 1, 12 if inside.is_set() else 0, 0))
    cur = Curtailer(c, [src])
    cur.start()
    try:
        time.sleep(0.3)
        assert not c.snapshot().paused
        inside.set()
        t0 = time.monotonic()
        while not c.snapshot().paused and time.monotonic() - t0 < 3:
            time.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
        inside.clear()
        t0 = time.monotonic()
        while c.snapshot().paused and time.monotonic() - t0 < 3:
            time.sleep(0.02)
        assert not c.snapshot().paused and time.monotonic() - t0 < 1.0
    finally:
        cur.close()
    cur.close()


# -- feeds --------------------------------------------------------------------------------
def test_parse_number_forms():
    assert parse_number("0.1234\n") == 0.1234
    assert parse_number("price: 0.31 EUR/kWh") == 0.31
    assert parse_number("-0.02") == -0.02                      # negative prices happen
    assert parse_number('{"data": [{"price": 41.5}]}', "data.0.price") == 41.5
    assert parse_number("1e2") == 100.0
    for body, field in (("", None), ("n/a", None), ('{"a": 1}', "b"), ("nope", "a"), ('{"a": true}', "a"),
                        ('{"a": "NaN"}', "a")):
        with pytest.raises(ProtocolError):
            parse_number(body, field)


def test_feed_command_real_subprocess():
    assert Feed("energy price", command=py("print(0.275)")).fetch() == 0.275
    with pytest.raises(ProtocolError, match="exited 3"):
        Feed("energy price", command=py("import sys; sys.stderr.write('no data'); sys.exit(3)")).fetch()
    with pytest.raises(ProtocolError, match="timed out"):
        Feed("energy price", command=py("import time; time.sleep(5)"), timeout=0.3).fetch()


class _PriceHandler(http.server.BaseHTTPRequestHandler):
    body = b'{"price": {"current": 0.42}}'

    def do_GET(self):  # noqa: N802 - http.server's hook
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def price_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PriceHandler)
    srv.body = b'{"price": {"current": 0.42}}'
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_feed_url_real_http(price_server):
    url = f"http://127.0.0.1:{price_server.server_port}/price"
    assert Feed("energy price", url=url, field="price.current").fetch() == 0.42
    price_server.body = b"x" * (curtail.MAX_FEED_BYTES + 10)
    with pytest.raises(ProtocolError, match="more than"):
        Feed("energy price", url=url).fetch()
    with pytest.raises(ConfigError, match="http"):
        Feed("energy price", url="file:///etc/passwd")
    with pytest.raises(ConfigError, match="not both"):
        Feed("energy price", command="echo 1", url=url)


def test_price_hysteresis_with_real_command(tmp_path):
    price_file = tmp_path / "price"
    src = PriceSource(Feed("energy price", command=py(f"print(open(r'{price_file}').read())")),
                      interval=1.0, max_price=0.30, resume_price=0.25)
    c = FakeControl()
    cur = Curtailer(c, [src])

    def at(p: float) -> bool:
        price_file.write_text(str(p))
        src.poll(cur)
        return c.snapshot().paused

    assert at(0.20) is False
    assert at(0.30) is False          # at max: not above
    assert at(0.31) is True
    assert c.snapshot().pause_reason == "energy-price: energy price above 0.3/kWh"
    assert at(0.28) is True           # between resume and max: stays paused
    assert at(0.25) is False          # at or below resume: resumed
    assert at(0.29) is False          # between: stays running
    assert src.facts() == {"energy_price": 0.29}
    with pytest.raises(ConfigError):
        PriceSource(src.feed, 1.0, max_price=0.2, resume_price=0.3)


def test_failing_feed_keeps_state_and_logs_once(tmp_path, caplog):
    price_file = tmp_path / "price"
    price_file.write_text("0.5")
    src = PriceSource(Feed("energy price", command=py(f"print(open(r'{price_file}').read())")), 0.05, 0.3)
    c = FakeControl()
    cur = Curtailer(c, [src])
    cur.start()
    try:
        t0 = time.monotonic()
        while not c.snapshot().paused and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        assert c.snapshot().paused
        with caplog.at_level(logging.WARNING, logger="miner.fleet.curtail"):
            price_file.write_text("garbage")
            time.sleep(1.5)          # many failed polls
            assert c.snapshot().paused   # no data is no reason to resume
            failures = [r for r in caplog.records if "feed gave no number" in r.getMessage()]
            assert len(failures) == 1
            price_file.write_text("0.1")
            t0 = time.monotonic()
            while c.snapshot().paused and time.monotonic() - t0 < 10:
                time.sleep(0.02)
        assert not c.snapshot().paused
    finally:
        cur.close()


# -- profitability -----------------------------------------------------------------------------
def _snap(elapsed: float, total_hashes: float, paused: bool, watts: float | None = 18.0):
    base = FakeControl().snapshot()
    return replace(base, elapsed=elapsed, hashrate={**base.hashrate, "av": total_hashes / elapsed},
                   paused=paused, watts=watts)


def test_mining_rate_ignores_paused_time():
    r = MiningRate(span_s=600, min_s=30)
    r.add(_snap(100, 100e12, False))
    assert r.rate() is None
    r.add(_snap(130, 130e12, False))          # 1 TH/s for 30 s
    assert r.rate() == pytest.approx(1e12)
    r.add(_snap(140, 140e12, True))            # pause begins (interval ending paused is not counted)
    r.add(_snap(400, 140e12, True, watts=2.0))  # paused long: decayed windows would fall to 0
    assert r.rate() == pytest.approx(1e12) and r.watts == 18.0
    r.add(_snap(410, 140e12, False))
    r.add(_snap(440, 200e12, False))           # 2 TH/s after resume
    assert r.rate() == pytest.approx((30e12 + 60e12) / 60)


def _profit(c: FakeControl, energy: list[float], min_s: float = 0.05) -> ProfitSource:
    return ProfitSource(c, btc_price=lambda: 85000.0, energy_price=lambda: energy[0], fee_btc=0.0,
                        resume_margin=0.05, rate=MiningRate(min_s=min_s))


def test_profit_pause_and_resume_with_hysteresis():
    # 1.2 TH/s, 18 W, difficulty 1.5e14, BTC 85000: revenue 0.042748/day.
    c = FakeControl(devices=[device(0, hs=1.2e12, watts=18.0)], network_difficulty=1.5e14)
    cur = Curtailer(c)
    energy = [0.08]                            # cost 0.03456/day: profitable
    src = _profit(c, energy)
    src.poll(cur)
    time.sleep(0.1)
    src.poll(cur)
    assert not c.snapshot().paused
    assert src.last.revenue_per_day == pytest.approx(0.042748, rel=1e-3)
    assert src.facts()["energy_cost_per_day"] == pytest.approx(0.03456)
    energy[0] = 0.12                           # cost 0.05184 > revenue
    src.poll(cur)
    assert c.snapshot().pause_reason == "profit: expected revenue below energy cost"
    time.sleep(0.1)
    energy[0] = 0.095                          # cost 0.04104 < revenue < cost * 1.05: stays paused
    src.poll(cur)
    assert c.snapshot().paused
    assert src.last.revenue_per_day == pytest.approx(0.042748, rel=1e-2)   # rate remembered while paused
    energy[0] = 0.08
    src.poll(cur)
    assert not c.snapshot().paused


def test_profit_waits_for_data(caplog):
    c = FakeControl(devices=[device(0, watts=None)], network_difficulty=None)
    src = _profit(c, [0.5])
    cur = Curtailer(c)
    with caplog.at_level(logging.INFO, logger="miner.fleet.curtail"):
        for _ in range(3):
            src.poll(cur)
            time.sleep(0.03)
    assert not c.snapshot().paused
    msgs = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert msgs and "watts" in msgs[-1] and "network difficulty" in msgs[-1]
    src.difficulty = 1.5e14                   # --network-difficulty fills the gap, watts still missing
    src.poll(cur)
    assert "network difficulty" not in src._missing and "watts" in src._missing


# -- flags -> sources -------------------------------------------------------------------------------
def test_build_from_flags():
    c = FakeControl()
    cur = curtail.build(c, parse())
    assert cur.sources == []
    cur = curtail.build(c, parse("--pause-window", "22:00-06:00", "--pause-window", "12:00-13:00,14:00-15:00",
                                 "--price-command", "echo 0.2", "--max-energy-price", "0.3",
                                 "--profit-pause", "--btc-price", "85000", "--fee-estimate", "0.02"))
    kinds = [type(s).__name__ for s in cur.sources]
    assert kinds == ["ScheduleSource", "PriceSource", "ProfitSource"]
    assert cur.sources[0].texts == ["22:00-06:00", "12:00-13:00", "14:00-15:00"]
    profit_src = cur.sources[2]
    assert profit_src.energy_price() is None   # from the feed, not polled yet
    cur.sources[1].price = 0.2
    assert profit_src.energy_price() == 0.2 and profit_src.btc_price() == 85000 and profit_src.fee_btc == 0.02


@pytest.mark.parametrize("argv,msg", [
    (["--max-energy-price", "0.3"], "needs --price-command"),
    (["--profit-pause", "--energy-cost", "0.1"], "needs --btc-price"),
    (["--profit-pause", "--btc-price", "85000"], "needs --energy-cost"),
    (["--pause-window", "25:00-01:00"], "pause window"),
    (["--price-url", "ftp://x/y"], "http"),
])
def test_build_config_errors(argv, msg):
    with pytest.raises(ConfigError, match=msg):
        curtail.build(FakeControl(), parse(*argv))


def test_btc_price_command_feeds_profit():
    c = FakeControl()
    cur = curtail.build(c, parse("--profit-pause", "--btc-price-command", py("print(91000)"),
                                 "--energy-cost", "0.1"))
    feed_src, profit_src = cur.sources
    feed_src.poll(cur)
    assert profit_src.btc_price() == 91000.0 and profit_src.energy_price() == 0.1


def test_json_round_trip_of_status():
    c = FakeControl()
    cur = Curtailer(c)
    cur.hold("api", "paused by API command")
    assert json.loads(json.dumps(cur.status())) == {"reasons": {"api": "api: paused by API command"}}


def test_slow_feed_does_not_delay_the_schedule():
    c = FakeControl()
    inside = threading.Event()
    sched = ScheduleSource(["10:00-14:00"], now=lambda: dt.datetime(2026, 1, 1, 12 if inside.is_set() else 0, 0))
    slow = PriceSource(Feed("energy price", command=py("import time; time.sleep(3); print(0.1)")), 60.0, 0.3)
    cur = Curtailer(c, [slow, sched])
    cur.start()
    try:
        time.sleep(0.3)                    # the price command is now running
        inside.set()
        t0 = time.monotonic()
        while not c.snapshot().paused and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
    finally:
        t0 = time.monotonic()
        cur.close()
        assert time.monotonic() - t0 < 3.0
