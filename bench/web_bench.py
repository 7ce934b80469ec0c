"""Web dashboard benchmark: the page's steady load on the miner, and /api/v1/summary latency.

The miner runs in this process (the `miner` command's own code path, with --web-port and -t 1)
against the real test pool (stratum-pool-sha256, tests/pool); the distribution's Chromium opens
the page through Playwright. Measured in one run:
  idle    CPU time of the web server's thread per second of wall time, no page open
  page    the same with one page open (its live feed: one state event per second)
  latency GET /api/v1/summary, one keep-alive connection, --requests requests back to back,
          with the page still open and the miner mining
All of the web server's work (requests, the event feed, the snapshots it takes) runs on its one
thread, so its CPU time is the page's whole load on the miner. --shots DIR saves screenshots at
1280x800 and 390x844 at the end.

    python bench/web_bench.py --seconds 60 --requests 1000 --shots docs
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from conftest import free_port, start_real_pool  # noqa: E402

from fleet_control import api_ask  # noqa: E402

from miner.core import cpuinfo  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_id: int) -> float:
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK       # utime + stime


def cpu_share(native_id: int, seconds: float) -> float:
    c0, t0 = thread_cpu_s(native_id), time.monotonic()
    time.sleep(seconds)
    return (thread_cpu_s(native_id) - c0) / (time.monotonic() - t0)


def cpu_model() -> str:
    return cpuinfo.describe()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each CPU measurement")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--shots", metavar="DIR", help="save web-desktop.png and web-phone.png here")
    a = ap.parse_args()

    from miner.cli import command
    from playwright.sync_api import sync_playwright

    pool = start_real_pool(0.001)
    web_port, api_port = free_port(), free_port()
    args = command.parse_args(["-o", pool.url, "-u", pool.user, "-p", pool.password, "-t", "1", "--quiet",
                               "--web-port", str(web_port), "--api-port", str(api_port), "--api-allow", "W:127.0.0.1",
                               "--status-interval", "3600"])
    command.setup_logging(args)
    devices, pools = command.create_devices(args), command.build_pools(args)
    miner_thread = threading.Thread(target=lambda: __import__("asyncio").run(command._mine(args, devices, pools)),
                                    name="miner", daemon=True)
    miner_thread.start()
    url = f"http://127.0.0.1:{web_port}/"
    end = time.monotonic() + 30
    web = None
    while web is None and time.monotonic() < end:
        web = next((t for t in threading.enumerate() if t.name == "web"), None)
        time.sleep(0.1)
    assert web is not None and web.native_id, "the web server did not start"
    time.sleep(5)
    out: dict = {"cpu": cpu_model(), "seconds": a.seconds}
    out["idle_core_share"] = cpu_share(web.native_id, a.seconds)

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                   viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'", timeout=30000)
        time.sleep(5)
        out["page_core_share"] = cpu_share(web.native_id, a.seconds)

        conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=10)
        times = []
        for _ in range(a.requests):
            t0 = time.perf_counter()
            conn.request("GET", "/api/v1/summary")
            r = conn.getresponse()
            body = r.read()
            times.append(time.perf_counter() - t0)
            assert r.status == 200 and json.loads(body)["version"]
        conn.close()
        times.sort()
        out["summary_ms"] = {"median": statistics.median(times) * 1e3,
                             "p90": times[int(0.9 * len(times))] * 1e3, "p99": times[int(0.99 * len(times))] * 1e3,
                             "n": len(times)}
        if a.shots:
            page.reload()
            page.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'",
                                   timeout=30000)
            time.sleep(2.5)
            page.screenshot(path=os.path.join(a.shots, "web-desktop.png"))
            phone = ctx.new_page()
            phone.set_viewport_size({"width": 390, "height": 844})
            phone.goto(url)
            phone.wait_for_function("() => document.getElementById('state').dataset.state === 'mining'",
                                    timeout=30000)
            time.sleep(2.5)
            phone.screenshot(path=os.path.join(a.shots, "web-phone.png"))
        ctx.close()

    api_ask(api_port, "quit")
    miner_thread.join(30)
    pool.stop()
    print(json.dumps(out, indent=1))
    print(f"web thread, no page:   {100 * out['idle_core_share']:.3f} % of a core over {a.seconds:.0f} s")
    print(f"web thread, one page:  {100 * out['page_core_share']:.3f} % of a core over {a.seconds:.0f} s")
    s = out["summary_ms"]
    print(f"GET /api/v1/summary:   median {s['median']:.2f} ms, p90 {s['p90']:.2f} ms, p99 {s['p99']:.2f} ms "
          f"({s['n']} requests)")
    print(f"CPU: {out['cpu']}")


if __name__ == "__main__":
    main()
