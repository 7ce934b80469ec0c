"""The C self-test rejects a deliberately broken kernel: the core's sources, one of them patched, in a small driver."""
from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

import miner.core as core

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("dispatch.c", "sha256_portable.c", "sha256_avx2.c", "sha256_shani.c", "sha256_shani_vex.c", "sha256_avx512.c")
# sha256_shani_vex.c compiles sha256_shani.c again VEX-encoded: a patch breaks both builds.
AVX = "avx" in Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else False


def names(*lanes: str) -> list[str]:
    """The SHA-NI codes with these lane counts, in both builds where the CPU has AVX."""
    return [f"shani({n})" for n in lanes] + ([f"shani({n},vex)" for n in lanes] if AVX else [])
DRIVER = ('#include <stdio.h>\n#include "core.h"\n'
          "int main(void) {\n"
          "    for (int i = 0; i < miner_impl_count(); i++) printf(\"%s %d\\n\", miner_impl_name(i), miner_impl_usable(i));\n"
          "    return 0;\n}\n")
# Word 7 of the last lane's second hash off by one: that lane's candidates are
# then tested against the wrong value, so real hits are missed.
BREAK_LAST_LANE = ("h7[v * L + l] = (uint32_t)_mm_cvtsi128_si32(S1[l]) + SHA256_H7;",
                   "h7[v * L + l] = (uint32_t)_mm_cvtsi128_si32(S1[l]) + SHA256_H7 + (l == L - 1);")
# The hand-written schedule group of the 1- and 2-lane code fed the wrong group: a
# wrong message schedule from group 8 on.
BREAK_GROUP = ("sha256msg2 %[w1], %[w4]", "sha256msg2 %[w2], %[w4]")
# Every version hashed with the first one's midstate: only the multi-version path is wrong.
BREAK_VERSIONS = ("const shani_ver *q = &vs[v];", "const shani_ver *q = &vs[0];")

# The versions-as-lanes code (2-lane) starting every version of a group of four from the group's first midstate.
BREAK_SHARED_VERSIONS = ("S0[c] = _mm_add_epi32(q[c].abef3, kw->kw[0]);",
                         "S0[c] = _mm_add_epi32(q[0].abef3, kw->kw[0]);")
# The vector candidate test of the 2-, 3- and 4-lane and version scans (targets whose top limb is 0,
# i.e. difficulty 1 and up) dropping a group's second lane: hits there are lost.
BREAK_MASK0 = ("_mm_castsi128_ps(x)) & ((1 << L) - 1)", "_mm_castsi128_ps(x)) & ((1 << L) - 1) & ~2")
# The same compare of three or four lanes (or a chunk of four versions) reading lanes 0-1 twice, 2-3 never.
BREAK_VMASK0 = ("x = _mm_unpacklo_epi64(x, _mm_unpacklo_epi32(F[2], F[L - 1]));",
                "x = _mm_unpacklo_epi64(x, _mm_unpacklo_epi32(F[0], F[1]));")

# The 3-/4-lane version scans at those targets asking only version 0 whether it is a candidate.
BREAK_M_ANY0 = ("for (int v_ = 0; v_ < (nv); v_++) any_ |= shani_mask0(f_ + v_ * (L), L);",
                "for (int v_ = 0; v_ < 1; v_++) any_ |= shani_mask0(f_ + v_ * (L), L);")

# The 2-lane scan of 2-3 versions at those targets asking only version 0.
BREAK_FEW_ANY0 = ("any_ |= shani_lanes_mask0(&pre[v_], (uint32_t)n_, 2);",
                  "any_ |= v_ ? 0 : shani_lanes_mask0(&pre[v_], (uint32_t)n_, 2);")

# The 32-way AVX-512 version scan (two chains of 16 lanes) reading only the first chain's candidates:
# hits in nonces 16-31 of each group of 32 are lost under every version; its plain scan is right.
BREAK_X2_VERSIONS_HIGH = ("m_[v] = avx512_candidates(h7[v].x, t7) | avx512_candidates(h7[v].y, t7) << 16;",
                          "m_[v] = avx512_candidates(h7[v].x, t7);")
# The same scan hashing the second chain one nonce early (nonces 15-30 in place of 16-31).
BREAK_X2_VERSIONS_NONCE = ("avx512_nonce_words(n0 + 16)}, h7);", "avx512_nonce_words(n0 + 15)}, h7);")

HAVE_SHANI = any(n.startswith("shani") for n in core.implementations())
HAVE_AVX512 = any(n.startswith("avx512") for n in core.implementations())
needs_shani = pytest.mark.skipif(not HAVE_SHANI, reason="needs a CPU with SHA-NI (the broken kernels are SHA-NI code)")


def usable_with(tmp_path: Path, patch: tuple[str, str] | None, file: str = "sha256_shani.c") -> dict[str, int]:
    cc = shutil.which(sysconfig.get_config_var("CC").split()[0]) or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")  # pragma: no cover - the package build needs one anyway
    src = tmp_path / "csrc"
    shutil.copytree(ROOT / "csrc", src)
    if patch is not None:
        text = (src / file).read_text()
        assert text.count(patch[0]) == 1, f"the patch no longer matches csrc/{file}"
        (src / file).write_text(text.replace(patch[0], patch[1]))
    (tmp_path / "main.c").write_text(DRIVER)
    exe = tmp_path / "selftest"
    res = subprocess.run([cc, "-O2", "-std=gnu11", "-Wno-unused-function", f"-I{src}", f"-I{ROOT / 'kernels'}",
                          "-o", str(exe), str(tmp_path / "main.c"), *(str(src / f) for f in SOURCES)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120).stdout
    return {name: int(flag) for name, flag in (ln.rsplit(" ", 1) for ln in out.splitlines())}


@pytest.mark.slow
@needs_shani
def test_unpatched_sources_pass(tmp_path):
    got = usable_with(tmp_path, None)
    assert all(got[n] == 1 for n in [*names("4-lane", "3-lane", "2-lane", "1-lane"), "portable"])
    if HAVE_AVX512:
        assert got["avx512(32-way)"] == 1 and got["avx512(16-way)"] == 1


@pytest.mark.slow
@needs_shani
def test_a_wrong_lane_fails_the_self_test(tmp_path):
    got = usable_with(tmp_path, BREAK_LAST_LANE)
    assert all(got[n] == 0 for n in names("4-lane", "3-lane"))
    assert all(got[n] == 1 for n in [*names("1-lane"), "portable"])  # untouched code still passes


@pytest.mark.slow
@needs_shani
def test_a_wrong_multi_version_path_fails_the_self_test(tmp_path):
    got = usable_with(tmp_path, BREAK_VERSIONS)
    # The plain scans (one version) are right; the version check catches the rest.
    assert all(got[n] == 0 for n in names("4-lane", "3-lane"))
    assert all(got[n] == 1 for n in [*names("2-lane", "1-lane"), "portable"])


@pytest.mark.slow
@needs_shani
def test_a_wrong_schedule_group_fails_the_self_test(tmp_path):
    got = usable_with(tmp_path, BREAK_GROUP)
    assert all(got[n] == 0 for n in names("2-lane", "1-lane"))
    assert all(got[n] == 1 for n in [*names("4-lane", "3-lane"), "portable"])


# Patches of the vector paths, and the codes each must cost their self-test (both builds):
#  - shared: the 2-lane version scan starting every version of a group of four from the first one's midstate;
#  - mask0: the difficulty-1 candidate test of a lane group; the self-test's genesis nonce falls in every lane;
#  - vmask0: that test for 3-4 lanes and the 2-lane four-version compare (lanes or versions 2-3 missed);
#  - m_any0: the 3-/4-lane version scans' test at those targets, version 0 only: the genesis block's real
#    version in any other slot is missed (their one-version scans are right);
#  - few_any0: the same in the 2-lane scan of 2-3 versions (the self-test's genesis among 3 versions).
@pytest.mark.slow
@needs_shani
@pytest.mark.parametrize("patch, broken", [(BREAK_SHARED_VERSIONS, ("2-lane",)),
                                           (BREAK_MASK0, ("2-lane", "3-lane", "4-lane")),
                                           (BREAK_VMASK0, ("2-lane", "3-lane", "4-lane")),
                                           (BREAK_M_ANY0, ("3-lane", "4-lane")),
                                           (BREAK_FEW_ANY0, ("2-lane",))],
                         ids=["shared", "mask0", "vmask0", "m_any0", "few_any0"])
def test_a_wrong_vector_path_fails_the_self_test(tmp_path, patch, broken):
    got = usable_with(tmp_path, patch)
    assert all(got[n] == 0 for n in names(*broken))
    kept = [n for n in ("1-lane", "2-lane", "3-lane", "4-lane") if n not in broken]
    assert all(got[n] == 1 for n in [*names(*kept), "portable"])


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_AVX512, reason="needs a CPU with AVX-512 (the broken kernel is AVX-512 code)")
@pytest.mark.parametrize("patch", [BREAK_X2_VERSIONS_HIGH, BREAK_X2_VERSIONS_NONCE], ids=["high_chain", "nonce"])
def test_a_wrong_32_way_version_scan_fails_the_self_test(tmp_path, patch):
    got = usable_with(tmp_path, patch, "sha256_avx512.c")
    assert got["avx512(32-way)"] == 0
    assert got["avx512(16-way)"] == 1 and got["portable"] == 1
