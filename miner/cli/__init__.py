"""The command line: ``miner`` and its subcommands.

- ``command``: the command, its flags, the TOML config file and the run loop.
- ``status``: the live panel and plain status lines.
- ``bench``: ``miner bench`` (hash core speed per implementation).
- ``pool_check``: ``miner pool-check``.
"""
from __future__ import annotations


def main(argv=None) -> int:
    from miner.cli.command import main as _main
    return _main(argv)
