"""Instruction counts of the SHA-NI scan loops, from objdump of the compiled code.

    python bench/core_count.py              # csrc/sha256_shani_vex.c as the package builds it
    python bench/core_count.py --sse        # csrc/sha256_shani.c
    python bench/core_count.py FILE.o [--rnds2-per-hash 62]   # an object built from another revision
                                                            # (62 RNDS2 a hash before run J)

For each scan function and each RNDS2 count, the innermost loop (a backward branch and its target)
with that many SHA256RNDS2: its instructions, its RNDS2 / MSG1 / MSG2, the hashes it makes, and the
instructions from its first to its last RNDS2. docs/CORE.md's "per nonce" figures are that span over
the hashes of the scan's main loop; the 2-lane version scan's four-version chunk is its 4-hash loop.
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RNDS2_PER_HASH = int(sys.argv[sys.argv.index("--rnds2-per-hash") + 1]) if "--rnds2-per-hash" in sys.argv else 61


def obj_path(tmp: str) -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("--") and not a.isdigit()]
    if args:
        return args[0]
    src = ROOT / "csrc" / ("sha256_shani.c" if "--sse" in sys.argv else "sha256_shani_vex.c")
    out = str(Path(tmp) / "shani.o")
    subprocess.run(["gcc", "-O3", "-std=gnu11", f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'kernels'}", "-c", str(src),
                    "-o", out], check=True)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj_path(tmp)], capture_output=True,
                             text=True, check=True).stdout
    for fn in re.findall(r"<(miner_scan_shani\w+)>:\n", dis):
        body = dis.split(f"<{fn}>:\n")[1].split("\n\n")[0].splitlines()
        ins = []
        for line in body:
            m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
            if m:
                ins.append((int(m.group(1), 16), m.group(2), m.group(3)))
        best: dict[int, tuple] = {}  # RNDS2 count -> the smallest loop with it
        for addr, op, arg in ins:
            m = re.match(r"([0-9a-f]+)\s", arg + " ")
            if not (op.startswith("j") and m and int(m.group(1), 16) < addr):
                continue
            head = int(m.group(1), 16)
            loop = [x for x in ins if head <= x[0] <= addr]
            r = [k for k, x in enumerate(loop) if x[1] == "sha256rnds2"]
            if r and (len(r) not in best or len(loop) < len(best[len(r)][2])):
                best[len(r)] = (head, addr, loop, r)
        for n, (head, addr, loop, r) in sorted(best.items()):
            count = lambda name: sum(1 for x in loop if x[1] == name)  # noqa: E731
            hashes = n / RNDS2_PER_HASH
            span = r[-1] - r[0] + 1
            print(f"{fn:32s} loop {head:#x}-{addr:#x}: {len(loop):5d} instructions, rnds2 {n}, "
                  f"msg1 {count('sha256msg1')}, msg2 {count('sha256msg2')}, {hashes:.1f} hashes; "
                  f"rnds2 span {span} ({span / hashes:.1f} a hash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
