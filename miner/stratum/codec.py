"""Stratum v1 codec: one pool line in, one typed message out; builders for our lines. No I/O.

Everything a pool sends is validated here, so the session above never meets a wrong type or a hex
string of the wrong length: a malformed line raises ProtocolError with a one-line reason, and the
session logs it and carries on (or resets, for handshake replies it cannot do without).

Wire facts (docs/PROTOCOLS.md, "Stratum v1"): newline-delimited JSON-RPC; notify params are
[job_id, prevhash, coinb1, coinb2, merkle_branch[], version, nbits, ntime, clean_jobs, ...extra];
prevhash arrives with the bytes of each 4-byte word reversed relative to the header.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Union

from miner.errors import ProtocolError

MAX_LINE = 64 * 1024            # bytes; a longer line is dropped whole
MAX_COINBASE_PART = 16 * 1024   # bytes per coinb1/coinb2 after decoding (lines cap it anyway)
MAX_BRANCH = 64                 # merkle depth; 2^64 transactions is beyond any block
MAX_JOB_ID = 256                # characters
MAX_MESSAGE = 512               # characters of client.show_message kept


# -- messages ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Response:
    """A reply to one of our requests, matched by id."""
    id: int | str
    result: Any
    error: Any


@dataclass(frozen=True, slots=True)
class Notify:
    job_id: str
    prevhash: bytes           # 32 bytes, header order (word-swapped from the wire)
    prevhash_wire: str        # as sent, lower case; compared to detect a new block
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool


@dataclass(frozen=True, slots=True)
class SetDifficulty:
    difficulty: float


@dataclass(frozen=True, slots=True)
class SetExtranonce:
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True)
class SetVersionMask:
    mask: int


@dataclass(frozen=True, slots=True)
class Reconnect:
    host: str | None          # None: same host
    port: int | None          # None: same port
    wait: float               # seconds


@dataclass(frozen=True, slots=True)
class ShowMessage:
    text: str


@dataclass(frozen=True, slots=True)
class GetVersion:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class UnknownMethod:
    method: str


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A method call or notification from the pool. id is None for notifications."""
    id: int | str | None
    method: str
    body: Union[Notify, SetDifficulty, SetExtranonce, SetVersionMask, Reconnect, ShowMessage,
                GetVersion, Ping, UnknownMethod]


Message = Union[Response, ServerRequest]


# -- small validators -------------------------------------------------------
def _hex(value: Any, what: str, *, nbytes: int | None = None, max_bytes: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: expected a hex string, got {type(value).__name__}")
    if len(value) % 2:
        raise ProtocolError(f"{what}: odd-length hex ({len(value)} chars)")
    if nbytes is not None and len(value) != 2 * nbytes:
        raise ProtocolError(f"{what}: expected {nbytes} bytes of hex, got {len(value) // 2}")
    if max_bytes is not None and len(value) > 2 * max_bytes:
        raise ProtocolError(f"{what}: longer than {max_bytes} bytes")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ProtocolError(f"{what}: not hex") from None


def _u32(value: Any, what: str) -> int:
    return int.from_bytes(_hex(value, what, nbytes=4), "big")


def _params(msg: dict, method: str) -> list:
    p = msg.get("params", [])
    if p is None:
        p = []
    if not isinstance(p, list):
        raise ProtocolError(f"{method}: params must be a list, got {type(p).__name__}")
    return p


def _id(value: Any) -> int | str | None:
    if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
        if isinstance(value, str) and len(value) > 64:
            raise ProtocolError("id too long")
        return value
    raise ProtocolError(f"id must be a number, string or null, got {type(value).__name__}")


def parse_difficulty(value: Any) -> float:
    """A pool difficulty: a finite number > 0 (int, float, or a numeric string some pools send)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ProtocolError(f"difficulty must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"difficulty must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"difficulty must be finite, got {value!r}")
    if value <= 0:
        raise ProtocolError(f"difficulty must be positive, got {value!r}")
    if isinstance(value, int) and value > 2 ** 256:
        raise ProtocolError("difficulty out of range")
    return float(value) if isinstance(value, float) else value


def parse_extranonce2_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"extranonce2_size must be an integer, got {type(value).__name__}")
    if not 1 <= value <= 16:
        raise ProtocolError(f"extranonce2_size {value} outside 1..16")
    return value


def parse_extranonce1(value: Any) -> bytes:
    return _hex(value, "extranonce1", max_bytes=32)


def swap_words(b: bytes) -> bytes:
    """Reverse the bytes of every 4-byte word: the prevhash as mining.notify sends it <-> header order."""
    return b"".join(b[i:i + 4][::-1] for i in range(0, len(b), 4))


# -- server requests ----------------------------------------------------------
def _parse_notify(p: list) -> Notify:
    if len(p) < 9:
        raise ProtocolError(f"mining.notify: expected 9 params, got {len(p)}")
    job_id = p[0]
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_JOB_ID:
        raise ProtocolError("mining.notify: job_id must be a non-empty string")
    prev = _hex(p[1], "mining.notify prevhash", nbytes=32)
    coinb1 = _hex(p[2], "mining.notify coinb1", max_bytes=MAX_COINBASE_PART)
    coinb2 = _hex(p[3], "mining.notify coinb2", max_bytes=MAX_COINBASE_PART)
    if not isinstance(p[4], list):
        raise ProtocolError("mining.notify: merkle_branch must be a list")
    if len(p[4]) > MAX_BRANCH:
        raise ProtocolError(f"mining.notify: merkle_branch longer than {MAX_BRANCH}")
    branch = tuple(_hex(b, "mining.notify merkle_branch entry", nbytes=32) for b in p[4])
    version = _u32(p[5], "mining.notify version")
    nbits = _u32(p[6], "mining.notify nbits")
    ntime = _u32(p[7], "mining.notify ntime")
    # clean_jobs is the LAST element: some pools append extra params after it.
    clean = p[-1]
    if not isinstance(clean, bool):
        raise ProtocolError(f"mining.notify: clean_jobs must be a boolean, got {type(clean).__name__}")
    return Notify(job_id, swap_words(prev), p[1].lower(), coinb1, coinb2, branch, version, nbits, ntime, clean)


def _parse_reconnect(p: list) -> Reconnect:
    host = p[0] if len(p) > 0 else None
    port = p[1] if len(p) > 1 else None
    wait = p[2] if len(p) > 2 else 0
    if host is not None and (not isinstance(host, str) or len(host) > 255):
        raise ProtocolError("client.reconnect: host must be a string")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ProtocolError("client.reconnect: port must be 1..65535")
    if isinstance(wait, str) and wait.isdigit():
        wait = int(wait)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait) or wait < 0:
        raise ProtocolError("client.reconnect: wait must be a non-negative number")
    return Reconnect(host or None, port, float(min(wait, 3600)))


def _parse_request(msg: dict, method: str) -> ServerRequest:
    mid = _id(msg.get("id"))
    p = _params(msg, method)
    body: Any
    if method == "mining.notify":
        body = _parse_notify(p)
    elif method == "mining.set_difficulty":
        if not p:
            raise ProtocolError("mining.set_difficulty: missing difficulty")
        body = SetDifficulty(parse_difficulty(p[0]))
    elif method == "mining.set_extranonce":
        if len(p) < 2:
            raise ProtocolError("mining.set_extranonce: expected [extranonce1, extranonce2_size]")
        body = SetExtranonce(parse_extranonce1(p[0]), parse_extranonce2_size(p[1]))
    elif method == "mining.set_version_mask":
        if not p:
            raise ProtocolError("mining.set_version_mask: missing mask")
        body = SetVersionMask(_u32(p[0].rjust(8, "0") if isinstance(p[0], str) else p[0],
                                   "mining.set_version_mask mask"))
    elif method == "client.reconnect":
        body = _parse_reconnect(p)
    elif method == "client.show_message":
        text = p[0] if p else ""
        if not isinstance(text, str):
            raise ProtocolError("client.show_message: message must be a string")
        body = ShowMessage(text[:MAX_MESSAGE])
    elif method == "client.get_version":
        body = GetVersion()
    elif method == "mining.ping":
        body = Ping()
    else:
        body = UnknownMethod(method[:100])
    return ServerRequest(mid, method, body)


def parse_line(line: bytes | str) -> Message:
    """Decode one pool line (without its newline). Raises ProtocolError for anything malformed."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line of {len(line)} bytes exceeds {MAX_LINE}")
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"invalid JSON: {str(e)[:80]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"expected a JSON object, got {type(msg).__name__}")
    method = msg.get("method")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise ProtocolError("method must be a non-empty string")
        return _parse_request(msg, method)
    if "result" not in msg and "error" not in msg:
        raise ProtocolError("neither a method call nor a reply")
    mid = _id(msg.get("id"))
    if mid is None:
        raise ProtocolError("reply without an id")
    return Response(mid, msg.get("result"), msg.get("error"))


# -- replies to our requests ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subscription:
    extranonce1: bytes
    extranonce2_size: int
    session_id: str | None    # the mining.notify subscription id, offered back on reconnect


def parse_subscribe_result(result: Any) -> Subscription:
    if not isinstance(result, list) or len(result) < 3:
        raise ProtocolError("mining.subscribe: result must be [subscriptions, extranonce1, extranonce2_size]")
    subs, en1, size = result[0], result[1], result[2]
    en1_b = parse_extranonce1(en1)
    size = parse_extranonce2_size(size)
    session = None
    # Shapes seen: [["mining.set_difficulty", id], ["mining.notify", id]], ["mining.notify", id], or [].
    if isinstance(subs, list):
        pairs = [subs] if len(subs) == 2 and all(isinstance(x, str) for x in subs) else subs
        for pair in pairs:
            if (isinstance(pair, list) and len(pair) >= 2 and pair[0] == "mining.notify"
                    and isinstance(pair[1], str) and 0 < len(pair[1]) <= 128):
                session = pair[1]
    return Subscription(en1_b, size, session)


def parse_configure_result(result: Any, requested_mask: int) -> int:
    """Negotiated version-rolling mask (0 = no rolling). {}, null, false or a missing key mean none."""
    if not isinstance(result, dict) or result.get("version-rolling") is not True:
        return 0
    mask = result.get("version-rolling.mask")
    if not isinstance(mask, str):
        return 0
    text = mask[2:] if mask.lower().startswith("0x") else mask
    if not text or len(text) > 8:
        raise ProtocolError(f"mining.configure: bad version-rolling.mask {mask[:20]!r}")
    try:
        value = int(text, 16)
    except ValueError:
        raise ProtocolError(f"mining.configure: bad version-rolling.mask {mask[:20]!r}") from None
    # Some pools return a wider mask than asked: only bits both sides allow may roll.
    return value & requested_mask


def error_reason(error: Any) -> str:
    """The pool's reason from an error field: [code, msg, data], {"code","message"}, a string, or other."""
    if error is None:
        return "rejected"
    if isinstance(error, str):
        return error[:200] or "rejected"
    if isinstance(error, list) and len(error) >= 2:
        code, msg = error[0], error[1]
        text = str(msg)[:200] if msg is not None else "rejected"
        return f"{text} ({code})" if isinstance(code, int) and not isinstance(code, bool) else text
    if isinstance(error, dict):
        msg = error.get("message") or error.get("msg") or "rejected"
        code = error.get("code")
        text = str(msg)[:200]
        return f"{text} ({code})" if isinstance(code, int) and not isinstance(code, bool) else text
    return str(error)[:200]


# -- our lines --------------------------------------------------------------------
def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def request(mid: int, method: str, params: list) -> bytes:
    return encode({"id": mid, "method": method, "params": params})


def reply(mid: int | str | None, result: Any = None, error: Any = None) -> bytes:
    return encode({"id": mid, "result": result, "error": error})


def configure_params(mask: int, min_bits: int = 2) -> list:
    return [["version-rolling"], {"version-rolling.mask": f"{mask:08x}",
                                  "version-rolling.min-bit-count": min_bits}]


# -- framing ------------------------------------------------------------------------
class LineTooLong(ProtocolError):
    pass


class LineFramer:
    """Split a byte stream into lines, never holding more than MAX_LINE bytes of one line.

    feed() returns complete lines (without the newline, trailing CR stripped) and LineTooLong
    markers for dropped oversize lines, in stream order; the rest of an oversize line is skipped
    up to its newline so the next line parses normally.
    """

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        out: list[bytes | LineTooLong] = []
        start = 0
        n = len(data)
        while start < n:
            nl = data.find(b"\n", start)
            end = n if nl < 0 else nl
            chunk = data[start:end]
            if self._skipping:
                if nl >= 0:
                    self._skipping = False
            else:
                self._buf += chunk
                if len(self._buf) > self.limit:
                    out.append(LineTooLong(f"pool line longer than {self.limit} bytes dropped"))
                    self._buf.clear()
                    self._skipping = nl < 0
                elif nl >= 0:
                    line = bytes(self._buf).rstrip(b"\r")
                    self._buf.clear()
                    if line.strip():
                        out.append(line)
            start = n if nl < 0 else nl + 1
        return out
