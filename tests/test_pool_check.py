"""The pool flags (one definition for mining and `pool-check`) and `pool-check` itself."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

import pytest

from conftest import free_port
from miner.cli import command
from miner.cli import options as opts
from miner.cli import pool_check
from miner.errors import ConfigError


def parse(argv):
    ap = argparse.ArgumentParser()
    opts.add_pool_arguments(ap)
    return ap.parse_args(argv)


def test_flags_pair_urls_users_passwords():
    a = parse(["-o", "stratum+tcp://a:1", "-u", "w1", "-p", "p1", "-o", "stratum+ssl://b:2", "-o", "c:3",
               "-u", "w2", "--suggest-diff", "64", "--version-mask", "00ffe000", "--no-version-rolling"])
    o = opts.PoolOptions.from_args(a)
    assert [(p.host, p.port, p.tls, p.user, p.password) for p in o.pools] == [
        ("a", 1, False, "w1", "p1"), ("b", 2, True, "w2", "p1"), ("c", 3, False, "w2", "p1")]
    kw = o.manager_kwargs()
    assert kw["suggest_difficulty"] == 64 and kw["version_mask"] == 0x00FFE000
    assert kw["version_rolling"] is False and kw["insecure"] is False


def test_mining_and_pool_check_read_the_same_pool_flags():
    """One flag set: --version-mask (once pool-check only) reaches mining's PoolOptions too."""
    argv = ["-o", "stratum+tcp://a:1", "-u", "w", "--version-mask", "00ffe000", "--suggest-diff", "8"]
    mining = opts.PoolOptions.from_args(command.parse_args(argv + ["--benchmark"]))
    checking = opts.PoolOptions.from_args(command.parse_args(["pool-check"] + argv))
    assert mining == checking
    assert mining.version_mask == 0x00FFE000 and mining.suggest_difficulty == 8


def test_pool_check_reads_the_pool_from_the_config_file(tmp_path):
    f = tmp_path / "farm.toml"
    f.write_text('url = ["stratum+tcp://a:1"]\nuser = "w"\nversion-mask = "00ffe000"\n')
    o = opts.PoolOptions.from_args(command.parse_args(["-c", str(f), "pool-check"]))
    assert o.pools[0].host == "a" and o.pools[0].user == "w" and o.version_mask == 0x00FFE000


@pytest.mark.parametrize("argv", [["--suggest-diff", "0"], ["--suggest-diff", "nan"], ["--version-mask", "xyz"]])
def test_bad_flags_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert "error:" in capsys.readouterr().err


def test_missing_pool_or_user():
    with pytest.raises(ConfigError, match="no pool"):
        opts.PoolOptions.from_args(parse([]))
    with pytest.raises(ConfigError, match="worker"):
        opts.PoolOptions.from_args(parse(["-o", "stratum+tcp://a:1"]))


def _pool_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "miner", "pool-check", *args], capture_output=True, text=True,
                          timeout=60, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL)


def test_pool_check_shows_the_handshake_and_closes_quietly(real_pool):
    proc = _pool_check("-o", real_pool.url, "-u", real_pool.user, "-p", real_pool.password)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    steps = [ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")]
    assert steps == ["connect", "configure", "subscribe", "authorize", "difficulty", "first"], out
    assert "no version rolling (asked 1fffe000)" in out  # this pool has no mining.configure
    assert "extranonce1 " in out and " bytes" in out
    assert f"difficulty   {real_pool.difficulty:g}" in out
    assert "first job    id " in out and "network difficulty" in out
    assert out.rstrip().endswith("OK")
    assert real_pool.password not in out + proc.stderr
    # closing is not a failure: no "connection lost", no failover to a pool that does not exist
    assert proc.stderr.strip() == "", proc.stderr


def test_pool_check_uses_the_miner_exit_codes():
    proc = _pool_check("-o", f"stratum+tcp://127.0.0.1:{free_port()}", "-u", "w")
    assert proc.returncode == 3, proc.stdout + proc.stderr  # as mining with an unreachable pool
    assert "FAILED: " in proc.stdout and "cannot connect" in proc.stdout and "Traceback" not in proc.stderr
    proc = _pool_check("-o", "http://x:1", "-u", "w")
    assert proc.returncode == 2 and "bad pool URL" in proc.stderr and "Traceback" not in proc.stderr
    proc = _pool_check("-o", "stratum+tcp://x:1")
    assert proc.returncode == 2 and "-u WORKER" in proc.stderr


def test_pool_check_run_in_process(real_pool, capsys):
    a = command.parse_args(["pool-check", "-o", real_pool.url, "-u", real_pool.user, "-p", real_pool.password])
    assert pool_check.run(a) == 0
    assert "OK" in capsys.readouterr().out
