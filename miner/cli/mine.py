"""Mining from the command line: devices from the flags, the engine and its pools, the run, the exit code.

    code = cmd_mine(args)

Exit codes come from the engine's ExitReason (EXIT_CODES); no message text is compared.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Callable

from miner import __version__
from miner.cli.options import PoolOptions, device_options
from miner.engine.backend import DeviceOptions
from miner.engine.engine import Engine, ExitReason
from miner.errors import BackendUnavailable

log = logging.getLogger("miner")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NO_POOL = 0, 1, 2, 3
EXIT_CODES = {ExitReason.DEVICES_FAILED: EXIT_FAILURE, ExitReason.NO_POOL: EXIT_NO_POOL}

NO_POOL_HELP = (
    "miner: no pool given. Point it at one with  miner -o stratum+tcp://HOST:PORT -u WORKER -p PASSWORD\n"
    "       or mine offline on an embedded job:   miner --benchmark --time-limit 30\n"
    "       or measure the hash core:              miner bench"
)
KEY_PAUSE = "paused from the keyboard"


# ----------------------------------------------------------------- devices
def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def create_devices(backends: list[str] | None, device_specs: list[str] | None, options: DeviceOptions) -> list:
    """Devices for --backend and --device.

    A device named with --device must open its backend: anything else is an error. A backend only
    named (--backend, or the default) that cannot load or finds nothing is one warning line, with
    the install command, while the others mine; it is an error only when nothing is left.
    """
    from miner.engine.backend import backend_names, load_backend
    named = _split_list(backends)
    specs: dict[str, list[str]] = {}
    known = set(backend_names())
    for spec in device_specs or []:
        prefix = spec.split(":", 1)[0]
        name = prefix if prefix in known else "asic"  # driver names (icarus, bm1370, ...) belong to asic
        specs.setdefault(name, []).append(spec)
    order = list(dict.fromkeys(named + list(specs))) or ["cpu"]
    devices, skipped = [], []
    for name in order:
        if name in specs:  # explicit devices: errors propagate
            devices.extend(load_backend(name).create(specs[name], options))
            continue
        try:
            made = load_backend(name).create([], options)
            if not made:
                raise BackendUnavailable(f"backend {name}: no device found (see 'miner devices')")
        except BackendUnavailable as exc:
            skipped.append(exc)
            if len(order) > 1:
                log.warning("%s; mining without it", exc)
            continue
        devices.extend(made)
    if not devices:
        if len(skipped) == 1:
            raise skipped[0]
        raise BackendUnavailable("no device to mine with: " + "; ".join(map(str, skipped)))
    return devices


def benchmark_job():
    """The embedded offline job: the real testnet job of the accepted share in the Stratum documentation."""
    from miner.engine.job import Job
    from miner.stratum.codec import swap_words
    return Job(
        "bf", swap_words(bytes.fromhex("4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000")),
        bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862"
                      "062f503253482f04b8864e5008"),
        bytes.fromhex("072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed9"
                      "88ac00000000"),
        (), 0x00000002, 0x1C2AC4AF, 0x504E86B9, True, bytes.fromhex("08000002"), 4, 1.0)


def _watts_for(devices: list, args: argparse.Namespace) -> Callable | None:
    from miner.fleet import power
    # The power flags are parsed once, here, not on every snapshot.
    return power.watts_for([d.kind for d in devices], power.PowerConfig.from_args(args))


# ----------------------------------------------------------------- pools at start
@dataclass
class StartWatch:
    """Watches pool events until one pool works. Without retry, every pool failing first stops the
    engine with ExitReason.NO_POOL; with retry (--retry-pools) the pool manager keeps trying with its
    back-off and this only says so, once."""
    engine: Engine
    pool_count: int
    retry: bool
    alive: bool = False
    failed: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    _warned: bool = False

    def __call__(self, kind: str, data: dict) -> None:
        if kind != "pool" or self.alive:
            return
        state = data.get("state") or data.get("event")
        if state in ("connected", "authorized", "alive", "switched"):
            self.alive = True
            return
        if state in ("failed", "disconnected") and data.get("pool") is not None:
            self.failed.add(data["pool"])
            if data.get("reason"):
                self.errors[data["pool"]] = str(data["reason"])
            if len(self.failed) >= self.pool_count:
                if not self.retry:
                    self.engine.stop(ExitReason.NO_POOL.value, ExitReason.NO_POOL)
                elif not self._warned:
                    self._warned = True
                    log.warning("no pool reachable yet (%s); retrying with back-off (--retry-pools)",
                                self.reasons())

    def reasons(self) -> str:
        return "; ".join(self.errors.get(i, "?") for i in sorted(self.failed))


# ----------------------------------------------------------------- the run
def _on_signals(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    def on_signal(signame: str) -> None:
        seen.append(signame)
        if len(seen) > 1:
            from miner.cli.status import restore_terminal
            log.error("second %s: exiting now", signame)
            restore_terminal()
            os._exit(EXIT_FAILURE)
        log.warning("%s received: stopping (submits in flight get up to 5 s)", signame)
        engine.stop(f"{signame} received")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):
            pass


def _keys(engine: Engine) -> dict[str, Callable[[], None]]:
    """cgminer-style keys on the live panel: q quits, p pauses or resumes."""
    def toggle() -> None:
        if KEY_PAUSE in engine.pause_reasons:
            engine.resume(KEY_PAUSE)
        else:
            engine.pause(KEY_PAUSE)
    return {"q": lambda: engine.stop("q pressed"), "p": toggle}


async def run_engine(args: argparse.Namespace, devices: list, pools: PoolOptions | None,
                     retry_pools: bool = False) -> tuple[Engine, StartWatch | None]:
    from miner.cli.status import JsonEvents, StatusReporter
    from miner.fleet import wiring

    json_events = JsonEvents() if args.json else None
    sinks: list[Callable[[str, dict], None]] = [json_events] if json_events else []

    def on_event(kind: str, data: dict) -> None:
        for sink in sinks:
            sink(kind, data)

    engine = Engine(devices, on_event=on_event,
                    hw_error_limit=args.hw_error_limit, watts_for=_watts_for(devices, args),
                    benchmark_job=None if pools else benchmark_job())
    watch = None
    if pools is not None:
        from miner.stratum import PoolManager
        engine.attach_pools(PoolManager(list(pools.pools), on_job=engine.on_job, on_event=engine.pool_event,
                                        agent=f"miner/{__version__}", **pools.manager_kwargs()))
        watch = StartWatch(engine, len(pools.pools), retry_pools)
        sinks.insert(0, watch)
    _on_signals(engine)
    fleet_handle = wiring.start(engine, args)
    reporter = StatusReporter(engine.snapshot, live=sys.stderr.isatty() and not args.json,
                              interval=args.status_interval, json_events=json_events, quiet=args.quiet,
                              keys=_keys(engine))
    reporter.start()
    try:
        await engine.run(args.time_limit)
    finally:
        reporter.close()
        fleet_handle.close()
        if json_events is not None:  # a final report, so every --json run ends with the totals
            json_events.hashrate(engine.snapshot(), final=True)
    return engine, watch


def cmd_mine(args: argparse.Namespace) -> int:
    from miner.cli.status import print_summary
    if not args.url and not args.benchmark:
        print(NO_POOL_HELP, file=sys.stderr)
        return EXIT_USAGE
    pools = PoolOptions.from_args(args) if not args.benchmark else None
    devices = create_devices(args.backend, args.device, device_options(args))
    log.info("miner %s: %d device(s): %s", __version__, len(devices), ", ".join(d.name for d in devices))
    engine, watch = asyncio.run(run_engine(args, devices, pools, bool(getattr(args, "retry_pools", False))))
    code = EXIT_CODES.get(engine.exit_reason, EXIT_OK)
    snap = engine.snapshot()
    if engine.exit_reason is ExitReason.NO_POOL:  # nothing was mined: the reason is all the user needs
        print(f"miner: error: cannot reach any pool ({watch.reasons() if watch else '?'}); check the URL, "
              f"port and network, or try 'miner --benchmark' offline (--retry-pools keeps trying)", file=sys.stderr)
        return code
    if engine.exit_reason is ExitReason.DEVICES_FAILED and snap.hashrate["av"] == 0:
        failed = "; ".join(f"{name}: {why}" if why else name for name, why in engine.failed_devices())
        print(f"miner: error: no device could mine ({failed}); check --device against 'miner devices'",
              file=sys.stderr)
        return code
    if not args.quiet:
        print_summary(snap)
    if engine.exit_detail:
        log.info("stopped: %s", engine.exit_detail)
    if engine.restart_requested:
        os.execv(sys.executable, [sys.executable, "-m", "miner", *sys.argv[1:]])
    return code


