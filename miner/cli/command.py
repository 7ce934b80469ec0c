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
import difflib
import importlib
import logging
import sys
import tomllib
from typing import Any, Callable

from miner import __version__
from miner.cli import options
from miner.cli.options import positive_int, positive_seconds, status_seconds
from miner.cli.mine import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, cmd_mine
from miner.errors import BackendUnavailable, ConfigError, MinerError
from miner.fleet import wiring

log = logging.getLogger("miner")

# Subcommands living in other modules: name -> (module, help). Each module has
# add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("miner.cli.bench", "measure hashes per second of every core implementation"),
    "emulate": ("miner.drivers.emu.emulate", "run an emulated ASIC board on a pseudo-terminal or TCP port"),
    "profit": ("miner.fleet.profit", "expected BTC per day, revenue, energy cost and margin"),
    "pool-check": ("miner.cli.pool_check", "connect to a pool and show its first job"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not a usage dump, and names a mistyped flag."""

    argv: list[str] = []                              # what parse_args() was given, for error()
    root: "argparse.ArgumentParser | None" = None      # the main parser: mistyped flags are looked up from it

    def error(self, message: str):  # noqa: D401 - argparse's hook
        unknown = self.unknown_flag()
        if unknown is not None:
            flag, close = unknown
            hint = f"; did you mean '{close}'?" if close else ""
            raise ConfigError(f"unknown flag '{flag}'{hint} (see '{self.prog} --help')")
        raise ConfigError(f"{message} (see '{self.prog} --help')")

    def unknown_flag(self) -> tuple[str, str | None] | None:
        """The first flag in argv this parser (or the subcommand it reached) does not know, and the
        known flag closest to it. argparse itself would report the value after a mistyped flag as
        an invalid COMMAND."""
        parser: argparse.ArgumentParser = self.root or self
        for token in self.argv:
            sub = _subparser(parser, token)
            if sub is not None:
                parser = sub
                continue
            if not token.startswith("-") or token == "-" or token == "--" or _is_number(token):
                continue
            flag = token.split("=", 1)[0]
            known = list(parser._option_string_actions)
            if flag in known or (len(flag) > 2 and not flag.startswith("--") and flag[:2] in known):
                continue  # -t4 style
            close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], n=1, cutoff=0.6)
            return flag, (close[0] if close else None)
        return None


def _subparser(parser: argparse.ArgumentParser, token: str) -> argparse.ArgumentParser | None:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction) and token in action.choices:
            return action.choices[token]
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="miner", description="SHA-256d Bitcoin miner: CPU, OpenCL/CUDA GPUs and USB/serial ASICs.",
                epilog="Exit codes: 0 normal stop, 1 runtime failure, 2 usage or configuration error, "
                       "3 no pool reachable at start.")
    p.add_argument("-V", "--version", action="version", version=f"miner {__version__}")
    p.add_argument("-c", "--config", metavar="FILE.toml", help="read settings from a TOML file (flags override it)")
    options.add_pool_arguments(p)
    g = p.add_argument_group("devices")
    options.add_device_arguments(g)
    g.add_argument("--hw-error-limit", type=positive_int, default=20, metavar="N",
                   help="disable a device after N hardware errors when they outnumber its good nonces (default 20)")
    g = p.add_argument_group("run")
    g.add_argument("--benchmark", action="store_true", help="mine offline on an embedded job; no pool needed")
    g.add_argument("--time-limit", type=positive_seconds, metavar="SECONDS", help="stop after this many seconds")
    g.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    g.add_argument("--quiet", action="store_true", help="no status display; warnings and errors only")
    g.add_argument("--log-file", metavar="FILE", help="also write the log to FILE")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default info)")
    g.add_argument("--status-interval", type=status_seconds, default=10.0, metavar="SECONDS",
                   help="seconds between status lines without a terminal (default 10)")
    g.add_argument("--retry-pools", action="store_true",
                   help="when no pool answers at start, keep retrying with back-off instead of exiting 3 "
                        "(for a miner under a supervisor)")
    wiring.add_arguments(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        mod = importlib.import_module(module)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    sp = sub.add_parser("devices", help="list everything detected: CPU cores, OpenCL, CUDA, USB/serial ASICs")
    sp.set_defaults(_run=cmd_devices)
    sp = sub.add_parser("selftest", help="known-answer checks of every backend present")
    sp.set_defaults(_run=cmd_selftest)
    return p


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
    _Parser.argv, _Parser.root = list(argv), parser
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
        if action.type is None and not isinstance(v, str):
            raise ConfigError(f"config file {path}: '{key}' must be a string, got {_toml_type(v)} {v!r}")
        if action.type is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
            raise ConfigError(f"config file {path}: '{key}' must be a number, got {_toml_type(v)} {v!r}")
        if action.type is not None and isinstance(v, (str, int, float)):
            try:
                v = action.type(v if isinstance(v, str) else str(v)) if action.type is not float else float(v)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise ConfigError(f"config file {path}: bad value {v!r} for '{key}': {exc}") from exc
        if action.choices is not None and v not in action.choices:
            raise ConfigError(f"config file {path}: '{key}' must be one of {', '.join(map(str, action.choices))}")
        return v

    return [one(v) for v in value] if append else one(value)


def _toml_type(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return f"a {type(v).__name__}"


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
