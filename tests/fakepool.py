"""A scriptable Stratum v1 pool for fault tests: asyncio server on 127.0.0.1, port 0.

It speaks the real protocol and judges shares itself with hashlib (coinbase, merkle root, header,
target from the difficulty it issued with the job), so a test can tell a good share from a bad one
exactly as a pool would. Tests script faults through its methods: send any line (or garbage) to a
client, drop connections, delay replies (each submit judged on arrival, its reply sent later, other
requests answered meanwhile), hang (read everything, answer nothing, accept new connections but
never answer them, like a stuck pool process), ask for a reconnect, change extranonce or difficulty.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

DIFF1 = 0xFFFF << 208


def dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def swap_words(b: bytes) -> bytes:
    return b"".join(b[i:i + 4][::-1] for i in range(0, len(b), 4))


@dataclass
class FakeJob:
    job_id: str
    prevhash_wire: str
    coinb1: str
    coinb2: str
    branch: list[str]
    version: int
    nbits: int
    ntime: int
    difficulty: float

    def params(self, clean: bool) -> list:
        return [self.job_id, self.prevhash_wire, self.coinb1, self.coinb2, self.branch,
                f"{self.version:08x}", f"{self.nbits:08x}", f"{self.ntime:08x}", clean]


def make_job(n: int, difficulty: float = 1.0, *, prev_seed: int = 0, branches: int = 2) -> FakeJob:
    prev = dsha(b"prev%d" % prev_seed)
    coinb1 = ("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20"
              "03" + f"{n:06x}")
    coinb2 = "ffffffff0100f2052a010000001976a914" + "11" * 20 + "88ac00000000"
    branch = [dsha(b"tx%d-%d" % (n, i)).hex() for i in range(branches)]
    return FakeJob(f"{n:x}", swap_words(prev).hex(), coinb1, coinb2, branch, 0x20000000, 0x1d00ffff,
                   1700000000 + n, difficulty)


@dataclass
class Client:
    pool: "FakePool"
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    extranonce1: str
    extranonce2_size: int
    received: list[dict] = field(default_factory=list)
    authorized: bool = False
    subscribed: bool = False
    version_mask: int = 0
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    retired: dict[str, float] = field(default_factory=dict)   # job id -> when a clean job replaced it
    difficulty: float = 1.0
    closed: bool = False
    job_sent: bool = False

    def send(self, obj: Any) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def notify(self, job: FakeJob, clean: bool = True) -> None:
        """Send a job at its own difficulty (set_difficulty first when it differs)."""
        if job.difficulty != self.difficulty:
            self.set_difficulty(job.difficulty)
        if clean:
            now = time.monotonic()
            self.retired.update((job_id, now) for job_id in self.jobs)
            self.jobs.clear()
        self.jobs[job.job_id] = job
        self.send({"id": None, "method": "mining.notify", "params": job.params(clean)})

    def set_difficulty(self, d: Any) -> None:
        if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
            self.difficulty = d
        self.send({"id": None, "method": "mining.set_difficulty", "params": [d]})

    def close(self) -> None:
        self.closed = True
        self.writer.close()

    def requests(self, method: str) -> list[dict]:
        return [m for m in self.received if m.get("method") == method]

    # -- share judgement, as a pool does it --------------------------------------------
    def judge(self, params: list) -> tuple[bool, Any]:
        if len(params) < 5:
            return False, [20, "missing params", None]
        _, job_id, en2, ntime, nonce = params[:5]
        job = self.jobs.get(job_id)
        if job is None:
            if job_id in self.retired:  # how long after the clean job this share for the old one came
                self.pool.stale_lateness.append(time.monotonic() - self.retired[job_id])
            return False, [21, "Job not found (=stale)", None]
        if len(en2) != 2 * self.extranonce2_size:
            return False, [20, "bad extranonce2 size", None]
        version = job.version
        if len(params) > 5:
            bits = int(params[5], 16)
            if bits & ~self.version_mask:
                return False, [20, "version bits outside mask", None]
            version = (job.version & ~self.version_mask) | bits
        coinbase = bytes.fromhex(job.coinb1 + self.extranonce1 + en2 + job.coinb2)
        root = dsha(coinbase)
        for b in job.branch:
            root = dsha(root + bytes.fromhex(b))
        header = (version.to_bytes(4, "little") + swap_words(bytes.fromhex(job.prevhash_wire)) + root
                  + int(ntime, 16).to_bytes(4, "little") + job.nbits.to_bytes(4, "little")
                  + int(nonce, 16).to_bytes(4, "little"))
        key = (job_id, en2, ntime, nonce, version)
        if key in self.pool.seen:
            return False, [22, "Duplicate share", None]
        self.pool.seen.add(key)
        target = int(DIFF1 / Fraction(job.difficulty))
        if int.from_bytes(dsha(header), "little") > target:
            return False, [23, "Low difficulty share", None]
        return True, None


class FakePool:
    """Start with ``await pool.start()``. Defaults answer the handshake like a typical pool."""

    def __init__(self, *, extranonce1: str = "08000002", extranonce2_size: int = 4,
                 configure_result: Any = None, authorize_result: bool = True,
                 ssl_context: ssl.SSLContext | None = None, difficulty: float = 1.0,
                 send_job_on_authorize: bool = True, reply_submits: bool = True) -> None:
        self.extranonce1 = extranonce1
        self.extranonce2_size = extranonce2_size
        self.configure_result = configure_result if configure_result is not None else {
            "version-rolling": True, "version-rolling.mask": "1fffe000"}
        self.authorize_result = authorize_result
        self.ssl_context = ssl_context
        self.difficulty = difficulty
        self.send_job_on_authorize = send_job_on_authorize
        self.reply_submits = reply_submits
        self.submit_delay = 0.0
        self.hung = False                                               # read everything, answer nothing
        self.after_authorize: Callable[[Client], None] | None = None    # e.g. send a client.reconnect
        self.clients: list[Client] = []
        self.seen: set = set()
        self.accepted: list[list] = []
        self.accepted_at: list[float] = []                              # loop time of each accept
        self.rejected: list[tuple[list, Any]] = []
        self.stale_lateness: list[float] = []   # s between a clean job and a share for the job it replaced
        self.job = make_job(1, difficulty)
        self.port = 0
        self.on_message: Callable[[Client, dict], bool] | None = None   # return True if handled
        self.session_ids: dict[str, str] = {}                           # session id -> extranonce1
        self.session_jobs: dict[str, dict[str, FakeJob]] = {}           # session id -> its jobs
        self._server: asyncio.base_events.Server | None = None
        self._counter = 0
        self._changed = asyncio.Event()

    async def start(self) -> "FakePool":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"stratum+{'ssl' if self.ssl_context else 'tcp'}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and drop every client."""
        if self._server is not None:
            self._server.close()
            for c in self.clients:
                c.close()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        """Listen again on the same port (after stop())."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.ssl_context)

    def drop_all(self) -> None:
        for c in self.clients:
            c.close()

    @property
    def client(self) -> Client:
        return self.clients[-1]

    async def wait(self, cond: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until cond() is truthy (re-checked whenever a line arrives, and every 50 ms)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            v = cond()
            if v:
                return v
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {getattr(cond, '__name__', cond)}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    def _next_en1(self, base: str) -> str:
        self._counter += 1
        return base if self._counter == 1 else f"{(int(base, 16) + self._counter - 1) & 0xFFFFFFFF:08x}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = Client(self, reader, writer, self.extranonce1, self.extranonce2_size)
        self.clients.append(c)
        self._changed.set()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                c.received.append(msg)
                self._changed.set()
                if self.hung:
                    continue
                if self.on_message is not None and self.on_message(c, msg):
                    continue
                await self._handle(c, msg)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            c.closed = True
            self._changed.set()
            writer.close()

    async def _handle(self, c: Client, msg: dict) -> None:
        mid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or []
        if method == "mining.configure":
            res = self.configure_result
            if isinstance(res, dict) and res.get("version-rolling"):
                c.version_mask = int(res["version-rolling.mask"], 16) & int(params[1]["version-rolling.mask"], 16)
            c.send({"id": mid, "result": res, "error": None})
        elif method == "mining.subscribe":
            if len(params) > 1 and params[1] in self.session_ids:
                c.extranonce1 = self.session_ids[params[1]]           # resumed
            else:
                c.extranonce1 = self._next_en1(self.extranonce1)
            sid = f"sess{c.extranonce1}"
            self.session_ids[sid] = c.extranonce1
            c.jobs = self.session_jobs.setdefault(sid, c.jobs)       # a resumed session keeps its jobs
            c.subscribed = True
            c.send({"id": mid, "result": [[["mining.set_difficulty", sid], ["mining.notify", sid]],
                                          c.extranonce1, c.extranonce2_size], "error": None})
        elif method == "mining.authorize":
            first = not c.authorized
            c.authorized = self.authorize_result
            if self.send_job_on_authorize and self.authorize_result and not c.job_sent:
                # Like several real pools: difficulty and the first job before the authorize reply.
                c.job_sent = True
                c.set_difficulty(self.job.difficulty)
                c.notify(self.job, clean=True)
            c.send({"id": mid, "result": self.authorize_result,
                    "error": None if self.authorize_result else [24, "Unauthorized worker", None]})
            if first and c.authorized and self.after_authorize is not None:
                self.after_authorize(c)
        elif method == "mining.submit":
            ok, err = c.judge(params)
            if ok:
                self.accepted.append(params)
                self.accepted_at.append(asyncio.get_running_loop().time())
            else:
                self.rejected.append((params, err))
            self._changed.set()
            if self.reply_submits:
                reply = {"id": mid, "result": ok, "error": err}
                if self.submit_delay:
                    asyncio.get_running_loop().call_later(self.submit_delay, self._late_send, c, reply)
                else:
                    c.send(reply)
        elif method in ("mining.extranonce.subscribe", "mining.suggest_difficulty"):
            c.send({"id": mid, "result": True, "error": None})
        elif mid is not None and method is not None:
            c.send({"id": mid, "result": None, "error": [20, "Unknown method", None]})


    def _late_send(self, c: Client, reply: dict) -> None:
        if not self.hung:
            c.send(reply)


def mine_share(job, counter: int = 0, start: int = 0, span: int = 1 << 26, version: int | None = None,
               device: str = "test0"):
    """Find a share for a miner.engine.job.Job with the C core, re-checked with recheck (a real share)."""
    from miner.core import scan
    from miner.engine.job import Share, recheck

    en2 = job.extranonce2_bytes(counter)
    ver = job.version if version is None else version
    header = job.header(en2, job.ntime, 0, ver)
    step = 1 << 20
    for base in range(start, start + span, step):
        found = scan(header, base, step, job.share_target)
        if found:
            c = recheck(header, found[0], ver)
            assert c.meets(job.share_target)
            return Share(job, en2, job.ntime, c.nonce, ver, c.hash, device)
    raise AssertionError("no share found in the span")
