"""What CPU this is, in the words a benchmark figure needs: model, family/model/stepping and the
instruction sets the core's codes use. `miner bench` prints it under its table (and in its JSON),
the scripts under bench/ record it with their figures: a rate means little without the CPU.

Read from /proc/cpuinfo on Linux (x86: "model name", "cpu family", "model", "stepping", "flags";
ARM: "CPU implementer", "CPU part", "Features"); elsewhere only what the platform module knows.
"""
from __future__ import annotations

import os
import platform

# /proc/cpuinfo flag -> the name the docs use, for the instruction sets csrc/ has code for.
ISA_FLAGS = (("sha_ni", "SHA-NI"), ("avx2", "AVX2"), ("avx512f", "AVX-512"), ("sha2", "ARMv8 SHA2"))


def _first_block(path: str) -> dict[str, str]:
    """The first processor's "key : value" lines (every processor repeats them)."""
    facts: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep:
                facts.setdefault(key.strip(), value.strip())
    return facts


def cpu_facts(path: str = "/proc/cpuinfo") -> dict:
    """{"model_name", "family", "model", "stepping", "isa", "logical_cpus"}; fields not known are None
    (isa: the ISA_FLAGS names present, in that order)."""
    try:
        facts = _first_block(path)
    except OSError:
        facts = {}
    flags = set((facts.get("flags") or facts.get("Features") or "").split())
    name = facts.get("model name") or facts.get("Model") or platform.processor() or platform.machine() or None
    if name and "CPU part" in facts and "model name" not in facts:
        name = f"{name} (implementer {facts.get('CPU implementer', '?')} part {facts['CPU part']})"
    return {
        "model_name": name,
        "family": facts.get("cpu family"),
        "model": facts.get("model"),
        "stepping": facts.get("stepping"),
        "isa": [label for flag, label in ISA_FLAGS if flag in flags],
        "logical_cpus": os.cpu_count(),
    }


def describe(facts: dict | None = None) -> str:
    """One line, e.g. "Intel(R) Xeon(R) Processor (family 6 model 167 stepping 1), 2 logical CPUs;
    SHA-NI, AVX2, AVX-512"."""
    f = cpu_facts() if facts is None else facts
    where = " ".join(f"{k} {f[k]}" for k in ("family", "model", "stepping") if f.get(k) is not None)
    head = f"{f.get('model_name') or 'unknown CPU'}" + (f" ({where})" if where else "")
    return f"{head}, {f.get('logical_cpus') or '?'} logical CPUs; {', '.join(f.get('isa') or []) or 'no SIMD hash extensions'}"
