"""Host-side precompute and launch bookkeeping shared by the OpenCL and CUDA backends."""
import hashlib
import json
import os
import random
import struct

import pytest

from miner.backends import gpu_common as g
from miner.errors import ConfigError

VECTORS = os.path.join(os.path.dirname(__file__), "vectors", "block_headers.json")


def _state_words(digest: bytes) -> tuple[int, ...]:
    return struct.unpack(">8I", digest)


def test_compress_matches_hashlib_on_two_blocks():
    # sha256 of 64 bytes + standard padding block = compress(compress(H, b1), pad).
    rnd = random.Random(1)
    for _ in range(5):
        block = bytes(rnd.getrandbits(8) for _ in range(64))
        pad = b"\x80" + bytes(55) + (512).to_bytes(8, "big")
        got = g.compress(g.compress(g.H_INIT, block), pad)
        assert got == _state_words(hashlib.sha256(block).digest())


def _model_hash(pre: g.JobPrecompute, nonce: int) -> bytes:
    """sha256d rebuilt from the precomputed fields the way the kernels use them."""
    w3 = int.from_bytes(nonce.to_bytes(4, "little"), "big")
    block2 = struct.pack(">4I", *pre.w012, w3) + b"\x80" + bytes(39) + (640).to_bytes(8, "big")
    first = g.compress(pre.midstate, block2)
    second = struct.pack(">8I", *first) + b"\x80" + bytes(23) + (256).to_bytes(8, "big")
    return struct.pack(">8I", *g.compress(g.H_INIT, second))


def test_precompute_fields_reproduce_sha256d_of_real_headers():
    for entry in json.load(open(VECTORS))["headers"]:
        header = bytes.fromhex(entry["header"])
        pre = g.precompute(header, 1)
        digest = _model_hash(pre, entry["nonce"])
        assert digest == hashlib.sha256(hashlib.sha256(header).digest()).digest()
        assert digest[::-1].hex() == entry["hash_display"]


def test_precomputed_schedule_and_round3_terms():
    header = bytes(range(80))
    pre = g.precompute(header, 1)
    nonce = 0x12345678
    w = list(struct.unpack(">3I", header[64:76])) + [int.from_bytes(nonce.to_bytes(4, "little"), "big"),
                                                      0x80000000] + [0] * 10 + [640]
    for i in range(16, 20):
        w.append((g._ssig1(w[i - 2]) + w[i - 7] + g._ssig0(w[i - 15]) + w[i - 16]) & 0xFFFFFFFF)
    assert pre.w16 == w[16] and pre.w17 == w[17]
    assert (pre.w18_base + g._ssig0(w[3])) & 0xFFFFFFFF == w[18]
    assert (pre.w19_base + w[3]) & 0xFFFFFFFF == w[19]
    s = list(pre.midstate)
    for i in range(4):
        s = g._round(s, g.K[i], w[i])
    a, b, c, d, e, f, gg, h = pre.state3
    t1 = (pre.p3 + w[3]) & 0xFFFFFFFF
    assert s[4] == (d + t1) & 0xFFFFFFFF and s[0] == (t1 + pre.t2_3) & 0xFFFFFFFF


def test_pack_layout_is_38_words_in_documented_order():
    pre = g.precompute(bytes(80), (1 << 255) + 7)
    words = struct.unpack("<38I", pre.pack(0xAABBCCDD, 4096, 99, 0xFFFFFFFE))
    assert len(pre.pack(0, 1, 1)) == g.JOB_WORDS * 4 == 152
    assert words[36] == 0xFFFFFFFE and words[37] == 0
    assert words[0:8] == pre.midstate and words[8:16] == pre.state3
    assert words[25] == 0xAABBCCDD and words[34] == 99 and words[35] == 4096
    assert words[26] == 7 and words[33] == 0x80000000


def test_target_words_clamps_and_rejects_negative():
    assert g.target_words(1 << 300) == (0xFFFFFFFF,) * 8
    assert g.target_words(1 << 224) == (0,) * 7 + (1,)
    with pytest.raises(ValueError):
        g.target_words(-1)


def test_header_length_and_launch_range_checked():
    with pytest.raises(ValueError):
        g.precompute(bytes(79), 1)
    with pytest.raises(ValueError):
        g.check_launch_range((1 << 32) - 10, 11)
    g.check_launch_range((1 << 32) - 10, 10)


def test_found_capacity_scales_with_expected_hits():
    assert g.found_capacity(1 << 20, 1 << 200) == 64
    assert g.found_capacity(1 << 16, (1 << 256) - 1) == 4 * (1 << 16) + 64
    assert g.found_capacity(1 << 20, 1 << 248) == 4 * (1 << 12) + 64


def test_launch_hits_reports_overflow_and_drops_out_of_range_nonces():
    cap = 4
    buf = bytearray(struct.pack("<5I", 3, 100, 5000, 101, 0))
    launch = g.Launch(100, 50, cap, buf)
    assert launch.hits() == [100, 101]  # 5000 is outside [100, 150): never submitted
    over = g.Launch(0, 10, 2, bytearray(struct.pack("<3I", 7, 1, 2)))
    assert over.hits() is None and over.total == 7
    # The counter runs on across launches (and wraps): only this launch's increments count.
    later = g.Launch(0, 10, 2, bytearray(struct.pack("<3I", 1, 4, 5)), found_base=0xFFFFFFFF)
    assert later.hits() == [4, 5] and later.total == 2 and later.counter == 1


def test_tuner_moves_toward_target_time_in_bounded_steps():
    t = g.LaunchTuner(target_ms=30, start=1 << 16)
    t.observe(1 << 16, 0.003)  # 10x too fast: grows, but at most x2 per step
    assert t.size == 1 << 17
    for _ in range(20):
        t.observe(t.size, t.size / 20e6)  # 20 MH/s device
    assert abs(t.size - 600_000) <= g.LaunchTuner.GRAIN
    t.observe(t.size // 4, 10.0)  # short tail launches are ignored
    assert abs(t.size - 600_000) <= g.LaunchTuner.GRAIN
    fixed = g.LaunchTuner(fixed=8192)
    fixed.observe(8192, 1.0)
    assert fixed.size == 8192


def test_tuner_rejects_bad_options():
    with pytest.raises(ConfigError):
        g.LaunchTuner(target_ms=0)
    with pytest.raises(ConfigError):
        g.LaunchTuner(fixed=5)


def test_kernel_source_inlines_the_shared_header():
    for name in ("sha256d.cl", "sha256d.cu"):
        src = g.kernel_source(name)
        assert '#include "sha256_common.h"' not in src
        assert "SHA256_ROUND" in src and "0xc67178f2u" in src


def test_selftest_cases_come_from_the_c_core():
    cases = g.selftest_cases()
    genesis = cases[0]
    assert genesis[5] == [g.GENESIS_NONCE]
    assert hashlib.sha256(hashlib.sha256(g.GENESIS_HEADER).digest()).digest()[::-1].hex().startswith("000000000019d6")
    assert len(cases[1][5]) > 5  # the easy target yields many hits


def test_cli_flags_feed_the_tuner():
    import argparse
    from miner.cli import options
    from miner.engine.backend import DeviceOptions
    parser = argparse.ArgumentParser()
    options.add_device_arguments(parser)
    args = parser.parse_args(["--gpu-kernel-ms", "20", "--gpu-launch", "8192", "--cuda-runtime", "pycuda"])
    opts = options.device_options(args)
    assert opts == DeviceOptions(gpu_kernel_ms=20.0, gpu_launch=8192, cuda_runtime="pycuda")
    tuner = g.LaunchTuner(target_ms=opts.gpu_kernel_ms, fixed=opts.gpu_launch)
    assert tuner.fixed and tuner.size == 8192 and tuner.target_s == 0.02
    with pytest.raises(SystemExit):
        parser.parse_args(["--cuda-runtime", "opencl"])


def test_job_layout_is_read_from_the_one_header_the_kernels_include(tmp_path):
    import shutil
    import subprocess
    from pathlib import Path
    kernels = Path(__file__).resolve().parents[1] / "kernels"
    assert [n for n, _ in g.JOB_FIELDS][:3] == ["midstate", "st", "w"] and g.JOB_WORDS == 38
    for name in ("sha256d.cl", "sha256d.cu"):
        src = (kernels / name).read_text()
        assert '#include "sha256d_job.h"' in src and "typedef struct" not in src and "struct sha256d_job" not in src
        assert '#include "sha256d_job.h"' not in g.kernel_source(name) and "} sha256d_job;" in g.kernel_source(name)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to lay out the struct")
    # The C compiler's offsets of every field equal the word offsets pack() uses.
    prog = tmp_path / "layout.c"
    prog.write_text('#include <stdio.h>\n#include <stddef.h>\n#define SHA256_U32 unsigned int\n'
                    '#include "sha256d_job.h"\nint main(void) {\n'
                    + "".join(f'    printf("{n} %zu\\n", offsetof(sha256d_job, {n}) / 4);\n' for n, _ in g.JOB_FIELDS)
                    + '    printf("size %zu\\n", sizeof(sha256d_job));\n    return 0;\n}\n')
    exe = tmp_path / "layout"
    subprocess.run([cc, f"-I{kernels}", "-o", str(exe), str(prog)], check=True, capture_output=True)
    out = dict(line.split() for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                         text=True).stdout.splitlines())
    offset = 0
    pre = g.precompute(bytes(range(80)), 1 << 250)
    words = struct.unpack(f"<{g.JOB_WORDS}I", pre.pack(0x01020304, 4096, 77, 5))
    for name, n in g.JOB_FIELDS:
        assert int(out[name]) == offset, name
        offset += n
    assert int(out["size"]) == 4 * g.JOB_WORDS == len(pre.pack(0, 1, 1))
    at = {name: int(out[name]) for name, _ in g.JOB_FIELDS}
    assert words[at["nonce_base"]] == 0x01020304 and words[at["count"]] == 4096
    assert words[at["found_cap"]] == 77 and words[at["found_base"]] == 5
    assert tuple(words[at["target"]:at["target"] + 8]) == pre.target_words
