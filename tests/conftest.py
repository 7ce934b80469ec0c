"""Shared fixtures.

real_pool: a real third-party Stratum pool (stratum-pool-sha256 from the npm registry, run by node)
fed by a bitcoind JSON-RPC stub, both on free loopback ports. The pool validates every share itself;
the fixture reads its verdicts from the launcher's "POOLEVENT {json}" lines. Needs node and
``npm ci --prefix tests/pool``; without them the fixture fails and says so.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
POOL_DIR = TESTS / "pool"
NPM_HINT = "run: npm ci --prefix tests/pool"

if str(TESTS) not in sys.path:      # lets test modules import fakepool / helpers
    sys.path.insert(0, str(TESTS))

# Subprocesses the tests start (python -m miner, python -c ...) must import the installed
# package, whose C core pip built, not the source tree they would find first through the
# current directory when it is the checkout.
os.environ["PYTHONSAFEPATH"] = "1"


def _load_stub():
    spec = importlib.util.spec_from_file_location("bitcoind_stub", POOL_DIR / "bitcoind_stub.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RealPool:
    url: str
    user: str
    password: str
    port: int
    difficulty: float
    stub: object                                   # BitcoindStub: .new_block(), .calls, .submitted_blocks
    proc: subprocess.Popen
    events: list = field(default_factory=list)     # every POOLEVENT, in order
    output: list = field(default_factory=list)     # every stdout/stderr line of the pool process
    _cond: threading.Condition = field(default_factory=threading.Condition)

    # -- the pool's own verdicts -------------------------------------------------
    def shares(self) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e.get("event") == "share"]

    @property
    def valid(self) -> int:
        return sum(1 for e in self.shares() if e["valid"])

    @property
    def invalid(self) -> int:
        return sum(1 for e in self.shares() if not e["valid"])

    def reasons(self) -> list[str]:
        return [e["error"] for e in self.shares() if not e["valid"]]

    def wait_shares(self, n: int, timeout: float = 30.0) -> list[dict]:
        """Block until the pool has judged at least n shares; returns them."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [e for e in self.events if e.get("event") == "share"]
                if len(got) >= n:
                    return got
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"pool judged {len(got)} of {n} shares in time\n" + self.log_tail())
                self._cond.wait(min(left, 0.2))

    def log_tail(self, n: int = 60) -> str:
        with self._cond:
            return "\n".join(self.output[-n:])

    def _reader(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            with self._cond:
                self.output.append(line)
                if line.startswith("POOLEVENT "):
                    try:
                        self.events.append(json.loads(line[len("POOLEVENT "):]))
                    except ValueError:
                        pass
                self._cond.notify_all()

    def _wait_started(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while not any(e.get("event") == "started" for e in self.events):
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError("the test pool did not start\n" + "\n".join(self.output[-60:]))
                self._cond.wait(min(left, 0.2))
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test pool never accepted connections\n" + self.log_tail())

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.stub.stop()


def start_real_pool(difficulty: float = 0.001, user: str = "tester.worker1", password: str = "rp-S3cret-pw",
                    extra_args: tuple[str, ...] = (), port: int | None = None) -> RealPool:
    """extra_args go to tests/pool/launch.js (e.g. ("--reconnect-every", "2"))."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed; the real-pool tests need Node.js >= 18 ({NPM_HINT})")
    if not (POOL_DIR / "node_modules" / "stratum-pool-sha256").is_dir():
        pytest.fail(f"tests/pool/node_modules is missing; {NPM_HINT}")
    stub = _load_stub().BitcoindStub().start()
    port = port or free_port()
    proc = subprocess.Popen(
        [node, "launch.js", "--stratum-port", str(port), "--rpc-port", str(stub.port), "--diff", repr(difficulty),
         *extra_args],
        cwd=POOL_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        start_new_session=True)   # own process group: teardown kills node and anything it spawned
    pool = RealPool(f"stratum+tcp://127.0.0.1:{port}", user, password, port, difficulty, stub, proc)
    threading.Thread(target=pool._reader, name="real-pool-output", daemon=True).start()
    try:
        pool._wait_started(30.0)
    except RuntimeError as e:
        pool.stop()
        pytest.fail(str(e))
    return pool


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def real_pool(request):
    """A running stratum-pool-sha256 at difficulty 0.001 (override: @pytest.mark.parametrize('real_pool',
    [0.01], indirect=True)). Yields a RealPool: .url .user .password, .wait_shares(n), .valid, .invalid,
    .reasons(), .stub.new_block(). The pool's log is printed when the test fails."""
    difficulty = getattr(request, "param", 0.001)
    pool = start_real_pool(difficulty)
    yield pool
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("---- test pool output ----\n" + pool.log_tail(200))
    pool.stop()


@pytest.fixture(scope="module")
def real_pool_module():
    """One real pool shared by a module's tests (difficulty 0.001); same object as real_pool."""
    pool = start_real_pool(0.001)
    yield pool
    pool.stop()


@pytest.fixture
def hashed_headers(monkeypatch):
    """Every 80-byte header the host re-check (miner.engine.job.recheck) hashes, in order."""
    import miner.engine.job as job_mod
    headers: list[bytes] = []
    real = job_mod.sha256d

    def recording(data):
        if len(data) == 80:
            headers.append(bytes(data))
        return real(data)
    monkeypatch.setattr(job_mod, "sha256d", recording)
    return headers
