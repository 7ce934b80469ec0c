"""Accounting against the real test pool: ``python bench/accounting_pool.py`` (needs `npm ci --prefix tests/pool`).

One `miner -t 1` against stratum-pool-sha256 at difficulty 0.002 until the pool has judged 40 shares; then the
miner is paused and the API summary/devs/pools and /metrics are printed beside the pool's own log (accepted
count, credited difficulty, best share), as JSON. Figures: docs/BENCHMARKS.md, "Trust".
"""
import json
import re
import subprocess
import sys
import threading
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402
from fleet_control import api_ask as ask  # noqa: E402

pool = conftest.start_real_pool(0.002)
try:
    p = subprocess.Popen([sys.executable, "-m", "miner", "-o", pool.url, "-u", pool.user, "-p", "x", "-t", "1",
                          "--api-port", "0", "--api-allow", "W:127.0.0.1", "--metrics-port", "0", "--time-limit", "300",
                          "--status-interval", "5"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    ports, lines = {}, []
    def rd():
        for line in p.stderr:
            lines.append(line)
            if m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", line): ports["api"] = int(m.group(1))
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line): ports["m"] = int(m.group(1))
    threading.Thread(target=rd, daemon=True).start()
    pool.wait_shares(40, timeout=240)
    ask(ports["api"], "pause"); time.sleep(2)
    r = ask(ports["api"], "summary+devs+pools")
    s, d, pl = r["summary"][0]["SUMMARY"][0], r["devs"][0]["DEVS"][0], r["pools"][0]["POOLS"][0]
    met = urllib.request.urlopen(f"http://127.0.0.1:{ports['m']}/metrics").read().decode()
    mbest = re.search(r"^miner_best_share_difficulty (\S+)", met, re.M).group(1)
    meff = re.search(r"^miner_effective_hashrate_hashes_per_second (\S+)", met, re.M).group(1)
    try:
        root = urllib.request.urlopen(f"http://127.0.0.1:{ports['m']}/").status
    except urllib.error.HTTPError as e:
        root = e.code
    v = pool.shares()
    print(json.dumps({"pool_accepted": sum(x["valid"] for x in v), "pool_diff": round(sum(x["difficulty"] for x in v if x["valid"]), 6),
          "pool_best": max(x["shareDiff"] for x in v), "api_accepted": s["Accepted"], "api_DA": s["Difficulty Accepted"],
          "dev_DA": d["Difficulty Accepted"], "pool_row_DA": pl["Difficulty Accepted"], "effective_MHS": s["Effective MHS"],
          "MHS_av": s["MHS av"], "api_best": s["Best Share"], "metrics_best": mbest, "metrics_effective": meff,
          "status_line": [l.strip() for l in lines if "A:" in l][-1:], "metrics_on_root": root}, indent=1))
    ask(ports["api"], "quit"); p.wait(30)
finally:
    if p.poll() is None: p.kill()
    pool.stop()
