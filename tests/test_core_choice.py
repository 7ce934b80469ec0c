"""The choice of core code: the start-up trial, and the CPU device re-measuring and switching while it mines."""
from __future__ import annotations

import hashlib
import logging

import pytest

import miner.core as core
from miner.backends import cpu as cpu_backend
from miner.backends import cpu_choice
from miner.backends.cpu import CPUDevice
from miner.backends.cpu_choice import CodeChooser
from miner.engine.job import Job
from miner.sha256 import sha256d as dsha256
from miner.stratum.codec import swap_words
from cpuctx import Ctx

FAST = core.candidates()
needs_two = pytest.mark.skipif(len(FAST) < 2, reason="needs two usable non-portable implementations")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run_trial(ch: CodeChooser, rate_of) -> object:
    """Drive one whole trial round with scripted rates (hashes per CPU second)."""
    switch = None
    first = True
    while first or ch.exploring:
        first = False
        impl = ch.next_impl()
        switch = ch.record(impl, int(rate_of(impl)), 1.0) or switch
    return switch


def test_switches_to_the_faster_candidate_and_back():
    clock = FakeClock()
    ch = CodeChooser(["a", "b", "c"], "a", explore_every=10.0, clock=clock)
    assert ch.next_impl() == "a"  # no trial before its time
    clock.t = 10.0
    rates = {"a": 100.0, "b": 150.0, "c": 90.0}
    # A round that finds a faster code is repeated at once; the switch needs both.
    assert run_trial(ch, rates.get) is None and ch.current == "a"
    assert ch.next_impl() and ch.exploring  # the confirming round starts without waiting
    sw = run_trial(ch, rates.get)
    assert ch.current == "b" and (sw.old, sw.new) == ("a", "b")
    assert sw.rates == {"a": 100.0, "b": 150.0, "c": 90.0}
    # Between trials only the current code runs.
    assert all(ch.next_impl() == "b" for _ in range(5)) and not ch.exploring
    # The host changes: a is now faster by a clear margin, so the next trial goes back.
    clock.t = 30.0
    rates.update(a=200.0)
    assert run_trial(ch, rates.get) is None
    sw = run_trial(ch, rates.get)
    assert ch.current == "a" and (sw.old, sw.new) == ("b", "a")


def test_an_unconfirmed_winner_does_not_switch():
    clock = FakeClock()
    ch = CodeChooser(["a", "b"], "a", explore_every=10.0, clock=clock)
    clock.t = 10.0
    assert run_trial(ch, {"a": 100.0, "b": 150.0}.get) is None  # b wins once...
    assert run_trial(ch, {"a": 100.0, "b": 99.0}.get) is None   # ...and not in the confirming round
    assert ch.current == "a" and not ch.exploring
    assert ch.next_impl() == "a"  # back to the normal interval


def test_no_switch_inside_the_margin_and_medians_decide():
    clock = FakeClock()
    ch = CodeChooser(["a", "b"], "a", explore_every=1.0, margin=0.03, clock=clock)
    clock.t = 5.0
    assert run_trial(ch, {"a": 100.0, "b": 102.0}.get) is None and ch.current == "a"
    # One lucky slice of b (an outlier) does not outvote two ordinary ones.
    clock.t = 10.0
    seen = {"b": 0}

    def rate(impl):
        if impl == "b":
            seen["b"] += 1
            return 500.0 if seen["b"] == 1 else 95.0
        return 100.0
    assert run_trial(ch, rate) is None and ch.current == "a"


def test_a_deeper_interleave_must_win_by_the_deeper_margin():
    # Moving to more lanes of the same family needs DEEPER_MARGIN; moving to fewer only the margin.
    four, two = "shani(4-lane,vex)", "shani(2-lane,vex)"
    assert core.deeper(four, two) and not core.deeper(two, four) and not core.deeper(four, "avx2(8-way)")
    clock = FakeClock()
    # persist: infinite, so this is the DEEPER_MARGIN rule alone (a lead that holds is the next test's)
    ch = CodeChooser([two, four], two, explore_every=1.0, margin=0.03, clock=clock, persist=float("inf"))
    just_inside = {two: 100.0, four: 100.0 * (1 + core.DEEPER_MARGIN) - 1}
    for t in (5.0, 10.0):
        clock.t = t
        assert run_trial(ch, just_inside.get) is None and ch.current == two
    clock.t = 15.0
    clear = {two: 100.0, four: 100.0 * (1 + core.DEEPER_MARGIN) + 1}
    assert run_trial(ch, clear.get) is None and run_trial(ch, clear.get).new == four
    # Back to the shallower code takes only the ordinary margin.
    clock.t = 20.0
    back = {two: 100.0, four: 100.0 / 1.04}
    assert run_trial(ch, back.get) is None and run_trial(ch, back.get).new == two


def test_a_deeper_code_that_leads_round_after_round_takes_over():
    # The 3-/4-lane codes of a Golden Cove core without AVX-512: about 5% ahead of 2-lane in every
    # round, inside DEEPER_MARGIN; once that lead has held for PERSIST_INTERVALS intervals the thread moves.
    four, three, two = "shani(4-lane,vex)", "shani(3-lane,vex)", "shani(2-lane,vex)"
    lead = {two: 100.0, three: 105.0, four: 104.5}
    assert lead[three] < lead[two] * (1 + core.DEEPER_MARGIN)
    clock = FakeClock()
    ch = CodeChooser([two, three, four], two, explore_every=30.0, margin=0.03, clock=clock)
    times = [2.0 + 30.0 * k for k in range(cpu_choice.PERSIST_INTERVALS + 1)]
    for t in times[:-1]:
        clock.t = t
        assert run_trial(ch, lead.get) is None and ch.current == two
    clock.t = times[-1]
    sw = run_trial(ch, lead.get)
    assert (sw.old, sw.new) == (two, three) and ch.current == three
    assert times[-1] - times[0] == ch.persist == 60.0   # a lead that held for a minute, not a quiet moment


def test_a_broken_lead_starts_counting_again():
    four, two = "shani(4-lane,vex)", "shani(2-lane,vex)"
    lead, level = {two: 100.0, four: 105.0}, {two: 100.0, four: 102.0}
    clock = FakeClock()
    ch = CodeChooser([two, four], two, explore_every=30.0, margin=0.03, clock=clock)
    rounds = [lead] * cpu_choice.PERSIST_INTERVALS + [level] + [lead] * cpu_choice.PERSIST_INTERVALS
    for k, rates in enumerate(rounds):
        clock.t = 2.0 + 30.0 * k
        assert run_trial(ch, rates.get) is None and ch.current == two
    clock.t += 30.0
    assert run_trial(ch, lead.get).new == four


def test_confirming_rounds_do_not_shorten_the_lead_it_takes():
    # A round past DEEPER_MARGIN is repeated at once; the repeat is the same moment, so four rounds
    # of lead within 30 s (two such pairs) are not a lead that held for PERSIST_INTERVALS intervals.
    four, two = "shani(4-lane,vex)", "shani(2-lane,vex)"
    big, small = {two: 100.0, four: 100.0 * (1 + core.DEEPER_MARGIN) + 1}, {two: 100.0, four: 105.0}
    clock = FakeClock()
    ch = CodeChooser([two, four], two, explore_every=30.0, margin=0.03, clock=clock)
    for t in (2.0, 32.0):
        clock.t = t
        assert run_trial(ch, big.get) is None
        assert ch.next_impl() and ch.exploring                    # the confirming round starts at once
        assert run_trial(ch, small.get) is None and ch.current == two
    clock.t = 62.0
    assert run_trial(ch, small.get).new == four                   # the lead began at 2 s


def test_the_start_up_pick_prefers_the_shallower_code_unless_the_deeper_is_clearly_faster():
    m = 1 + core.DEEPER_MARGIN  # the same margin as while mining (docs/benchmarks/core.md, run R)
    # Within the margin: the fewest lanes within reach, step by step.
    assert core.pick({"shani(4-lane)": 25.0, "shani(3-lane)": 24.9, "shani(2-lane)": 25.0 / m + 0.1}) == "shani(2-lane)"
    assert core.pick({"shani(4-lane)": 25.0, "shani(3-lane)": 24.9, "shani(2-lane)": 20.0}) == "shani(3-lane)"
    # Clearly faster: the deeper code.
    assert core.pick({"shani(4-lane)": 25.0, "shani(2-lane)": 25.0 / m - 0.1}) == "shani(4-lane)"
    # Start-up trials of a Zen 3 guest in run R: the deeper codes 11-15% ahead, as they were over five
    # minutes of the same moments (bench/choice_replay.py: 2-lane 0.965x the best fixed code). The 15%
    # start-up margin before run R started this on 2-lane; a busy moment's trial still does.
    zen3_quiet = {"shani(4-lane,vex)": 28.84, "shani(3-lane,vex)": 26.93, "shani(2-lane,vex)": 25.51}
    assert core.pick(zen3_quiet) == "shani(4-lane,vex)"
    assert core.pick(zen3_quiet, margin=0.15) == "shani(2-lane,vex)"
    zen3_busy = {"shani(4-lane,vex)": 14.02, "shani(3-lane,vex)": 15.92, "shani(2-lane,vex)": 18.07}
    assert core.pick(zen3_busy) == "shani(2-lane,vex)"
    # Each step stays within the margin of the fastest code, not of the step before: these are the
    # trial medians of a Golden Cove core without its AVX-512 codes, where the walk used to end on
    # the 1-lane code (15% behind 4-lane), and then, with the 15% margin, on 2-lane (6% behind).
    golden_cove = {"shani(4-lane,vex)": 17.32, "shani(3-lane,vex)": 17.20, "shani(2-lane,vex)": 16.27,
                   "shani(1-lane,vex)": 14.65, "avx2(8-way)": 11.93}
    assert core.pick(golden_cove) == "shani(3-lane,vex)"
    assert core.pick(golden_cove, margin=0.15) == "shani(2-lane,vex)"
    assert core.pick({"shani(4-lane)": 25.0, "shani(3-lane)": 24.0, "shani(2-lane)": 21.0}) == "shani(3-lane)"
    # Other families are compared on speed alone; a tie goes to the first (the C table's preference).
    assert core.pick({"avx512(16-way)": 40.0, "shani(4-lane)": 41.0, "shani(2-lane)": 39.5}) == "shani(2-lane)"
    assert core.pick({"avx512(16-way)": 40.0, "shani(2-lane)": 39.5}) == "avx512(16-way)"
    assert core.pick({"avx512(32-way)": 40.0, "avx512(16-way)": 40.0}) == "avx512(32-way)"


def test_trial_rounds_interleave_every_candidate():
    clock = FakeClock()
    ch = CodeChooser(["a", "b", "c"], "a", explore_every=1.0, rounds=3, clock=clock)
    clock.t = 2.0
    order = []
    while True:
        impl = ch.next_impl()
        if not ch.exploring:
            break
        order.append(impl)
        ch.record(impl, 100, 1.0)
    assert sorted(order) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    # Rotated: each pass starts with a different candidate.
    assert order[0::3] == ["a", "b", "c"]


def make_job(difficulty: float, version_mask: int = 0) -> Job:
    return Job("c1", swap_words(bytes.fromhex("4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000")),
               bytes.fromhex("0100000001000063"), bytes.fromhex("ffffffff0100f2052a01000000"),
               (dsha256(b"c1"),), 0x20000000, 0x1D00FFFF, 0x504E86B9, True, b"\x08\x00\x00\x02", 4, difficulty,
               version_mask=version_mask)


def ref_hits(header: bytes, start: int, count: int, target: int) -> list[int]:
    return [n for n in range(start, start + count)
            if int.from_bytes(hashlib.sha256(hashlib.sha256(header[:76] + n.to_bytes(4, "little")).digest())
                              .digest(), "little") <= target]


class Scripted(CodeChooser):
    """A chooser whose measured rates are replaced by a script that flips the winner every trial."""

    def record(self, impl, hashes, seconds):
        # Trials 1-2: the second candidate is faster (found, confirmed), 3-4: the first, ...
        fast = self.candidates[((self._trials + 1) // 2) % 2]
        return super().record(impl, 120 if impl == fast else 100, 1.0)


@needs_two
def test_switching_code_mid_work_neither_loses_nor_repeats_a_nonce(monkeypatch, caplog):
    scanned: list[tuple[str, int, int]] = []
    real = core.scan_abortable

    def recording(header, start, count, target, *, abort=None, impl=None):
        hits, nxt = real(header, start, count, target, abort=abort, impl=impl)
        scanned.append((impl, start, nxt))
        return hits, nxt
    monkeypatch.setattr(cpu_backend.core, "scan_abortable", recording)
    monkeypatch.setattr(cpu_backend.CodeChooser, "slice_nonces", staticmethod(lambda rate: 3001))
    monkeypatch.setattr(cpu_backend, "MIN_CHUNK", 3001)  # trial slices before the first rate is known
    job = make_job(difficulty=1 / 2 ** 24)  # about one hit in 256 nonces
    start, count = 1_000_003, 200_000
    ctx = Ctx(job, start, count, chunk=50_000)
    dev = CPUDevice("cpu0")
    dev.open()
    dev.selftest()
    # Two codes, whatever the start-up trial kept: on a core where one code is far ahead (AMD Zen 5,
    # avx512(32-way) at 1.3-1.45x the 16-way) the trial can leave the device a single candidate.
    pair = [dev._impl_name, next(n for n in FAST if n != dev._impl_name)]
    dev.chooser = Scripted(pair, pair[0], explore_every=0.0)
    scanned.clear()  # the self-test's own scans
    with caplog.at_level(logging.INFO, logger="miner.backends.cpu"):
        dev.run(ctx)
    # Contiguous, in order, each nonce once, and more than one code used.
    spans = [(a, b) for _, a, b in scanned]
    assert spans[0][0] == start and spans[-1][1] == start + count
    assert all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:]))
    assert len({impl for impl, _, _ in scanned}) == 2
    assert ctx.hashed == count
    assert [n for n, _ in ctx.submitted] == ref_hits(ctx.header, start, count, job.share_target)
    switches = [r for r in caplog.records if "core " in r.getMessage() and "->" in r.getMessage()]
    assert switches and all(r.levelno == logging.INFO for r in switches)
    # Each switch is logged once: every second completed round (the confirming one) flipped the code.
    completed = dev.chooser._trials - (1 if dev.chooser.exploring else 0)
    assert completed >= 4 and len(switches) == completed // 2


def test_a_hit_goes_to_the_engine_before_its_chunk_ends():
    """A share is handed over when the C call that found it ends, and the device scans a chunk in
    short calls: a share held to the end of a 0.25 s chunk reached the pool late, or, when a clean
    job came during the chunk, was counted stale though found in time (88% of them with a clean job
    every 30 ms). Counted in nonces scanned, not seconds: before the first rate is known the calls
    are MIN_CHUNK nonces."""
    job = make_job(difficulty=1 / 2 ** 16)  # about one hit in 2^16 nonces
    start, count = 7_000, 1 << 20
    ctx = Ctx(job, start, count, chunk=count)   # one chunk: the old code handed every hit over at its end
    seen_at: list[int] = []
    real_submit = ctx.submit

    def submit(work, nonce, **kw):
        seen_at.append(ctx.hashed)   # nonces reported scanned when this hit was handed over
        return real_submit(work, nonce, **kw)
    ctx.submit = submit
    dev = CPUDevice("cpu0", adaptive=False)
    dev.open()
    dev.selftest()
    dev.run(ctx)
    hits = ref_hits(ctx.header, start, count, job.share_target)
    assert len(hits) >= 4 and [n for n, _ in ctx.submitted] == hits and ctx.hashed == count
    for nonce, hashed in zip(hits, seen_at):
        assert hashed - (nonce - start) <= cpu_backend.MIN_CHUNK, (nonce, hashed)


@needs_two
def test_versions_follow_the_code_in_use(monkeypatch):
    # With a version mask each slice hashes several versions where the code can.
    job = make_job(difficulty=1 / 2 ** 20, version_mask=0x1FFFE000)
    ctx = Ctx(job, 5_000, 60_000, chunk=20_000)
    multi = [n for n in FAST if core.max_versions(n) > 1]
    if not multi:
        pytest.skip("no multi-version code here")
    dev = CPUDevice("cpu0", multi[0])
    dev.open()
    dev.selftest()
    dev.run(ctx)
    assert ctx.hashed == 60_000 * 8
    versions = [job.rolled_version(v << 13) for v in range(8)]
    want = sorted((n, v) for v in versions
                  for n in ref_hits(job.header(ctx.en2, version=v, merkle_root=ctx.root), 5_000, 60_000,
                                    job.share_target))
    assert sorted(ctx.submitted) == want


@needs_two
def test_a_candidate_failing_its_known_answer_is_never_used(monkeypatch, caplog):
    bad = next(n for n in FAST if n != core.selected())  # the start-up code failing is fatal (tested below)
    real = core.scan
    # Every candidate re-measured, whatever this host's start-up trial said about bad.
    monkeypatch.setattr(core, "trial_rates", lambda: {})

    def scan(header, start, count, target, *, impl=None):
        hits = real(header, start, count, target, impl=impl)
        return [] if impl == bad else hits  # as a broken kernel would: misses the genesis nonce
    monkeypatch.setattr(cpu_backend.core, "scan", scan)
    dev = CPUDevice("cpu0")
    dev.open()
    with caplog.at_level(logging.WARNING, logger="miner.backends.cpu"):
        dev.selftest()
    assert bad not in dev._candidates and any(bad in r.getMessage() for r in caplog.records)
    if dev.chooser is not None:
        assert bad not in dev.chooser.candidates
        clock = FakeClock()
        dev.chooser.clock = clock
        dev.chooser.explore_every = 0.0
        for _ in range(6):
            clock.t += 10
            run_trial(dev.chooser, lambda impl: 1000.0 if impl == bad else 100.0)
            assert dev.chooser.current != bad


def test_forced_code_never_adapts():
    dev = CPUDevice("cpu0", "portable")
    dev.open()
    dev.selftest()
    assert dev.chooser is None and dev.code == "portable"
    assert dev.info()["model"] == "CPU portable"


@needs_two
def test_candidates_leave_out_portable_and_an_sse_build_whose_vex_build_runs():
    usable = core.implementations()
    assert FAST and set(FAST) <= set(usable)
    if len(usable) > 1:
        assert "portable" not in FAST
    for name in usable:
        if name.endswith(",vex)"):
            assert name in FAST and name.replace(",vex)", ")") not in FAST
    # Naming the SSE build still runs it: it is usable, only not weighed by the automatic choice.
    sse = [n for n in usable if n.replace(")", ",vex)") in usable]
    if sse:
        assert core.resolve(sse[0]) == sse[0]


def test_startup_trial_names_every_candidate_and_picks_a_usable_one(caplog, monkeypatch):
    monkeypatch.delenv("MINER_CORE", raising=False)
    monkeypatch.setattr(core, "_fastest", None)
    with caplog.at_level(logging.INFO, logger="miner.core"):
        name = core.select(None)
    # A candidate, or the SSE build of the VEX candidate that won (weighed against it, paired).
    assert name in FAST or (core.encoding_twin(name) in FAST and name in core.implementations())
    (line,) = [r.getMessage() for r in caplog.records if "selected" in r.getMessage()]
    assert all(n in line for n in FAST) and "median" in line
    vex = name if name in FAST else core.encoding_twin(name)
    if core.encoding_twin(vex) in core.implementations():
        assert f"then, paired, {vex} " in line and f"against {core.encoding_twin(vex)} " in line
        assert core.encoding_twin(vex) in core.trial_rates()


def test_the_encoding_is_chosen_by_the_per_round_ratios():
    vex, sse = "shani(2-lane,vex)", "shani(2-lane)"
    assert core.encoding_twin(vex) == sse and core.encoding_twin(sse) == vex
    assert core.encoding_twin("avx2(8-way)") == "" and core.encoding_twin("portable") == ""
    # Round by round (the two measured back to back): the SSE build only when it was faster in most
    # rounds, whatever the host did between rounds; a tie or no figures keep the VEX build.
    assert core.pick_encoding(vex, [100, 50, 200, 100, 300], sse, [102, 51, 204, 20, 306]) == sse
    # The medians alone would say SSE (109 > 100), but round by round VEX was faster twice out of three ...
    assert core.pick_encoding(vex, [100, 110, 90], sse, [99, 109, 200]) == vex
    # ... and VEX here (200 > 150), but SSE was faster in two rounds of three (the host slowed in between).
    assert core.pick_encoding(vex, [100, 200, 300], sse, [101, 202, 150]) == sse
    assert core.pick_encoding(vex, [100, 100], sse, [100, 100]) == vex
    assert core.pick_encoding(vex, [], sse, [120]) == vex


@needs_two
def test_a_thread_re_measures_both_builds_of_its_code(monkeypatch):
    # Started on either build of a SHA-NI code, the CPU device keeps the other build second among the
    # codes it re-measures (real objects: the device, its chooser and the core's trial figures).
    have = core.implementations()
    pairs = [n for n in have if n.endswith(",vex)") and core.encoding_twin(n) in have]
    if not pairs:
        pytest.skip("needs SHA-NI with AVX (both builds of the SHA-NI code)")
    monkeypatch.delenv("MINER_CORE", raising=False)
    for start in (pairs[0], core.encoding_twin(pairs[0])):
        monkeypatch.setattr(core, "selected", lambda start=start: start)
        dev = CPUDevice("cpu0")
        dev.open()
        dev.selftest()
        assert dev.chooser is not None and dev.chooser.candidates[:2] == [start, core.encoding_twin(start)]


@needs_two
def test_the_start_up_code_failing_its_known_answer_stops_the_device(monkeypatch):
    from miner.errors import DeviceError
    start = core.selected()
    real = core.scan
    monkeypatch.setattr(cpu_backend.core, "scan",
                        lambda h, s, c, t, *, impl=None: [] if impl == start else real(h, s, c, t, impl=impl))
    dev = CPUDevice("cpu0")
    dev.open()
    with pytest.raises(DeviceError, match="genesis-block known answer"):
        dev.selftest()


@needs_two
def test_miner_core_in_the_environment_disables_adaptation(monkeypatch):
    monkeypatch.setenv("MINER_CORE", FAST[-1])
    monkeypatch.setattr(core, "_selected", None)
    dev = CPUDevice("cpu0")
    dev.open()
    dev.selftest()
    assert dev.chooser is None and dev.code == FAST[-1]


@needs_two
def test_codes_far_behind_in_the_start_up_trial_are_not_candidates(monkeypatch):
    slow = next(n for n in FAST if n != core.selected())
    monkeypatch.setattr(core, "_trial_medians", {n: (10.0 if n == slow else 100.0) for n in FAST})
    dev = CPUDevice("cpu0")
    dev.open()
    assert slow not in dev._candidates and core.selected() in dev._candidates
