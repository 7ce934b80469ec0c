"""The `miner` command as a user meets it: real processes, real exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile

from miner.cli import command as cli
from miner.errors import ConfigError


def run_miner(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    # cwd outside the checkout: the installed package is what a user runs, not the source tree
    return subprocess.run([sys.executable, "-m", "miner", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("miner: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_flag_is_one_line():
    assert_one_line_error(run_miner("--frobnicate"), 2, "--frobnicate", "miner --help")


def test_bad_flag_value_is_one_line():
    assert_one_line_error(run_miner("-t", "many", "--benchmark"), 2, "-t", "many")


def test_no_pool_explains_how_to_point_at_one_and_how_to_benchmark():
    proc = run_miner()
    assert proc.returncode == 2
    assert "-o stratum+tcp://" in proc.stderr and "miner --benchmark" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_device_that_does_not_exist_is_one_line():
    assert_one_line_error(run_miner("--benchmark", "--device", "cpu:zero"), 2, "cpu:zero")


def test_unknown_backend_is_one_line():
    assert_one_line_error(run_miner("--benchmark", "--backend", "fpga"), 2, "fpga", "cpu")


def test_bad_pool_url_is_one_line():
    assert_one_line_error(run_miner("-o", "http://pool.example:3333", "-u", "w"), 2, "http://pool.example:3333",
                          "stratum+tcp")
    assert_one_line_error(run_miner("-o", "stratum+tcp://pool.example", "-u", "w"), 2, "no port")


def test_unreachable_pool_exits_3_with_the_reason_and_no_traceback():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_miner("-o", f"stratum+tcp://127.0.0.1:{port}", "-u", "w", "-t", "1", "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("miner: error: cannot reach any pool") and str(port) in last and "--benchmark" in last
    assert "summary" not in proc.stderr


def test_a_serial_board_that_is_not_there_ends_with_one_clear_line():
    proc = run_miner("--benchmark", "--device", "bm1370:/dev/ttyNOPE", "--quiet", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "of 3" in proc.stderr and "4 of 3" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("miner: error: no device could mine (bm1370:/dev/ttyNOPE: ") and "/dev/ttyNOPE" in last
    assert "miner devices" in last


def test_missing_config_file_is_one_line(tmp_path):
    assert_one_line_error(run_miner("-c", str(tmp_path / "nope.toml")), 2, "nope.toml", "not found")


def test_unknown_config_key_names_the_key_and_a_fix(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('threds = 2\n')
    assert_one_line_error(run_miner("-c", str(f)), 2, "threds", "threads")


def test_invalid_toml_is_one_line(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('threads = \n')
    assert_one_line_error(run_miner("-c", str(f)), 2, "not valid TOML")


def test_config_file_supplies_values_and_flags_override_it(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('url = ["stratum+tcp://127.0.0.1:1", "stratum+tcp://127.0.0.1:2"]\nuser = "w"\n'
                 'threads = 3\nlog-level = "warning"\njson = true\nhw_error_limit = 7\n')
    ns = cli.parse_args(["-c", str(f), "-t", "1", "-o", "stratum+tcp://127.0.0.1:9"])
    assert ns.threads == 1                              # flag beats file
    assert ns.url == ["stratum+tcp://127.0.0.1:9"]      # a repeated flag replaces the file's list
    assert ns.user == ["w"] and ns.json is True and ns.log_level == "warning" and ns.hw_error_limit == 7
    ns = cli.parse_args(["-c", str(f)])
    assert ns.threads == 3 and len(ns.url) == 2


def test_every_main_flag_has_a_config_key(tmp_path):
    """Each flag's dest is a known key; a value of the wrong kind is a one-line value error, never 'unknown key'."""
    parser = cli.build_parser()
    dests = {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "version", "config")}
    assert {"url", "user", "password", "threads", "backend", "device", "benchmark", "time_limit", "log_file",
            "log_level", "quiet", "json"} <= dests
    for dest in sorted(dests):
        f = tmp_path / f"{dest}.toml"
        f.write_text(f'{dest} = "x"\n')
        try:
            ns = cli.parse_args(["-c", str(f)])
        except ConfigError as exc:
            assert "unknown key" not in str(exc) and dest in str(exc)
        else:
            assert hasattr(ns, dest)


def test_benchmark_runs_offline_and_prints_a_summary():
    proc = run_miner("--benchmark", "--time-limit", "2", "-t", "1", "--status-interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "H/s" in proc.stderr and "summary" in proc.stderr


def test_json_events_are_one_object_per_line():
    proc = run_miner("--benchmark", "--time-limit", "2", "-t", "1", "--json", "--status-interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"job", "device", "hashrate"} <= kinds
    assert any(e["event"] == "hashrate" and e["total"]["av"] > 0 for e in events)


def test_cpu_package_watts_are_shared_among_threads_not_multiplied():
    proc = run_miner("--benchmark", "--time-limit", "2", "-t", "2", "--cpu-watts", "30", "--json",
                     "--status-interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    rates = [json.loads(line) for line in proc.stdout.splitlines() if '"hashrate"' in line]
    assert rates and all(abs(e["watts"] - 30.0) < 1e-9 for e in rates)


def test_sigterm_stops_cleanly_with_a_summary():
    p = subprocess.Popen([sys.executable, "-m", "miner", "--benchmark", "-t", "1", "--status-interval", "0.3"],
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    try:
        # wait until it is mining
        line = ""
        while "H/s" not in line:
            line = p.stderr.readline()
            assert line, "miner exited early"
        p.terminate()
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 0
    assert "summary" in err and "Traceback" not in err


def test_devices_lists_cpu_core_implementations():
    proc = run_miner("devices")
    assert proc.returncode == 0, proc.stderr
    assert "cpu:" in proc.stdout and "portable" in proc.stdout


def test_selftest_passes_on_this_machine():
    proc = run_miner("selftest", timeout=180)
    assert "cpu: cpu0: PASS" in proc.stdout
    assert "FAIL" not in proc.stdout, proc.stdout
    assert proc.returncode == 0


def test_out_of_range_numbers_are_one_line_and_exit_2():
    # Each used to start (-t 0 meant "all cores"), flood (--status-interval 0), exit at once
    # (--time-limit -5) or be accepted silently (--hw-error-limit -5).
    for flag, value in (("-t", "0"), ("--status-interval", "0"), ("--time-limit", "-5"),
                        ("--hw-error-limit", "-5"), ("--time-limit", "nan")):
        assert_one_line_error(run_miner("--benchmark", flag, value, timeout=20), 2, flag, repr(value))


def test_out_of_range_numbers_in_the_config_file_are_refused_too(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text("benchmark = true\nthreads = 0\n")
    assert_one_line_error(run_miner("-c", str(cfg), timeout=20), 2, "threads", "positive")


def test_config_value_of_the_wrong_type_names_the_type(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('url = 5\nuser = "w"\n')
    assert_one_line_error(run_miner("-c", str(cfg), timeout=20), 2, "'url' must be a string", "integer 5")
    cfg.write_text('benchmark = true\nthreads = [2]\n')
    assert_one_line_error(run_miner("-c", str(cfg), timeout=20), 2, "'threads' must be a number", "array")
