"""Failover across pools, share routing and per-pool accounting.

The PoolManager owns every session and every pool counter; it runs on one asyncio loop and all its
public methods are called on that loop's thread. One pool is active at a time: the first enabled one
in priority order that is reachable. A pool is retried with capped exponential backoff (with jitter)
and given up for the next one after ``failover_after`` failures in a row; while a lower-priority pool
is active the higher ones are probed and, once one answers, mining goes back to it.

Shares: never sent twice (key set), never sent for a dropped job (counted stale), re-checked on the
host before sending. A share whose reply is lost with the connection (a drop, a hung pool) is held and
resubmitted on a resumed session (the pool gave back the same extranonce1 and still knows the job) or
counted stale; both get a log line. A share a live pool leaves unanswered past Timeouts.give_up is
counted rejected "no reply from pool" until a late reply corrects it. At shutdown every share still
unanswered or held is counted stale, "not answered before shutdown" / "not sent before shutdown".
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

from miner.errors import ConfigError, PoolError
from miner.engine.job import Job, Share, recheck
from miner.engine.stats import PoolSnapshot
from miner.stratum import codec
from miner.stratum.config import PoolConfig, make_ssl_context
from miner.stratum.session import Endpoint, ResumeState, StratumSession, Timeouts, verdict

log = logging.getLogger(__name__)

MAX_SEEN = 1 << 16      # share keys remembered for duplicate detection
MAX_HELD = 1024         # shares waiting for a reconnect
STABLE_SESSION = 60.0   # a session that lived this long (seconds) resets the back-off counters
NO_REPLY = "no reply from pool"


@dataclass
class _Pool:
    id: int
    config: PoolConfig
    enabled: bool = True
    status: str = "connecting"      # alive | dead | disabled | connecting
    failures: int = 0
    redirects: int = 0              # client.reconnect requests in a row on short sessions
    next_try: float = 0.0           # monotonic
    redirect_port: int | None = None
    resume: ResumeState | None = None
    connected_since: float | None = None
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    duplicates: int = 0
    invalid: int = 0
    diff_accepted: float = 0.0
    diff_rejected: float = 0.0
    diff_stale: float = 0.0
    best_share: float = 0.0
    blocks: int = 0
    block_keys: set = field(default_factory=set)  # share keys counted as blocks: a resent one is the same block
    jobs: int = 0
    difficulty: float = 0.0
    version_mask: int = 0
    last_share_time: float | None = None
    reject_reasons: dict[str, int] = field(default_factory=dict)
    held: deque = field(default_factory=deque)


class PoolManager:
    def __init__(self, pools: list[PoolConfig], *, on_job: Callable[[Job], None],
                 on_event: Callable[[str, dict], None] | None = None,
                 agent: str | None = None, version_rolling: bool = True, version_mask: int = 0x1FFFE000,
                 suggest_difficulty: float | None = None, extranonce_subscribe: bool = False,
                 cafile: str | None = None, insecure: bool = False,
                 timeouts: Timeouts = Timeouts(), backoff_base: float = 1.0, backoff_cap: float = 60.0,
                 failover_after: int = 3, primary_probe_interval: float = 30.0) -> None:
        if not pools:
            raise ConfigError("no pool configured; give at least one -o stratum+tcp://host:port")
        if agent is None:
            from miner import __version__
            agent = f"miner/{__version__}"
        if suggest_difficulty is not None and not (isinstance(suggest_difficulty, (int, float))
                                                   and 0 < suggest_difficulty < float("inf")):
            raise ConfigError(f"suggested difficulty must be a positive number, got {suggest_difficulty!r}")
        self._on_job_cb = on_job
        self._on_event_cb = on_event
        self.agent = agent
        self.version_rolling = version_rolling
        self.version_mask = version_mask
        self.suggest_difficulty = suggest_difficulty
        self.extranonce_subscribe = extranonce_subscribe
        self.timeouts = timeouts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.failover_after = max(1, failover_after)
        self.primary_probe_interval = primary_probe_interval
        self._cafile = cafile
        self._insecure = insecure
        self._ssl: ssl.SSLContext | None = None
        if any(p.tls for p in pools) or cafile:
            self._ssl = make_ssl_context(cafile, insecure)

        self._pools: dict[int, _Pool] = {}
        self._order: list[int] = []
        self._next_pool_id = 0
        for cfg in pools:
            self._add(cfg)
        self._session: StratumSession | None = None
        self._active: _Pool | None = None
        self._last_job_pool: int | None = None
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._inflight: set[asyncio.Future] = set()   # replies awaited, one per share written
        self._closing = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- public: control ----------------------------------------------------
    @property
    def active_pool_id(self) -> int | None:
        s = self._session
        return self._active.id if self._active is not None and s is not None and not s.closed else None

    def add_pool(self, config: PoolConfig) -> int:
        if config.tls and self._ssl is None:
            self._ssl = make_ssl_context(self._cafile, self._insecure)
        pid = self._add(config)
        log.info("pool %d added: %s", pid, config.safe_url)
        self._kick()
        return pid

    def _add(self, config: PoolConfig) -> int:
        pid = self._next_pool_id
        self._next_pool_id += 1
        self._pools[pid] = _Pool(pid, config)
        self._order.append(pid)
        return pid

    def _get(self, pool_id: int) -> _Pool:
        p = self._pools.get(pool_id)
        if p is None:
            raise ConfigError(f"no pool with id {pool_id}")
        return p

    def switch_pool(self, pool_id: int) -> None:
        """Make pool_id the first choice (top priority) and move to it now."""
        p = self._get(pool_id)
        p.enabled = True
        p.failures, p.next_try = 0, 0.0
        self._order.remove(pool_id)
        self._order.insert(0, pool_id)
        log.info("switching to pool %d (%s) on request", pool_id, p.config.safe_url)
        self._leave_if_not(pool_id, "switched by request")

    def enable_pool(self, pool_id: int) -> None:
        p = self._get(pool_id)
        p.enabled = True
        p.failures, p.next_try = 0, 0.0
        if p.status == "disabled":
            p.status = "connecting"
        # A re-enabled higher-priority pool takes over at the next probe, like a returning primary.
        self._kick()

    def disable_pool(self, pool_id: int) -> None:
        p = self._get(pool_id)
        p.enabled = False
        p.status = "disabled"
        if self._active is p:
            self._end_session("pool disabled")
        self._kick()

    def remove_pool(self, pool_id: int) -> None:
        p = self._get(pool_id)
        if self._active is p:
            self._end_session("pool removed")
        del self._pools[pool_id]
        self._order.remove(pool_id)
        self._kick()

    def snapshots(self) -> list[PoolSnapshot]:
        out = []
        active = self.active_pool_id
        for prio, pid in enumerate(self._order):
            p = self._pools[pid]
            out.append(PoolSnapshot(
                id=p.id, url=p.config.safe_url, user=p.config.user, status=p.status, priority=prio,
                active=pid == active, accepted=p.accepted, rejected=p.rejected, stale=p.stale,
                difficulty=p.difficulty, difficulty_accepted=p.diff_accepted,
                difficulty_rejected=p.diff_rejected, difficulty_stale=p.diff_stale,
                best_share=p.best_share, blocks=p.blocks, jobs=p.jobs, last_share_time=p.last_share_time,
                reject_reasons=dict(p.reject_reasons), version_mask=p.version_mask,
                connected_since=p.connected_since if pid == active else None))
        return out

    def counters(self, pool_id: int) -> dict[str, int]:
        """Counters PoolSnapshot has no field for: shares never sent as duplicates or failing the host check."""
        p = self._get(pool_id)
        return {"duplicates": p.duplicates, "invalid": p.invalid, "held": len(p.held)}

    # -- public: run / close ----------------------------------------------------------
    async def run(self) -> None:
        """Connect, mine, fail over; returns only after close()."""
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                p, wait = self._pick()
                if p is None:
                    await self._sleep(wait)
                    continue
                await self._connect_and_serve(p)
            except asyncio.CancelledError:
                raise
            except Exception:   # a bug must not stop mining; it is logged with its traceback
                log.exception("unexpected error in the pool manager; continuing")
                await self._sleep(self.backoff_base)
        if self._session is not None:
            await self._session.close()

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for submits in flight, then disconnect. Safe to call twice."""
        self._closing = True
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        # Shares submitted while we wait (the devices' last results) are waited for too.
        while self._inflight and loop.time() < end:
            await asyncio.wait(set(self._inflight), timeout=end - loop.time())
        if self._inflight:
            log.warning("%d share(s) still unanswered at shutdown; counted stale", len(self._inflight))
        # Ending the session fails the submits still waiting: _submit counts each one stale.
        self._end_session("shutting down")
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=1.0)
        for fut in list(self._inflight):
            fut.cancel()   # _verdict counts each one stale, a loop turn later
        await asyncio.sleep(0)
        for p in self._pools.values():
            if p.held:
                log.warning("pool %d: %d share(s) held for a reconnect counted stale at shutdown", p.id, len(p.held))
                while p.held:
                    self._count_stale(p, p.held.popleft(), "not sent before shutdown")
        if self._session is not None:
            await self._session.close()
        self._kick()

    # -- public: shares ------------------------------------------------------------------
    def submit(self, share: Share) -> None:
        """Route a host-checked share to its pool. Stale and duplicate shares are counted, never sent."""
        p = self._pools.get(share.job.pool_id)
        if p is None:
            log.warning("share for removed pool %d dropped (counted nowhere)", share.job.pool_id)
            self._event("share", self._share_data(share, "stale", "pool removed"))
            return
        key = share.key
        if key in self._seen:
            p.duplicates += 1
            log.warning("pool %d: duplicate share (job %s nonce %08x) from %s not sent", p.id, share.job.job_id,
                        share.nonce, share.device or "?")
            self._event("share", self._share_data(share, "duplicate", "duplicate"))
            return
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        problem = self._host_check(share)
        if problem:
            p.invalid += 1
            log.error("pool %d: share from %s fails the host check (%s); not sent", p.id,
                      share.device or "?", problem)
            self._event("share", self._share_data(share, "invalid", problem))
            return
        # Best share: every host-checked share found for this pool, whatever the pool says of it
        # (as cgminer counts it); the engine's per-device figure is the same set of shares.
        p.best_share = max(p.best_share, share.share_difficulty)
        s = self._session
        if self._active is not p or s is None or s.closed or not s.authorized:
            if self._active is not None and self._active is not p:
                self._count_stale(p, share, "pool no longer active")
                return
            if self._closing:
                self._count_stale(p, share, "not sent before shutdown")
                return
            if self._hold(p, share):
                log.info("pool %d: not connected; share for job %s held for the reconnect", p.id, share.job.job_id)
            return
        if not s.job_valid(share.job):
            self._count_stale(p, share, "job dropped by the pool")
            return
        self._send(p, s, share)

    def discard_stale(self, share: Share, why: str) -> None:
        """Count a share the engine found for work a clean job replaced: stale at its pool, never sent.

        Every stale share is counted here, so the pool line, the status line, the API and /metrics
        show one number."""
        p = self._pools.get(share.job.pool_id)
        if p is None:
            self._event("share", self._share_data(share, "stale", "pool removed"))
            return
        p.best_share = max(p.best_share, share.share_difficulty)
        self._count_stale(p, share, why)

    def submit_threadsafe(self, share: Share) -> None:
        """submit() from another thread (a device's reader thread): queued onto the manager's loop."""
        if self._loop is None:
            raise PoolError("pool manager is not running")
        self._loop.call_soon_threadsafe(self.submit, share)

    # -- internals: shares -------------------------------------------------------------------
    @staticmethod
    def _host_check(share: Share) -> str | None:
        job = share.job
        if job.version_mask:
            if (share.version ^ job.version) & ~job.version_mask & 0xFFFFFFFF:
                return f"version {share.version:08x} changes bits outside mask {job.version_mask:08x}"
        elif share.version != job.version:
            return f"version {share.version:08x} rolled without a negotiated mask"
        if len(share.extranonce2) != job.extranonce2_size:
            return f"extranonce2 of {len(share.extranonce2)} bytes, job wants {job.extranonce2_size}"
        c = recheck(job.header(share.extranonce2, share.ntime, 0, share.version), share.nonce, share.version)
        if c.hash != share.hash:
            return "hash does not match the header"
        if c.value > job.share_target:
            return "hash above the share target"
        return None

    def _send(self, p: _Pool, s: StratumSession, share: Share) -> None:
        """Write a share the caller has just checked against the session's jobs; its verdict is
        counted when the reply comes (_verdict). The write happens here, in the same loop turn as
        the check: a clean notify cannot come between them."""
        sent = time.monotonic()
        try:
            fut = s.send_share(share, on_late=lambda ok, why: self._late_reply(p, share, ok, why, sent))
        except PoolError:
            self._not_answered(p, share, "connection lost before the share was written")
            return
        # Counted once written, so a stale or held share is never also a block, and once per share:
        # one resent on a resumed session after its reply was lost is the same candidate.
        if share.is_block and share.key not in p.block_keys:
            p.block_keys.add(share.key)
            p.blocks += 1
            log.warning("pool %d: BLOCK candidate found by %s (job %s)", p.id, share.device or "?", share.job.job_id)
        self._inflight.add(fut)
        fut.add_done_callback(lambda f: self._verdict(p, share, f))

    def _verdict(self, p: _Pool, share: Share, fut: asyncio.Future) -> None:
        self._inflight.discard(fut)
        if fut.cancelled():  # shutdown gave up waiting for it
            self._count_stale(p, share, "not answered before shutdown")
            return
        exc = fut.exception()
        if isinstance(exc, asyncio.TimeoutError):
            self._count_rejected(p, share, NO_REPLY)
        elif isinstance(exc, PoolError):
            # Sent, but the reply died with the connection: retry on a resumed session or count stale.
            self._not_answered(p, share, "connection lost before the reply")
        elif exc is not None:
            log.error("pool %d: share on job %s: unexpected error %r; counted stale", p.id, share.job.job_id, exc)
            self._count_stale(p, share, "internal error")
        else:
            ok, reason = verdict(fut.result())
            if ok:
                self._count_accepted(p, share)
            else:
                self._count_rejected(p, share, reason or "rejected")

    def _not_answered(self, p: _Pool, share: Share, what: str) -> None:
        if self._closing:
            self._count_stale(p, share, "not answered before shutdown")
        elif self._hold(p, share):
            log.info("pool %d: %s on job %s; holding it for the reconnect", p.id, what, share.job.job_id)

    def _count_accepted(self, p: _Pool, share: Share, corrects: str | None = None) -> None:
        job = share.job
        p.accepted += 1
        p.diff_accepted += float(job.difficulty)   # credited at the job's target, as pools do
        p.last_share_time = time.time()
        log.info("pool %d: share accepted (diff %.4g / %.4g) from %s", p.id, share.share_difficulty,
                 float(job.difficulty), share.device or "?")
        self._event("share", self._share_data(share, "accepted", None, corrects))

    def _late_reply(self, p: _Pool, share: Share, ok: bool, reason: str | None, sent: float) -> None:
        """The pool answered a share already counted rejected for want of a reply: correct the count."""
        if self._pools.get(p.id) is not p:
            return
        p.rejected -= 1
        p.diff_rejected -= float(share.job.difficulty)
        left = p.reject_reasons.get(NO_REPLY, 0) - 1
        if left > 0:
            p.reject_reasons[NO_REPLY] = left
        else:
            p.reject_reasons.pop(NO_REPLY, None)
        log.info("pool %d: late reply (after %.0f s) to the share on job %s: %s; count corrected", p.id,
                 time.monotonic() - sent, share.job.job_id, "accepted" if ok else f"rejected: {reason}")
        if ok:
            self._count_accepted(p, share, corrects="rejected")
        else:
            self._count_rejected(p, share, reason or "rejected", corrects="rejected")

    def _hold(self, p: _Pool, share: Share) -> bool:
        """Keep a share for the reconnect; a full hold queue counts it stale instead (never dropped silently)."""
        if len(p.held) >= MAX_HELD:
            self._count_stale(p, share, "too many shares waiting for a reconnect")
            return False
        p.held.append(share)
        return True

    def _count_rejected(self, p: _Pool, share: Share, reason: str, corrects: str | None = None) -> None:
        p.rejected += 1
        p.diff_rejected += float(share.job.difficulty)
        p.reject_reasons[reason] = p.reject_reasons.get(reason, 0) + 1
        log.warning("pool %d: share rejected: %s (job %s, from %s)", p.id, reason, share.job.job_id,
                    share.device or "?")
        self._event("share", self._share_data(share, "rejected", reason, corrects))

    def _count_stale(self, p: _Pool, share: Share, why: str) -> None:
        p.stale += 1
        p.diff_stale += float(share.job.difficulty)
        log.info("pool %d: stale share not sent (%s; job %s, from %s)", p.id, why, share.job.job_id,
                 share.device or "?")
        self._event("share", self._share_data(share, "stale", why))

    @staticmethod
    def _share_data(share: Share, result: str, reason: str | None, corrects: str | None = None) -> dict:
        data = {"result": result, "reason": reason, "pool": share.job.pool_id, "device": share.device,
                "job_id": share.job.job_id, "share_difficulty": share.share_difficulty,
                "target_difficulty": float(share.job.difficulty), "block": share.is_block}
        if corrects is not None:
            data["corrects"] = corrects     # this verdict replaces an earlier one for the same share
        return data

    def _flush_held(self, p: _Pool, s: StratumSession) -> None:
        while p.held:
            share = p.held.popleft()
            if s.resumed and s.job_valid(share.job):
                log.info("pool %d: resubmitting held share for job %s on the resumed session", p.id, share.job.job_id)
                self._send(p, s, share)
            else:
                self._count_stale(p, share, "session not resumed" if not s.resumed else "job dropped on reconnect")

    # -- internals: connections ------------------------------------------------------------------
    def _event(self, kind: str, data: dict) -> None:
        if self._on_event_cb is None:
            return
        try:
            self._on_event_cb(kind, data)
        except Exception:
            log.exception("on_event callback failed")

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))
        except asyncio.TimeoutError:
            pass

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_cap, self.backoff_base * (2 ** max(0, failures - 1)))
        return base * random.uniform(0.5, 1.0)

    def _pick(self) -> tuple[_Pool | None, float]:
        """The pool to try now, or (None, seconds to wait)."""
        now = time.monotonic()
        wait = self.backoff_cap
        for pid in self._order:
            p = self._pools[pid]
            if not p.enabled:
                continue
            if now >= p.next_try:
                return p, 0.0
            wait = min(wait, p.next_try - now)
            if p.failures < self.failover_after:
                # Still retrying this pool: wait for it rather than moving down the list.
                return None, wait
        return None, wait

    def _fail(self, p: _Pool, reason: str) -> None:
        p.failures += 1
        p.next_try = time.monotonic() + self._backoff(p.failures)
        p.status = "dead" if p.failures >= self.failover_after else "connecting"
        if p.failures == self.failover_after:
            log.warning("pool %d (%s): %d failures in a row; trying the next pool", p.id, p.config.safe_url,
                        p.failures)
        self._event("pool", {"pool": p.id, "state": "failed", "reason": reason, "url": p.config.safe_url,
                             "failures": p.failures})

    async def _connect_and_serve(self, p: _Pool) -> None:
        cfg = p.config
        ep = Endpoint(cfg.host, p.redirect_port or cfg.port, cfg.tls)
        session = StratumSession(
            p.id, ep, cfg.user, cfg.password, on_job=self._job_from, on_event=self._event,
            agent=self.agent, version_rolling=self.version_rolling, version_mask=self.version_mask,
            suggest_difficulty=self.suggest_difficulty, extranonce_subscribe=self.extranonce_subscribe,
            ssl_context=self._ssl if cfg.tls else None, timeouts=self.timeouts, resume=p.resume,
            label=f"pool {p.id} ({ep.host}:{ep.port})")
        previous = self._last_job_pool
        self._session, self._active = session, p
        log.info("pool %d: connecting to %s%s", p.id, cfg.safe_url,
                 f" (port {ep.port}, as the pool asked)" if p.redirect_port else "")
        try:
            await session.start()
        except PoolError as e:
            log.warning("%s", e)
            self._session = self._active = None
            p.redirect_port = None
            # p.resume is kept: a pool that was briefly unreachable may still know our session.
            self._fail(p, str(e))
            return
        p.failures = 0
        p.status = "alive"
        p.connected_since = time.time()
        p.version_mask = session.version_mask
        state = "switched" if previous is not None and previous != p.id else "connected"
        log.info("pool %d: %s (%s)", p.id, state, cfg.safe_url)
        self._event("pool", {"pool": p.id, "state": state, "reason": None, "url": cfg.safe_url,
                             "resumed": session.resumed})
        self._flush_held(p, session)
        for other in self._pools.values():
            while other is not p and other.held:
                self._count_stale(other, other.held.popleft(), f"mining moved to pool {p.id}")
        probe = asyncio.create_task(self._probe_higher(p), name="stratum-probe")
        started = time.monotonic()
        try:
            reason = await session.serve()
        finally:
            probe.cancel()
        await session.close()
        self._session = self._active = None
        p.connected_since = None
        p.resume = session.resume_state() if session.extranonce1 else None
        expected = self._closing or reason.startswith("left:") or session.reconnect_to is not None
        log.log(logging.INFO if expected else logging.WARNING, "pool %d: disconnected (%s)", p.id, reason)
        self._event("pool", {"pool": p.id, "state": "disconnected", "reason": reason, "url": cfg.safe_url})
        if self._closing:
            return
        rc = session.reconnect_to
        lived = time.monotonic() - started
        if rc is not None:
            self._follow_redirect(p, rc, lived)
        elif reason.startswith("left:"):
            p.next_try = 0.0
        elif session.hung:
            self._fail_hung(p, reason)
        else:
            # A connection that lived a while is a fresh start for the backoff.
            p.failures = 0 if lived > STABLE_SESSION else p.failures
            self._fail(p, reason)

    def _follow_redirect(self, p: _Pool, rc, lived: float) -> None:
        """A same-host client.reconnect (the session refuses others). A pool that asks again and again
        is followed with the capped back-off of disconnects, whatever wait it asks for."""
        if rc.port is not None:
            p.redirect_port = rc.port
        p.redirects = p.redirects + 1 if lived < STABLE_SESSION else 0
        delay = rc.wait
        if p.redirects:
            delay = max(delay, self._backoff(p.redirects))
            if p.redirects > 1:
                log.warning("pool %d: %d reconnect requests in a row; waiting %.1f s", p.id, p.redirects, delay)
        p.next_try = time.monotonic() + delay
        p.status = "connecting"

    def _fail_hung(self, p: _Pool, reason: str) -> None:
        """A pool that stopped answering: with another pool to go to, fail over at once."""
        others = [q for q in self._pools.values() if q is not p and q.enabled]
        if others and p.failures < self.failover_after:
            p.failures = self.failover_after - 1
            log.warning("pool %d (%s): not answering; failing over", p.id, p.config.safe_url)
        self._fail(p, reason)

    def _job_from(self, job: Job) -> None:
        p = self._pools.get(job.pool_id)
        if p is None or self._active is not p:
            return
        if self._last_job_pool is not None and self._last_job_pool != job.pool_id and not job.clean:
            job = _with_clean(job)   # a pool switch always invalidates the old pool's work
        self._last_job_pool = job.pool_id
        p.jobs += 1
        p.difficulty = float(job.difficulty)
        p.version_mask = job.version_mask
        self._event("job", {"pool": p.id, "job_id": job.job_id, "clean": job.clean,
                            "target_difficulty": float(job.difficulty)})
        try:
            self._on_job_cb(job)
        except Exception:
            log.exception("on_job callback failed")

    def _end_session(self, why: str) -> None:
        s = self._session
        if s is not None and not s.closed:
            s._end(f"left: {why}")

    def _leave_if_not(self, pool_id: int, why: str) -> None:
        if self._active is not None and self._active.id != pool_id:
            self._end_session(why)
        self._kick()

    async def _probe_higher(self, current: _Pool) -> None:
        """While on a lower-priority pool, check the higher ones; go back to the first that answers."""
        while True:
            await asyncio.sleep(self.primary_probe_interval)
            for pid in self._order:
                if pid == current.id:
                    break
                p = self._pools[pid]
                if not p.enabled:
                    continue
                if await self._reachable(p):
                    log.info("pool %d (%s) is reachable again; switching back", p.id, p.config.safe_url)
                    p.failures, p.next_try = 0, 0.0
                    self._end_session(f"returning to pool {p.id}")
                    return

    async def _reachable(self, p: _Pool) -> bool:
        """Does the pool answer a mining.subscribe? (A hung pool still accepts TCP connections.)"""
        cfg = p.config
        ctx = self._ssl if cfg.tls else None
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port, ssl=ctx, server_hostname=cfg.host if ctx else None),
                self.timeouts.connect)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            return False
        try:
            w.write(codec.request(1, "mining.subscribe", [self.agent]))
            line = await asyncio.wait_for(r.readline(), self.timeouts.handshake)
            return bool(line.strip())
        except (OSError, asyncio.TimeoutError, ssl.SSLError, ValueError):
            return False
        finally:
            w.close()
            try:
                await asyncio.wait_for(w.wait_closed(), 2.0)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                pass


def _with_clean(job: Job) -> Job:
    from dataclasses import replace
    return replace(job, clean=True)
