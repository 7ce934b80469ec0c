"""`miner bench` (miner.cli.bench): arguments, JSON and table output, errors. Speed is not asserted here."""
from __future__ import annotations

import argparse
import json
import logging

import pytest

import miner.core as core
from miner.cli import bench
from miner.core import cpuinfo


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(argv))


def with_twins(codes: list[str]) -> list[str]:
    """codes and the other build (SSE or VEX encoding) of each, where it runs: what the automatic choice may run."""
    return [*codes, *[core.encoding_twin(c) for c in codes if core.encoding_twin(c) in core.implementations()]]


def test_json_has_every_usable_implementation_at_each_thread_count(capsys):
    rc = bench.run(parse("--duration", "0.05", "--threads", "1", "--threads", "2", "--json"))
    assert rc == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["selected"] == core.selected()
    cells = {(r["impl"], r["threads"], r["versions"]) for r in doc["results"]}
    # By default: the automatic choice's candidates, the code it chose (the SSE build of the winner, where
    # that was faster) and portable C; not an SSE build whose VEX twin runs otherwise.
    shown = [i for i in core.implementations() if i in core.candidates() or i in ("portable", core.selected())]
    plain = {(i, n, 1) for i in shown for n in (1, 2)}
    # Code that can hash 8 header versions per nonce gets those cells too.
    rolled = {(i, n, 8) for i in shown if core.max_versions(i) >= 8 for n in (1, 2)}
    # The adaptive choice (what the CPU device runs) where there is a choice, with the code of each thread.
    fast = core.candidates()
    auto = {("auto", n, v) for n in (1, 2) for v in (1, 8)} if len(fast) > 1 else set()
    fast = with_twins(fast)
    assert cells == plain | rolled | auto
    assert all(r["hashes_per_s"] > 0 and len(r["runs"]) == 1 for r in doc["results"])
    for r in doc["results"]:
        if r["impl"] == "auto":
            assert len(r["thread_codes"]) == r["threads"] and set(r["thread_codes"]) <= set(fast)
        else:
            assert r["thread_codes"] == []
    # Not a tty under pytest: each result is printed once, in the output, not again on stderr.
    assert out.err == ""


def test_default_run_is_a_quick_look():
    """`miner bench` with no flags: short cells, so the whole table takes seconds, not half a minute,
    on this CPU and on one with many codes (AVX-512 and SHA-NI: 32 cells, 16 s at 0.5 s a cell)."""
    import os
    args = parse()
    cells = bench.plan(args, bench._resolve_impls(None), False, sorted({1, os.cpu_count() or 1}))
    assert cells and bench.cell_seconds(args.duration, len(cells)) * len(cells) <= 15
    assert bench.cell_seconds(None, 32) * 32 <= 15
    assert bench.cell_seconds(None, 8) == bench.DEFAULT_DURATION_S  # few cells: half a second each
    assert bench.cell_seconds(None, 1000) == bench.MIN_DURATION_S   # never too short to measure
    assert bench.cell_seconds(3.0, 32) == 3.0                         # --duration is kept as given


def test_run_without_duration_shares_the_table_budget(capsys):
    """The cell length the run used, in its JSON, is the share of the table's budget for its cells."""
    rc = bench.run(parse("--impl", "portable", "--threads", "1", "--versions", "1", "--json"))
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["results"]) == 1
    assert doc["duration_s"] == bench.cell_seconds(None, 1) == bench.DEFAULT_DURATION_S
    assert doc["cpu"] == cpuinfo.cpu_facts()  # every figure names its CPU


def test_table_marks_the_selected_implementation(capsys):
    rc = bench.run(parse("--duration", "0.05", "--impl", "portable", "--threads", "1", "--repeat", "2"))
    assert rc == 0
    text = capsys.readouterr().out
    assert "portable" in text and "H/s (median)" in text
    assert "CPU: " + cpuinfo.describe() in text
    assert f"selected: {core.selected()}" in text


def test_short_and_full_names_resolve(capsys):
    full = core.implementations()[0]
    rc = bench.run(parse("--duration", "0.05", "--impl", full.split("(")[0], "--impl", full,
                         "--threads", "1", "--json"))
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["impl"] for r in doc["results"] if r["versions"] == 1] == [full]  # the duplicate collapses


@pytest.mark.parametrize("argv, msg", [
    (("--impl", "z80"), "unknown core implementation 'z80'"),
    (("--duration", "0"), "--duration"),
    (("--duration", "nan"), "--duration"),
    (("--threads", "0"), "--threads"),
    (("--repeat", "0"), "--repeat"),
    (("--versions", "0"), "--versions"),
    (("--versions", "9"), "--versions"),
])
def test_bad_arguments_are_one_clear_line(argv, msg, caplog, capsys):
    with caplog.at_level(logging.ERROR):
        assert bench.run(parse(*argv)) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and msg in errors[0].getMessage()
    assert capsys.readouterr().out == ""


def test_versions_one_leaves_the_rolled_rows_out(capsys):
    rc = bench.run(parse("--duration", "0.05", "--threads", "1", "--versions", "1", "--json"))
    assert rc == 0
    assert {r["versions"] for r in json.loads(capsys.readouterr().out)["results"]} == {1}


def test_perf_probe_answers_without_raising():
    assert bench.perf_cycles_supported() in (True, False)


def test_impl_auto_runs_only_the_adaptive_row(capsys):
    fast = with_twins(core.candidates())  # a candidate or the other build of one
    rc = bench.run(parse("--duration", "0.05", "--impl", "auto", "--threads", "2", "--versions", "1", "--json"))
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["impl"] == "auto" and row["threads"] == 2 and row["hashes_per_s"] > 0
    assert len(row["thread_codes"]) == 2 and set(row["thread_codes"]) <= set(fast or ["portable"])
