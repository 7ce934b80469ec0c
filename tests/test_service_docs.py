"""docs/SERVICE.md says only what is true: its config files and unit command lines parse with the
miner's own parser (unknown keys and flags are errors there), and the flags a farm relies on are set."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from miner.cli import command
from miner.drivers import parse_spec

DOC = Path(__file__).resolve().parent.parent / "docs" / "SERVICE.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_toml_example_is_a_valid_config(tmp_path):
    blocks = _blocks("toml")
    assert len(blocks) == 2
    for i, text in enumerate(blocks):
        f = tmp_path / f"m{i}.toml"
        f.write_text(text)
        args = command.parse_args(["-c", str(f)])
        assert args.retry_pools is True and args.api_listen is True and args.metrics_port
        assert args.log_file and args.url and args.device
        for spec in args.device:
            parse_spec(spec)  # a board spec the asic backend accepts


def test_every_unit_runs_a_command_the_miner_accepts(tmp_path):
    units = _blocks("ini")
    assert len(units) == 2
    conf = tmp_path / "m.toml"
    conf.write_text(_blocks("toml")[0])
    for unit in units:
        exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1)
        argv = shlex.split(exec_start.replace("%i", "m"))
        assert argv[0].endswith("/miner")
        argv = [str(conf) if a.startswith("/etc/miner/") else a for a in argv[1:]]
        command.parse_args(argv)
        assert "Restart=on-failure" in unit and "RestartPreventExitStatus=2" in unit  # exit 2: fix the config
