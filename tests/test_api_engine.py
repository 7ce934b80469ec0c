"""The real `miner` process (engine + CPU device, offline benchmark job) driven through the API,
read by pyasic and scraped by Prometheus' parser: pause stops hashing, resume restarts it within a
second, quit ends the process cleanly."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

pyasic = pytest.importorskip("pyasic")
from pyasic.miners.backends.cgminer import CGMiner  # noqa: E402
from pyasic.rpc.cgminer import CGMinerRPCAPI  # noqa: E402
from fleet_control import api_ask as ask  # noqa: E402


def total_mh(port: int) -> float:
    return ask(port, "summary")["SUMMARY"][0]["Total MH"]


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    raise AssertionError(f"{name} not in /metrics")


def wait_for(pred, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@pytest.fixture
def miner_process():
    cmd = [sys.executable, "-m", "miner", "--benchmark", "--threads", "1", "--api-port", "0",
           "--api-allow", "W:127.0.0.1", "--metrics-port", "0", "--time-limit", "90", "--log-level", "info"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ports: dict[str, int] = {}
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in p.stderr:
            lines.append(line)
            if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", line):
                ports["api"] = int(m.group(1))
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                ports["metrics"] = int(m.group(1))
            if len(ports) == 2:
                found.set()
    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(30), "".join(lines)
        yield p, ports, lines
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_real_engine_monitored_paused_resumed_and_quit(miner_process):
    p, ports, lines = miner_process
    api, prom = ports["api"], ports["metrics"]

    # hashing has started and the 5 s window has seen it
    assert wait_for(lambda: ask(api, "summary")["SUMMARY"][0]["MHS 5s"] > 0, 20)

    # pyasic, a real fleet client, reads hashrate and devices from the live engine
    m = CGMiner("127.0.0.1")
    m.rpc.port = api
    data = asyncio.run(m.get_data(include=["hashrate", "pools", "uptime"]))
    assert float(data.hashrate) > 0
    devs = asyncio.run(CGMinerRPCAPI("127.0.0.1", port=api).devs())
    assert devs["DEVS"][0]["Device"] == "cpu0" and devs["DEVS"][0]["CPU"] == 0
    # the code the CPU thread runs now, one of the core's names
    assert devs["DEVS"][0]["Code"].split("(")[0] in {"shani", "avx2", "avx512", "armv8", "portable"}
    assert metric(prom, "miner_paused") == 0.0

    # pause: the engine stops handing out work; hashing stops
    assert ask(api, "pause")["STATUS"][0]["STATUS"] == "S"
    s = ask(api, "summary")["SUMMARY"][0]
    assert s["Paused"] is True and "api" in s["Pause Reason"]
    assert metric(prom, "miner_paused") == 1.0
    time.sleep(1.0)                     # let an in-flight scan chunk finish
    before = total_mh(api)
    time.sleep(1.0)
    assert total_mh(api) == pytest.approx(before, abs=1e-3)

    # resume: hashing is back within a second
    t0 = time.monotonic()
    assert ask(api, "resume")["STATUS"][0]["Code"] == 201
    assert wait_for(lambda: total_mh(api) > before, 1.0, step=0.02)
    assert time.monotonic() - t0 < 1.0 + 0.5   # one second plus the polling of this test
    assert metric(prom, "miner_paused") == 0.0

    # quit via the API ends the process normally
    assert ask(api, "quit") == {"STATUS": "BYE"}
    assert p.wait(20) == 0, "".join(lines)
