"""Install commands in messages: the one that works for how this copy of the miner was installed.

Installed from a package index, an optional extra is ``pip install 'miner[usb]'``. Installed from
a clone (``pip install .``), pip has no "miner" to fetch and the working command names the checkout:
``pip install '.[usb]'`` inside it, or its path from anywhere else. pip records which it was in the
distribution's direct_url.json (PEP 610); that record is read once.
"""
from __future__ import annotations

import functools
import json
import os
import shlex
from importlib import metadata
from urllib.parse import unquote, urlparse

DIST = "miner"


@functools.lru_cache(maxsize=1)
def _checkout() -> str | None:
    """The source directory this copy was installed from, when it was a local directory that still exists."""
    try:
        raw = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        return None
    url = urlparse(str(info.get("url", "")))
    if "dir_info" not in info or url.scheme != "file":
        return None
    path = unquote(url.path)
    return path if os.path.isfile(os.path.join(path, "pyproject.toml")) else None


def pip_install(extra: str) -> str:
    """The command that adds ``extra`` (a name in pyproject.toml's optional-dependencies)."""
    src = _checkout()
    if src is None:
        target = f"{DIST}[{extra}]"
    else:
        try:
            here = os.path.samefile(src, os.getcwd())
        except OSError:
            here = False
        target = f".[{extra}]" if here else f"{src}[{extra}]"
    return f"pip install {shlex.quote(target) if not target.isalnum() else target}"
