"""The pool client against the scriptable fake pool: handshake, jobs, shares, faults, failover, TLS."""
from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fakepool import FakePool, make_job, mine_share
from miner.stratum import PoolConfig, PoolManager, Timeouts

FAST = Timeouts(connect=2.0, handshake=2.0, reply=2.0, silence=30.0)
PASSWORD = "pw-Sup3rS3cret"
D = 1e-4        # share difficulty: ~430k hashes a share, a fraction of a second on the C core


def arun(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Harness:
    """A PoolManager running on the test's loop, recording jobs and events."""

    def __init__(self, urls: list[str], **kw) -> None:
        self.jobs = []
        self.events = []
        kw.setdefault("timeouts", FAST)
        kw.setdefault("backoff_base", 0.05)
        kw.setdefault("backoff_cap", 0.2)
        self.mgr = PoolManager([PoolConfig(u, "worker.1", PASSWORD) for u in urls], on_job=self.jobs.append,
                               on_event=lambda k, d: self.events.append((k, d)), agent="testminer/1.0", **kw)
        self.task = None

    async def __aenter__(self) -> "Harness":
        self.task = asyncio.create_task(self.mgr.run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.mgr.close(timeout=2.0)
        await asyncio.wait_for(self.task, 5.0)

    def shares(self, result: str | None = None) -> list[dict]:
        return [d for k, d in self.events if k == "share" and (result is None or d["result"] == result)]

    def pool_events(self, state: str) -> list[dict]:
        return [d for k, d in self.events if k == "pool" and d["state"] == state]

    async def wait(self, cond, timeout: float = 10.0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not cond():
            if loop.time() > end:
                raise AssertionError(f"timed out; events: {self.events[-10:]}")
            await asyncio.sleep(0.02)
        return cond()

    async def wait_jobs(self, n: int, timeout: float = 10.0):
        await self.wait(lambda: len(self.jobs) >= n, timeout)
        return self.jobs[n - 1]


def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# -- handshake and jobs -----------------------------------------------------------------
def test_handshake_job_and_accepted_share(caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            c = pool.client
            methods = [m["method"] for m in c.received]
            assert methods[:3] == ["mining.configure", "mining.subscribe", "mining.authorize"]
            assert c.received[1]["params"] == ["testminer/1.0"]
            assert job.clean and job.pool_id == 0 and job.difficulty == D
            assert job.version_mask == 0x1FFFE000 and job.extranonce1 == bytes.fromhex("08000002")
            assert h.mgr.active_pool_id == 0
            share = mine_share(job)
            h.mgr.submit(share)
            await pool.wait(lambda: pool.accepted)
            await h.wait(lambda: h.shares("accepted"))
            sub = c.requests("mining.submit")[0]["params"]
            assert sub[:2] == ["worker.1", job.job_id] and len(sub) == 6     # version bits after BIP 310
            snap = h.mgr.snapshots()[0]
            assert (snap.accepted, snap.rejected, snap.stale) == (1, 0, 0)
            assert snap.difficulty_accepted == pytest.approx(D) and snap.best_share == pytest.approx(share.share_difficulty)
            assert snap.jobs == 1 and snap.active and snap.version_mask == 0x1FFFE000
            assert snap.url == pool.url and PASSWORD not in repr(snap)
        await pool.stop()

    arun(go())
    no_tracebacks(caplog)
    assert PASSWORD not in caplog.text


def test_no_rolling_when_configure_returns_empty():
    async def go():
        pool = await FakePool(configure_result={}, difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            assert job.version_mask == 0
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.accepted)
            assert len(pool.client.requests("mining.submit")[0]["params"]) == 5
        await pool.stop()

    arun(go())


def test_difficulty_applies_to_next_job_and_prevhash_change_is_clean():
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            j1 = await h.wait_jobs(1)
            c = pool.client
            c.set_difficulty(2 * D)                 # between notifies: only the next job uses it
            j2 = make_job(2, 2 * D)
            j2.prevhash_wire = pool.job.prevhash_wire
            c.notify(j2, clean=False)
            job2 = await h.wait_jobs(2)
            assert job2.difficulty == 2 * D and not job2.clean
            assert j1.difficulty == D and j1.share_target == 2 * job2.share_target + (j1.share_target & 1)
            # The old job is still honoured at ITS difficulty.
            h.mgr.submit(mine_share(j1))
            await pool.wait(lambda: pool.accepted)
            c.notify(make_job(3, 2 * D, prev_seed=9), clean=False)   # new prevhash, clean_jobs false
            job3 = await h.wait_jobs(3)
            assert job3.clean
        await pool.stop()

    arun(go())


def test_stale_and_duplicate_are_counted_never_sent(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            j1 = await h.wait_jobs(1)
            s1 = mine_share(j1)
            h.mgr.submit(s1)
            await pool.wait(lambda: pool.accepted)
            h.mgr.submit(s1)                       # duplicate
            h.mgr.submit(replace(s1, device="other"))   # same key from another device
            pool.client.notify(make_job(2, D, prev_seed=2), clean=True)
            await h.wait_jobs(2)
            s_old = mine_share(j1, counter=5)
            h.mgr.submit(s_old)                    # its job was dropped by clean_jobs
            await asyncio.sleep(0.2)
            assert len(pool.client.requests("mining.submit")) == 1
            snap = h.mgr.snapshots()[0]
            assert (snap.accepted, snap.stale) == (1, 1)
            assert snap.difficulty_stale == pytest.approx(D)
            assert h.mgr.counters(0)["duplicates"] == 2
            assert len(h.shares("duplicate")) == 2 and len(h.shares("stale")) == 1
        await pool.stop()

    arun(go())
    assert "duplicate share" in caplog.text and "stale share not sent" in caplog.text


def test_impossible_difficulty_is_warned_and_clamped_then_mining_goes_on(caplog):
    from miner.engine.difficulty import MAX_SHARE_DIFFICULTY
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            await h.wait_jobs(1)
            pool.client.notify(make_job(2, 1e300))
            job = await h.wait_jobs(2)
            # target 0 could never be met; 1 is the smallest target there is
            assert job.difficulty == 1e300 and job.share_target == 1
            pool.client.notify(make_job(3, D))
            job = await h.wait_jobs(3)
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.accepted)
        await pool.stop()

    arun(go())
    assert "the pool set difficulty 1e+300, beyond any hash" in caplog.text
    assert MAX_SHARE_DIFFICULTY < 1e300


def test_rejected_share_keeps_pool_reason():
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            pool.client.jobs[job.job_id].difficulty = 1e9     # the pool now wants far more
            h.mgr.submit(mine_share(job))
            await h.wait(lambda: h.shares("rejected"))
            snap = h.mgr.snapshots()[0]
            assert snap.rejected == 1 and snap.reject_reasons == {"Low difficulty share (23)": 1}
            assert snap.difficulty_rejected == pytest.approx(D)
        await pool.stop()

    arun(go())


def test_share_failing_host_check_is_not_sent(caplog):
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            good = mine_share(job)
            h.mgr.submit(replace(good, nonce=good.nonce ^ 1))          # hash no longer matches
            h.mgr.submit(replace(good, version=good.version | 1))      # a bit outside the mask
            await asyncio.sleep(0.2)
            assert not pool.client.requests("mining.submit")
            assert h.mgr.counters(0)["invalid"] == 2
        await pool.stop()

    arun(go())
    assert "fails the host check" in caplog.text


# -- bad input ----------------------------------------------------------------------------------
def test_garbage_from_pool_is_logged_and_session_kept(caplog):
    caplog.set_level(logging.WARNING)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            await h.wait_jobs(1)
            c = pool.client
            c.send_raw(b"this is not json\n")
            c.send_raw(b"[1,2,3]\n")
            c.send_raw(b'{"id":null,"method":"mining.notify","params":["x","00",1,2,3,4,5,6,7]}\n')
            c.send_raw(b"{" + b'"a":' + b"1" * (70 * 1024) + b"}\n")        # over 64 KiB
            c.send({"id": None, "method": "mining.set_difficulty", "params": [0]})
            c.send({"id": None, "method": "mining.set_difficulty", "params": [-3]})
            c.send_raw(b'{"id":null,"method":"mining.set_difficulty","params":[NaN]}\n')
            c.send({"id": None, "method": "mining.set_extranonce", "params": ["abcd", 0]})
            c.send({"id": None, "method": "mining.set_extranonce", "params": ["abcd", 17]})
            c.send({"id": None, "method": "mining.notify", "params": ["j", "00" * 31, "", "", [], "20000000",
                                                                      "1d00ffff", "5f5e1000", True]})
            c.send_raw(b"\xff\xfe\x00garbage\n")
            c.notify(make_job(2, D), clean=True)
            job = await h.wait_jobs(2)
            assert job.difficulty == D and job.extranonce2_size == 4   # bad values never applied
            assert len(pool.clients) == 1                                 # same session
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.accepted)
        await pool.stop()

    arun(go())
    no_tracebacks(caplog)
    text = caplog.text
    for why in ("invalid JSON", "expected a JSON object", "longer than 65536", "positive", "finite",
                "outside 1..16", "prevhash"):
        assert why in text, why


def test_server_requests_answered(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            await h.wait_jobs(1)
            c = pool.client
            c.send({"id": 50, "method": "mining.ping", "params": []})
            c.send({"id": 51, "method": "client.get_version", "params": []})
            c.send({"id": 52, "method": "mining.no_such_thing", "params": [1]})
            c.send({"id": None, "method": "client.show_message", "params": ["maintenance at noon"]})
            replies = lambda: {m.get("id"): m for m in c.received if "result" in m}
            await pool.wait(lambda: {50, 51, 52} <= set(replies()))
            r = replies()
            assert r[50]["result"] == "pong" and r[51]["result"] == "testminer/1.0"
            assert r[52]["result"] is None and r[52]["error"][0] == 20
            await h.wait(lambda: [d for k, d in h.events if k == "message"])
            assert [d["text"] for k, d in h.events if k == "message"] == ["maintenance at noon"]
        await pool.stop()

    arun(go())
    assert "unknown method 'mining.no_such_thing'" in caplog.text


def test_set_extranonce_and_version_mask_reissue_clean_work():
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url], extranonce_subscribe=True) as h:
            j1 = await h.wait_jobs(1)
            c = pool.client
            await pool.wait(lambda: c.requests("mining.extranonce.subscribe"))
            c.extranonce1, c.extranonce2_size = "cafebabe01", 3
            c.send({"id": None, "method": "mining.set_extranonce", "params": ["cafebabe01", 3]})
            j2 = await h.wait_jobs(2)
            assert j2.clean and j2.job_id == j1.job_id and j2.extranonce1 == bytes.fromhex("cafebabe01")
            assert j2.extranonce2_size == 3
            h.mgr.submit(mine_share(j1))            # old extranonce: stale
            h.mgr.submit(mine_share(j2))
            await pool.wait(lambda: pool.accepted)
            assert h.mgr.snapshots()[0].stale == 1
            c.version_mask = 0x00FFE000
            c.send({"id": None, "method": "mining.set_version_mask", "params": ["00ffe000"]})
            j3 = await h.wait_jobs(3)
            assert j3.clean and j3.version_mask == 0x00FFE000
            h.mgr.submit(mine_share(j3, version=j3.rolled_version(0x00A00000), counter=1))
            await pool.wait(lambda: len(pool.accepted) == 2)
        await pool.stop()

    arun(go())


# -- reconnects and failover ----------------------------------------------------------------------
def test_reconnect_followed_only_to_the_same_host(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        a = await FakePool(difficulty=D).start()
        b = await FakePool(difficulty=D, extranonce1="0b0b0b0b").start()
        async with Harness([a.url]) as h:
            await h.wait_jobs(1)
            a.client.send({"id": None, "method": "client.reconnect", "params": ["127.0.0.1", b.port, 0]})
            await b.wait(lambda: b.clients and b.client.authorized)
            job = await h.wait_jobs(2)
            assert job.extranonce1 == bytes.fromhex("0b0b0b0b") and job.clean
            await h.wait(lambda: len(h.pool_events("connected")) == 2)
            b.client.send({"id": None, "method": "client.reconnect", "params": ["evil.example", a.port, 0]})
            # Refused, and the session at b keeps mining (cgminer's rule): no new connection anywhere.
            h.mgr.submit(mine_share(job))
            await b.wait(lambda: b.accepted)
            await h.wait(lambda: h.shares("accepted"))
            assert len(a.clients) == 1 and len(b.clients) == 1 and not b.client.closed
        await a.stop()
        await b.stop()

    arun(go())
    assert "refused" in caplog.text


def test_lost_reply_resubmitted_on_resumed_session(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            pool.reply_submits = False
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.client.requests("mining.submit"))
            pool.seen.clear()                     # the pool never recorded it (lost with the connection)
            pool.accepted.clear()
            pool.reply_submits = True
            pool.send_job_on_authorize = False
            pool.client.close()
            await pool.wait(lambda: len(pool.clients) == 2 and pool.client.authorized)
            c2 = pool.client
            assert c2.requests("mining.subscribe")[0]["params"] == ["testminer/1.0", "sess08000002"]
            c2.jobs[job.job_id] = pool.job            # resumed: the pool still knows the job
            await pool.wait(lambda: pool.accepted)
            await h.wait(lambda: h.shares("accepted"))
            assert h.mgr.snapshots()[0].accepted == 1
        await pool.stop()

    arun(go())
    assert "resubmitting held share" in caplog.text


def test_block_candidate_resent_after_a_lost_reply_is_one_block(caplog):
    """A block candidate written, its reply lost with the connection, then resent on the resumed
    session is one block: counted when first written, not again when resent (it used to be two)."""
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        pool.job = replace(pool.job, nbits=0x207FFFFF)   # regtest's target: every share is a block
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            share = mine_share(job)
            assert share.is_block
            pool.reply_submits = False
            h.mgr.submit(share)
            await pool.wait(lambda: pool.client.requests("mining.submit"))
            assert h.mgr.snapshots()[0].blocks == 1            # counted when written
            pool.seen.clear()
            pool.accepted.clear()
            pool.reply_submits = True
            pool.send_job_on_authorize = False
            pool.client.close()
            await pool.wait(lambda: len(pool.clients) == 2 and pool.client.authorized)
            pool.client.jobs[job.job_id] = pool.job
            await pool.wait(lambda: pool.accepted)
            await h.wait(lambda: h.shares("accepted"))
            snap = h.mgr.snapshots()[0]
            assert (snap.accepted, snap.blocks) == (1, 1)
            assert len(pool.client.requests("mining.submit")) == 1   # it was resent
        await pool.stop()

    arun(go())
    assert "resubmitting held share" in caplog.text
    assert caplog.text.count("BLOCK candidate") == 1


def test_lost_reply_counted_stale_when_not_resumed(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            pool.reply_submits = False
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.client.requests("mining.submit"))
            pool.session_ids.clear()              # the pool forgot our session: new extranonce1
            pool.reply_submits = True
            pool.client.close()
            await h.wait(lambda: h.shares("stale"))
            assert h.shares("stale")[0]["reason"] == "session not resumed"
            assert h.mgr.snapshots()[0].stale == 1
            job2 = await h.wait_jobs(2)
            assert job2.clean and job2.extranonce1 != job.extranonce1
        await pool.stop()

    arun(go())
    assert "stale share not sent (session not resumed" in caplog.text


def test_silent_pool_is_detected_and_reconnected(caplog):
    async def go():
        pool = await FakePool(difficulty=D).start()
        t = Timeouts(connect=2.0, handshake=2.0, reply=2.0, silence=0.6)
        async with Harness([pool.url], timeouts=t) as h:
            await h.wait_jobs(1)
            await pool.wait(lambda: len(pool.clients) >= 2, timeout=5)
            assert any("silent" in (d["reason"] or "") for d in h.pool_events("disconnected"))
        await pool.stop()

    arun(go())
    assert "no message for" in caplog.text


def test_failover_and_return_to_primary(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        primary = await FakePool(difficulty=D, extranonce1="0a0a0a0a").start()
        backup = await FakePool(difficulty=D, extranonce1="0b0b0b0b").start()
        await primary.stop()                      # primary down from the start
        async with Harness([primary.url, backup.url], failover_after=2, primary_probe_interval=0.3) as h:
            job = await h.wait_jobs(1)
            assert job.pool_id == 1 and h.mgr.active_pool_id == 1
            await h.wait(lambda: h.pool_events("connected"))     # the job comes before the authorize reply
            assert len(h.pool_events("failed")) >= 2
            snaps = h.mgr.snapshots()
            assert snaps[0].status == "dead" and snaps[1].status == "alive"
            await primary.restart()
            job = await h.wait(lambda: next((j for j in h.jobs if j.pool_id == 0), None), timeout=10)
            assert job.clean and h.mgr.active_pool_id == 0
            await h.wait(lambda: h.pool_events("switched"))    # as above: the job may come before the authorize reply
            # A share for the backup's job is now stale, not sent to either pool.
            h.mgr.submit(mine_share(h.jobs[0]))
            await h.wait(lambda: h.shares("stale"))
            assert not backup.client.requests("mining.submit")
        await backup.stop()
        await primary.stop()

    arun(go())
    assert "failures in a row; trying the next pool" in caplog.text


def test_pool_control_switch_disable_remove_add():
    async def go():
        a = await FakePool(difficulty=D, extranonce1="0a0a0a0a").start()
        b = await FakePool(difficulty=D, extranonce1="0b0b0b0b").start()
        async with Harness([a.url]) as h:
            await h.wait_jobs(1)
            bid = h.mgr.add_pool(PoolConfig(b.url, "worker.1", PASSWORD))
            h.mgr.switch_pool(bid)
            await h.wait(lambda: h.mgr.active_pool_id == bid)
            assert [s.id for s in h.mgr.snapshots()] == [bid, 0]
            h.mgr.disable_pool(bid)
            await h.wait(lambda: h.mgr.active_pool_id == 0)
            assert h.mgr.snapshots()[0].status == "disabled"
            h.mgr.enable_pool(bid)
            h.mgr.remove_pool(0)
            await h.wait(lambda: h.mgr.active_pool_id == bid)
            assert [s.id for s in h.mgr.snapshots()] == [bid]
        await a.stop()
        await b.stop()

    arun(go())


def test_unauthorized_worker_fails_over(caplog):
    async def go():
        bad = await FakePool(authorize_result=False).start()
        good = await FakePool(difficulty=D).start()
        async with Harness([bad.url, good.url], failover_after=2) as h:
            job = await h.wait_jobs(1)
            assert job.pool_id == 1
            assert any("not authorized" in d["reason"] for d in h.pool_events("failed"))
        await bad.stop()
        await good.stop()

    arun(go())
    assert PASSWORD not in caplog.text


def test_submit_a_live_pool_never_answers_is_counted_after_the_give_up_bound():
    async def go():
        pool = await FakePool(difficulty=D).start()
        t = Timeouts(connect=2.0, handshake=2.0, reply=0.3, probe=0.5, give_up=1.5, silence=30.0)
        async with Harness([pool.url], timeouts=t) as h:
            job = await h.wait_jobs(1)
            pool.reply_submits = False           # submits only; the probe (mining.authorize) is answered
            h.mgr.submit(mine_share(job))
            await h.wait(lambda: h.shares("rejected"))
            assert h.mgr.snapshots()[0].reject_reasons == {"no reply from pool": 1}
            assert len(pool.clients) == 1 and pool.client.requests("mining.authorize")[1:]   # probed, kept
        await pool.stop()

    arun(go())


def test_suggest_difficulty_sent_after_authorize():
    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url], suggest_difficulty=512) as h:
            await h.wait_jobs(1)
            await pool.wait(lambda: pool.client.requests("mining.suggest_difficulty"))
            methods = [m["method"] for m in pool.client.received]
            assert methods.index("mining.suggest_difficulty") > methods.index("mining.authorize")
            assert pool.client.requests("mining.suggest_difficulty")[0]["params"] == [512]
        await pool.stop()

    arun(go())


# -- TLS -------------------------------------------------------------------------------------------
def make_ca_and_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost: (ca.pem, cert.pem, key.pem)."""
    ca, cert, key = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return _openssl_ca_and_cert(tmp, ca, cert, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "miner test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(minutes=5))
           .not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                          critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
           .sign(ca_key, hashes.SHA256()))
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert.write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca, cert, key


def _openssl_ca_and_cert(tmp: Path, ca: Path, cert: Path, key: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("TLS tests need the `cryptography` package or the openssl command")
    ca_key = tmp / "ca.key"
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
        str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=miner test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
        "-out", str(tmp / "srv.csr"), "-subj", "/CN=localhost")
    (tmp / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(tmp / "srv.csr"), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(tmp / "ext.cnf"))
    return ca, cert, key


@pytest.fixture
def tls_pool_ctx(tmp_path):
    import ssl
    ca, cert, key = make_ca_and_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ca, ctx


def test_tls_with_private_ca(tls_pool_ctx):
    ca, ctx = tls_pool_ctx

    async def go():
        pool = await FakePool(difficulty=D, ssl_context=ctx).start()
        assert pool.url.startswith("stratum+ssl://")
        async with Harness([pool.url], cafile=str(ca)) as h:
            job = await h.wait_jobs(1)
            h.mgr.submit(mine_share(job))
            await pool.wait(lambda: pool.accepted)
        await pool.stop()

    arun(go())


def test_tls_refuses_unknown_ca_and_insecure_opt_out_warns(tls_pool_ctx, caplog):
    _, ctx = tls_pool_ctx
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D, ssl_context=ctx).start()
        url = pool.url.replace("stratum+ssl", "stratum+tls")
        async with Harness([url]) as h:
            await h.wait(lambda: h.pool_events("failed"))
            assert not h.jobs and not any(c.authorized for c in pool.clients)
            reason = h.pool_events("failed")[0]["reason"]
            # The cause and the fix, in the words a user can act on.
            assert "TLS failed: CERTIFICATE_VERIFY_FAILED" in reason, reason
            assert reason.endswith("use --cert CA.pem for a private CA, or --insecure"), reason
        async with Harness([url], insecure=True) as h:
            await h.wait_jobs(1)
        await pool.stop()

    arun(go())
    assert "certificate verification is OFF" in caplog.text
    no_tracebacks(caplog)


def test_tls_to_a_silent_plain_tcp_port_says_so_quickly(monkeypatch, caplog):
    from miner.stratum import session as session_mod
    monkeypatch.setattr(session_mod, "TLS_HANDSHAKE_S", 1.0)

    async def go():
        pool = await FakePool(difficulty=D).start()     # plain TCP; it ignores a ClientHello
        url = pool.url.replace("stratum+tcp", "stratum+ssl")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with Harness([url]) as h:
            await h.wait(lambda: h.pool_events("failed"))
            took = loop.time() - t0
            reason = h.pool_events("failed")[0]["reason"]
        await pool.stop()
        return took, reason

    took, reason = arun(go())
    assert took < 3.0, took          # the TLS bound, not the 10 s connect timeout
    assert "TLS failed: no TLS answer within 1 s" in reason and "use stratum+tcp://" in reason, reason
    no_tracebacks(caplog)


def test_tls_failure_text_for_each_cause():
    import ssl
    from miner.stratum.session import tls_failure
    e = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    e.verify_message, e.reason = "self-signed certificate", "CERTIFICATE_VERIFY_FAILED"
    assert tls_failure(e) == ("CERTIFICATE_VERIFY_FAILED (self-signed certificate): use --cert CA.pem "
                              "for a private CA, or --insecure")
    e.verify_message = "Hostname mismatch, certificate is not valid for 'pool.example'."
    assert "connect by a name the certificate lists" in tls_failure(e)
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    wrong.reason = "WRONG_VERSION_NUMBER"
    assert "not TLS (WRONG_VERSION_NUMBER)" in tls_failure(wrong) and "stratum+tcp://" in tls_failure(wrong)
    assert "closed the connection during the TLS handshake" in tls_failure(ConnectionResetError())


def test_handshake_timeout_is_a_counted_failure(caplog):
    async def go():
        pool = await FakePool(difficulty=D).start()
        # Swallow mining.subscribe: the pool accepts the connection but never answers.
        pool.on_message = lambda c, m: m.get("method") == "mining.subscribe"
        t = Timeouts(connect=2.0, handshake=0.3, reply=2.0, silence=30.0)
        async with Harness([pool.url], timeouts=t) as h:
            await h.wait(lambda: len(h.pool_events("failed")) >= 2)
            assert "no reply from the pool during the handshake" in h.pool_events("failed")[0]["reason"]
            pool.on_message = None
            await h.wait_jobs(1)
        await pool.stop()

    arun(go())
    no_tracebacks(caplog)


def test_configure_timeout_is_logged_as_timeout(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        pool.on_message = lambda c, m: m.get("method") == "mining.configure"   # never answered
        t = Timeouts(connect=2.0, handshake=0.3, reply=2.0, silence=30.0)
        async with Harness([pool.url], timeouts=t) as h:
            job = await h.wait_jobs(1)
            assert job.version_mask == 0
        await pool.stop()

    arun(go())
    assert "mining.configure not usable (timeout); no version rolling" in caplog.text
    assert "not usable ()" not in caplog.text


def test_resume_refused_falls_back_to_a_fresh_subscribe():
    async def go():
        pool = await FakePool(difficulty=D).start()

        def refuse_resume(c, m):
            if m.get("method") == "mining.subscribe" and len(m.get("params") or []) > 1:
                c.send({"id": m["id"], "result": None, "error": [20, "unknown session", None]})
                return True
            return False

        async with Harness([pool.url]) as h:
            j1 = await h.wait_jobs(1)
            pool.on_message = refuse_resume
            pool.client.close()
            j2 = await h.wait_jobs(2)
            subs = [m["params"] for c in pool.clients for m in c.requests("mining.subscribe")]
            assert subs[-2:] == [["testminer/1.0", "sess08000002"], ["testminer/1.0"]]
            assert j2.clean and j2.extranonce1 != j1.extranonce1
        await pool.stop()

    arun(go())


def test_bad_suggested_difficulty_is_a_config_error():
    from miner.errors import ConfigError
    with pytest.raises(ConfigError, match="suggested difficulty"):
        PoolManager([PoolConfig("stratum+tcp://127.0.0.1:1", "w")], on_job=print, suggest_difficulty=-1)
    with pytest.raises(ConfigError, match="no pool"):
        PoolManager([], on_job=print)


def test_share_found_while_disconnected_is_held_then_resolved(caplog):
    caplog.set_level(logging.INFO)

    async def go():
        pool = await FakePool(difficulty=D).start()
        async with Harness([pool.url]) as h:
            job = await h.wait_jobs(1)
            share = mine_share(job)
            await pool.stop()
            await h.wait(lambda: h.mgr.active_pool_id is None)
            h.mgr.submit(share)
            assert h.mgr.counters(0)["held"] == 1
            pool.session_ids.clear()              # the pool restarts without our session
            await pool.restart()
            await h.wait(lambda: h.shares("stale"))
            assert h.mgr.counters(0)["held"] == 0 and h.mgr.snapshots()[0].stale == 1
            assert not any(c.requests("mining.submit") for c in pool.clients)
        await pool.stop()

    arun(go())
    assert "held for the reconnect" in caplog.text
