"""The dashboard in a real browser: the distribution's Chromium driven by Playwright, on a real
`miner` process mining against the real test pool (stratum-pool-sha256)."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install '.[test]')")
pytest.importorskip("aiohttp", reason="needs aiohttp (pip install '.[test]')")


@pytest.fixture(scope="module")
def browser_path():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    return CHROMIUM


class Miner:
    """`python -m miner` with --web-port 0; the URL is read from the line it prints at start."""

    def __init__(self, pool, *extra: str, env: dict | None = None) -> None:
        cmd = [sys.executable, "-m", "miner", "-o", pool.url, "-o", pool.url.replace("127.0.0.1", "localhost"),
               "-u", pool.user, "-p", pool.password, "-t", "1", "--web-port", "0", "--status-interval", "300",
               *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})}, cwd="/")
        self.lines: list[str] = []
        self.url: str | None = None
        self._got = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._got.wait(60) or self.url is None:
            self.stop()
            raise AssertionError("miner printed no web URL:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            m = re.search(r"web dashboard on (http://\S+/)", line)
            if m:
                self.url = m.group(1)
                self._got.set()
        self._got.set()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as r:
            return json.loads(r.read())

    def raw(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_until(fn, timeout: float, what: str, step: float = 0.25):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


@pytest.fixture
def browser(browser_path, tmp_path):
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=browser_path,
                                                   args=ARGS, headless=True, viewport={"width": 1280, "height": 800})
        yield ctx
        ctx.close()


def page_numbers(page) -> tuple[float, int]:
    return (float(page.get_attribute("#hashrate", "data-hs")), int(page.get_attribute("#accepted", "data-n") or -1))


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.slow
def test_dashboard_live_pause_resume_device_and_pool(real_pool, browser, tmp_path):
    m = Miner(real_pool)
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}")
                if not r.url.endswith("/api/v1/events") else None)
        external: list[str] = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(m.url) else None)
        page.goto(m.url)
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'", timeout=30000)
        wait_until(lambda: m.get("/api/v1/summary")["accepted"] >= 2, 60, "two accepted shares")

        # The page shows the API's numbers: the page's values lie between two summaries taken around it.
        before = m.get("/api/v1/summary")
        time.sleep(2.5)                     # the page's feed is one event a second
        hs, acc = page_numbers(page)
        after = m.get("/api/v1/summary")
        assert before["accepted"] <= acc <= after["accepted"], (before["accepted"], acc, after["accepted"])
        lo = min(before["hashrate"]["5s"], after["hashrate"]["5s"]) * 0.7
        hi = max(before["hashrate"]["5s"], after["hashrate"]["5s"]) * 1.3
        assert lo <= hs <= hi and hs > 0
        assert page.text_content("#hashrate").endswith("H/s")
        # ... and they change within a few seconds, without a reload.
        text0 = page.text_content("#hashrate")
        page.wait_for_function("(n) => Number(document.getElementById('accepted').dataset.n) > n", arg=acc,
                               timeout=30000)
        page.wait_for_function("(t) => document.getElementById('hashrate').textContent !== t", arg=text0,
                               timeout=15000)
        # Shares reach the share log; the pool table shows the active pool without the password.
        page.wait_for_selector("#shares tbody .tag.accepted", timeout=15000)
        assert page.locator("#pools tbody tr[data-pool='0'] .tag.active").count() == 1
        for text in (page.content(), *(m.raw(p) for p in ("/api/v1/summary", "/api/v1/pools", "/api/v1/devices",
                                                          "/api/v1/shares", "/api/system/info"))):
            assert real_pool.password not in text

        # Pause: the hashrate goes to 0 while the pool session stays up.
        pool0 = m.get("/api/v1/pools")["pools"][0]
        assert pool0["active"] and pool0["connected_since"]
        peak = max(hs, m.get("/api/v1/summary")["hashrate"]["5s"])
        page.click("#pause")
        wait_until(lambda: m.get("/api/v1/summary")["paused"], 1.0, "the pause within 1 s", step=0.05)
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'paused'", timeout=5000)
        assert "web" in page.text_content("#reasons")
        s = m.get("/api/v1/summary")
        assert s["paused"] and [r["source"] for r in s["pause_reasons"]] == ["web"]
        wait_until(lambda: (pts := m.get("/api/v1/history")["points"]) and pts[-1][1] == 0.0, 15,
                   "a 0 H/s history point")
        page.wait_for_function("(x) => Number(document.getElementById('hashrate').dataset.hs) < x",
                               arg=peak * 0.05, timeout=40000)
        # Paused, the counters stand still: the page and the API agree exactly.
        wait_until(lambda: page_numbers(page)[1] == m.get("/api/v1/summary")["accepted"], 10, "equal counts")
        # ... and they are the pool's own verdicts.
        wait_until(lambda: m.get("/api/v1/summary")["accepted"] == real_pool.valid, 10, "the pool's count")
        assert page_numbers(page)[1] == real_pool.valid and real_pool.invalid == 0
        pools = m.get("/api/v1/pools")["pools"]
        assert pools[0]["status"] == "alive" and pools[0]["active"]
        assert pools[0]["connected_since"] == pool0["connected_since"]      # the same session
        valid = real_pool.valid

        page.click("#resume")
        wait_until(lambda: not m.get("/api/v1/summary")["paused"], 1.0, "the resume within 1 s", step=0.05)
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'", timeout=5000)
        real_pool.wait_shares(len(real_pool.shares()) + 2, timeout=60)
        assert real_pool.valid > valid
        assert m.get("/api/v1/pools")["pools"][0]["connected_since"] == pool0["connected_since"]

        # Disable and enable the device from its row.
        page.click("#devices tbody tr[data-device='cpu0'] button")
        wait_until(lambda: m.get("/api/v1/devices")["devices"][0]["status"] == "disabled", 5, "cpu0 disabled")
        page.wait_for_selector("#devices tbody tr[data-device='cpu0'] .tag.disabled", timeout=5000)
        page.click("#devices tbody tr[data-device='cpu0'] button")
        wait_until(lambda: m.get("/api/v1/devices")["devices"][0]["enabled"], 5, "cpu0 enabled")

        # Switch to the second pool.
        page.click("#pools tbody tr[data-pool='1'] button")
        wait_until(lambda: m.get("/api/v1/pools")["active"] == 1, 30, "pool 1 active")
        page.wait_for_selector("#pools tbody tr[data-pool='1'] .tag.active", timeout=10000)

        shots = os.environ.get("MINER_WEB_SCREENSHOTS") or str(tmp_path)
        page.screenshot(path=os.path.join(shots, "web-desktop.png"))
        phone = browser.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(m.url)
        phone.wait_for_function("() => document.getElementById('state').dataset.state !== 'connecting'", timeout=10000)
        phone.screenshot(path=os.path.join(shots, "web-phone.png"))
        assert png_size(os.path.join(shots, "web-desktop.png")) == (1280, 800)
        assert png_size(os.path.join(shots, "web-phone.png")) == (390, 844)
        # On a phone the page fits the width: nothing scrolls sideways but the tables' own boxes.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert not errors, errors
        assert not external, external          # offline: every request goes to the miner itself
    finally:
        m.stop()


@pytest.mark.slow
def test_controls_ask_for_the_token(real_pool, browser):
    token = "s3cret-T0ken"
    m = Miner(real_pool, env={"MINER_WEB_TOKEN": token})
    try:
        page = browser.new_page()
        page.goto(m.url)
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'", timeout=30000)
        page.click("#pause")                                   # no token: refused, the page asks for it
        page.wait_for_selector("#token-dialog[open]", timeout=5000)
        assert not m.get("/api/v1/summary")["paused"]
        page.fill("#token-input", "wrong")
        page.click("#token-ok")
        page.wait_for_function("() => document.getElementById('toast').textContent === 'wrong token'", timeout=5000)
        assert not m.get("/api/v1/summary")["paused"]
        page.click("#pause")
        page.wait_for_selector("#token-dialog[open]", timeout=5000)
        page.fill("#token-input", token)
        page.click("#token-ok")
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'paused'", timeout=5000)
        assert m.get("/api/v1/summary")["paused"]
        page.click("#resume")                                  # the token is remembered for the session
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'", timeout=5000)
        assert not m.get("/api/v1/summary")["paused"]
        assert token not in page.content()
    finally:
        m.stop()

