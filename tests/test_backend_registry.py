"""The backend registry: built-ins, third-party backends through the miner.backends entry-point
group, and a clear message when a backend's dependency is missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from miner import install
from miner.engine import backend as registry
from miner.errors import BackendUnavailable, ConfigError

PLUGIN = textwrap.dedent('''
    """A third-party backend: CPU threads pinned to the portable core, under another name."""
    from miner.engine.backend import Backend, DetectedDevice
    from miner.backends.cpu import CPUDevice


    class PortableDevice(CPUDevice):
        kind = "plugin"


    class PluginBackend(Backend):
        name = "plugin"

        @classmethod
        def detect(cls):
            return [DetectedDevice("plugin", "plugin", "one portable-core thread")]

        @classmethod
        def create(cls, specs, options):
            return [PortableDevice("plugin0", "portable")]
''')


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    (tmp_path / "broken_plugin.py").write_text("import a_module_nobody_installed\n")
    dist = tmp_path / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[miner.backends]\nplugin = myplugin:PluginBackend\nbroken = broken_plugin:Backend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_backends_are_listed_and_cpu_loads_lazily():
    assert registry.backend_names()[:4] == ["cpu", "opencl", "cuda", "asic"]
    assert registry.load_backend("cpu").name == "cpu"


def test_unknown_backend_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown backend 'fpga'.*cpu"):
        registry.load_backend("fpga")


def test_missing_dependency_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "opencl", ("a_module_nobody_installed:X", "opencl"))
    with pytest.raises(BackendUnavailable, match=r"backend opencl unavailable") as e:
        registry.load_backend("opencl")
    assert e.value.args[0].endswith("install it with: " + install.pip_install("opencl"))


def test_install_hint_fits_how_the_miner_was_installed(monkeypatch, tmp_path):
    """This test run's miner was installed from the checkout (pip install .): pip could not fetch
    'miner[usb]', so the hint names the checkout: '.[usb]' inside it, its path elsewhere."""
    checkout = install._checkout()
    assert checkout is not None and (Path(checkout) / "pyproject.toml").is_file()
    monkeypatch.chdir(checkout)
    assert install.pip_install("usb") == "pip install '.[usb]'"
    monkeypatch.chdir(tmp_path)
    assert install.pip_install("usb") == f"pip install '{checkout}[usb]'"
    # installed from an index (no local directory recorded): the package name
    monkeypatch.setattr(install, "_checkout", lambda: None)
    assert install.pip_install("usb") == "pip install 'miner[usb]'"


def test_entry_point_backend_is_found_and_loaded(plugin_path):
    assert "plugin" in registry.backend_names()
    cls = registry.load_backend("plugin")
    assert cls.__name__ == "PluginBackend" and cls.detect()[0].spec == "plugin"
    with pytest.raises(BackendUnavailable, match="backend broken unavailable"):
        registry.load_backend("broken")


def test_miner_mines_with_an_entry_point_backend_and_lists_it(plugin_path):
    env = dict(os.environ, PYTHONPATH=str(plugin_path))
    run = lambda *a: subprocess.run([sys.executable, "-m", "miner", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, timeout=120, cwd=tempfile.gettempdir())
    proc = run("--benchmark", "--backend", "plugin", "--time-limit", "2", "--json", "--status-interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    started = [e for e in events if e["event"] == "device" and e.get("state") == "started"]
    assert [e["device"] for e in started] == ["plugin0"] and started[0]["kind"] == "plugin"
    final = events[-1]
    assert final["event"] == "hashrate" and final["final"] and final["total"]["av"] > 0
    listing = run("devices")
    assert "plugin: plugin" in listing.stdout and "broken: backend broken unavailable" in listing.stdout
