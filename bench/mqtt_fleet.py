"""MQTT fleet benchmark: fleet-wide pause latency, telemetry cost, and what the broker spends.

Three parts, each against its own mosquitto (the distribution's) on a loopback port:

  fleet     N `miner --benchmark -t 1` processes on the fleet topic; OFF is published, and the
            time until the last miner's state message says paused is taken (as a subscriber sees
            it: publish -> broker -> miner pauses -> miner publishes state -> broker -> subscriber).
            Then ON, and again, --rounds times.
  cost      three paused miners at once (paused all day by --pause-window 00:00-24:00, so no
            hashing hides the figure): A without MQTT, B with MQTT at the default interval, C at
            1 s. The process CPU time (utime+stime from /proc/PID/stat) over --cost-seconds, as a
            share of one core; B-A is what MQTT telemetry costs, C-A scales it to 1 s.
  broker    the broker's own CPU time (from /proc) per message: ingest of state-sized retained
            messages, and fan-out of one QoS 1 command to --subscribers connections.

    python bench/mqtt_fleet.py --miners 4 --rounds 10 --cost-seconds 60 --cost-rounds 3 --subscribers 200
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from mqtt_broker import Broker, Watcher, retained  # noqa: E402  (the test suite's mosquitto launcher)

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK       # utime + stime


def miner(port: int | None, ident: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "miner", "--benchmark", "-t", "1", "--quiet", "--time-limit", "3600", *extra]
    if port is not None:
        cmd += ["--mqtt-url", f"mqtt://127.0.0.1:{port}", "--mqtt-id", ident]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


# -- fleet ------------------------------------------------------------------------------------------
def fleet(tmp: Path, n: int, rounds: int) -> dict:
    b = Broker(tmp).start()
    ids = [f"bench{i}" for i in range(n)]
    procs = [miner(b.port, i) for i in ids]
    try:
        w = Watcher(b.port, "miner/+/state")
        topics = [f"miner/{i}/state" for i in ids]

        def states(pred) -> bool:
            return all((s := w.last_json(t)) is not None and pred(s) for t in topics)

        w.wait(lambda: states(lambda s: s["hashrate_5s"] > 0), 120, "every miner hashing")
        latencies, per_miner = [], {t: [] for t in topics}
        for _ in range(rounds):
            time.sleep(1.0)
            with w.cond:
                mark = len(w.messages)
            t0 = time.monotonic()
            w.publish("miner/fleet/set/mining", "OFF")
            w.wait(lambda: states(lambda s: s["paused"]), 10, "every miner paused")
            with w.cond:
                seen = w.messages[mark:]
            for t in topics:
                first = next(ts for tt, p, _, ts in seen if tt == t and json.loads(p)["paused"])
                per_miner[t].append(first - t0)
            latencies.append(max(per_miner[t][-1] for t in topics))
            w.publish("miner/fleet/set/mining", "ON")
            w.wait(lambda: states(lambda s: not s["paused"]), 10, "every miner mining")
        w.close()
        held = retained(b.port, "#")
        mine = {t: len(p) for t, p in held.items() if f"/{ids[0]}/" in t or f"_{ids[0]}_" in t}
        return {"miners": n, "rounds": rounds, "median_ms": statistics.median(latencies) * 1e3,
                "max_ms": max(latencies) * 1e3, "min_ms": min(latencies) * 1e3,
                "per_miner_median_ms": statistics.median([x for v in per_miner.values() for x in v]) * 1e3,
                "retained_topics_per_rig": len(mine), "retained_bytes_per_rig": sum(mine.values()),
                "state_bytes": mine.get(f"miner/{ids[0]}/state"),
                "device_bytes": mine.get(f"miner/{ids[0]}/device/cpu0")}
    finally:
        stop(procs)
        b.kill()


# -- telemetry cost ------------------------------------------------------------------------------------
def cost(tmp: Path, seconds: float, rounds: int) -> dict:
    b = Broker(tmp).start()
    out: dict[str, list[float]] = {"A no MQTT": [], "B MQTT, 10 s": [], "C MQTT, 1 s": []}
    try:
        for r in range(rounds):
            paused = ["--pause-window", "00:00-24:00"]
            procs = {"A no MQTT": miner(None, "", *paused),
                     "B MQTT, 10 s": miner(b.port, f"costB{r}", *paused),
                     "C MQTT, 1 s": miner(b.port, f"costC{r}", *paused, "--mqtt-interval", "1")}
            try:
                time.sleep(8.0)                     # imports, self-test, first connect: not what is measured
                t0 = time.monotonic()
                c0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
                time.sleep(seconds)
                dt = time.monotonic() - t0
                for k, p in procs.items():
                    out[k].append(100.0 * (cpu_seconds(p.pid) - c0[k]) / dt)
            finally:
                stop(procs.values())
    finally:
        b.kill()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {"seconds": seconds, "rounds": rounds, "percent_of_core": out, "median": med,
            "mqtt_10s_minus_none": statistics.median([bb - a for a, bb in zip(out["A no MQTT"], out["B MQTT, 10 s"])]),
            "mqtt_1s_minus_none": statistics.median([c - a for a, c in zip(out["A no MQTT"], out["C MQTT, 1 s"])])}


# -- broker --------------------------------------------------------------------------------------------
def broker_costs(tmp: Path, messages: int, topics: int, subscribers: int, fanouts: int, size: int) -> dict:
    b = Broker(tmp, persistence=False, extra="max_queued_messages 100000\n").start()
    pid = b.proc.pid
    try:
        # ingest: retained state-sized messages from one publisher, one subscriber on the wildcard
        got = threading.Semaphore(0)
        sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=paho.MQTTv5)
        sub.on_message = lambda *_a: got.release()
        sub.connect("127.0.0.1", b.port)
        sub.subscribe("bench/#", 0)
        sub.loop_start()
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=paho.MQTTv5)
        pub.connect("127.0.0.1", b.port)
        pub.loop_start()
        time.sleep(0.5)
        body = b"x" * size
        c0, t0 = cpu_seconds(pid), time.monotonic()
        for i in range(messages):
            pub.publish(f"bench/rig{i % topics}/state", body, qos=0, retain=True)
        for _ in range(messages):
            if not got.acquire(timeout=60):
                break
        ingest_wall, ingest_cpu = time.monotonic() - t0, cpu_seconds(pid) - c0
        threads = len(os.listdir(f"/proc/{pid}/task"))
        sub.disconnect(), pub.disconnect()
        sub.loop_stop(), pub.loop_stop()

        # fan-out: one QoS 1 message to every subscriber of the fleet topic
        lock, counts, done = threading.Lock(), [0], threading.Event()

        def on_msg(*_a):
            with lock:
                counts[0] += 1
                if counts[0] >= subscribers:
                    done.set()
        subs = []
        for i in range(subscribers):
            c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fan{i}", protocol=paho.MQTTv5)
            c.on_message = on_msg
            c.connect("127.0.0.1", b.port)
            c.subscribe("fleet/set/mining", 1)
            c.loop_start()
            subs.append(c)
        time.sleep(2.0)
        ctl = paho.Client(CallbackAPIVersion.VERSION2, client_id="fan-ctl", protocol=paho.MQTTv5)
        ctl.connect("127.0.0.1", b.port)
        ctl.loop_start()
        time.sleep(0.5)
        walls, cpus = [], []
        for k in range(fanouts):
            with lock:
                counts[0] = 0
            done.clear()
            c0, t0 = cpu_seconds(pid), time.monotonic()
            ctl.publish("fleet/set/mining", "OFF" if k % 2 == 0 else "ON", qos=1)
            done.wait(30)
            walls.append(time.monotonic() - t0)
            time.sleep(0.3)                          # PUBACKs from every subscriber come back
            cpus.append(cpu_seconds(pid) - c0)
        for c in subs + [ctl]:
            c.disconnect()
            c.loop_stop()
        return {"ingest_messages": messages, "message_bytes": size, "ingest_wall_s": ingest_wall,
                "ingest_broker_cpu_s": ingest_cpu, "broker_us_per_ingested_message": 1e6 * ingest_cpu / messages,
                "broker_threads": threads, "subscribers": subscribers, "fanouts": fanouts,
                "fanout_median_ms": statistics.median(walls) * 1e3, "fanout_max_ms": max(walls) * 1e3,
                "broker_us_per_delivery": 1e6 * sum(cpus) / (subscribers * fanouts)}
    finally:
        b.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--miners", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cost-seconds", type=float, default=60.0)
    ap.add_argument("--cost-rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--message-bytes", type=int, default=650)   # a state message is ~630 bytes
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--fanouts", type=int, default=20)
    ap.add_argument("--parts", default="fleet,cost,broker")
    a = ap.parse_args()
    parts = a.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        if "fleet" in parts:
            res["fleet"] = fleet(Path(tmp), a.miners, a.rounds)
            print(json.dumps({"fleet": res["fleet"]}), flush=True)
        if "cost" in parts:
            res["cost"] = cost(Path(tmp), a.cost_seconds, a.cost_rounds)
            print(json.dumps({"cost": res["cost"]}), flush=True)
        if "broker" in parts:
            res["broker"] = broker_costs(Path(tmp), a.messages, a.topics, a.subscribers, a.fanouts, a.message_bytes)
            print(json.dumps({"broker": res["broker"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
