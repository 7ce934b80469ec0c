"""An sdist carries everything the C core needs, and the core builds and runs from it."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_FILES = [
    "setup.py", "pyproject.toml", "csrc/build_core.py", "csrc/core.h", "csrc/impl.h", "csrc/dispatch.c",
    "csrc/sha256d_lanes.h", "csrc/sha256_portable.c", "csrc/sha256_avx2.c", "csrc/sha256_avx512.c",
    "csrc/sha256_shani.c", "csrc/sha256_shani_vex.c", "kernels/sha256_common.h", "miner/core/__init__.py",
]

CHECK = """
import hashlib, struct, sys
import miner.core as c
assert c.__file__.startswith(sys.argv[1]), c.__file__
h = bytes(range(80))
for impl in c.implementations():
    want = [n for n in range(100, 400)
            if int.from_bytes(hashlib.sha256(hashlib.sha256(h[:76] + struct.pack('<I', n)).digest()).digest(),
                              'little') <= 1 << 252]
    assert c.scan(h, 100, 300, 1 << 252, impl=impl) == want, impl
print(' '.join(c.implementations()))
"""


@pytest.mark.slow
def test_sdist_contains_the_core_and_builds(tmp_path):
    dist = tmp_path / "dist"
    res = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(dist)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    (archive,) = dist.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        missing = [f for f in CORE_FILES if f not in names]
        assert not missing, f"sdist lacks {missing}"
        tar.extractall(tmp_path, filter="data")
    src = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("miner-"))

    # Compile the extension from the unpacked sources alone (what pip does with the sdist).
    build = ("import sys; sys.path.insert(0, 'csrc'); import build_core; "
             "build_core.ffibuilder.compile(tmpdir='.', verbose=False)")
    res = subprocess.run([sys.executable, "-c", build], cwd=src, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert list((src / "miner" / "core").glob("_sha256d*.so"))

    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("MINER_CORE", None)
    res = subprocess.run([sys.executable, "-c", CHECK, str(src)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "portable" in res.stdout.split()


@pytest.mark.slow
def test_portable_only_build_compiles_and_links(tmp_path):
    # What a non-x86 target compiles: every file builds, no ISA-specific symbol is left,
    # and the dispatcher links without them (a small C driver runs its self-test).
    import shutil
    import sysconfig

    cc = shutil.which(sysconfig.get_config_var("CC").split()[0]) or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")  # pragma: no cover - the package build needs one anyway
    driver = tmp_path / "main.c"
    driver.write_text(
        '#include <stdio.h>\n#include "core.h"\n'
        "int main(void) {\n"
        "    int n = miner_impl_count();\n"
        "    for (int i = 0; i < n; i++) printf(\"%s %d\\n\", miner_impl_name(i), miner_impl_usable(i));\n"
        "    return n == 1 ? 0 : 1;\n}\n"
    )
    sources = [str(ROOT / "csrc" / f) for f in
               ("dispatch.c", "sha256_portable.c", "sha256_avx2.c", "sha256_shani.c", "sha256_shani_vex.c",
                "sha256_avx512.c")]
    exe = tmp_path / "portable_only"
    res = subprocess.run([cc, "-O1", "-std=gnu11", "-Wall", "-Wno-unused-function",
                          "-DMINER_PORTABLE_ONLY", f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'kernels'}",
                          "-o", str(exe), str(driver), *sources], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == "portable 1\n", run.stdout
