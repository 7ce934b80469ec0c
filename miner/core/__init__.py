"""Python API of the C double-SHA-256 core (stable; documented in the README).

    sha256d(data) -> bytes
    scan(header, start, count, target) -> list[int]
    implementations() -> list[str]      usable on this CPU (passed CPUID checks and the self-test)
    selected() -> str                   the one scan() uses
    select(name | None)                 force one, or None for the automatic (measured) choice
    resolve(name) -> str                the full name a short one stands for
    max_versions(impl=None) -> int      versions per scan_versions() call with that code (8; 0: none)
    scan_versions(header, versions, start, count, target) -> ([(nonce, version)], next_nonce)

MINER_CORE=portable|avx2|avx512|shani|armv8 forces a choice at first use (a full
name such as "shani(1-lane)" works too). Names carry a lane count, e.g.
"shani(4-lane)"; a short name picks its best usable variant.
The GIL is released inside the C calls (cffi does this for every call), so
threads scanning in parallel scale.
"""
from __future__ import annotations

import logging
import os
import re
import statistics
import threading
import time

from miner.errors import CoreError
from miner.units import human

__all__ = ["sha256d", "scan", "implementations", "selected", "select", "resolve", "scan_abortable", "AbortFlag",
           "max_versions", "scan_versions", "GENESIS_HEADER", "GENESIS_NONCE"]

try:
    from miner.core._sha256d import ffi as _ffi, lib as _lib
except ImportError as exc:  # pragma: no cover - only when the package was not built
    _ffi = _lib = None
    _import_error = exc
else:
    _import_error = None



def _genesis_header() -> bytes:
    if _lib is None:  # pragma: no cover - only when the package was not built
        return bytes(80)
    buf = _ffi.new("uint8_t[80]")
    _lib.miner_genesis_header(buf)
    return bytes(_ffi.buffer(buf))


# Block 0's header, the known answer of every self-test; the C core holds the one copy.
# Its hash meets its own target (nbits 1d00ffff, difficulty 1) only at GENESIS_NONCE.
GENESIS_HEADER: bytes = _genesis_header()
GENESIS_NONCE: int = int.from_bytes(GENESIS_HEADER[76:80], "little")  # 2083236893

_MAX_NONCE = 1 << 32
_OUT_CAP = 256
_lock = threading.Lock()
_selected: int | None = None
_fastest: int | None = None  # the automatic choice, measured once per process
_TRIAL_NONCES = 1 << 18
_TRIAL_ROUNDS = 7
_TRIAL_PRUNE = 0.7
# A code that interleaves more lanes than another of its family must beat it by
# this much to be started on (pick) or switched to while mining (see deeper()).
# The start-up margin was 15% until run R: a thread started on a deeper code that
# the host's load then slows goes back within seconds (a shallower code needs only
# the ordinary 3%), but one started on the shallower code when the deeper is faster
# took minutes to move, so the wider start-up margin cost more than it saved
# (docs/benchmarks/core.md, run R).
DEEPER_MARGIN = 0.06
_trial_medians: dict[str, float] = {}
log = logging.getLogger(__name__)


def _need_lib():
    if _lib is None:
        raise CoreError(
            f"the C core is not built ({_import_error}); reinstall with 'pip install .' from the source tree"
        )
    return _lib


_names: tuple[str, ...] = ()


def _all_names() -> list[str]:
    """Every compiled implementation's name, in the C table's order (fixed for the process)."""
    global _names
    if not _names:
        lib = _need_lib()
        _names = tuple(_ffi.string(lib.miner_impl_name(i)).decode() for i in range(lib.miner_impl_count()))
    return list(_names)


def _base(name: str) -> str:
    return name.split("(", 1)[0]


def _usable_indices() -> list[int]:
    """Usable implementations in the C table's order, which is the preference order (csrc/dispatch.c)."""
    lib = _need_lib()
    return [i for i in range(lib.miner_impl_count()) if lib.miner_impl_usable(i)]


def implementations() -> list[str]:
    """Names of the implementations that run on this CPU and passed their self-test.

    In the C table's preference order (SHA extensions, AVX-512, AVX2, portable); the automatic
    choice of select(None) is the fastest of them measured on this machine.
    """
    names = _all_names()
    return [names[i] for i in _usable_indices()]


def lane_count(name: str) -> int | None:
    """Nonces a code interleaves, from its name: "shani(4-lane,vex)" -> 4; None without "-lane"."""
    m = re.search(r"\((\d+)-lane", name)
    return int(m.group(1)) if m else None


def deeper(a: str, b: str) -> bool:
    """True when code ``a`` interleaves more lanes than ``b`` of the same family.

    The deeper interleave wins only on a quiet core: it needs the whole SHA
    unit and a wide front end, and when the core's other hardware thread is
    busy it loses far more than the shallower one (on Zen 3, 40-60% for 3-4
    lanes against about 20% for 2, docs/benchmarks/core.md). A short trial
    sees only the moment it runs in, so the choice asks the deeper code to be
    clearly faster, by DEEPER_MARGIN, at start-up and while mining. A thread
    on a deeper code that then loses goes back after the CPU device's next
    trial rounds (the first 2 s after start), by the ordinary margin.
    """
    la, lb = lane_count(a), lane_count(b)
    return la is not None and lb is not None and _base(a) == _base(b) and la > lb


def pick(medians: dict[str, float], margin: float = DEEPER_MARGIN) -> str:
    """The start-up choice from each candidate's median rate (insertion order = preference for ties).

    The fastest code, unless a shallower code of its family is within
    ``margin`` of it: then the fastest of those, and so on down, every step
    still within ``margin`` of the fastest code. Measured against the step
    before, the margins would add up: on a Golden Cove core without its
    AVX-512 codes (4-/3-/2-/1-lane at 17.3 / 17.2 / 16.3 / 14.7 MH/s) the walk
    went down to the 1-lane code: within the margin of the 2-lane code, but
    15% slower than the best (docs/benchmarks/core.md, run O).
    """
    order = list(medians)
    best = win = max(order, key=lambda n: (medians[n], -order.index(n)))
    while True:
        steadier = [n for n in order if deeper(win, n) and medians[n] * (1 + margin) >= medians[best]]
        if not steadier:
            return win
        win = max(steadier, key=lambda n: (medians[n], -order.index(n)))


def _vex_twin(name: str) -> str:
    """The VEX build's name of an SSE-encoded SHA-NI code: "shani(4-lane)" -> "shani(4-lane,vex)"."""
    return name[:-1] + ",vex)" if name.endswith(")") and not name.endswith(",vex)") else ""


def _candidate_indices() -> list[int]:
    usable = _usable_indices()
    names = _all_names()
    have = {names[i] for i in usable}
    # The VEX build of a code is the same hashing with fewer instructions, so the
    # lane count is chosen among the VEX builds; only the winner's SSE twin is then
    # weighed against it (_encoding_trial): it is the faster one on some cores.
    cands = [i for i in usable if _base(names[i]) != "portable" and _vex_twin(names[i]) not in have]
    return cands or usable


def encoding_twin(name: str) -> str:
    """The other build of a SHA-NI code, "shani(2-lane,vex)" <-> "shani(2-lane)"; "" for any other code.

    Whether it runs here is implementations()' answer."""
    if name.endswith(",vex)"):
        return name[: -len(",vex)")] + ")"
    return _vex_twin(name) if name.startswith("shani(") else ""


def pick_encoding(vex: str, vex_rates: list[float], sse: str, sse_rates: list[float]) -> str:
    """The start-up choice between the two builds of one code, from their paired trial rates.

    vex_rates[r] and sse_rates[r] were measured back to back in round r, so
    their ratio cancels what the host did between rounds; the SSE build only
    when the median of those ratios is above 1. On Zen 3 the VEX build of the
    2-lane code is about 3% faster, on Zen 1 the SSE build by 1-2% (code
    placement has a share in it: docs/benchmarks/core.md, runs G and N), so
    neither is assumed: the build that is here is measured.
    """
    ratios = [s / v for v, s in zip(vex_rates, sse_rates) if v > 0]
    return sse if ratios and statistics.median(ratios) > 1.0 else vex


def candidates() -> list[str]:
    """The codes the automatic choice measures, at start-up and while mining (a subset of implementations()).

    Portable C only when nothing else is usable; an SSE-encoded SHA-NI code not
    when its VEX build runs here (the start-up trial then weighs the winner's SSE
    build against it, and the CPU device keeps both builds of its code among the
    codes it re-measures).
    """
    names = _all_names()
    return [names[i] for i in _candidate_indices()]


def _index_of(name: str) -> int:
    names = _all_names()
    matches = [i for i, full in enumerate(names) if name in (full, _base(full))]
    if not matches:
        raise CoreError(f"unknown core implementation {name!r}; choose one of: "
                        f"{', '.join(sorted({_base(n) for n in names}))} (or a full name such as {names[0]!r})")
    usable = [i for i in matches if _need_lib().miner_impl_usable(i)]
    if not usable:
        raise CoreError(f"core implementation {names[matches[0]]!r} is not usable on this CPU (or failed its self-test)")
    return usable[0]


def _trial_rate(lib, i: int, header: bytes, start: int, target: bytes, out, nxt) -> float:
    """Nonces per CPU second of implementation i over one trial slice of _TRIAL_NONCES from start."""
    t0 = time.thread_time()
    lib.miner_scan(i, header, start, _TRIAL_NONCES, target, out, 4, nxt, _ffi.NULL)
    return _TRIAL_NONCES / max(time.thread_time() - t0, 1e-9)


def _measure_fastest() -> int:
    """Index of the fastest usable implementation in an interleaved trial.

    Which code wins depends on the microarchitecture (SHA-NI throughput versus
    AVX-512 width differ a lot between CPU families), so the automatic choice
    is measured rather than guessed. A short trial is a lottery on a busy host
    (one slow slice decides), so: every candidate scans _TRIAL_NONCES nonces per
    round, the order rotating each round; a round's time is this thread's CPU
    time (time.thread_time, so being descheduled does not count); after two
    rounds candidates slower than _TRIAL_PRUNE of the best drop out; the
    median over _TRIAL_ROUNDS rounds decides. The candidates are candidates();
    when the winner is a VEX build, its SSE build then runs against it, paired
    (_encoding_trial, pick_encoding). About 0.9 s with SHA-NI on Zen 1, 0.2 s of it the pairing.
    The CPU device keeps re-measuring while it mines (miner.backends.cpu_choice).
    """
    lib = _need_lib()
    names = _all_names()
    cands = _candidate_indices()
    if len(cands) == 1:
        return cands[0]
    header = bytes(range(80))
    target = (0xFFFF << 208).to_bytes(32, "little")
    out = _ffi.new("uint32_t[4]")
    nxt = _ffi.new("uint64_t *")
    rates: dict[int, list[float]] = {i: [] for i in cands}
    live = list(cands)
    for r in range(_TRIAL_ROUNDS):
        for k in range(len(live)):
            i = live[(k + r) % len(live)]
            rates[i].append(_trial_rate(lib, i, header, (r * len(cands) + k) * _TRIAL_NONCES, target, out, nxt))
        if r == 1:
            top = max(statistics.median(rates[i]) for i in live)
            live = [i for i in live if statistics.median(rates[i]) >= _TRIAL_PRUNE * top]
    med = {i: statistics.median(rates[i]) for i in cands}
    _trial_medians.clear()
    _trial_medians.update({names[i]: med[i] for i in cands})
    win = _index_of(pick({names[i]: med[i] for i in live}))   # live is in the C table's order
    trial = ", ".join(f"{names[i]} {human(med[i], 'H/s')}" for i in cands)
    twin = encoding_twin(names[win]) if names[win].endswith(",vex)") else ""
    if twin in implementations():
        vex, sse = win, names.index(twin)
        win, paired = _encoding_trial(vex, sse, header, target)
        trial += (f"; then, paired, {names[vex]} {human(paired[vex], 'H/s')} against {names[sse]} "
                  f"{human(paired[sse], 'H/s')}")
    log.info("core: %s selected (median of an interleaved trial: %s)", names[win], trial)
    return win


def _encoding_trial(vex: int, sse: int, header: bytes, target: bytes) -> tuple[int, dict[int, float]]:
    """The VEX winner of the trial against its SSE twin, back to back in each of _TRIAL_ROUNDS rounds,
    the order alternating (pick_encoding): the index chosen, and each one's median rate in this pairing."""
    lib = _need_lib()
    names = _all_names()
    out = _ffi.new("uint32_t[4]")
    nxt = _ffi.new("uint64_t *")
    rates: dict[int, list[float]] = {vex: [], sse: []}
    for r in range(_TRIAL_ROUNDS):
        for k, i in enumerate((vex, sse) if r % 2 == 0 else (sse, vex)):
            rates[i].append(_trial_rate(lib, i, header, (1 << 31) + (2 * r + k) * _TRIAL_NONCES, target, out, nxt))
    paired = {i: statistics.median(r) for i, r in rates.items()}
    _trial_medians[names[sse]] = paired[sse]
    return _index_of(pick_encoding(names[vex], rates[vex], names[sse], rates[sse])), paired


def trial_rates() -> dict[str, float]:
    """Median nonces per CPU second of each candidate in the start-up trial ({} when none ran)."""
    return dict(_trial_medians)


def resolve(name: str) -> str:
    """Full name of the best usable implementation matching ``name``; the selection is unchanged."""
    return _all_names()[_index_of(name)]


def select(name: str | None = None) -> str:
    """Force implementation ``name`` (e.g. "avx2"); None returns to the automatic choice. Returns the full name.

    A short name ("shani") picks that family's first variant in implementations()
    order; a full name ("shani(2-lane)") picks exactly that one. The automatic
    choice honours MINER_CORE, else it is measured once per process.
    """
    global _selected, _fastest
    with _lock:
        if name is None:
            forced = os.environ.get("MINER_CORE", "").strip()
            if forced:
                _selected = _index_of(forced)
            else:
                if _fastest is None:
                    _fastest = _measure_fastest()
                _selected = _fastest
        else:
            _selected = _index_of(name)
        return _all_names()[_selected]


def selected() -> str:
    """Full name of the implementation scan() uses."""
    if _selected is None:
        select(None)
    return _all_names()[_selected]


def _impl_index(impl: str | None) -> int:
    if impl is not None:
        return _index_of(impl)
    if _selected is None:
        select(None)
    return _selected


def sha256d(data: bytes) -> bytes:
    """Double SHA-256 of ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"sha256d() needs bytes, not {type(data).__name__}")
    data = bytes(data)
    out = _ffi.new("uint8_t[32]")
    _need_lib().miner_sha256d(data, len(data), out)
    return bytes(out)


def _check_scan_args(header, start, count, target) -> tuple[bytes, bytes]:
    if not isinstance(header, (bytes, bytearray, memoryview)):
        raise TypeError(f"header must be bytes, not {type(header).__name__}")
    header = bytes(header)
    if len(header) != 80:
        raise ValueError(f"header must be 80 bytes, got {len(header)}")
    for label, v in (("start", start), ("count", count), ("target", target)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{label} must be an int, not {type(v).__name__}")
    if not 0 <= start < _MAX_NONCE:
        raise ValueError(f"start must be in 0..2^32-1, got {start}")
    if count < 0 or start + count > _MAX_NONCE:
        raise ValueError(f"start+count must not exceed 2^32 (start={start}, count={count})")
    if target < 0:
        raise ValueError("target must not be negative")
    target = min(target, (1 << 256) - 1)  # every hash meets a target at or above 2^256-1
    return header, target.to_bytes(32, "little")


class AbortFlag:
    """A flag another thread sets to stop a scan_abortable() call early (checked every 8 Ki nonces)."""

    __slots__ = ("_cell",)

    def __init__(self) -> None:
        self._cell = _ffi.new("int *")

    def set(self) -> None:
        self._cell[0] = 1

    def clear(self) -> None:
        self._cell[0] = 0

    def is_set(self) -> bool:
        return bool(self._cell[0])


def scan_abortable(header: bytes, start: int, count: int, target: int, *,
                   abort: AbortFlag | None = None, impl: str | None = None) -> tuple[list[int], int]:
    """Like scan(), but stoppable: returns (hits, next_nonce); next_nonce < start+count means aborted."""
    header, target_le = _check_scan_args(header, start, count, target)
    lib = _need_lib()
    i = _impl_index(impl)
    out = _ffi.new(f"uint32_t[{_OUT_CAP}]")
    abort_ptr = abort._cell if abort is not None else _ffi.NULL

    def call(pos: int, remaining: int, nxt) -> list[int]:
        n = lib.miner_scan(i, header, pos, remaining, target_le, out, _OUT_CAP, nxt, abort_ptr)
        if n < 0:
            raise CoreError("core rejected the scan range")
        return out[0:n]
    return _drive(call, start, count, abort)


def _drive(call, start: int, count: int, abort: "AbortFlag | None") -> tuple[list, int]:
    """Run one C scan over [start, start+count) in as many calls as its output buffer needs.

    call(pos, remaining, nxt) makes one C call, returns its results and leaves
    the first nonce it did not scan in nxt[0]. Returns (results, next_nonce).
    """
    nxt = _ffi.new("uint64_t *")
    results: list = []
    end, pos = start + count, start
    while pos < end:
        got = call(pos, end - pos, nxt)
        results.extend(got)
        if nxt[0] == pos and not got:
            break  # aborted before any work
        pos = nxt[0]
        if abort is not None and abort.is_set():
            break
    return results, pos


def scan(header: bytes, start: int, count: int, target: int, *, impl: str | None = None) -> list[int]:
    """Every nonce n in [start, start+count) whose header hash (little-endian int) is <= target, ascending.

    ``header`` is 80 bytes; its nonce field is ignored. ``impl`` forces one implementation for this call.
    """
    hits, _ = scan_abortable(header, start, count, target, impl=impl)
    return hits


def max_versions(impl: str | None = None) -> int:
    """How many header versions scan_versions() takes per call with ``impl`` (default: the selected code).

    0 when that implementation has no multi-version code (portable and the
    1-lane SHA-NI code); callers then scan each version with scan_abortable().
    """
    return _need_lib().miner_impl_versions(_impl_index(impl))


def scan_versions(header: bytes, versions: list[int], start: int, count: int, target: int, *,
                  abort: AbortFlag | None = None, impl: str | None = None) -> tuple[list[tuple[int, int]], int]:
    """Scan nonces [start, start+count) of several versions of one header at once.

    ``versions`` (1..max_versions() distinct values) replace the header's
    version field in turn. The first hash's message schedule depends only on
    the header tail and the nonce, so the versions share it (what BIP 310
    version rolling allows; about 470 of 2857 vector operations per hash in
    the AVX-512 code, 12-15% faster per hash with 4 to 8 versions; the first hash's
    SHA256MSG1/MSG2 work in the SHA-NI code). Returns ((nonce, version) pairs ascending by nonce, then
    by position in ``versions``; next_nonce), where next_nonce < start+count
    means aborted and every version of every nonce below it was scanned.
    """
    header, target_le = _check_scan_args(header, start, count, target)
    if isinstance(versions, (str, bytes)) or not hasattr(versions, "__iter__"):
        raise TypeError(f"versions must be a list of ints, not {type(versions).__name__}")
    versions = list(versions)
    for v in versions:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"versions must be ints, not {type(v).__name__}")
        if not 0 <= v < _MAX_NONCE:
            raise ValueError(f"version {v} is not a 32-bit unsigned value")
    if len(set(versions)) != len(versions):
        raise ValueError("versions must be distinct (a repeated version hashes the same header twice)")
    lib = _need_lib()
    i = _impl_index(impl)
    limit = lib.miner_impl_versions(i)
    if limit == 0:
        raise CoreError(f"core implementation {_all_names()[i]!r} cannot scan several versions at once")
    if not 1 <= len(versions) <= limit:
        raise ValueError(f"scan_versions takes 1 to {limit} versions, got {len(versions)}")
    out = _ffi.new(f"uint32_t[{2 * _OUT_CAP}]")
    vers = _ffi.new(f"uint32_t[{len(versions)}]", versions)
    abort_ptr = abort._cell if abort is not None else _ffi.NULL

    def call(pos: int, remaining: int, nxt) -> list[tuple[int, int]]:
        n = lib.miner_scan_versions(i, header, vers, len(versions), pos, remaining, target_le, out, _OUT_CAP,
                                    nxt, abort_ptr)
        if n < 0:
            raise CoreError("core rejected the multi-version scan")
        return [(out[2 * k], versions[out[2 * k + 1]]) for k in range(n)]
    return _drive(call, start, count, abort)
