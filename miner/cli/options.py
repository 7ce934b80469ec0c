"""The command's flags that more than one command shares, and the dataclasses they are built into once.

- add_pool_arguments(): -o/-u/-p, TLS, version rolling and the other pool flags, for mining and
  `pool-check` alike (one definition, one set of dests, which are also the TOML keys).
- add_device_arguments(): --backend, --device, threads, core and the GPU flags.
- PoolOptions.from_args() and device_options() turn parsed flags into what PoolManager and the
  backends take; nothing downstream reads the argparse namespace.

-o/-u/-p repeat: the i-th -u/-p belongs to the i-th -o, and a missing one repeats the last given
(so one -u serves several pools).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from miner.engine.backend import DeviceOptions
from miner.errors import ConfigError
from miner.stratum.config import PoolConfig
from miner.units import flag_number

DEFAULT_VERSION_MASK = 0x1FFFE000



positive_int = flag_number(int, 1)   # -t, --hw-error-limit
positive_seconds = flag_number(low=0, above=True)  # --time-limit
status_seconds = flag_number(low=0.1)
positive_float = flag_number(low=0, above=True)


def version_mask(text: str) -> int:
    try:
        v = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"version mask must be hex like 1fffe000, got {text!r}") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("version mask must fit in 32 bits")
    return v


def add_pool_arguments(parser: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """The pool flags. suppress_defaults: leave unset flags out of the namespace (a subcommand's copy of
    flags the main parser also has, so its defaults do not hide values from the config file)."""
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress_defaults else value

    g = parser.add_argument_group("pools")
    g.add_argument("-o", "--url", dest="url", action="append", default=d(None), metavar="URL",
                   help="pool URL stratum+tcp://HOST:PORT, stratum+ssl:// or stratum+tls://; repeat for "
                        "failover, in priority order")
    g.add_argument("-u", "--user", dest="user", action="append", default=d(None), metavar="USER",
                   help="worker name (one per -o; the last one repeats)")
    g.add_argument("-p", "--pass", dest="password", action="append", default=d(None), metavar="PASS",
                   help="worker password (one per -o; the last one repeats; default x); never logged")
    g.add_argument("--cert", dest="cert", default=d(None), metavar="FILE",
                   help="CA certificate file (PEM) to verify a TLS pool signed by a private CA")
    g.add_argument("--insecure", dest="insecure", action="store_true", default=d(False),
                   help="do not verify TLS certificates (warns; not recommended)")
    g.add_argument("--no-version-rolling", dest="version_rolling", action="store_false", default=d(True),
                   help="do not ask the pool for BIP 310 version rolling")
    g.add_argument("--version-mask", dest="version_mask", type=version_mask, default=d(DEFAULT_VERSION_MASK),
                   metavar="HEX", help=f"version bits offered for rolling (default {DEFAULT_VERSION_MASK:08x})")
    g.add_argument("--suggest-diff", dest="suggest_diff", type=positive_float, default=d(None), metavar="D",
                   help="send mining.suggest_difficulty D after authorizing")
    g.add_argument("--extranonce-subscribe", dest="extranonce_subscribe", action="store_true", default=d(False),
                   help="send mining.extranonce.subscribe (for pools and proxies that change extranonce)")


def add_device_arguments(g) -> None:
    """Device selection and the per-backend settings that become DeviceOptions."""
    g.add_argument("--backend", action="append", metavar="NAME",
                   help="cpu, opencl, cuda, asic or a plugin; comma-separated or repeated (default: cpu)")
    g.add_argument("--device", action="append", metavar="SPEC",
                   help="pick devices: cpu:THREADS, opencl:PLATFORM:DEVICE, cuda:N, icarus:PORT, bm1370:PORT "
                        "(see 'miner devices')")
    g.add_argument("-t", "--threads", type=positive_int, metavar="N", help="CPU mining threads (default: all cores)")
    g.add_argument("--core", metavar="IMPL", help="force a CPU core implementation: portable, avx2, shani")
    g.add_argument("--gpu-kernel-ms", dest="gpu_kernel_ms", type=float, default=None, metavar="MS",
                   help="target kernel time per GPU launch; the launch size auto-tunes toward it "
                        "(default 30, range 1-1000)")
    g.add_argument("--gpu-launch", dest="gpu_launch", type=int, default=None, metavar="NONCES",
                   help="fixed GPU launch size in nonces (4096 .. 2^31), disabling auto-tuning")
    g.add_argument("--cuda-runtime", dest="cuda_runtime", choices=("cuda-python", "pycuda"), default=None,
                   help="CUDA runtime binding (default cuda-python; pycuda when installed)")


def device_options(args: argparse.Namespace) -> DeviceOptions:
    return DeviceOptions(threads=args.threads, core=args.core, gpu_kernel_ms=args.gpu_kernel_ms,
                         gpu_launch=args.gpu_launch, cuda_runtime=args.cuda_runtime)


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


@dataclass(frozen=True)
class PoolOptions:
    """The pools in priority order and how to talk to them."""
    pools: tuple[PoolConfig, ...]
    version_rolling: bool = True
    version_mask: int = DEFAULT_VERSION_MASK
    suggest_difficulty: float | None = None
    extranonce_subscribe: bool = False
    cafile: str | None = None
    insecure: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "PoolOptions":
        """ConfigError (one line, with the fix) for no pool, no worker or a bad URL."""
        urls = _as_list(getattr(args, "url", None))
        if not urls:
            raise ConfigError("no pool given; use -o stratum+tcp://HOST:PORT -u WORKER")
        users = _as_list(getattr(args, "user", None))
        passwords = _as_list(getattr(args, "password", None))
        if not users or not all(users):
            raise ConfigError(f"no worker name for {urls[0]}: add -u WORKER")
        pools = tuple(PoolConfig(url, users[min(i, len(users) - 1)],
                                 passwords[min(i, len(passwords) - 1)] if passwords else "x")
                      for i, url in enumerate(urls))
        return cls(pools, version_rolling=getattr(args, "version_rolling", True),
                   version_mask=getattr(args, "version_mask", DEFAULT_VERSION_MASK),
                   suggest_difficulty=getattr(args, "suggest_diff", None),
                   extranonce_subscribe=getattr(args, "extranonce_subscribe", False),
                   cafile=getattr(args, "cert", None), insecure=getattr(args, "insecure", False))

    def manager_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for PoolManager (and, less the list, for one StratumSession)."""
        return {"version_rolling": self.version_rolling, "version_mask": self.version_mask,
                "suggest_difficulty": self.suggest_difficulty, "extranonce_subscribe": self.extranonce_subscribe,
                "cafile": self.cafile, "insecure": self.insecure}
