"""The `miner` command.

    miner -o stratum+tcp://pool:3333 -u WORKER -p PASS [-t N] [--backend cpu,opencl] [--device SPEC]
    miner --benchmark [--time-limit 60]      offline mining on an embedded job
    miner bench | devices | selftest | emulate | profit

Every main flag has a TOML key in -c FILE.toml equal to its long name (dashes or
underscores); flags given on the command line override the file.

Exit codes: 0 stopped normally (signal, --time-limit, API quit); 1 runtime
failure (every device failed, internal error); 2 bad usage or configuration;
3 no pool could be reached at start.
"""
from __future__ import annotations

import argparse
import asyncio
import difflib
import importlib
import logging
import os
import signal
import sys
import tomllib
from typing import Any, Callable

from miner import __version__
from miner.backends import gpu_common
from miner.errors import BackendUnavailable, ConfigError, MinerError

log = logging.getLogger("miner")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NO_POOL = 0, 1, 2, 3

NO_POOL_HELP = (
    "miner: no pool given. Point it at one with  miner -o stratum+tcp://HOST:PORT -u WORKER -p PASSWORD\n"
    "       or mine offline on an embedded job:   miner --benchmark --time-limit 30\n"
    "       or measure the hash core:              miner bench"
)

# Subcommands living in other modules: name -> (module, help). Each module has
# add_arguments(parser) and run(args) -> int. Imported only when present.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("miner.cli.bench", "measure hashes per second of every core implementation"),
    "emulate": ("miner.drivers.emu.emulate", "run an emulated ASIC board on a pseudo-terminal or TCP port"),
    "profit": ("miner.fleet.profit", "expected BTC per day, revenue, energy cost and margin"),
    "pool-check": ("miner.cli.pool_check", "connect to a pool and show its first job"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise ConfigError(f"{message} (see '{self.prog} --help')")


def _hashrate_or_float(text: str) -> float:
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="miner", description="SHA-256d Bitcoin miner: CPU, OpenCL/CUDA GPUs and USB/serial ASICs.",
                epilog="Exit codes: 0 normal stop, 1 runtime failure, 2 usage or configuration error, "
                       "3 no pool reachable at start.")
    p.add_argument("-V", "--version", action="version", version=f"miner {__version__}")
    p.add_argument("-c", "--config", metavar="FILE.toml", help="read settings from a TOML file (flags override it)")
    g = p.add_argument_group("pools")
    g.add_argument("-o", "--url", action="append", metavar="URL",
                   help="pool URL stratum+tcp://HOST:PORT or stratum+ssl://...; repeat for failover, in priority order")
    g.add_argument("-u", "--user", action="append", metavar="USER", help="worker name (one per -o, or one for all)")
    g.add_argument("-p", "--pass", dest="password", action="append", metavar="PASS",
                   help="worker password (one per -o, or one for all)")
    g.add_argument("--cert", metavar="FILE", help="CA certificate file to verify a TLS pool with a private CA")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (warns; not recommended)")
    g.add_argument("--no-version-rolling", dest="version_rolling", action="store_false", default=True,
                   help="do not ask the pool for BIP 310 version rolling")
    g.add_argument("--suggest-diff", type=float, metavar="D", help="send mining.suggest_difficulty D after authorize")
    g.add_argument("--extranonce-subscribe", action="store_true", help="send mining.extranonce.subscribe")
    g = p.add_argument_group("devices")
    g.add_argument("--backend", action="append", metavar="NAME",
                   help="cpu, opencl, cuda, asic or a plugin; comma-separated or repeated (default: cpu)")
    g.add_argument("--device", action="append", metavar="SPEC",
                   help="pick devices: cpu:THREADS, opencl:PLATFORM:DEVICE, cuda:N, icarus:PORT, bm1370:PORT "
                        "(see 'miner devices')")
    g.add_argument("-t", "--threads", type=int, metavar="N", help="CPU mining threads (default: all cores)")
    g.add_argument("--core", metavar="IMPL", help="force a CPU core implementation: portable, avx2, shani")
    gpu_common.add_arguments(g)  # pure Python; imports no GPU library
    g.add_argument("--hw-error-limit", type=int, default=20, metavar="N",
                   help="disable a device after N hardware errors when they outnumber its good nonces (default 20)")
    g = p.add_argument_group("run")
    g.add_argument("--benchmark", action="store_true", help="mine offline on an embedded job; no pool needed")
    g.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop after this many seconds")
    g.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    g.add_argument("--quiet", action="store_true", help="no status display; warnings and errors only")
    g.add_argument("--log-file", metavar="FILE", help="also write the log to FILE")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default info)")
    g.add_argument("--status-interval", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between status lines without a terminal (default 10)")
    fleet = _optional_module("miner.fleet.wiring")
    if fleet is not None:
        fleet.add_arguments(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = _optional_module(module)
        if mod is not None:
            sp = sub.add_parser(name, help=help_text, description=help_text)
            mod.add_arguments(sp)
            sp.set_defaults(_run=mod.run)
    sp = sub.add_parser("devices", help="list everything detected: CPU cores, OpenCL, CUDA, USB/serial ASICs")
    sp.set_defaults(_run=cmd_devices)
    sp = sub.add_parser("selftest", help="known-answer checks of every backend present")
    sp.set_defaults(_run=cmd_selftest)
    return p


def _optional_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name and name.startswith(exc.name):  # the module itself is absent
            return None
        raise


# ----------------------------------------------------------------- config file
def load_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse argv with the config file under it: defaults < -c FILE < command line."""
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions
               if a.dest not in ("help", "version", "config", "command") and a.option_strings}
    real_defaults = {dest: a.default for dest, a in actions.items()}
    for a in actions.values():
        a.default = argparse.SUPPRESS
    ns = parser.parse_args(argv)
    given = vars(ns)
    merged: dict[str, Any] = dict(real_defaults)
    if getattr(ns, "config", None):
        merged.update(_config_values(ns.config, actions))
    merged.update({k: v for k, v in given.items() if k in actions})
    for k, v in merged.items():
        setattr(ns, k, v)
    if not hasattr(ns, "command"):
        ns.command = None
    return ns


def _config_values(path: str, actions: dict[str, argparse.Action]) -> dict[str, Any]:
    out = {}
    for key, value in load_config(path).items():
        dest = key.replace("-", "_")
        if dest == "pass":
            dest = "password"
        action = actions.get(dest)
        if action is None:
            close = difflib.get_close_matches(dest, list(actions), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"config file {path}: unknown key '{key}'{hint}")
        out[dest] = _convert(path, key, action, value)
    return out


def _convert(path: str, key: str, action: argparse.Action, value: Any) -> Any:
    append = isinstance(action, argparse._AppendAction)
    if append and not isinstance(value, list):
        value = [value]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"config file {path}: '{key}' must be true or false")
        return value

    def one(v: Any) -> Any:
        if action.type is not None and isinstance(v, (str, int, float)):
            try:
                v = action.type(v if isinstance(v, str) else str(v)) if action.type is not float else float(v)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise ConfigError(f"config file {path}: bad value {v!r} for '{key}': {exc}") from exc
        if action.choices is not None and v not in action.choices:
            raise ConfigError(f"config file {path}: '{key}' must be one of {', '.join(map(str, action.choices))}")
        return v

    return [one(v) for v in value] if append else one(value)


# ----------------------------------------------------------------- logging
class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (the live panel swaps it for a proxy)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(args: argparse.Namespace) -> None:
    level = getattr(logging, str(args.log_level).upper())
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(min(level, logging.INFO) if args.log_file else level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    h = _StderrHandler()
    h.setLevel(logging.WARNING if args.quiet else level)
    h.setFormatter(fmt)
    root.addHandler(h)
    if args.log_file:
        try:
            fh = logging.FileHandler(args.log_file)
        except OSError as exc:
            raise ConfigError(f"cannot open log file {args.log_file}: {exc.strerror}") from exc
        fh.setLevel(level)
        fh.setFormatter(fmt)
        root.addHandler(fh)


# ----------------------------------------------------------------- subcommands
def cmd_devices(args: argparse.Namespace) -> int:
    from miner.engine.backend import backend_names, load_backend
    for name in backend_names():
        try:
            backend = load_backend(name)
            found = backend.detect()
        except BackendUnavailable as exc:
            print(f"{name}: {exc}")
            continue
        except Exception as exc:  # one broken backend must not hide the others
            log.debug("detection in %s failed", name, exc_info=True)
            print(f"{name}: detection failed: {exc}")
            continue
        if not found:
            print(f"{name}: none found")
        for d in found:
            print(f"{name}: {d.spec:<28} {d.description}")
    return EXIT_OK


def cmd_selftest(args: argparse.Namespace) -> int:
    from miner.engine.backend import backend_names, load_backend
    failed = 0
    for name in backend_names():
        try:
            results = load_backend(name).selftest_all()
        except BackendUnavailable as exc:
            print(f"{name}: skipped: {exc}")
            continue
        except Exception as exc:  # reported per backend; the others still run
            log.debug("selftest of %s failed", name, exc_info=True)
            print(f"{name}: FAIL: {exc}")
            failed += 1
            continue
        if not results:
            print(f"{name}: no devices present")
        for dev, ok, detail in results:
            print(f"{name}: {dev}: {'PASS' if ok else 'FAIL'} {'' if ok else detail}".rstrip())
            failed += not ok
    return EXIT_FAILURE if failed else EXIT_OK


# ----------------------------------------------------------------- mining
def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def create_devices(args: argparse.Namespace) -> list:
    from miner.engine.backend import backend_names, load_backend
    backends = _split_list(args.backend)
    specs: dict[str, list[str]] = {}
    known = set(backend_names())
    for spec in args.device or []:
        prefix = spec.split(":", 1)[0]
        name = prefix if prefix in known else "asic"  # driver names (icarus, bm1370, ...) belong to asic
        specs.setdefault(name, []).append(spec)
        if name not in backends:
            backends.append(name)
    if not backends:
        backends = ["cpu"]
    options = vars(args)  # each backend reads its own keys (threads, core, gpu_kernel_ms, ...)
    devices = []
    for name in dict.fromkeys(backends):
        backend = load_backend(name)
        made = backend.create(specs.get(name, []), options)
        if not made:
            raise ConfigError(f"backend {name}: no device found (see 'miner devices')")
        devices.extend(made)
    return devices


def build_pools(args: argparse.Namespace):
    from miner.stratum import PoolConfig
    urls = args.url or []
    users = args.user or []
    passwords = args.password or []
    pools = []
    for i, url in enumerate(urls):
        user = users[i] if i < len(users) else (users[-1] if users else "")
        password = passwords[i] if i < len(passwords) else (passwords[-1] if passwords else "x")
        if not user:
            raise ConfigError(f"no worker name for {url}: add -u WORKER")
        pools.append(PoolConfig(url, user, password))
    return pools


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


async def _mine(args: argparse.Namespace, devices: list, pools: list) -> tuple[int, Any]:
    from miner.engine import Engine
    from miner.cli.status import JsonEvents, StatusReporter

    json_events = JsonEvents() if args.json else None
    engine_ref: list[Any] = []
    failed_pools: set[int] = set()
    pool_errors: dict[int, str] = {}
    alive_seen = asyncio.Event()

    def on_event(kind: str, data: dict) -> None:
        if kind == "pool":
            state = data.get("state") or data.get("event")
            if state in ("connected", "authorized", "alive"):
                alive_seen.set()
            elif state in ("failed", "disconnected") and data.get("pool") is not None:
                failed_pools.add(data["pool"])
                if data.get("reason"):
                    pool_errors[data["pool"]] = str(data["reason"])
        if json_events is not None:
            json_events(kind, data)

    manager = None
    if pools:
        from miner.stratum import PoolManager
        manager = PoolManager(pools, on_job=lambda job: engine_ref[0].on_job(job),
                              on_event=lambda kind, data: engine_ref[0].pool_event(kind, data),
                              agent=f"miner/{__version__}", version_rolling=args.version_rolling,
                              suggest_difficulty=args.suggest_diff, extranonce_subscribe=args.extranonce_subscribe,
                              cafile=args.cert, insecure=args.insecure)
    watts_for = None
    power = _optional_module("miner.fleet.power")
    if power is not None:  # the power flags are parsed once, here
        watts_for = power.watts_for([d.kind for d in devices], power.PowerConfig.from_args(args))
    engine = Engine(devices, manager, on_event=on_event, hw_error_limit=args.hw_error_limit,
                    watts_for=watts_for, benchmark_job=None if pools else benchmark_job())
    engine_ref.append(engine)

    loop = asyncio.get_running_loop()
    signals_seen = []

    def on_signal(signame: str) -> None:
        signals_seen.append(signame)
        if len(signals_seen) > 1:
            log.error("second %s: exiting now", signame)
            os._exit(EXIT_FAILURE)
        log.warning("%s received: stopping (submits in flight get up to 5 s)", signame)
        engine.stop(f"{signame} received")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):
            pass

    fleet_handle = None
    fleet = _optional_module("miner.fleet.wiring")
    if fleet is not None:
        fleet_handle = fleet.start(engine, args)
    reporter = StatusReporter(engine.snapshot, live=sys.stderr.isatty() and not args.json,
                              interval=args.status_interval, json_events=json_events, quiet=args.quiet)
    reporter.start()
    watcher = None
    if pools:
        async def watch_start() -> None:
            # An unreachable pool is a configuration problem at start: say so and stop,
            # once every configured pool has failed before any worked.
            while not alive_seen.is_set():
                if len(failed_pools) >= len(pools):
                    engine.exit_reason = "no pool reachable"
                    engine.stop("no pool reachable")
                    return
                await asyncio.sleep(0.2)
        watcher = asyncio.create_task(watch_start())
    try:
        await engine.run(args.time_limit)
    finally:
        if watcher is not None:
            watcher.cancel()
        reporter.close()
        if fleet_handle is not None:
            fleet_handle.close()
        if json_events is not None:  # a final report, so every --json run ends with the totals
            json_events.hashrate(engine.snapshot(), final=True)
    if engine.exit_reason == "no pool reachable":
        engine.pool_errors = pool_errors
        return EXIT_NO_POOL, engine
    if engine.exit_reason == "every device failed":
        return EXIT_FAILURE, engine
    return EXIT_OK, engine


def cmd_mine(args: argparse.Namespace) -> int:
    from miner.cli.status import print_summary
    if not args.url and not args.benchmark:
        print(NO_POOL_HELP, file=sys.stderr)
        return EXIT_USAGE
    pools = build_pools(args) if not args.benchmark else []
    devices = create_devices(args)
    log.info("miner %s: %d device(s): %s", __version__, len(devices), ", ".join(d.name for d in devices))
    code, engine = asyncio.run(_mine(args, devices, pools))
    snap = engine.snapshot()
    if code == EXIT_NO_POOL:  # nothing was mined: the reason is all the user needs
        errors = getattr(engine, "pool_errors", {})
        reasons = "; ".join(errors.get(p.id, p.url) for p in snap.pools)
        print(f"miner: error: cannot reach any pool ({reasons}); check the URL, port and network, "
              f"or try 'miner --benchmark' offline", file=sys.stderr)
        return code
    if code == EXIT_FAILURE and engine.exit_reason == "every device failed" and snap.hashrate["av"] == 0:
        failed = "; ".join(f"{name}: {why}" if why else name for name, why in engine.failed_devices())
        print(f"miner: error: no device could mine ({failed}); check --device against 'miner devices'",
              file=sys.stderr)
        return code
    if not args.quiet:
        print_summary(snap)
    if engine.exit_reason:
        log.info("stopped: %s", engine.exit_reason)
    if engine.restart_requested:
        os.execv(sys.executable, [sys.executable, "-m", "miner", *sys.argv[1:]])
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        setup_logging(args)
        run: Callable[[argparse.Namespace], int] = getattr(args, "_run", None) or cmd_mine
        return run(args)
    except ConfigError as exc:
        print(f"miner: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MinerError as exc:
        print(f"miner: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("miner: interrupted", file=sys.stderr)
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
