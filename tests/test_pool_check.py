"""Pool flags and `pool-check`."""
from __future__ import annotations

import argparse

import pytest

from conftest import free_port
from miner.errors import ConfigError
from miner.cli import pool_check as cli


def parse(argv):
    ap = argparse.ArgumentParser()
    cli.add_arguments(ap)
    return ap.parse_args(argv)


def test_flags_pair_urls_users_passwords():
    a = parse(["-o", "stratum+tcp://a:1", "-u", "w1", "-p", "p1", "-o", "stratum+ssl://b:2", "-o", "c:3",
               "-u", "w2", "--suggest-diff", "64", "--version-mask", "00ffe000", "--no-version-rolling"])
    pools = cli.pools_from_args(a)
    assert [(p.host, p.port, p.tls, p.user, p.password) for p in pools] == [
        ("a", 1, False, "w1", "p1"), ("b", 2, True, "w2", "p1"), ("c", 3, False, "w2", "p1")]
    opts = cli.manager_options(a)
    assert opts["suggest_difficulty"] == 64 and opts["version_mask"] == 0x00FFE000
    assert opts["version_rolling"] is False and opts["insecure"] is False


@pytest.mark.parametrize("argv", [["--suggest-diff", "0"], ["--suggest-diff", "nan"], ["--version-mask", "xyz"]])
def test_bad_flags_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert "error:" in capsys.readouterr().err


def test_missing_pool_or_user():
    with pytest.raises(ConfigError, match="no pool"):
        cli.pools_from_args(parse([]))
    with pytest.raises(ConfigError, match="worker"):
        cli.pools_from_args(parse(["-o", "stratum+tcp://a:1"]))


def test_pool_check_against_real_pool(real_pool, capsys):
    a = parse(["-o", real_pool.url, "-u", real_pool.user, "-p", real_pool.password])
    assert cli.run(a) == 0
    out = capsys.readouterr().out
    assert "OK: job" in out and "no version rolling" in out and real_pool.password not in out


def test_pool_check_unreachable_and_bad_url(capsys):
    a = parse(["-o", f"stratum+tcp://127.0.0.1:{free_port()}", "-u", "w"])
    assert cli.run(a) == 1
    assert "FAILED: " in capsys.readouterr().out
    assert cli.run(parse(["-o", "http://x:1", "-u", "w"])) == 2
    assert "error: bad pool URL" in capsys.readouterr().err
