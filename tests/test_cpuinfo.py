"""miner.core.cpuinfo: the CPU named with every `miner bench` figure, from /proc/cpuinfo."""
from __future__ import annotations

import os

import pytest

from miner.core import cpuinfo

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 1
flags\t\t: fpu sse2 ssse3 sse4_1 avx2 avx512f avx512bw sha_ni

processor\t: 1
model name\t: a second block, never read
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_x86_block(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text(X86)
    f = cpuinfo.cpu_facts(str(p))
    assert (f["model_name"], f["family"], f["model"], f["stepping"]) == ("Intel(R) Xeon(R) Processor", "6", "167", "1")
    assert f["isa"] == ["SHA-NI", "AVX2", "AVX-512"]
    assert cpuinfo.describe(f) == (f"Intel(R) Xeon(R) Processor (family 6 model 167 stepping 1), {os.cpu_count()} "
                                   "logical CPUs; SHA-NI, AVX2, AVX-512")


def test_arm_block_names_the_part_and_sha2(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text(ARM)
    f = cpuinfo.cpu_facts(str(p))
    assert f["isa"] == ["ARMv8 SHA2"]
    assert "part 0xd0c" in f["model_name"] and f["family"] is None


def test_no_cpuinfo_is_not_an_error(tmp_path):
    f = cpuinfo.cpu_facts(str(tmp_path / "missing"))
    assert f["isa"] == [] and f["logical_cpus"] == os.cpu_count()
    assert "no SIMD hash extensions" in cpuinfo.describe(f)


def test_this_machine_agrees_with_the_core():
    """The ISA read here is the one the C core dispatches on: a SHA-NI or AVX-512 code is usable only
    where the flag is listed (on Linux x86, where /proc/cpuinfo has flags)."""
    from miner import core
    f = cpuinfo.cpu_facts()
    if not os.path.exists("/proc/cpuinfo") or f["family"] is None:
        pytest.skip("no x86 /proc/cpuinfo here")
    usable = core.implementations()
    assert any(n.startswith("shani") for n in usable) == ("SHA-NI" in f["isa"])
    assert any(n.startswith("avx512") for n in usable) <= ("AVX-512" in f["isa"])
