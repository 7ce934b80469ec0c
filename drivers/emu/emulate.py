"""`miner emulate`: run an emulated board on a pseudo-terminal or a TCP port.

    miner emulate icarus                         # prints /dev/pts/N
    miner emulate bm1370 --chips 4 --tcp 4000    # prints socket://127.0.0.1:4000
    miner emulate bm1370 --diff 0.001 --fault wrong-nonce=10

It prints the --device spec to give the miner, then serves until Ctrl-C (or --duration).
"""
from __future__ import annotations

import argparse
import json
import logging
import time

from miner.errors import ConfigError

log = logging.getLogger(__name__)



def models() -> list[str]:
    """What `miner emulate` can emulate: every record of the chip table (miner.drivers.chips.CHIPS)."""
    from miner.drivers.chips import CHIPS
    return list(CHIPS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("emulate_model", metavar="MODEL", choices=models(),
                        help="board to emulate: " + ", ".join(models()))
    parser.add_argument("--chips", dest="emulate_chips", type=int, default=1, metavar="N",
                        help="BM13xx chips in the chain (default 1)")
    parser.add_argument("--hashrate", dest="emulate_hashrate", metavar="RATE",
                        help="pretended hashrate, SI suffixes allowed (1.2T, 336M); default: the model's "
                             "(BM13xx: chips x small cores x the clock the host programs)")
    parser.add_argument("--diff", dest="emulate_diff", type=float, metavar="D",
                        help="test mode: report nonces at difficulty D (may be below 1, e.g. 0.001) instead of "
                             "the ticket mask / the Icarus difficulty 1; give the miner the same ',diff=D'")
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
    device = build_device(args.emulate_model, args.emulate_chips, rate, args.emulate_diff, args.emulate_fault)
    server = serve(device, args.emulate_tcp)
    where = getattr(server, "path", None) or server.url
    extra = f",diff={args.emulate_diff:g}" if args.emulate_diff is not None else ""
    from miner.drivers.chips import ChipFacts, facts_for
    if isinstance(facts_for(args.emulate_model), ChipFacts) and args.emulate_chips > 1:
        extra += f",chips={args.emulate_chips}"
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
