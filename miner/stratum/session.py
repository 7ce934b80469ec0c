"""One Stratum v1 connection: connect (TCP or TLS), handshake, read loop, ids and timeouts.

The session owns its socket and its protocol state (extranonce, difficulty for the next job,
version mask, the jobs the pool still honours). It builds a Job for every mining.notify and hands it
up through on_job; everything else it reports through on_event. It never decides failover: when the
connection ends, serve() returns the reason and the PoolManager chooses what comes next.

Validity of a share's job is identity: a share may be sent only while ``self.jobs[job_id] is
share.job``. clean_jobs, a new prevhash, and a set_extranonce or set_version_mask that really changes
something replace or clear that map, so a share for dropped work can never reach the pool.

Liveness (docs/STRATUM.md, "Timeouts"): a submit without a reply for ``Timeouts.reply`` seconds makes
the session probe the pool on the same connection (a repeated mining.authorize, which every pool
answers). A reply to anything within ``Timeouts.probe`` means the pool is alive and merely slow: the
session stays and the submits keep waiting. No reply means the session is dead (``hung``): it ends,
and the shares still waiting are handed back to the manager, never counted rejected.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from miner.engine.difficulty import MAX_SHARE_DIFFICULTY, network_difficulty, target_from_difficulty
from miner.errors import PoolError, ProtocolError
from miner.engine.job import Job, Share
from miner.stratum import codec

log = logging.getLogger(__name__)

MAX_JOBS = 64                  # jobs kept per session; pools rarely honour more than a few
MAX_BAD_LINES = 50             # malformed lines in a row before the session is reset
MAX_LATE = 4096                # given-up submits whose late reply is still awaited for a correction
TLS_HANDSHAKE_S = 5.0          # a TLS server answers a ClientHello at once; silence means a plain-TCP port

PLAIN_TCP_HINT = "the port may speak plain TCP, not TLS: if so, use stratum+tcp://"


def tls_failure(e: BaseException) -> str:
    """Why a TLS handshake failed, and the fix, in one line."""
    if isinstance(e, ssl.SSLCertVerificationError):
        detail = f" ({e.verify_message})" if e.verify_message else ""
        if "hostname mismatch" in (e.verify_message or "").lower():
            return (f"CERTIFICATE_VERIFY_FAILED{detail}: connect by a name the certificate lists, "
                    "or --insecure")
        return f"CERTIFICATE_VERIFY_FAILED{detail}: use --cert CA.pem for a private CA, or --insecure"
    if isinstance(e, ssl.SSLError):
        if e.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                        "UNKNOWN_PROTOCOL", "HTTP_REQUEST") or isinstance(e, ssl.SSLEOFError):
            return f"the server's answer is not TLS ({e.reason or e}); {PLAIN_TCP_HINT}"
        return str(e.reason or e)
    if isinstance(e, asyncio.TimeoutError) or "longer than" in str(e):
        return f"no TLS answer within {TLS_HANDSHAKE_S:g} s; {PLAIN_TCP_HINT}"
    return f"the server closed the connection during the TLS handshake; {PLAIN_TCP_HINT}"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool


@dataclass
class ResumeState:
    """What a reconnect to the same pool may reuse."""
    session_id: str | None
    extranonce1: bytes
    extranonce2_size: int
    jobs: "OrderedDict[str, Job]"
    difficulty: float | None
    prevhash_wire: str | None


@dataclass(frozen=True)
class Timeouts:
    """Seconds. docs/STRATUM.md explains each bound and why it has its default."""
    connect: float = 10.0
    handshake: float = 15.0     # each handshake reply
    reply: float = 10.0         # a submit unanswered this long: probe the pool on the same connection
    probe: float = 5.0          # no reply to anything this long after the probe: the session is dead
    give_up: float = 120.0      # a submit unanswered this long on a live session: counted rejected
                                # "no reply from pool"; a reply arriving later corrects the count
    drain: float = 5.0          # client.reconnect: replies to submits in flight are read this long
    silence: float = 150.0      # no line from the pool for this long: reconnect


def verdict(res: codec.Response) -> tuple[bool, str | None]:
    """A submit reply as (accepted, the pool's reason)."""
    if res.result is True and res.error is None:
        return True, None
    return False, codec.error_reason(res.error) if res.error is not None else "rejected"


class StratumSession:
    def __init__(self, pool_id: int, endpoint: Endpoint, user: str, password: str, *,
                 on_job: Callable[[Job], None], on_event: Callable[[str, dict], None],
                 agent: str, version_rolling: bool, version_mask: int,
                 suggest_difficulty: float | None, extranonce_subscribe: bool,
                 ssl_context: ssl.SSLContext | None, timeouts: Timeouts = Timeouts(),
                 resume: ResumeState | None = None, label: str = "") -> None:
        self.pool_id = pool_id
        self.endpoint = endpoint
        self.user = user
        self._password = password
        self._on_job = on_job
        self._on_event = on_event
        self.agent = agent
        self.want_rolling = version_rolling
        self.requested_mask = version_mask & 0xFFFFFFFF
        self.suggest = suggest_difficulty
        self.extranonce_subscribe = extranonce_subscribe
        self._ssl = ssl_context
        self.timeouts = timeouts
        self._resume = resume
        self.label = label or f"pool {pool_id}"

        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.session_id: str | None = None
        self.resumed = False
        self.difficulty: float | None = resume.difficulty if resume else None
        self.version_mask = 0
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.prevhash_wire: str | None = None
        self.last_job: Job | None = None
        self.authorized = False
        self.reconnect_to: codec.Reconnect | None = None
        self.end_reason = ""
        self.hung = False               # ended because neither a submit nor the probe was answered
        self.rolling_negotiated = False # mining.configure granted version rolling (BIP 310)

        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future] = {}
        self._reply_hooks: dict[int, Callable[[codec.Response], None]] = {}
        self._side_tasks: set[asyncio.Task] = set()
        self._read_task: asyncio.Task | None = None
        self._closed = asyncio.Event()
        self._last_rx = time.monotonic()
        self._force_clean = True
        self._bad_lines = 0
        self._submit_sent: dict[int, float] = {}            # submit id -> monotonic send time
        self._late: OrderedDict[int, Callable[[bool, str | None], None]] = OrderedDict()
        self._replies = 0                                     # replies read (any request)
        self._probe_sent: float | None = None
        self._probe_replies = 0
        self._next_probe = 0.0
        self._drain_until: float | None = None
        self._warned: set[str] = set()

    # -- connection --------------------------------------------------------
    async def start(self) -> None:
        """Connect and handshake. Raises PoolError (the connection is closed again) on any failure."""
        ep = self.endpoint
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(ep.host, ep.port, limit=codec.MAX_LINE * 2), self.timeouts.connect)
        except (OSError, asyncio.TimeoutError) as e:
            why = "timed out" if isinstance(e, asyncio.TimeoutError) else (e.strerror or str(e) or type(e).__name__)
            raise PoolError(f"{self.label}: cannot connect to {ep.host}:{ep.port}: {why}") from e
        if self._ssl is not None:
            await self._start_tls()
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass
        self._last_rx = time.monotonic()
        self._read_task = asyncio.create_task(self._read_loop(), name=f"stratum-read-{self.pool_id}")
        try:
            await self._handshake()
        except asyncio.TimeoutError as e:
            await self.close()
            raise PoolError(f"{self.label}: no reply from the pool during the handshake") from e
        except BaseException:
            await self.close()
            raise

    async def _start_tls(self) -> None:
        """TLS over the connected socket, in a step of its own so a failure says what it was."""
        ep = self.endpoint
        assert self._writer is not None and self._ssl is not None
        try:
            await asyncio.wait_for(self._writer.start_tls(self._ssl, server_hostname=ep.host,
                                                          ssl_handshake_timeout=TLS_HANDSHAKE_S),
                                   TLS_HANDSHAKE_S + 1.0)
        except BaseException as e:
            self._writer.transport.abort()
            self._reader = self._writer = None
            if isinstance(e, (OSError, asyncio.TimeoutError, ssl.SSLError)):
                raise PoolError(f"{self.label}: TLS failed: {tls_failure(e)}") from e
            raise

    async def _handshake(self) -> None:
        if self.want_rolling and self.requested_mask:
            try:
                res = await self._call("mining.configure", codec.configure_params(self.requested_mask),
                                       self.timeouts.handshake)
                self.version_mask = codec.parse_configure_result(res.result if res.error is None else None,
                                                                 self.requested_mask)
                self.rolling_negotiated = bool(self.version_mask)
            except (ProtocolError, asyncio.TimeoutError) as e:
                # A pool that ignores or mangles configure is a pool without version rolling.
                log.info("%s: mining.configure not usable (%s); no version rolling", self.label,
                         "timeout" if isinstance(e, asyncio.TimeoutError) else (str(e) or type(e).__name__))
                self.version_mask = 0
            log.info("%s: version rolling %s", self.label,
                     f"mask {self.version_mask:08x}" if self.version_mask else "off")

        resume_id = self._resume.session_id if self._resume else None
        ok = await self._subscribe(resume_id)
        if not ok and resume_id is not None:
            ok = await self._subscribe(None)
        if not ok:
            raise PoolError(f"{self.label}: mining.subscribe refused")
        log.info("%s: subscribed, extranonce1 %s, extranonce2_size %d%s", self.label, self.extranonce1.hex(),
                 self.extranonce2_size, " (session resumed)" if self.resumed else "")

        res = await self._call("mining.authorize", [self.user, self._password], self.timeouts.handshake)
        if res.result is not True:
            raise PoolError(f"{self.label}: worker {self.user!r} not authorized: "
                            f"{codec.error_reason(res.error) if res.error is not None else 'refused'}")
        self.authorized = True
        log.info("%s: authorized as %s", self.label, self.user)

        if self.extranonce_subscribe:
            self._fire_and_log("mining.extranonce.subscribe", [])
        if self.suggest is not None:
            self._fire_and_log("mining.suggest_difficulty", [self.suggest])

    async def _subscribe(self, session_id: str | None) -> bool:
        params = [self.agent] if session_id is None else [self.agent, session_id]
        res = await self._call("mining.subscribe", params, self.timeouts.handshake, self._apply_subscribe)
        if res.error is not None or res.result is None:
            log.warning("%s: mining.subscribe%s failed: %s", self.label,
                        " (resume)" if session_id else "", codec.error_reason(res.error))
            return False
        return True

    def _apply_subscribe(self, res: codec.Response) -> None:
        """Runs inside the read loop, before the next line: the pool's first notify often follows
        the subscribe reply in the same packet and must see the extranonce."""
        if res.error is not None or res.result is None:
            return
        try:
            sub = codec.parse_subscribe_result(res.result)
        except ProtocolError as e:
            raise PoolError(f"{self.label}: bad mining.subscribe reply: {e}") from e
        r = self._resume
        self.resumed = bool(r and r.extranonce1 == sub.extranonce1 and r.extranonce2_size == sub.extranonce2_size)
        if self.resumed and r is not None:
            # Same extranonce: the pool kept our session, so its jobs (and shares on them) stay valid.
            for jid, job in r.jobs.items():
                self.jobs.setdefault(jid, job)
            self.prevhash_wire = r.prevhash_wire
            self.last_job = next(reversed(r.jobs.values()), None)
            self._force_clean = False
        self.extranonce1, self.extranonce2_size = sub.extranonce1, sub.extranonce2_size
        self.session_id = sub.session_id

    def _fire_and_log(self, method: str, params: list, *, timeout: float | None = None,
                      quiet: bool = False) -> None:
        """An optional request: its answer (often 'unknown method') only gets a log line (debug if quiet)."""
        level = logging.DEBUG if quiet else logging.INFO

        async def go() -> None:
            try:
                res = await self._call(method, params, timeout or self.timeouts.handshake)
                if res.error is not None:
                    log.log(level, "%s: %s not supported: %s", self.label, method, codec.error_reason(res.error))
            except (PoolError, asyncio.TimeoutError):
                log.log(level, "%s: no answer to %s", self.label, method)
        task = asyncio.create_task(go(), name=f"stratum-{method}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def serve(self) -> str:
        """Run until the connection ends; returns the reason."""
        assert self._read_task is not None
        watchdog = asyncio.create_task(self._watchdog(), name=f"stratum-watchdog-{self.pool_id}")
        try:
            await self._closed.wait()
        finally:
            watchdog.cancel()
        return self.end_reason or "closed"

    async def _watchdog(self) -> None:
        t = self.timeouts
        tick = max(0.02, min(1.0, t.silence / 4, t.reply / 4, t.probe / 4, t.drain / 4))
        while not self._closed.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            quiet = now - self._last_rx
            if quiet > t.silence:
                log.warning("%s: no message for %.0f s; reconnecting", self.label, quiet)
                self._end(f"silent for {quiet:.0f} s")
                return
            if self._drain_until is not None and now >= self._drain_until:
                log.info("%s: %d share(s) still unanswered after %.0f s; reconnecting as asked", self.label,
                         len(self._submit_sent), t.drain)
                self._end("client.reconnect")
                return
            self._check_replies(now)

    def _check_replies(self, now: float) -> None:
        """Probe a pool that leaves a submit unanswered; end the session if the probe is not answered."""
        t = self.timeouts
        if self._probe_sent is not None:
            if self._replies > self._probe_replies:
                self._probe_sent = None
                self._next_probe = now + t.reply
                if self._submit_sent:
                    log.info("%s: the pool answers, but %d share(s) still wait for a reply (oldest %.0f s); "
                             "keeping the session", self.label, len(self._submit_sent),
                             now - min(self._submit_sent.values()))
            elif now - self._probe_sent > t.probe:
                oldest = now - min(self._submit_sent.values(), default=self._probe_sent)
                log.warning("%s: no reply to a share for %.0f s nor to a probe for %.0f s; the session is dead",
                            self.label, oldest, now - self._probe_sent)
                self.hung = True
                self._end(f"hung: no reply for {oldest:.0f} s")
            return
        if not self._submit_sent or now < self._next_probe:
            return
        oldest = now - min(self._submit_sent.values())
        if oldest > t.reply:
            log.info("%s: no reply to a share for %.0f s; probing the pool", self.label, oldest)
            self._probe_sent, self._probe_replies = now, self._replies
            self._fire_and_log("mining.authorize", [self.user, self._password], timeout=t.probe, quiet=True)

    def _end(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self.end_reason = reason
        self._closed.set()
        self._late.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PoolError(f"{self.label}: connection lost ({reason})"))
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()
        if self._read_task is not None and self._read_task is not asyncio.current_task():
            self._read_task.cancel()

    async def close(self, reason: str = "closed by us") -> None:
        self._end(reason)
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                pass
            except asyncio.CancelledError:
                raise
        if self._read_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._read_task), 2.0)
            except BaseException:
                pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def resume_state(self) -> ResumeState:
        return ResumeState(self.session_id, self.extranonce1, self.extranonce2_size, OrderedDict(self.jobs),
                           self.difficulty, self.prevhash_wire)

    # -- requests ----------------------------------------------------------------
    def _send(self, line: bytes, method: str = "") -> None:
        if self._writer is None or self._closed.is_set():
            raise PoolError(f"{self.label}: not connected")
        if method == "mining.authorize":
            log.debug("%s: > mining.authorize [%s, <password hidden>]", self.label, self.user)
        elif log.isEnabledFor(logging.DEBUG):  # not decoded for nothing on every share
            log.debug("%s: > %s", self.label, line.rstrip().decode(errors="replace"))
        self._writer.write(line)

    async def _call(self, method: str, params: list, timeout: float,
                    on_reply: Callable[[codec.Response], None] | None = None) -> codec.Response:
        """Send a request and wait for its reply. on_reply runs synchronously in the read loop the
        moment the reply is read (before any later line is handled); a PoolError it raises becomes
        this call's error."""
        mid = self._next_id
        self._next_id += 1
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        if on_reply is not None:
            self._reply_hooks[mid] = on_reply
        try:
            self._send(codec.request(mid, method, params), method)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(mid, None)
            self._reply_hooks.pop(mid, None)

    def send_share(self, share: Share,
                   on_late: Callable[[bool, str | None], None] | None = None) -> asyncio.Future:
        """Write one share now; the future of the pool's reply (a codec.Response).

        The line is written before this returns, so the job the caller just checked is the job
        the pool sees: no loop turn falls between the check and the write. The future fails with
        PoolError when the session ends before the reply (the share may still be credited: the
        caller holds it for a resumed session), and with asyncio.TimeoutError when a live pool
        leaves it unanswered for Timeouts.give_up; a reply that still comes on this connection is
        then passed to on_late(accepted, reason), so the caller can correct its count. Raises
        PoolError at once when the session is not connected.

        No task and no wait_for per share: at a high share rate each one is a loop turn or two
        of the single event loop, on the cores the hashing threads use (docs/STRATUM.md)."""
        mid = self._next_id
        self._send(codec.request(mid, "mining.submit", share.submit_params(self.user)), "mining.submit")
        self._next_id += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending[mid] = fut
        self._submit_sent[mid] = time.monotonic()
        timer = loop.call_later(self.timeouts.give_up, self._give_up, mid, fut, on_late)
        fut.add_done_callback(lambda _: timer.cancel())
        return fut

    def _give_up(self, mid: int, fut: asyncio.Future, on_late: Callable[[bool, str | None], None] | None) -> None:
        if fut.done():
            return
        self._pending.pop(mid, None)
        self._submit_sent.pop(mid, None)
        if on_late is not None and not self._closed.is_set():
            self._late[mid] = on_late
            while len(self._late) > MAX_LATE:
                self._late.popitem(last=False)
        fut.set_exception(asyncio.TimeoutError())

    async def submit(self, share: Share,
                     on_late: Callable[[bool, str | None], None] | None = None) -> tuple[bool, str | None]:
        """Send one share and wait for its verdict: (accepted, pool's reason). send_share's errors,
        raised here."""
        return verdict(await self.send_share(share, on_late))

    @property
    def unanswered(self) -> int:
        """Submits sent on this session and still waiting for their reply."""
        return len(self._submit_sent)

    def job_valid(self, job: Job) -> bool:
        return self.jobs.get(job.job_id) is job

    # -- reading ----------------------------------------------------------------------
    async def _read_loop(self) -> None:
        framer = codec.LineFramer()
        assert self._reader is not None
        reason = "connection closed by pool"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._last_rx = time.monotonic()
                for item in framer.feed(data):
                    if isinstance(item, codec.LineTooLong):
                        self._bad_line(str(item))
                    else:
                        self._handle_line(item)
                    if self._closed.is_set():
                        return
        except asyncio.CancelledError:
            return
        except (OSError, ssl.SSLError) as e:
            reason = f"read failed: {e}"
        self._end(reason)

    def _warn_unreachable(self, d: float) -> None:
        """A difficulty no share can meet in practice is the pool's mistake; mining goes on, warned."""
        if d > MAX_SHARE_DIFFICULTY:
            log.warning("%s: the pool set difficulty %g, beyond any hash (the share target is clamped to 1): "
                        "no share will be found until it sends a lower one", self.label, d)
            return
        job = self.last_job
        if job is not None and target_from_difficulty(d) < job.network_target:
            log.warning("%s: the pool set difficulty %g, above the network's %.4g: only a block would be a "
                        "share", self.label, d, network_difficulty(job.nbits))

    def _bad_line(self, why: str) -> None:
        self._bad_lines += 1
        log.warning("%s: ignored a malformed line from the pool: %s", self.label, why)
        if self._bad_lines >= MAX_BAD_LINES:
            log.warning("%s: %d malformed lines in a row; resetting the session", self.label, self._bad_lines)
            self._end("too many malformed lines")

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = codec.parse_line(line)
        except ProtocolError as e:
            self._bad_line(str(e))
            return
        self._bad_lines = 0
        if isinstance(msg, codec.Response):
            self._replies += 1
            fut = self._pending.pop(msg.id, None) if isinstance(msg.id, int) else None
            if isinstance(msg.id, int):
                self._submit_sent.pop(msg.id, None)
            if fut is None:
                late = self._late.pop(msg.id, None) if isinstance(msg.id, int) else None
                if late is not None:
                    late(*verdict(msg))
                else:
                    log.debug("%s: reply to unknown id %r ignored", self.label, msg.id)
            elif not fut.done():
                hook = self._reply_hooks.pop(msg.id, None)
                try:
                    if hook is not None:
                        hook(msg)
                except PoolError as e:
                    fut.set_exception(e)
                else:
                    fut.set_result(msg)
            if self._drain_until is not None and not self._submit_sent:
                self._end("client.reconnect")
            return
        try:
            self._handle_request(msg)
        except ProtocolError as e:
            self._bad_line(str(e))

    def _handle_request(self, req: codec.ServerRequest) -> None:
        b = req.body
        if isinstance(b, codec.Notify):
            self._on_notify(b)
        elif isinstance(b, codec.SetDifficulty):
            # Applies to the NEXT job: jobs already out keep the difficulty they were issued with.
            self.difficulty = b.difficulty
            log.info("%s: difficulty %s for the next job", self.label, b.difficulty)
            self._warn_unreachable(float(b.difficulty))
            self._on_event("difficulty", {"pool": self.pool_id, "target_difficulty": float(b.difficulty)})
        elif isinstance(b, codec.SetExtranonce):
            if (b.extranonce1, b.extranonce2_size) == (self.extranonce1, self.extranonce2_size):
                # A message that changes nothing changes nothing: the work out there stays valid.
                log.info("%s: set_extranonce repeats the current extranonce; work continues", self.label)
            else:
                log.info("%s: new extranonce1 %s, extranonce2_size %d", self.label, b.extranonce1.hex(),
                         b.extranonce2_size)
                self.extranonce1, self.extranonce2_size = b.extranonce1, b.extranonce2_size
                self._reissue("extranonce changed")
            if req.id is not None:
                self._reply(req.id, True)
        elif isinstance(b, codec.SetVersionMask):
            self._set_version_mask(b.mask)
        elif isinstance(b, codec.Reconnect):
            self._reconnect(b)
        elif isinstance(b, codec.ShowMessage):
            log.info("%s: message from pool: %s", self.label, b.text)
            self._on_event("message", {"pool": self.pool_id, "text": b.text})
        elif isinstance(b, codec.GetVersion):
            self._reply(req.id, self.agent)
        elif isinstance(b, codec.Ping):
            self._reply(req.id, "pong")
        else:
            log.warning("%s: pool called unknown method %r; answered with an error", self.label, req.method)
            if req.id is not None:
                self._reply(req.id, None, [20, f"unknown method {req.method[:60]}", None])

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        """A warning the first time a pool does this on a session, debug lines after (pools repeat)."""
        log.log(logging.DEBUG if key in self._warned else logging.WARNING, msg, *args)
        self._warned.add(key)

    def _set_version_mask(self, mask: int) -> None:
        if not self.rolling_negotiated:
            # BIP 310 sends set_version_mask only after mining.configure granted rolling.
            self._warn_once("mask", "%s: mining.set_version_mask %08x from a pool that did not grant version "
                            "rolling in mining.configure; ignored", self.label, mask)
            return
        new = mask & self.requested_mask
        if new == self.version_mask:
            log.info("%s: set_version_mask repeats the current mask %08x; work continues", self.label, new)
            return
        log.info("%s: version mask now %08x (pool sent %08x)", self.label, new, mask)
        self.version_mask = new
        self._reissue("version mask changed")

    def _reconnect(self, b: codec.Reconnect) -> None:
        """client.reconnect: followed to the same host (any port), refused elsewhere (session kept).

        Replies to submits already in flight are read first, for up to Timeouts.drain seconds."""
        if b.host is not None and b.host.lower() != self.endpoint.host.lower():
            self._warn_once("reconnect", "%s: client.reconnect to another host (%s:%s) refused; staying on "
                            "this session", self.label, b.host, b.port or self.endpoint.port)
            return
        if self.reconnect_to is not None:
            return      # already on the way out
        self.reconnect_to = b
        log.info("%s: pool asks us to reconnect to %s:%s after %.0f s", self.label,
                 b.host or self.endpoint.host, b.port or self.endpoint.port, b.wait)
        if not self._submit_sent:
            self._end("client.reconnect")
            return
        log.info("%s: reading the replies to %d share(s) in flight first", self.label, len(self._submit_sent))
        self._drain_until = time.monotonic() + self.timeouts.drain

    def _reply(self, mid: Any, result: Any, error: Any = None) -> None:
        if mid is None:
            return
        try:
            self._send(codec.reply(mid, result, error))
        except PoolError:
            pass

    def _on_notify(self, n: codec.Notify) -> None:
        if not self.extranonce1:
            raise ProtocolError("mining.notify before the subscribe reply")
        new_block = self.prevhash_wire is not None and n.prevhash_wire != self.prevhash_wire
        clean = n.clean or new_block or self._force_clean
        if new_block and not n.clean:
            log.info("%s: new prevhash without clean_jobs; treating job %s as clean", self.label, n.job_id)
        job = Job(job_id=n.job_id, prevhash=n.prevhash, coinb1=n.coinb1, coinb2=n.coinb2,
                  merkle_branch=n.merkle_branch, version=n.version, nbits=n.nbits, ntime=n.ntime,
                  clean=clean, extranonce1=self.extranonce1, extranonce2_size=self.extranonce2_size,
                  difficulty=self.difficulty if self.difficulty is not None else 1,
                  version_mask=self.version_mask, pool_id=self.pool_id, received_at=time.time())
        self._install(job)

    def _install(self, job: Job) -> None:
        if job.clean:
            self.jobs.clear()
        self.jobs[job.job_id] = job
        self.jobs.move_to_end(job.job_id)
        while len(self.jobs) > MAX_JOBS:
            self.jobs.popitem(last=False)
        self.prevhash_wire = swap_hex(job.prevhash)
        self.last_job = job
        self._force_clean = False
        self._on_job(job)

    def _reissue(self, why: str) -> None:
        """Re-issue the newest job under the new extranonce/mask as clean work; older jobs are dropped."""
        last = self.last_job
        self._force_clean = True
        if last is None:
            return
        job = Job(job_id=last.job_id, prevhash=last.prevhash, coinb1=last.coinb1, coinb2=last.coinb2,
                  merkle_branch=last.merkle_branch, version=last.version, nbits=last.nbits, ntime=last.ntime,
                  clean=True, extranonce1=self.extranonce1, extranonce2_size=self.extranonce2_size,
                  difficulty=last.difficulty, version_mask=self.version_mask, pool_id=self.pool_id,
                  received_at=time.time())
        log.info("%s: %s; job %s re-issued as clean work", self.label, why, job.job_id)
        self._install(job)


def swap_hex(prevhash_header_order: bytes) -> str:
    """The wire form of a header-order prevhash (inverse of the word swap)."""
    return codec.swap_words(prevhash_header_order).hex()
