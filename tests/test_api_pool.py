"""A real `miner` process on a Stratum pool, curtailed through the API: the pool session stays up
while paused (no reconnect), no shares are found while paused, mining resumes after resume, and
the API's pool view matches the session (without the password)."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time

import pytest

from fakepool import FakePool
from fleet_control import api_ask as ask


class PoolThread:
    """FakePool on its own event loop thread, so this synchronous test can poke it."""

    def __init__(self, **kw) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pool: FakePool = self.call(FakePool(**kw).start())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.pool.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def pool():
    # difficulty 0.002: one share every ~3 MH, i.e. about a second on one CPU thread
    p = PoolThread(difficulty=0.002)
    yield p.pool
    p.close()


def wait_for(pred, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if v := pred():
            return v
        time.sleep(step)
    return pred()


def test_pause_keeps_pool_session_and_resume_mines_again(pool):
    cmd = [sys.executable, "-m", "miner", "-o", pool.url, "-u", "worker.1", "-p", "hunter2-pw", "-t", "1",
           "--api-port", "0", "--api-allow", "W:127.0.0.1", "--time-limit", "120", "--log-level", "info"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    port: list[int] = []

    def read():
        for line in p.stderr:
            lines.append(line)
            if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", line):
                port.append(int(m.group(1)))
    threading.Thread(target=read, daemon=True).start()
    try:
        assert wait_for(lambda: port, 30), "".join(lines)
        api = port[0]
        assert wait_for(lambda: len(pool.accepted) >= 2, 60), "".join(lines)

        pools = ask(api, "pools")["POOLS"]
        assert pools[0]["URL"] == pool.url and pools[0]["User"] == "worker.1"
        assert pools[0]["Status"] == "Alive" and pools[0]["Stratum Active"] is True
        assert "hunter2" not in json.dumps(pools)

        assert ask(api, "pause")["STATUS"][0]["Code"] == 200
        time.sleep(1.0)                       # shares already in flight may still land
        during = len(pool.accepted)
        time.sleep(4.0)
        assert len(pool.accepted) == during   # nothing mined while paused
        assert len(pool.clients) == 1 and not pool.clients[0].closed   # same session, no reconnect
        assert ask(api, "summary")["SUMMARY"][0]["Paused"] is True

        assert ask(api, "resume")["STATUS"][0]["Code"] == 201
        assert wait_for(lambda: len(pool.accepted) > during, 30), "".join(lines)
        assert len(pool.clients) == 1
        assert ask(api, "quit") == {"STATUS": "BYE"}
        assert p.wait(30) == 0, "".join(lines)
        assert "hunter2-pw" not in "".join(lines)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
