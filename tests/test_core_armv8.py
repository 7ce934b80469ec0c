"""The ARMv8 SHA-256 code of the C core, cross-compiled and run under qemu-aarch64.

No 64-bit ARM machine is at hand, so the core's own sources are built with the
aarch64 cross compiler into a small static driver (tests/armv8_driver.c) and
run by qemu's user-mode emulator, which executes SHA256H/H2/SU0/SU1 as the
architecture defines them. Answers are checked against hashlib here, not
against the C portable code. .ci/run installs gcc-aarch64-linux-gnu and
qemu-user; on an ARM machine the normal core tests run this code natively.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from miner.engine.difficulty import target_from_nbits
from test_core import ALL, VECTORS, ref_hash, ref_scan

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
SOURCES = ["dispatch.c", "sha256_portable.c", "sha256_avx2.c", "sha256_shani.c", "sha256_shani_vex.c", "sha256_avx512.c",
           "sha256_armv8.c"]
ARMV8 = ["armv8(2-lane)", "armv8(1-lane)"]
CC, QEMU = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")

pytestmark = pytest.mark.skipif(CC is None or QEMU is None,
                                reason="needs gcc-aarch64-linux-gnu and qemu-user (.ci/run installs both)")


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("armv8") / "driver"
    # The same flags as csrc/build_core.py; -static so qemu needs no ARM sysroot at run time.
    subprocess.run([CC, "-O3", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-function", "-static",
                    f"-I{CSRC}", f"-I{ROOT / 'kernels'}", "-o", str(out), str(ROOT / "tests" / "armv8_driver.c"),
                    *(str(CSRC / s) for s in SOURCES)], check=True, capture_output=True, text=True)
    return out


def run(driver: Path, lines: list[str], cpu: str = "max") -> list[str]:
    res = subprocess.run([QEMU, "-cpu", cpu, str(driver)], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=300, check=True)
    return res.stdout.splitlines()


def scan(driver: Path, impl: str, header: bytes, start: int, count: int, target: int) -> tuple[list[int], int]:
    (line,) = run(driver, [f"{impl} {header.hex()} {start} {count} {target.to_bytes(32, 'little').hex()}"])
    assert line.startswith("next="), line
    nxt, hits = line.split()
    return [int(h) for h in hits[5:].split(",") if h], int(nxt[5:])


def test_armv8_code_is_compiled_and_passes_its_self_test(driver):
    listed = dict(line.rsplit(" ", 1) for line in run(driver, ["list"]))
    # No x86 code on ARM; both ARMv8 variants present and usable on a SHA2-capable core.
    assert set(listed) == {"portable", *ARMV8}
    assert all(v == "1" for v in listed.values()), listed
    # Cortex-A53 (a Raspberry Pi 3's core) has the crypto extension too.
    assert dict(line.rsplit(" ", 1) for line in run(driver, ["list"], cpu="cortex-a53"))["armv8(2-lane)"] == "1"


@pytest.mark.parametrize("impl", ARMV8)
def test_armv8_finds_the_real_nonce_of_real_blocks(driver, impl):
    for block in json.loads((VECTORS / "block_headers.json").read_text())["headers"]:
        header, nonce = bytes.fromhex(block["header"]), block["nonce"]
        target = target_from_nbits(int(block["nbits"], 16))
        start = max(0, nonce - 45)
        hits, nxt = scan(driver, impl, header, start, 100, target)
        assert hits == [nonce], block["name"]
        assert nxt == start + 100


@pytest.mark.parametrize("impl", ARMV8)
def test_armv8_matches_hashlib_at_easy_targets(driver, impl):
    rng = random.Random(8)
    for _ in range(3):
        header = rng.randbytes(80)
        start, count = rng.randrange((1 << 32) - 2000), rng.randrange(1, 1500)
        target = ALL >> 4  # about one nonce in 16: many hits in every lane position
        hits, nxt = scan(driver, impl, header, start, count, target)
        assert hits == ref_scan(header, start, count, target)
        assert nxt == start + count
    # The end of the nonce range and a target on a hash exactly.
    header = rng.randbytes(80)
    hits, nxt = scan(driver, impl, header, (1 << 32) - 37, 37, ALL >> 2)
    assert hits == ref_scan(header, (1 << 32) - 37, 37, ALL >> 2) and nxt == 1 << 32
    exact = ref_hash(header, 1000)
    assert scan(driver, impl, header, 999, 3, exact)[0] == ref_scan(header, 999, 3, exact)
    assert 1000 not in scan(driver, impl, header, 999, 3, exact - 1)[0]
