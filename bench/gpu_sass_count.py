"""Count the SASS instructions one nonce costs in kernels/sha256d.cu, and the H100/H200 ceiling they imply.

Builds an sm_90 cubin with NVRTC (cuda-python + nvidia-cuda-nvrtc), disassembles
it with cuobjdump (needs cuobjdump and nvdisasm on PATH, e.g. from the
nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels), and counts the
instructions from the kernel's entry up to the early-exit branch on the top
hash word: the path every nonce takes (hits, about one in 2^32 at difficulty
1, take the slow path after it). Opcodes are grouped by the pipe that issues
them, and the ceiling is

    SMs x 64 INT32 lanes per SM x clock / (ALU-pipe instructions per nonce)

because SHF, LOP3 and IADD3 issue only to the 16-lane integer ALU of each of
the SM's four partitions, while IMAD-form adds go to the FMA pipe in parallel.

    PATH=/path/to/cuda/bin:$PATH python bench/gpu_sass_count.py --sms 132 --mhz 1980
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from miner.backends.cuda import nvrtc_compile

# Issued to the FMA pipe (run alongside the ALU); everything else counted as ALU-pipe work.
FMA_PIPE = {"IMAD", "IMAD.IADD", "IMAD.MOV", "IMAD.SHL", "IMAD.WIDE", "FFMA", "FADD", "FMUL"}
UNIFORM_OR_OTHER = ("U", "S2R", "S2UR", "LDC", "EXIT", "BRA", "NOP")


def fast_path(sass: str) -> list[str]:
    ins = [m.group(1).strip() for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+([^;]*);", sass)]
    out = []
    exits = 0
    for op in ins:
        out.append(op)
        if re.search(r"@P\d+ EXIT$", op):
            exits += 1
            if exits == 2:  # first: the count guard; second: the top-word early exit
                break
    return out


def opcode(op: str) -> str:
    parts = op.split()
    name = parts[1] if parts[0].startswith("@") else parts[0]
    return ".".join(name.split(".")[:2]) if name.startswith("IMAD") else name.split(".")[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sms", type=int, default=132, help="SM count (H100/H200 SXM: 132)")
    ap.add_argument("--mhz", type=float, default=1980.0, help="SM clock in MHz (H100/H200 SXM boost: 1980)")
    ap.add_argument("--lanes", type=int, default=64, help="INT32 lanes per SM (sm_90: 64)")
    args = ap.parse_args(argv)
    if not (shutil.which("cuobjdump") and shutil.which("nvdisasm")):
        print("cuobjdump and nvdisasm must be on PATH", file=sys.stderr)
        return 2
    cubin, _ = nvrtc_compile("sm_90")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sha256d.cubin"
        path.write_bytes(cubin)
        sass = subprocess.run(["cuobjdump", "-sass", str(path)], check=True, capture_output=True,
                              text=True).stdout
    ops = fast_path(sass)
    counts = collections.Counter(opcode(o) for o in ops)
    fma = sum(n for k, n in counts.items() if k in FMA_PIPE)
    other = sum(n for k, n in counts.items() if k not in FMA_PIPE and k.startswith(UNIFORM_OR_OTHER))
    alu = len(ops) - fma - other
    print(f"fast path: {len(ops)} SASS instructions per nonce")
    print("  " + ", ".join(f"{k} {n}" for k, n in counts.most_common()))
    print(f"  ALU pipe {alu}, FMA pipe {fma}, uniform/setup/control {other}")
    clock = args.mhz * 1e6
    ceiling_alu = args.sms * args.lanes * clock / alu
    ceiling_all = args.sms * args.lanes * clock / len(ops)
    print(f"ceiling (ALU-bound, {args.sms} SMs x {args.lanes} x {args.mhz:.0f} MHz / {alu}): "
          f"{ceiling_alu / 1e9:.2f} GH/s; 90% target {0.9 * ceiling_alu / 1e9:.2f} GH/s")
    print(f"if every instruction took an INT32 lane ({len(ops)} per nonce): {ceiling_all / 1e9:.2f} GH/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
