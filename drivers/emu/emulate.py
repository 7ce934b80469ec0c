"""`miner emulate`: run an emulated board on a pseudo-terminal or a TCP port.

    miner emulate icarus                         # prints /dev/pts/N
    miner emulate bm1370 --chips 4 --tcp 4000    # prints socket://127.0.0.1:4000
    miner emulate bm1370 --diff 0.001 --fault wrong-nonce=10

It prints the --device spec to give the miner, then serves until Ctrl-C (or --duration).

The emulators hash for real, on this machine's CPU: millions of hashes a second, not a chip's
trillions. At a real ticket difficulty (256 for a BM13xx chain, 1 for an Icarus stick) a nonce
would take hours, so without --diff the emulator measures its own hashing speed for a moment and
picks the test difficulty at which a nonce comes about every TEST_NONCE_INTERVAL_S seconds, and
the printed command carries it (",diff=D"), so it mines as printed.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time

from miner.errors import ConfigError
from miner.install import pip_install

log = logging.getLogger(__name__)

TEST_NONCE_INTERVAL_S = 0.5
GOLDEN_NONCE_POSITION = 0x000187A2    # where an Icarus stick's counter meets the golden nonce
DEFAULT_GOLDEN_TIMEOUT_S = 3.0        # the Icarus driver's wait for it


def measure_hashrate(model: str, seconds: float = 0.25) -> float:
    """Hashes per second this emulator's real hashing reaches here, measured the way it hashes."""
    from miner import core
    from miner.drivers.emu import midstate as MS
    from miner.sha256 import midstate
    from miner.drivers.emu.models import BM_SLICE, ICARUS_BATCH
    header = bytes(80)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if is_midstate(model):
            n = ICARUS_BATCH if model != "bm1397" else BM_SLICE
            MS.scan_midstate(midstate(header), header[64:76], range(done, done + n), 0)
        else:
            n = BM_SLICE
            core.scan(header, done, n, 0)
        done += n
    return done / (time.perf_counter() - t0)


def reachable_difficulty(rate: float, interval: float = TEST_NONCE_INTERVAL_S) -> float:
    """The 1-2-5 step at or below the difficulty whose nonces come every ``interval`` s at ``rate``."""
    exact = rate * interval / 2 ** 32
    decade = 10 ** math.floor(math.log10(exact))
    for step in (5, 2, 1):
        if step * decade <= exact:
            return float(f"{step * decade:.1g}")
    return float(f"{decade:.1g}")  # pragma: no cover - exact >= decade always


def require_numpy(model: str) -> None:
    """Midstate emulators hash with numpy; plain Python is ~100x slower and misses the driver's
    golden-nonce wait. Say what to install rather than start an emulator that cannot answer."""
    if not is_midstate(model):
        return
    from miner.drivers.emu import midstate as MS
    if MS._np is None:
        raise ConfigError(f"the {model} emulator needs numpy to hash fast enough: {pip_install('emulate')}")


def models() -> list[str]:
    """What `miner emulate` can emulate: every record of the chip table (miner.drivers.chips.CHIPS)."""
    from miner.drivers.chips import CHIPS
    return list(CHIPS)


def is_midstate(model: str) -> bool:
    """Given midstates by its host (the Icarus family, BM1397), so emulated by drivers/emu/midstate.py."""
    from miner.drivers.chips import ChipFacts, facts_for
    f = facts_for(model)
    return not isinstance(f, ChipFacts) or f.midstates > 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("emulate_model", metavar="MODEL", choices=models(),
                        help="board to emulate: " + ", ".join(models()))
    parser.add_argument("--chips", dest="emulate_chips", type=int, default=1, metavar="N",
                        help="BM13xx chips in the chain (default 1)")
    parser.add_argument("--hashrate", dest="emulate_hashrate", metavar="RATE",
                        help="pretended hashrate, SI suffixes allowed (1.2T, 336M); default: the model's "
                             "(BM13xx: chips x small cores x the clock the host programs)")
    parser.add_argument("--diff", dest="emulate_diff", type=float, metavar="D",
                        help="report nonces at difficulty D (may be below 1, e.g. 0.001); default: one this "
                             "machine's real hashing reaches about every 0.5 s. The printed command carries it")
    parser.add_argument("--tcp", dest="emulate_tcp", metavar="[HOST:]PORT",
                        help="serve on TCP (loopback unless a host is given) instead of a pseudo-terminal")
    parser.add_argument("--fault", dest="emulate_fault", action="append", metavar="KIND[=N]",
                        help="inject a fault: wrong-nonce, garbage, bad-crc, duplicate (every N-th reply), "
                             "silence, disconnect (once, after N replies); repeatable")
    parser.add_argument("--duration", dest="emulate_duration", type=float, metavar="SECONDS",
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--stats", dest="emulate_stats", action="store_true",
                        help="print emulator statistics as JSON on exit")


def build_device(model: str, chips: int = 1, hashrate: float | None = None, diff: float | None = None,
                 faults: list[str] | None = None):
    from miner.drivers.chips import IcarusFacts, facts_for
    from miner.drivers.emu import models as emulators
    from miner.drivers.emu.emulator import Faults
    facts = facts_for(model)
    emulator = getattr(emulators, facts.EMULATOR)
    f = Faults.parse(faults)
    if isinstance(facts, IcarusFacts):
        if "bad-crc" in f.every:
            raise ConfigError("fault bad-crc: the Icarus protocol has no CRC; use wrong-nonce or garbage")
        return emulator(facts, hashrate=hashrate, diff=1.0 if diff is None else diff, faults=f)
    if chips < 1 or chips > 128:
        raise ConfigError(f"--chips must be 1..128, got {chips}")
    return emulator(facts, chips, hashrate=hashrate, diff=diff, faults=f)


def serve(device, tcp: str | None):
    from miner.drivers.emu.emulator import PtyServer, TcpServer
    if tcp:
        host, _, port = tcp.rpartition(":")
        try:
            return TcpServer(device, host or "127.0.0.1", int(port))
        except ValueError:
            raise ConfigError(f"--tcp {tcp!r}: expected [HOST:]PORT") from None
        except OSError as exc:
            raise ConfigError(f"--tcp {tcp}: cannot listen: {exc}") from exc
    return PtyServer(device)


def run(args: argparse.Namespace) -> int:
    from miner.units import parse_si
    try:
        rate = parse_si(args.emulate_hashrate) if args.emulate_hashrate else None
    except ValueError:
        raise ConfigError(f"--hashrate {args.emulate_hashrate!r}: expected a number with an optional "
                          "k/M/G/T/P/E suffix") from None
    if args.emulate_diff is not None and not args.emulate_diff > 0:
        raise ConfigError("--diff must be positive")
    model = args.emulate_model
    require_numpy(model)
    diff, real_rate = args.emulate_diff, None
    if diff is None:
        real_rate = measure_hashrate(model)
        diff = reachable_difficulty(real_rate)
        log.info("emulated %s hashes at about %.3g MH/s here: test difficulty %g (a nonce every ~%.1f s)",
                 model, real_rate / 1e6, diff, diff * 2 ** 32 / real_rate)
    device = build_device(model, args.emulate_chips, rate, diff, args.emulate_fault)
    server = serve(device, args.emulate_tcp)
    where = getattr(server, "path", None) or server.url
    extra = f",diff={diff:g}"
    from miner.drivers.chips import ChipFacts, facts_for
    if isinstance(facts_for(model), ChipFacts) and args.emulate_chips > 1:
        extra += f",chips={args.emulate_chips}"
    if is_midstate(model) and not isinstance(facts_for(model), ChipFacts) and real_rate is not None:
        # The driver waits DEFAULT_GOLDEN_TIMEOUT_S for the golden nonce; give a slow machine longer.
        need = 10 * GOLDEN_NONCE_POSITION / real_rate
        if need > DEFAULT_GOLDEN_TIMEOUT_S:
            extra += f",golden_timeout={math.ceil(need)}"
    print(f"emulated {args.emulate_model} on {where}", flush=True)
    print(f"mine with: miner --device {args.emulate_model}:{where}{extra} -o POOL -u USER", flush=True)
    deadline = time.monotonic() + args.emulate_duration if args.emulate_duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    if args.emulate_stats:
        print(json.dumps(device.stats()), flush=True)
    return 0
