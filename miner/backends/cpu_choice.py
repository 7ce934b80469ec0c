"""Which core code a CPU thread runs, chosen by measurement and kept right while mining.

The fastest code depends on the CPU and on what else the host is doing: on a
Zen 3 core the 4-lane SHA-NI code wins when the core is quiet, the 2-lane code
when a neighbour loads it (the deeper interleave needs more of the shared
out-of-order window). So a CPU thread does not trust the start-up trial for
ever: every ``explore_every`` seconds of mining it runs a short trial round on
slices of its real work, each candidate in turn, several times, interleaved, and
switches when another candidate's median rate beats the current one's by more
than ``margin`` (DEEPER_MARGIN when the other interleaves more lanes) in two trial rounds in a row (a round that finds a faster
candidate is repeated at once to confirm it: on a shared core one 200 ms round
can be unlucky). A candidate that beats the current code by ``margin`` in
every round for ``persist`` seconds (two intervals, a minute by default) is
switched to whatever its lane count: a lead that holds that long is the load the
host has, not a quiet moment. A trial slice is real mining (its nonces are submitted like any
other), so a trial costs only the difference in speed for a fraction of a
second.

CodeChooser is pure bookkeeping with an injectable clock: the CPU device asks it
which code to run the next slice with (``next_impl``) and reports what the slice
did (``record``). Candidates are only names that passed the core's self-test.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from miner import core
from miner.core import DEEPER_MARGIN, deeper

log = logging.getLogger(__name__)

EXPLORE_EVERY = 30.0   # seconds of mining between trial rounds
TRIAL_ROUNDS = 5       # passes over the candidates per trial round, interleaved
SLICE_SECONDS = 0.04   # length of one trial slice
MARGIN = 0.03          # a candidate must be this much faster to take over
PRUNE_BELOW = 0.6      # candidates this far behind the best are retried only every PRUNE_EVERY rounds
PRUNE_EVERY = 5
START_TRIAL_KEEP = 0.7  # re-measured while mining: codes at least this fast in the start-up trial
# How many explore intervals a code must beat the current one by the margin, round after round,
# to take over without DEEPER_MARGIN. On a Golden Cove core without AVX-512 the 3-/4-lane codes
# are about 5% faster than 2-lane in every round (the SHA unit's throughput, not the load, bounds
# them), inside DEEPER_MARGIN, so without this the threads stayed on 2-lane (docs/benchmarks/core.md,
# run O). Counted in time, not rounds: the confirming round right after a round is the same moment.
PERSIST_INTERVALS = 2


def adaptive_candidates(current: str) -> list[str]:
    """The codes a CPU thread starting on ``current`` re-measures while mining: ``current`` first,
    then every candidate of the automatic choice (miner.core.candidates) that reached
    START_TRIAL_KEEP of the best in the start-up trial (all of them when no trial ran). Codes far
    behind (AVX2 next to SHA-NI) are not worth a trial slice. The other build of ``current``
    (VEX or SSE encoding, miner.core.encoding_twin) comes second where it runs: which of the two
    is faster depends on the core."""
    rates = core.trial_rates()
    top = max(rates.values(), default=0.0)
    twin = core.encoding_twin(current)
    out = [current] + ([twin] if twin in core.implementations() else [])
    return out + [n for n in core.candidates() if n not in out and rates.get(n, top) >= START_TRIAL_KEEP * top]


@dataclass
class Switch:
    """One change of code, as logged."""
    old: str
    new: str
    rates: dict[str, float]  # median hashes per second in the deciding round


@dataclass
class CodeChooser:
    candidates: list[str]
    current: str
    explore_every: float = EXPLORE_EVERY
    rounds: int = TRIAL_ROUNDS
    margin: float = MARGIN
    clock: Callable[[], float] = time.monotonic
    _plan: list[str] = field(default_factory=list)
    _samples: dict[str, list[float]] = field(default_factory=dict)
    _next_trial: float | None = None
    _trials: int = 0
    _pruned: set[str] = field(default_factory=set)
    _pending: str | None = None  # the winner of the last round, waiting for a confirming round
    persist: float | None = None  # seconds a lead must hold; None: PERSIST_INTERVALS x explore_every
    _lead_since: dict[str, float] = field(default_factory=dict)  # when each code's unbroken lead began
    last_rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.current not in self.candidates:
            self.candidates = [self.current, *self.candidates]
        if self.persist is None:
            self.persist = PERSIST_INTERVALS * self.explore_every
        # The first trial comes soon after start: the start-up choice was made
        # single-threaded, before the other threads loaded the machine.
        self._next_trial = self.clock() + min(self.explore_every, 2.0)

    @property
    def exploring(self) -> bool:
        return bool(self._plan)

    def next_impl(self) -> str:
        """The code for the next slice: a trial candidate during a trial round, else the current one."""
        if not self._plan and len(self.candidates) > 1 and self.clock() >= self._next_trial:
            self._start_trial()
        return self._plan[0] if self._plan else self.current

    def _start_trial(self) -> None:
        self._trials += 1
        retry_all = self._trials % PRUNE_EVERY == 0
        cands = [c for c in self.candidates if retry_all or c not in self._pruned or c == self.current]
        # Rotate the order each pass so no candidate always follows the same one.
        self._plan = [cands[(i + r) % len(cands)] for r in range(self.rounds) for i in range(len(cands))]
        self._samples = {c: [] for c in cands}

    def record(self, impl: str, hashes: int, seconds: float) -> Switch | None:
        """Report a slice: ``hashes`` done by ``impl`` in ``seconds`` of this thread's CPU time.

        Returns the Switch when this slice completed a trial round that changed the code.
        """
        if not self._plan or impl != self._plan[0]:
            return None
        self._plan.pop(0)
        if seconds > 0 and hashes > 0:
            self._samples[impl].append(hashes / seconds)
        if self._plan:
            return None
        return self._decide()

    def _decide(self) -> Switch | None:
        now = self.clock()
        self._next_trial = now + self.explore_every
        rates = {c: statistics.median(s) for c, s in self._samples.items() if s}
        self.last_rates = rates
        log.debug("trial round on %s: %s", self.current,
                  ", ".join(f"{c} {r / 1e6:.2f} MH/s" for c, r in rates.items()))
        if self.current not in rates:
            return None
        best = max(rates, key=rates.get)
        self._pruned = {c for c, r in rates.items() if r < PRUNE_BELOW * rates[best]}
        ahead = rates[self.current] * (1 + self.margin)
        # A round without the lead (or without the code) ends it.
        self._lead_since = {c: self._lead_since.get(c, now) for c, r in rates.items()
                            if c != self.current and r > ahead}
        steady = [c for c, t in self._lead_since.items() if now - t >= self.persist]
        if steady:
            return self._switch(max(steady, key=rates.get), rates)
        # A deeper interleave than the current code must win by more (miner.core.deeper).
        margin = max(self.margin, DEEPER_MARGIN) if deeper(best, self.current) else self.margin
        if best == self.current or rates[best] <= rates[self.current] * (1 + margin):
            self._pending = None
            return None
        if self._pending != best:
            self._pending = best       # repeat the round at once to confirm
            self._next_trial = self.clock()
            return None
        return self._switch(best, rates)

    def _switch(self, new: str, rates: dict[str, float]) -> Switch:
        self._pending = None
        self._lead_since = {}
        switch = Switch(self.current, new, rates)
        self.current = new
        return switch

    @staticmethod
    def slice_nonces(nonce_rate: float) -> int:
        """Nonces in one trial slice for a thread that scans ``nonce_rate`` nonces per second."""
        return max(1 << 12, int(nonce_rate * SLICE_SECONDS))
