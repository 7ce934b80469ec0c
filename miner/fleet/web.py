"""The web dashboard and its REST API (aiohttp, on its own thread and event loop).

    miner -o URL -u W --web-port 8080              # http://127.0.0.1:8080/
    miner ... --web-port 8080 --web-bind 0.0.0.0 --web-token SECRET

Every view reads the same MinerControl.snapshot() as the cgminer API and
/metrics, through the helpers below, so the three never disagree. Pause and
resume go through the Curtailer (reason key "web"), so the page shows every
reason at once and the pool session stays up while paused.

Routes (docs/WEB.md has the JSON shapes):
  GET  /                                  the page (miner/fleet/webui/)
  GET  /api/v1/summary|devices|pools|shares|history
  GET  /api/v1/events                     Server-Sent Events: one "state" object per second
  POST /api/v1/pause | /api/v1/resume
  POST /api/v1/pools/{id}/switch
  POST /api/v1/devices/{name}/enable | /disable
  GET  /api/system/info                   AxeOS field names (Bitaxe tools)
  POST /api/system/pause | /api/system/resume

Security: see _guard(). Limits: request body MAX_BODY bytes, request line and
each header MAX_FIELD bytes, MAX_HEADERS headers, MAX_CONNECTIONS connections
(the rest get 503), keep-alive KEEPALIVE_S, and any connection that has not
started a request for IDLE_S seconds (a slow sender included) is closed.
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from importlib import resources
from typing import Any, Callable
from urllib.parse import urlsplit

from miner.errors import ConfigError, MinerError
from miner.engine.stats import HISTORY_INTERVAL_S, DeviceSnapshot, MinerControl, MinerSnapshot, PoolSnapshot
from miner.fleet.curtail import Curtailer
from miner.fleet.power import efficiency_hashrate, joules_per_terahash
from miner.units import port_number
from miner.fleet.api import finite_json, listen_socket

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_FIELD = 8190
MAX_HEADERS = 64
MAX_CONNECTIONS = 32
KEEPALIVE_S = 15.0
IDLE_S = 30.0
EVENT_INTERVAL_S = 1.0
TOKEN_ENV = "MINER_WEB_TOKEN"
INSTALL_HINT = "the web dashboard needs aiohttp: pip install 'miner[web]'"

# Pause sources as the page names them (Curtailer keys).
SOURCE_LABELS = {"web": "web", "api": "API", "schedule": "schedule", "price": "energy price",
                 "profit": "profitability", "engine": "miner"}
MANUAL_KEYS = ("web", "api")   # what a resume click clears; schedule, price and profit keep their hold
STATIC = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
          "/app.css": ("app.css", "text/css")}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("web dashboard and REST API (needs miner[web])")
    g.add_argument("--web-port", dest="web_port", type=port_number, default=None, metavar="PORT",
                   help="serve the dashboard and REST API on this port")
    g.add_argument("--web-bind", dest="web_bind", default="127.0.0.1", metavar="ADDR",
                   help="dashboard address (default 127.0.0.1; any other needs --web-token)")
    g.add_argument("--web-token", dest="web_token", default=None, metavar="TOKEN",
                   help=f"token for pause/resume/switch/enable (Authorization: Bearer); or ${TOKEN_ENV}")


def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


# -- views: JSON from one snapshot ---------------------------------------------
def _jth(watts: float | None, hashrate: dict[str, float], elapsed: float) -> float | None:
    j = joules_per_terahash(watts, efficiency_hashrate(hashrate, elapsed))
    return None if j is None else round(j, 3)


def pause_reasons(snap: MinerSnapshot, curtailer: Curtailer | None) -> list[dict[str, str]]:
    held = curtailer.reasons() if curtailer is not None else {}
    out = [{"source": k, "label": SOURCE_LABELS.get(k, k), "reason": v.split(": ", 1)[-1]}
           for k, v in sorted(held.items())]
    if snap.paused and not out:  # paused by something outside the Curtailer
        out.append({"source": "engine", "label": SOURCE_LABELS["engine"], "reason": snap.pause_reason})
    return out


def summary_view(snap: MinerSnapshot, curtailer: Curtailer | None = None) -> dict[str, Any]:
    active = next((p for p in snap.pools if p.active), None)
    out: dict[str, Any] = {
        "version": snap.version, "uptime_s": round(snap.elapsed, 1), "started_at": snap.started_at,
        "hashrate": {k: snap.hashrate.get(k, 0.0) for k in ("5s", "1m", "5m", "15m", "av")},
        "effective_hashrate": snap.effective_hashrate,
        "accepted": snap.accepted, "rejected": snap.rejected, "stale": snap.stale, "hw_errors": snap.hw_errors,
        "difficulty_accepted": snap.difficulty_accepted, "difficulty_rejected": snap.difficulty_rejected,
        "difficulty_stale": snap.difficulty_stale, "best_share": snap.best_share, "blocks": snap.blocks,
        "network_difficulty": snap.network_difficulty, "watts": snap.watts,
        "j_per_th": _jth(snap.watts, snap.hashrate, snap.elapsed), "utility": snap.utility,
        "paused": snap.paused, "pause_reasons": pause_reasons(snap, curtailer),
        "active_pool": active.id if active else None, "active_pool_url": active.url if active else None,
        "devices": len(snap.devices), "devices_enabled": sum(1 for d in snap.devices if d.enabled),
    }
    if curtailer is not None:
        facts = curtailer.status()
        for key in ("energy_price", "revenue_per_day", "energy_cost_per_day", "btc_per_day"):
            if isinstance(facts.get(key), (int, float)):
                out[key] = float(facts[key])  # type: ignore[arg-type]
    return out


def device_view(d: DeviceSnapshot, snap: MinerSnapshot) -> dict[str, Any]:
    return {
        "id": d.id, "name": d.name, "kind": d.kind, "model": d.model, "status": d.status, "enabled": d.enabled,
        "hashrate": dict(d.hashrate), "accepted": d.accepted, "rejected": d.rejected, "stale": d.stale,
        "hw_errors": d.hw_errors, "best_share": d.best_share, "last_share_time": d.last_share_time,
        "temperature_c": d.temperature_c, "watts": d.watts, "frequency_mhz": d.frequency_mhz,
        "j_per_th": _jth(d.watts, d.hashrate, d.elapsed or snap.elapsed),
    }


def pool_view(p: PoolSnapshot) -> dict[str, Any]:
    return {
        "id": p.id, "url": p.url, "user": p.user, "status": p.status, "active": p.active, "priority": p.priority,
        "difficulty": p.difficulty, "accepted": p.accepted, "rejected": p.rejected, "stale": p.stale,
        "difficulty_accepted": p.difficulty_accepted, "best_share": p.best_share, "blocks": p.blocks,
        "jobs": p.jobs, "last_share_time": p.last_share_time, "reject_reasons": dict(p.reject_reasons),
        "connected_since": p.connected_since,
    }


def shares_view(control: MinerControl) -> list[dict[str, Any]]:
    return [{"time": r.time, "result": r.result, "device": r.device, "pool": r.pool,
             "target_difficulty": r.target_difficulty, "share_difficulty": r.share_difficulty,
             "reason": r.reason, "job_id": r.job_id, "block": r.block}
            for r in reversed(control.shares())]


def history_view(control: MinerControl) -> dict[str, Any]:
    return {"interval_s": HISTORY_INTERVAL_S, "points": [[round(t, 3), hs] for t, hs in control.history()]}


def _split_host(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port
    except ValueError:
        return url, None


def axeos_info(snap: MinerSnapshot) -> dict[str, Any]:
    """GET /api/system/info with AxeOS's field names and types, for the fields we have.

    Units as AxeOS: hashRate in GH/s, power in W, temp in deg C, bestDiff as a suffixed string.
    A field we do not know (no power meter, no temperature sensor) is left out, never sent as 0.
    """
    from miner.units import human
    out: dict[str, Any] = {
        "hashRate": snap.hashrate.get("1m", 0.0) / 1e9,
        "sharesAccepted": snap.accepted, "sharesRejected": snap.rejected,
        "bestDiff": human(snap.best_share, digits=3), "bestSessionDiff": human(snap.best_share, digits=3),
        "uptimeSeconds": int(snap.elapsed), "version": f"miner {snap.version}",
        "hostname": socket.gethostname(),
    }
    if snap.watts is not None:
        out["power"] = snap.watts
    temps = [d.temperature_c for d in snap.devices if d.temperature_c is not None]
    if temps:
        out["temp"] = sum(temps) / len(temps)
    asics = [d for d in snap.devices if d.kind == "asic"]
    if asics:
        out["ASICModel"] = asics[0].model
        if asics[0].frequency_mhz is not None:
            out["frequency"] = asics[0].frequency_mhz
    pools = sorted(snap.pools, key=lambda p: p.priority)
    for prefix, p in zip(("stratum", "fallbackStratum"), pools):
        host, port = _split_host(p.url)
        out[f"{prefix}URL"] = host
        if port is not None:
            out[f"{prefix}Port"] = port
        out[f"{prefix}User"] = p.user
    active = next((p for p in snap.pools if p.active), None)
    if active is not None:
        out["stratumDiff"] = active.difficulty
        out["isUsingFallbackStratum"] = int(bool(pools) and active.id != pools[0].id)
    return out


def dumps(obj: Any) -> str:
    # A NaN from a broken sensor must not make JSON that browsers cannot parse.
    return json.dumps(finite_json(obj), separators=(",", ":"), allow_nan=False)


# -- the server ---------------------------------------------------------------------
class WebServer:
    """aiohttp on its own thread: a slow page never stalls the pool client's loop."""

    def __init__(self, control: MinerControl, curtailer: Curtailer | None = None, *, bind: str = "127.0.0.1",
                 port: int = 8080, token: str | None = None) -> None:
        if not is_loopback(bind) and not token:
            raise ConfigError(f"--web-bind {bind} reaches beyond this machine: set --web-token TOKEN "
                              f"(or web-token in the config file, or ${TOKEN_ENV})")
        try:
            import aiohttp  # noqa: F401  (checked here, never at import time)
        except ImportError as e:
            raise ConfigError(INSTALL_HINT) from e
        self.control = control
        self.curtailer = curtailer or Curtailer(control)
        self.bind, self.requested_port = bind, port
        self.token = token or None
        self.port = 0
        self.thread_id: int | None = None          # native id of the server thread (benchmarks read it)
        self._static = {path: (resources.files("miner.fleet").joinpath("webui", name).read_bytes(), ctype)
                        for path, (name, ctype) in STATIC.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._listener: asyncio.AbstractServer | None = None
        self._conns: dict[Any, list] = {}          # RequestHandler -> [last request start, streaming]
        self._pending = 0
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}/"

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "WebServer":
        sock = listen_socket("web dashboard", self.bind, self.requested_port)
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._main, args=(sock, ready, failed), name="web", daemon=True)
        self._thread.start()
        ready.wait(10.0)
        if failed:
            self.close()
            raise ConfigError(f"web dashboard failed to start: {failed[0]}") from failed[0]
        log.info("web dashboard on %s%s", self.url, " (controls need the token)" if self.token else "")
        return self

    def _main(self, sock: socket.socket, ready: threading.Event, failed: list) -> None:
        self.thread_id = threading.get_native_id()
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(sock, ready))
        except BaseException as e:  # reported to start(); the miner keeps running without the page
            failed.append(e)
            ready.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        from aiohttp import web
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._middleware()])
        self._routes(app, web)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_S,
                                     max_line_size=MAX_FIELD, max_field_size=MAX_FIELD, max_headers=MAX_HEADERS)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, sock=sock)
        watchdog = asyncio.create_task(self._watchdog())
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            watchdog.cancel()
            self._listener.close()
            await self._runner.cleanup()

    def _protocol(self):
        """One RequestHandler per connection, or a 503 and close past MAX_CONNECTIONS."""
        server = self._runner.server
        if len(server.connections) + self._pending >= MAX_CONNECTIONS:
            return _Busy()
        # Counted until the handler shows up in server.connections (its connection_made runs
        # right after this): a burst of accepts in one loop turn cannot exceed the limit.
        self._pending += 1
        asyncio.get_running_loop().call_soon(self._settle)
        handler = server()
        self._conns[handler] = [time.monotonic(), False]
        return handler

    def _settle(self) -> None:
        self._pending -= 1

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            live = set(self._runner.server.connections)
            now = time.monotonic()
            for h in list(self._conns):
                if h not in live and now - self._conns[h][0] > 2.0:
                    del self._conns[h]
                    continue
                last, streaming = self._conns[h]
                if not streaming and now - last > IDLE_S and h.transport is not None:
                    h.transport.close()   # a client that never finishes its request
                    del self._conns[h]

    def close(self) -> None:
        loop, t = self._loop, self._thread
        if loop is not None and self._stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:
                pass
        if t is not None:
            t.join(timeout=10)
        self._thread = None

    # -- request pipeline ----------------------------------------------------------
    def _routes(self, app, web) -> None:
        r = app.router
        for path in STATIC:
            r.add_get(path, self._asset)
        for name in ("summary", "devices", "pools", "shares", "history"):
            r.add_get(f"/api/v1/{name}", self._get_view(name))
        r.add_get("/api/v1/events", self._events)
        r.add_post("/api/v1/pause", self._pause)
        r.add_post("/api/v1/resume", self._resume)
        r.add_post("/api/v1/pools/{id}/switch", self._switch)
        r.add_post("/api/v1/devices/{name}/{action:enable|disable}", self._device)
        r.add_get("/api/system/info", self._axeos_info)
        r.add_post("/api/system/pause", self._pause)
        r.add_post("/api/system/resume", self._resume)

    def _middleware(self):
        from aiohttp import web

        @web.middleware
        async def middleware(request, handler):
            state = self._conns.get(request.protocol)
            if state is not None:
                state[0] = time.monotonic()
            try:
                refused = self._guard(request)
                if refused is not None:
                    return refused
                resp = await handler(request)
            except web.HTTPException as e:
                message = {404: f"no such path: {request.path[:200]}",
                           405: f"{request.method} is not allowed on {request.path[:200]}",
                           413: f"request body over {MAX_BODY} bytes"}.get(e.status, e.reason)
                resp = _error(web, e.status, message)
                if e.status == 405:
                    resp.headers["Allow"] = e.headers.get("Allow", "")
            except MinerError as e:
                resp = _error(web, 409, str(e))
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception as e:  # a bug in one view must not take the page down
                log.exception("web: %s %s failed", request.method, request.path)
                resp = _error(web, 500, f"internal error: {type(e).__name__}")
            if state is not None:
                state[0] = time.monotonic()
            if not resp.prepared:
                _secure_headers(resp)
            return resp
        return middleware

    def _guard(self, request):
        """None when the request may proceed, else the refusal.

        - Without a token (loopback only), the Host header must name an address or localhost:
          a DNS-rebinding page cannot then talk to the miner under its own name.
        - A state-changing request is a POST; one from a browser page on another origin is refused
          (Origin / Sec-Fetch-Site), and a body must be JSON, so a cross-site form cannot post.
          A POST with neither a JSON body nor an Authorization header is refused, except AxeOS's
          bodiless /api/system/pause|resume from a client that is not a browser (no Origin).
        - With a token, every POST needs "Authorization: Bearer TOKEN", compared in constant time.
        """
        from aiohttp import web
        if self.token is None and not _local_host(request.host):
            return _error(web, 421, "unknown Host: use the address the miner listens on")
        if request.method != "POST":
            return None
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and urlsplit(origin).netloc.lower() != request.host.lower():
            return _error(web, 403, "cross-origin request refused")
        if origin == "null" or request.headers.get("Sec-Fetch-Site") == "cross-site":
            return _error(web, 403, "cross-origin request refused")
        has_auth = "Authorization" in request.headers
        if self.token is not None:
            got = request.headers.get("Authorization", "")
            scheme, _, value = got.partition(" ")
            if not has_auth or scheme.lower() != "bearer":
                return _error(web, 401, "this action needs the token (Authorization: Bearer TOKEN)",
                              {"WWW-Authenticate": 'Bearer realm="miner"'})
            if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return _error(web, 403, "wrong token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        has_body = request.content_length not in (None, 0) or request.headers.get("Transfer-Encoding")
        if has_body and request.content_type != "application/json":
            return _error(web, 415, "send the body as application/json")
        if not has_body and not has_auth:
            axeos = request.path in ("/api/system/pause", "/api/system/resume")
            if not axeos or origin is not None or "Sec-Fetch-Site" in request.headers:
                return _error(web, 415, "send a JSON body ({} will do) or an Authorization header")
        return None

    async def _json_body(self, request) -> dict:
        from aiohttp import web
        raw = await request.read()   # raises 413 past client_max_size
        if not raw.strip():
            return {}
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(reason="body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise web.HTTPBadRequest(reason="body must be a JSON object")
        return obj

    # -- handlers -------------------------------------------------------------------
    async def _asset(self, request):
        from aiohttp import web
        body, ctype = self._static[request.path]
        resp = web.Response(body=body, content_type=ctype, charset="utf-8")
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    async def _snap(self) -> MinerSnapshot:
        return self.control.snapshot()

    def _get_view(self, name: str) -> Callable:
        async def handler(request):
            return self._json(self._view(name, await self._snap()))
        return handler

    def _view(self, name: str, snap: MinerSnapshot) -> Any:
        if name == "summary":
            return summary_view(snap, self.curtailer)
        if name == "devices":
            return {"devices": [device_view(d, snap) for d in snap.devices]}
        if name == "pools":
            return {"pools": [pool_view(p) for p in snap.pools], "active": snap.current_pool}
        if name == "shares":
            return {"shares": shares_view(self.control)}
        return history_view(self.control)

    def _state(self, snap: MinerSnapshot) -> dict[str, Any]:
        hist = self.control.history()
        return {"summary": summary_view(snap, self.curtailer),
                "devices": [device_view(d, snap) for d in snap.devices],
                "pools": [pool_view(p) for p in snap.pools],
                "shares": shares_view(self.control),
                "history_last": [round(hist[-1][0], 3), hist[-1][1]] if hist else None,
                "auth": self.token is not None}

    async def _events(self, request):
        """Server-Sent Events: a "state" event every EVENT_INTERVAL_S (the page's only feed after load)."""
        from aiohttp import web
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        _secure_headers(resp)
        state = self._conns.get(request.protocol)
        if state is not None:
            state[1] = True
        await resp.prepare(request)
        try:
            await resp.write(b"retry: 2000\n\n")
            while not self._stopping.is_set():
                data = dumps(self._state(await self._snap()))
                await resp.write(f"event: state\ndata: {data}\n\n".encode())
                try:
                    await asyncio.wait_for(self._stopping.wait(), EVENT_INTERVAL_S)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    async def _call(self, fn: Callable, *args) -> Any:
        # Control calls may wait on the engine's loop (switch_pool): never block this loop on them.
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _pause(self, request):
        await self._json_body(request)
        await self._call(self.curtailer.hold, "web", "paused over HTTP")
        return self._json(self._pause_state(await self._snap(), "paused"))

    async def _resume(self, request):
        await self._json_body(request)
        for key in MANUAL_KEYS:
            await self._call(self.curtailer.release, key, "resumed over HTTP")
        snap = await self._snap()
        return self._json(self._pause_state(snap, "still paused" if snap.paused else "resumed"))

    def _pause_state(self, snap: MinerSnapshot, what: str) -> dict[str, Any]:
        return {"ok": True, "result": what, "paused": snap.paused, "pause_reasons": pause_reasons(snap, self.curtailer)}

    async def _switch(self, request):
        from aiohttp import web
        await self._json_body(request)
        raw = request.match_info["id"]
        try:
            pid = int(raw)
        except ValueError:
            return _error(web, 400, f"pool id {raw[:40]!r} is not a number")
        snap = await self._snap()
        if not any(p.id == pid for p in snap.pools):
            return _error(web, 404, f"no pool {pid}; pools are {', '.join(str(p.id) for p in snap.pools) or 'none'}")
        await self._call(self.control.switch_pool, pid)
        log.info("web: switching to pool %d", pid)
        return self._json({"ok": True, "result": f"switching to pool {pid}", "pool": pid})

    async def _device(self, request):
        from aiohttp import web
        await self._json_body(request)
        name, action = request.match_info["name"], request.match_info["action"]
        snap = await self._snap()
        if not any(d.name == name for d in snap.devices):
            return _error(web, 404, f"no device {name[:80]!r}")
        fn = self.control.enable_device if action == "enable" else self.control.disable_device
        await self._call(fn, name)
        return self._json({"ok": True, "result": f"{name} {action}d", "device": name})

    async def _axeos_info(self, request):
        return self._json(axeos_info(await self._snap()))

    @staticmethod
    def _json(obj: Any, status: int = 200):
        from aiohttp import web
        resp = web.Response(text=dumps(obj), status=status, content_type="application/json")
        resp.headers["Cache-Control"] = "no-store"
        return resp


class _Busy(asyncio.Protocol):
    """Past MAX_CONNECTIONS: one 503 reply, then close."""

    def connection_made(self, transport) -> None:
        body = b'{"error":"too many connections"}'
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nRetry-After: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        transport.close()


def _local_host(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _error(web, status: int, message: str, headers: dict | None = None):
    resp = web.Response(text=dumps({"error": message, "status": status}), status=status,
                        content_type="application/json", headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _secure_headers(resp) -> None:
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")


def start(control: MinerControl, args: argparse.Namespace, curtailer: Curtailer | None) -> WebServer:
    """--web-port/--web-bind/--web-token (or $MINER_WEB_TOKEN) -> a running WebServer."""
    token = getattr(args, "web_token", None) or os.environ.get(TOKEN_ENV) or None
    server = WebServer(control, curtailer, bind=getattr(args, "web_bind", None) or "127.0.0.1",
                       port=args.web_port, token=token)
    return server.start()
