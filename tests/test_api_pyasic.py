"""A real third-party client, pyasic, reads our cgminer-compatible API."""
from __future__ import annotations

import asyncio

import pytest

from fleet_control import FakeControl
from miner.fleet.api import ApiServer

pyasic = pytest.importorskip("pyasic")  # listed in the test extra; CI installs it
from pyasic.errors import APIError  # noqa: E402
from pyasic.miners.backends.cgminer import CGMiner  # noqa: E402
from pyasic.rpc.cgminer import CGMinerRPCAPI  # noqa: E402


@pytest.fixture
def control():
    return FakeControl()


def _client(port: int) -> CGMiner:
    m = CGMiner("127.0.0.1")
    m.rpc.port = port
    return m


def test_pyasic_reads_hashrate_pools_and_uptime(control):
    srv = ApiServer(control, port=0).start()
    try:
        data = asyncio.run(_client(srv.port).get_data(include=["hashrate", "pools", "uptime", "api_ver",
                                                               "fw_ver"]))
    finally:
        srv.close()
    snap = control.snapshot()
    # pyasic reads "GHS 5s" and converts; float() of its hashrate is H/s
    assert float(data.hashrate) == pytest.approx(snap.hashrate["5s"], rel=1e-3)
    assert data.api_ver == "3.7" and data.fw_ver == "0.1.0"
    assert data.uptime == 600
    assert [p.index for p in data.pools] == [0, 1]
    p0 = data.pools[0]
    assert p0.accepted == 10 and p0.rejected == 1 and p0.alive and p0.active
    assert p0.user == "bc1qexample.worker0"
    assert str(p0.url.host) == "127.0.0.1" and p0.url.port == 3333
    assert data.pools[1].active is False


def test_pyasic_rpc_reads_devices_and_summary(control):
    srv = ApiServer(control, port=0).start()
    try:
        rpc = CGMinerRPCAPI("127.0.0.1", port=srv.port)

        async def go():
            return await rpc.devs(), await rpc.summary(), await rpc.multicommand("summary", "devs", "pools")
        devs, summary, multi = asyncio.run(go())
    finally:
        srv.close()
    assert [d["Device"] for d in devs["DEVS"]] == ["asic0", "cpu1"]
    assert devs["DEVS"][0]["MHS 5s"] == pytest.approx(1.2e6)
    assert devs["DEVS"][0]["Temperature"] == 55.5
    assert summary["SUMMARY"][0]["Accepted"] == 21
    assert multi["multicommand"] is True
    assert multi["devs"][0]["DEVS"][1]["CPU"] == 0
    assert multi["pools"][0]["POOLS"][0]["URL"] == "stratum+tcp://127.0.0.1:3333"


def test_pyasic_privileged_command_refused_without_allow(control):
    srv = ApiServer(control, port=0).start()   # loopback reads; nobody writes
    try:
        rpc = CGMinerRPCAPI("127.0.0.1", port=srv.port)
        with pytest.raises(APIError, match="Access denied to 'switchpool' command"):
            asyncio.run(rpc.switchpool(1))
    finally:
        srv.close()
    assert control.calls == []


def test_pyasic_privileged_command_allowed_with_w_entry(control):
    srv = ApiServer(control, port=0, allow=["W:127.0.0.1"]).start()
    try:
        rpc = CGMinerRPCAPI("127.0.0.1", port=srv.port)
        r = asyncio.run(rpc.switchpool(1))
    finally:
        srv.close()
    assert r["STATUS"][0]["STATUS"] == "S"
    assert control.calls == [("switch_pool", 1)]
