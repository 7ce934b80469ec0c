"""Register spills in the SHA-NI hot loops, counted in GCC's own assembly.

    python bench/core_spills.py            # compiles csrc/sha256_shani.c as the package does
    python bench/core_spills.py FILE.s     # or reads an assembly listing made with -S -fverbose-asm

GCC's -fverbose-asm marks its spill slots "%sfp" in the operand comments, so a
spill is told apart from the memory operands the code uses on purpose (the
schedule kept in memory, the K+W words). For each scan function it prints the
spill stores and reloads between its first and last SHA256RNDS2 (the unrolled
lane-group body the scan loop runs) and the RNDS2 count there (61 per nonce).
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listing() -> str:
    if len(sys.argv) > 1:
        return Path(sys.argv[1]).read_text()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shani.s"
        subprocess.run(["gcc", "-O3", "-std=gnu11", f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'kernels'}", "-S",
                        "-fverbose-asm", str(ROOT / "csrc" / "sha256_shani.c"), "-o", str(out)], check=True)
        return out.read_text()


s = listing()
for f in re.split(r'\n(?=miner_scan_\w+:\n)', s):
    m=re.match(r'(miner_scan_\w+):',f)
    if not m: continue
    body=f.split('.size')[0].split('\n')
    # hot loop = lines between the first and last sha256rnds2
    idx=[i for i,l in enumerate(body) if 'sha256rnds2' in l]
    hot=body[idx[0]:idx[-1]+1] if idx else []
    rl=sum(1 for l in hot if '%sfp' in l and re.search(r'\(%rsp\)[^#]*,\s*%xmm', l))
    st=sum(1 for l in hot if '%sfp' in l and re.search(r'%xmm\d+,\s*-?\d*\(%rsp\)', l))
    print(f"{m.group(1):28s} in the rnds2 span: spill stores {st}, reloads {rl}, rnds2 {len(idx)}")
