"""cgminer-compatible monitoring and control API over TCP (default 127.0.0.1:4028).

Wire format, as farm tools expect it: one request per connection, either
"cmd|param" text or JSON {"command": .., "parameter": ..}; "a+b" joins report
commands and the reply is keyed by command. The reply is always JSON followed by
one NUL byte, then the server closes the connection.

Access: loopback clients may read; --api-allow entries grant read ("CIDR") or
read+write ("W:CIDR") access; anyone else is disconnected without a reply.
Privileged commands from a read-only client get cgminer's status 45
"Access denied to 'X' command".

Limits: requests over MAX_REQUEST bytes, more than MAX_CONNECTIONS clients at
once, and clients slower than REQUEST_TIMEOUT_S get an error reply (or a close);
nothing a client sends reaches the engine except through MinerControl, and a
failing handler yields an error status, never a dead server.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import platform
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import miner
from miner.fleet.curtail import Curtailer
from miner.errors import ConfigError, MinerError
from miner.fleet.power import efficiency_hashrate, joules_per_terahash
from miner.engine.stats import DeviceSnapshot, MinerControl, MinerSnapshot, PoolSnapshot

log = logging.getLogger(__name__)

API_VERSION = "3.7"
MAX_REQUEST = 8192
MAX_CONNECTIONS = 16
REQUEST_TIMEOUT_S = 3.0
RECV_SIZE = 4096

# Status codes: cgminer's numbers where cgminer has the message, 200+ for our own.
MSG_POOL, MSG_NOPOOL, MSG_DEVS, MSG_NODEVS, MSG_SUMM = 7, 8, 9, 10, 11
MSG_INVCMD, MSG_VERSION, MSG_INVJSON, MSG_MISCMD = 14, 22, 23, 24
MSG_MISPID, MSG_INVPID, MSG_SWITCHP, MSG_MINECON = 25, 26, 27, 33
MSG_ACCDENY, MSG_ACCOK, MSG_ENAPOOL, MSG_DISPOOL = 45, 46, 47, 48
MSG_MISPDP, MSG_INVPDP, MSG_ADDPOOL = 52, 53, 55
MSG_REMPOOL, MSG_MINESTATS = 68, 70
MSG_PAUSED, MSG_RESUMED, MSG_STILLPAUSED, MSG_TOOBIG, MSG_BUSY, MSG_NOJOIN, MSG_FAILED = (
    200, 201, 202, 203, 204, 205, 206)

_STATUS_NAMES = {"alive": "Alive", "dead": "Dead", "disabled": "Disabled", "sick": "Sick",
                 "connecting": "Unknown", "paused": "Alive"}


def _mhs(hs: float) -> float:
    return round(hs / 1e6, 6)  # H/s resolution: a CPU miner's MH/s must not round to 0


def _jth(watts: float | None, hs: float) -> float | None:
    j = joules_per_terahash(watts, hs)
    return None if j is None else round(j, 3)


# -- access control ------------------------------------------------------------
@dataclass(frozen=True)
class AccessRule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    write: bool


def parse_allow(items: list[str] | str | None) -> list[AccessRule]:
    """['W:127.0.0.1', '192.168.1.0/24,W:10.0.0.5'] -> rules. Raises ConfigError on bad entries."""
    if isinstance(items, str):
        items = [items]
    rules = []
    for item in items or ():
        for entry in str(item).split(","):
            entry = entry.strip()
            if not entry:
                continue
            write = entry[:2].upper() == "W:"
            addr = entry[2:] if write else entry
            try:
                net = ipaddress.ip_network(addr, strict=False)
            except ValueError as e:
                raise ConfigError(f"--api-allow entry {entry!r} is not [W:]ADDRESS[/PREFIX]") from e
            rules.append(AccessRule(net, write))
    return rules


def access_for(addr: str, rules: list[AccessRule]) -> str | None:
    """'write', 'read' or None (no access) for a client address."""
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    level = "read" if ip.is_loopback else None
    for r in rules:
        if ip.version == r.network.version and ip in r.network:
            if r.write:
                return "write"
            level = "read"
    return level


# -- request parsing -------------------------------------------------------------
class ApiRequest:
    __slots__ = ("command", "parameter", "error")

    def __init__(self, command: str = "", parameter: str | None = None, error: dict | None = None) -> None:
        self.command, self.parameter, self.error = command, parameter, error


def parse_request(raw: bytes) -> ApiRequest:
    text = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):   # RecursionError: nesting deeper than the parser's stack
            return ApiRequest(error=status("E", MSG_INVJSON, "Invalid JSON"))
        if not isinstance(obj, dict):
            return ApiRequest(error=status("E", MSG_INVJSON, "Invalid JSON"))
        cmd = obj.get("command")
        if not isinstance(cmd, str) or not cmd.strip():
            return ApiRequest(error=status("E", MSG_MISCMD, "Missing JSON 'command'"))
        param = obj.get("parameter")
        if param is not None and not isinstance(param, (str, int, float)) or isinstance(param, bool):
            return ApiRequest(error=status("E", MSG_INVJSON, "Invalid JSON 'parameter'"))
        if isinstance(param, float) and param.is_integer():
            param = int(param)  # {"parameter": 1.0} names pool 1
        return ApiRequest(cmd.strip(), None if param is None else str(param))
    if not text:
        return ApiRequest(error=status("E", MSG_INVCMD, "Invalid command"))
    cmd, sep, param = text.partition("|")
    return ApiRequest(cmd.strip(), param if sep else None)


def split_addpool(param: str) -> list[str]:
    """'url,user,pass' with '\\,' and '\\\\' escapes, as cgminer's addpool."""
    parts, cur, it = [], [], iter(param)
    for ch in it:
        if ch == "\\":
            cur.append(next(it, ""))
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def status(sev: str, code: int, msg: str, description: str | None = None) -> dict[str, Any]:
    return {"STATUS": sev, "When": int(time.time()), "Code": code, "Msg": msg,
            "Description": description or f"miner {miner.__version__}"}


def reply(st: dict[str, Any], section: str | None = None, rows: list | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"STATUS": [st]}
    if section is not None:
        out[section] = rows or []
    out["id"] = 1
    return out


# -- the command table ----------------------------------------------------------------
class ApiCommands:
    """Builds cgminer-shaped replies from snapshots and runs privileged commands."""

    def __init__(self, control: MinerControl, curtailer: Curtailer | None = None) -> None:
        self.control = control
        self.curtailer = curtailer or Curtailer(control)
        self.after_reply: Callable[[], None] | None = None
        self._snap: MinerSnapshot | None = None
        # name -> (handler, privileged); privileged commands cannot be joined with '+'.
        self.table: dict[str, tuple[Callable[[str | None], dict], bool]] = {
            "version": (self.version, False), "config": (self.config, False),
            "summary": (self.summary, False), "pools": (self.pools, False),
            "devs": (self.devs, False), "edevs": (self.edevs, False), "stats": (self.stats, False),
            "privileged": (self.privileged, True),
            "switchpool": (self.switchpool, True), "addpool": (self.addpool, True),
            "enablepool": (self.enablepool, True), "disablepool": (self.disablepool, True),
            "removepool": (self.removepool, True), "pause": (self.pause, True),
            "resume": (self.resume, True), "quit": (self.quit, True), "restart": (self.restart, True),
        }

    def execute(self, req: ApiRequest, can_write: bool) -> dict[str, Any]:
        """The reply to one request. Joined commands share one snapshot, so their numbers agree."""
        self._snap = None
        try:
            return self._execute(req, can_write)
        finally:
            self._snap = None

    def _snapshot(self) -> MinerSnapshot:
        if self._snap is None:
            self._snap = self.control.snapshot()
        return self._snap

    def _execute(self, req: ApiRequest, can_write: bool) -> dict[str, Any]:
        if req.error is not None:
            return reply(req.error)
        names = [n.strip().lower() for n in req.command.split("+")]
        if len(names) == 1:
            return self._one(names[0], req.parameter, can_write)
        out: dict[str, Any] = {}
        for name in dict.fromkeys(names):  # de-duplicated, in order
            entry = self.table.get(name)
            if entry is None:
                res = reply(status("E", MSG_INVCMD, "Invalid command"))
            elif entry[1]:
                res = reply(status("E", MSG_NOJOIN, f"Command '{name}' cannot be joined"))
            else:
                res = self._one(name, req.parameter, can_write)
            out[name] = [res]
        out["id"] = 1
        return out

    def _one(self, name: str, param: str | None, can_write: bool) -> dict[str, Any]:
        entry = self.table.get(name)
        if entry is None:
            return reply(status("E", MSG_INVCMD, "Invalid command"))
        handler, privileged = entry
        if privileged and not can_write:
            return reply(status("E", MSG_ACCDENY, f"Access denied to '{name}' command"))
        try:
            return handler(param)
        except MinerError as e:
            return reply(status("E", MSG_FAILED, f"{name} failed: {e}"))
        except Exception as e:  # a bug in one reply must not take the API down
            log.exception("API command %r failed", name)
            return reply(status("E", MSG_FAILED, f"{name} failed: {type(e).__name__}"))

    # -- report commands ---------------------------------------------------------
    def version(self, _p: str | None) -> dict:
        row = {"CGMiner": miner.__version__, "Miner": f"miner {miner.__version__}", "API": API_VERSION,
               "Type": "miner"}
        return reply(status("S", MSG_VERSION, "CGMiner versions"), "VERSION", [row])

    def config(self, _p: str | None) -> dict:
        s = self._snapshot()
        kinds = [d.kind for d in s.devices]
        row = {
            "ASC Count": kinds.count("asic"), "GPU Count": kinds.count("opencl") + kinds.count("cuda"),
            "PGA Count": 0, "CPU Count": kinds.count("cpu"), "Pool Count": len(s.pools),
            "Strategy": "Failover", "Log Interval": 5, "Device Code": " ".join(sorted(set(_dev_class(k) for k in kinds))),
            "OS": platform.system(), "Hotplug": "None", "Paused": s.paused, "Pause Reason": s.pause_reason,
        }
        return reply(status("S", MSG_MINECON, "CGMiner config"), "CONFIG", [row])

    def summary(self, _p: str | None) -> dict:
        s = self._snapshot()
        hr = s.hashrate
        mins = s.elapsed / 60 if s.elapsed > 0 else 0
        total_shares = s.accepted + s.rejected + s.stale
        total_diff = s.difficulty_accepted + s.difficulty_rejected + s.difficulty_stale
        row = {
            "Elapsed": int(s.elapsed),
            "MHS av": _mhs(hr.get("av", 0.0)), "MHS 5s": _mhs(hr.get("5s", 0.0)),
            "MHS 1m": _mhs(hr.get("1m", 0.0)), "MHS 5m": _mhs(hr.get("5m", 0.0)),
            "MHS 15m": _mhs(hr.get("15m", 0.0)),
            # GHS fields: what Antminer-style monitors (pyasic among them) read.
            "GHS 5s": round(hr.get("5s", 0.0) / 1e9, 9), "GHS av": round(hr.get("av", 0.0) / 1e9, 9),
            "Found Blocks": s.blocks, "Getworks": sum(p.jobs for p in s.pools),
            "Accepted": s.accepted, "Rejected": s.rejected, "Stale": s.stale,
            "Hardware Errors": s.hw_errors, "Utility": round(s.utility, 2), "Discarded": 0,
            "Get Failures": 0, "Local Work": 0, "Remote Failures": 0, "Network Blocks": 0,
            "Total MH": round(hr.get("av", 0.0) * s.elapsed / 1e6, 4),
            "Work Utility": round(s.difficulty_accepted / mins, 4) if mins else 0.0,
            "Difficulty Accepted": s.difficulty_accepted, "Difficulty Rejected": s.difficulty_rejected,
            "Difficulty Stale": s.difficulty_stale, "Best Share": s.best_share,
            "Device Hardware%": round(100.0 * s.hw_errors / (s.hw_errors + total_shares), 4)
            if s.hw_errors + total_shares else 0.0,
            "Pool Rejected%": round(100.0 * s.difficulty_rejected / total_diff, 4) if total_diff else 0.0,
            "Pool Stale%": round(100.0 * s.difficulty_stale / total_diff, 4) if total_diff else 0.0,
            "Last getwork": int(time.time()),
            "Network Difficulty": s.network_difficulty,
            "Effective MHS": _mhs(s.effective_hashrate),
            "Watts": s.watts, "J/TH": _jth(s.watts, efficiency_hashrate(hr, s.elapsed)),
            "Paused": s.paused, "Pause Reason": s.pause_reason,
        }
        facts = self.curtailer.status()
        for key, label in (("revenue_per_day", "Revenue/Day"), ("energy_cost_per_day", "Energy Cost/Day"),
                           ("energy_price", "Energy Price")):
            if facts.get(key) is not None:
                row[label] = round(float(facts[key]), 6)  # type: ignore[arg-type]
        return reply(status("S", MSG_SUMM, "Summary"), "SUMMARY", [row])

    def pools(self, _p: str | None) -> dict:
        s = self._snapshot()
        if not s.pools:
            return reply(status("E", MSG_NOPOOL, "No pools"))
        rows = [_pool_row(p) for p in s.pools]
        return reply(status("S", MSG_POOL, f"{len(rows)} Pool(s)"), "POOLS", rows)

    def devs(self, _p: str | None, enabled_only: bool = False) -> dict:
        s = self._snapshot()
        devices = [d for d in s.devices if d.enabled or not enabled_only]
        if not devices:
            return reply(status("E", MSG_NODEVS, "No devices"))
        rows, counts = [], {}
        for d in devices:
            cls = _dev_class(d.kind)
            idx = counts.get(cls, 0)
            counts[cls] = idx + 1
            rows.append(_dev_row(d, cls, idx, s))
        msg = " - ".join(f"{counts.get(c, 0)} {c}(s)" for c in ("GPU", "ASC", "CPU") if c in counts)
        return reply(status("S", MSG_DEVS, msg), "DEVS", rows)

    def edevs(self, p: str | None) -> dict:
        return self.devs(p, enabled_only=True)

    def stats(self, _p: str | None) -> dict:
        s = self._snapshot()
        rows: list[dict[str, Any]] = [{"STATS": 0, "ID": "MINER0", "CGMiner": miner.__version__,
                                       "Miner": f"miner {miner.__version__}", "Type": "miner",
                                       "Elapsed": int(s.elapsed)}]
        counts: dict[str, int] = {}
        for d in s.devices:
            cls = _dev_class(d.kind)
            idx = counts.get(cls, 0)
            counts[cls] = idx + 1
            rows.append({"STATS": len(rows), "ID": f"{cls}{idx}", "Elapsed": int(d.elapsed or s.elapsed),
                         "Calls": 0, "Wait": 0.0, "Max": 0.0, "Min": 99999999.0,
                         "Device": d.name, "Model": d.model, "MHS 5s": _mhs(d.hashrate.get("5s", 0.0)),
                         "Temperature": d.temperature_c, "Frequency": d.frequency_mhz, "Watts": d.watts,
                         "J/TH": _jth(d.watts, efficiency_hashrate(d.hashrate, d.elapsed or s.elapsed))})
        for p in s.pools:
            rows.append({"STATS": len(rows), "ID": f"POOL{p.id}", "Elapsed": int(s.elapsed), "Calls": 0,
                         "Wait": 0.0, "Max": 0.0, "Min": 99999999.0, "Pool Calls": 0, "Pool Attempts": 0,
                         "Work Diff": p.difficulty, "Min Diff": p.difficulty, "Max Diff": p.difficulty,
                         "Min Diff Count": 0, "Max Diff Count": 0})
        return reply(status("S", MSG_MINESTATS, "CGMiner stats"), "STATS", rows)

    # -- privileged commands -------------------------------------------------------
    def privileged(self, _p: str | None) -> dict:
        return reply(status("S", MSG_ACCOK, "Privileged access OK"))

    def _pool_id(self, param: str | None) -> tuple[int, PoolSnapshot] | dict:
        if param is None or not str(param).strip():
            return reply(status("E", MSG_MISPID, "Missing pool id parameter"))
        pools = self._snapshot().pools
        top = max((p.id for p in pools), default=-1)
        try:
            pid = int(str(param).strip())
        except ValueError:
            return reply(status("E", MSG_INVPID, f"Invalid pool id {param!r} - range is 0 - {top}"))
        for p in pools:
            if p.id == pid:
                return pid, p
        return reply(status("E", MSG_INVPID, f"Invalid pool id {pid} - range is 0 - {top}"))

    def _pool_action(self, param: str | None, action: Callable[[int], None], code: int, verb: str) -> dict:
        got = self._pool_id(param)
        if isinstance(got, dict):
            return got
        pid, p = got
        action(pid)
        log.info("API: %s pool %d (%s)", verb.lower(), pid, p.url)
        return reply(status("S", code, f"{verb} pool {pid}:'{p.url}'"))

    def switchpool(self, param: str | None) -> dict:
        return self._pool_action(param, self.control.switch_pool, MSG_SWITCHP, "Switching to")

    def enablepool(self, param: str | None) -> dict:
        return self._pool_action(param, self.control.enable_pool, MSG_ENAPOOL, "Enabling")

    def disablepool(self, param: str | None) -> dict:
        return self._pool_action(param, self.control.disable_pool, MSG_DISPOOL, "Disabling")

    def removepool(self, param: str | None) -> dict:
        return self._pool_action(param, self.control.remove_pool, MSG_REMPOOL, "Removed")

    def addpool(self, param: str | None) -> dict:
        if param is None or not param.strip():
            return reply(status("E", MSG_MISPDP, "Missing addpool details"))
        parts = split_addpool(param)
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            # Never echo the parameter: it carries a password.
            return reply(status("E", MSG_INVPDP, "Invalid addpool details: expected URL,USER,PASSWORD"))
        url, user, password = (x.strip() for x in parts)
        pid = self.control.add_pool(url, user, password)
        log.info("API: added pool %d (%s, user %s)", pid, url, user)
        return reply(status("S", MSG_ADDPOOL, f"Added pool {pid}: '{url}'"))

    def pause(self, _p: str | None) -> dict:
        self.curtailer.hold("api", "paused by API command")
        return reply(status("S", MSG_PAUSED, "Mining paused"))

    def resume(self, _p: str | None) -> dict:
        self.curtailer.release("api", "resumed by API command")
        snap = self.control.snapshot()
        if snap.paused:
            return reply(status("I", MSG_STILLPAUSED, f"API pause cleared; still paused by {snap.pause_reason}"))
        return reply(status("S", MSG_RESUMED, "Mining resumed"))

    def quit(self, _p: str | None) -> dict:
        log.warning("API: quit requested")
        self.after_reply = self.control.quit
        return {"STATUS": "BYE"}

    def restart(self, _p: str | None) -> dict:
        log.warning("API: restart requested")
        self.after_reply = self.control.restart
        return {"STATUS": "RESTART"}


def _dev_class(kind: str) -> str:
    return {"asic": "ASC", "opencl": "GPU", "cuda": "GPU", "cpu": "CPU"}.get(kind, "PGA")


def _dev_row(d: DeviceSnapshot, cls: str, idx: int, s: MinerSnapshot) -> dict[str, Any]:
    hr = d.hashrate
    mins = d.elapsed / 60 if d.elapsed > 0 else (s.elapsed / 60 if s.elapsed > 0 else 0)
    return {
        cls: idx, "Name": d.model, "ID": idx, "Enabled": "Y" if d.enabled else "N",
        "Status": _STATUS_NAMES.get(d.status, d.status.capitalize()),
        "Temperature": d.temperature_c if d.temperature_c is not None else 0.0,
        "MHS av": _mhs(hr.get("av", 0.0)), "MHS 5s": _mhs(hr.get("5s", 0.0)),
        "MHS 1m": _mhs(hr.get("1m", 0.0)), "MHS 5m": _mhs(hr.get("5m", 0.0)),
        "MHS 15m": _mhs(hr.get("15m", 0.0)),
        "Accepted": d.accepted, "Rejected": d.rejected, "Stale": d.stale, "Hardware Errors": d.hw_errors,
        "Utility": round(d.accepted / mins, 4) if mins else 0.0,
        "Last Share Pool": s.current_pool if s.current_pool is not None else -1,
        "Last Share Time": int(d.last_share_time or 0),
        "Total MH": round(hr.get("av", 0.0) * (d.elapsed or s.elapsed) / 1e6, 4),
        "Difficulty Accepted": d.difficulty_accepted, "Best Share": d.best_share,
        "Device Hardware%": round(100.0 * d.hw_errors / (d.hw_errors + d.accepted + d.rejected), 4)
        if d.hw_errors + d.accepted + d.rejected else 0.0,
        "Device Rejected%": round(100.0 * d.rejected / (d.accepted + d.rejected), 4)
        if d.accepted + d.rejected else 0.0,
        "Device Elapsed": int(d.elapsed or s.elapsed),
        # Ours: the device as the miner names it, its kind, clock, power and efficiency.
        "Device": d.name, "Kind": d.kind, "Frequency": d.frequency_mhz, "Watts": d.watts,
        "Code": d.code or "",  # CPU: the core implementation this thread runs now (it may change)
        "J/TH": _jth(d.watts, efficiency_hashrate(hr, d.elapsed or s.elapsed)),
    }


def _pool_row(p: PoolSnapshot) -> dict[str, Any]:
    total_diff = p.difficulty_accepted + p.difficulty_rejected + p.difficulty_stale
    host = p.url.split("://", 1)[-1]
    return {
        "POOL": p.id, "URL": p.url, "Status": _STATUS_NAMES.get(p.status, p.status.capitalize()),
        "Priority": p.priority, "Quota": 1, "Long Poll": "N", "Getworks": p.jobs,
        "Accepted": p.accepted, "Rejected": p.rejected, "Works": p.accepted + p.rejected + p.stale,
        "Discarded": 0, "Stale": p.stale, "Get Failures": 0, "Remote Failures": 0, "User": p.user,
        "Last Share Time": int(p.last_share_time or 0), "Diff1 Shares": int(p.difficulty_accepted),
        "Proxy Type": "", "Proxy": "",
        "Difficulty Accepted": p.difficulty_accepted, "Difficulty Rejected": p.difficulty_rejected,
        "Difficulty Stale": p.difficulty_stale, "Last Share Difficulty": p.difficulty,
        "Work Difficulty": p.difficulty, "Has Stratum": True, "Stratum Active": p.active,
        "Stratum URL": host if p.active else "", "Stratum Difficulty": p.difficulty,
        "Has Vmask": bool(p.version_mask), "Has GBT": False, "Best Share": p.best_share,
        "Pool Rejected%": round(100.0 * p.difficulty_rejected / total_diff, 4) if total_diff else 0.0,
        "Pool Stale%": round(100.0 * p.difficulty_stale / total_diff, 4) if total_diff else 0.0,
        "Bad Work": 0, "Current Block Height": 0, "Current Block Version": 0,
        "Blocks": p.blocks, "Reject Reasons": dict(p.reject_reasons),
    }


def encode(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN or inf from a broken sensor must not produce JSON that clients cannot parse.
    return json.dumps(finite_json(obj), separators=(",", ":"), allow_nan=False).encode() + b"\0"


def listen_socket(what: str, bind: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on bind:port (IPv6 when bind has a colon); a port in use or
    an address this host lacks is one ConfigError line naming ``what``."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"{what} cannot listen on {bind}:{port}: {e.strerror or e}") from e
    sock.listen(64)
    sock.setblocking(False)
    return sock


def finite_json(v: Any) -> Any:
    """NaN and infinities (a broken sensor) become null: JSON clients cannot parse them."""
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    if isinstance(v, dict):
        return {k: finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_json(x) for x in v]
    return v


# -- the server ------------------------------------------------------------------------
class ApiServer:
    """Accept thread plus one short-lived thread per connection, at most MAX_CONNECTIONS."""

    def __init__(self, control: MinerControl, bind: str = "127.0.0.1", port: int = 4028,
                 allow: list[str] | None = None, curtailer: Curtailer | None = None) -> None:
        self.commands = ApiCommands(control, curtailer)
        self.rules = parse_allow(allow)
        self.bind, self.requested_port = bind, port
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._cmd_lock = threading.Lock()   # privileged commands run one at a time
        self.port = 0

    def start(self) -> "ApiServer":
        sock = listen_socket("API", self.bind, self.requested_port)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="api", daemon=True)
        self._thread.start()
        writers = [str(r.network) for r in self.rules if r.write]
        log.info("API listening on %s:%d (privileged: %s)", self.bind, self.port,
                 ", ".join(writers) if writers else "nobody")
        return self

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        assert self._sock is not None
        sel.register(self._sock, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                if not sel.select(timeout=0.2):
                    continue
                try:
                    conn, addr = self._sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    if self._stop.is_set():
                        break
                    log.warning("API accept failed: %s", e)
                    time.sleep(0.1)  # e.g. EMFILE: do not spin
                    continue
                self._dispatch(conn, addr[0])
        finally:
            sel.close()

    def _dispatch(self, conn: socket.socket, host: str) -> None:
        conn.setblocking(True)
        level = access_for(host, self.rules)
        if level is None:
            log.info("API: connection from %s refused (not in --api-allow)", host)
            conn.close()
            return
        if not self._slots.acquire(blocking=False):
            log.warning("API: too many connections (%d); refusing %s", MAX_CONNECTIONS, host)
            self._send(conn, reply(status("E", MSG_BUSY, f"Too many connections (limit {MAX_CONNECTIONS})")))
            self._finish(conn, drain_s=0.05)
            return
        t = threading.Thread(target=self._serve, args=(conn, host, level == "write"), name="api-conn", daemon=True)
        t.start()

    def _serve(self, conn: socket.socket, host: str, can_write: bool) -> None:
        try:
            raw, too_big = self._read(conn)
            if too_big:
                log.warning("API: request from %s over %d bytes refused", host, MAX_REQUEST)
                self._send(conn, reply(status("E", MSG_TOOBIG, f"Request too large (limit {MAX_REQUEST} bytes)")))
                return
            if raw is None:
                return  # client went away or sent nothing in time
            req = parse_request(raw)
            with self._cmd_lock:
                self.commands.after_reply = None
                result = self.commands.execute(req, can_write)
                after, self.commands.after_reply = self.commands.after_reply, None
            self._send(conn, result)
            if after is not None:
                after()
        except Exception:
            log.exception("API: connection from %s failed", host)
        finally:
            try:
                self._finish(conn)
            finally:
                self._slots.release()

    @staticmethod
    def _complete(buf: bytes) -> bool:
        s = buf.lstrip()
        if b"\0" in s or b"\n" in s:
            return True
        if s.startswith(b"{"):
            try:
                json.loads(s)
                return True
            except json.JSONDecodeError as e:
                # An error before the end of what arrived means invalid, not unfinished.
                return e.pos < len(e.doc.rstrip()) and not e.msg.startswith("Unterminated string")
            except (ValueError, RecursionError):  # undecodable bytes, or nested too deep to parse
                return True
        return False

    def _read(self, conn: socket.socket) -> tuple[bytes | None, bool]:
        """The request bytes (None when nothing arrived) and whether it was too large.

        cgminer clients send the request and wait without closing their side,
        so a request ends at NUL, newline, a complete JSON object, EOF, or the
        end of a text command's write.
        """
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            conn.settimeout(min(left, 0.15) if buf and not buf.lstrip().startswith(b"{") else left)
            try:
                chunk = conn.recv(RECV_SIZE)
            except socket.timeout:
                if buf:
                    break
                continue
            except OSError:
                return None, False
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_REQUEST:
                return None, True
            if self._complete(buf):
                break
            # A text command is one write from the client (cgminer reads it with one recv);
            # only a full buffer suggests more is on the way.
            if not buf.lstrip().startswith(b"{") and len(chunk) < RECV_SIZE:
                break
        return (buf if buf.strip(b" \r\n\t\0") else None), False

    @staticmethod
    def _send(conn: socket.socket, obj: dict[str, Any]) -> None:
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            conn.sendall(encode(obj))
        except OSError as e:
            log.debug("API: reply not delivered: %s", e)

    @staticmethod
    def _finish(conn: socket.socket, drain_s: float = 0.2) -> None:
        """Close without a reset: closing with unread input makes the kernel send RST,
        and the client may then lose the reply it has not read yet."""
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(drain_s)
            for _ in range(4):
                if not conn.recv(MAX_REQUEST):
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
