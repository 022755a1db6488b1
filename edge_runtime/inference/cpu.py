"""This CPU's instruction sets as they matter for INT8 inference: its features, the highest oneDNN
ISA they make up, VNNI (INT8 dot products) and a process-wide oneDNN cap. No engine is imported
here (``device`` adds the engines and their versions)."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ISA_CAP_ENV", "ISA_CHOICES", "cpu_features", "cpu_isa", "features_of", "has_vnni", "int8_class", "isa_cap",
           "read_cpuinfo", "vnni_name"]

# /proc/cpuinfo flag → the name people use
_FEATURES = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "asimddp": "NEON dot product",
    "sve": "SVE",
}
# oneDNN's names for ONEDNN_MAX_CPU_ISA (x86), weakest first; ALL lifts the cap.
ISA_CHOICES = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16",
               "AVX512_CORE_AMX", "ALL")
# DeviceInfo.features → the highest oneDNN ISA they make up, strongest first (AVX-512F stands for
# the AVX512_CORE set: every x86 CPU with F and VNNI or BF16 also has BW, VL and DQ).
_ISA_BY_FEATURE = (("AMX", "AVX512_CORE_AMX"), ("AVX-512 BF16", "AVX512_CORE_BF16"),
                   ("AVX-512 VNNI", "AVX512_CORE_VNNI"), ("AVX-512F", "AVX512_CORE"), ("AVX-VNNI", "AVX2_VNNI"),
                   ("AVX2", "AVX2"))
# DeviceInfo.features → the oneDNN ISA that brings VNNI (INT8 dot products) with it; CPUs with AVX-512 BF16
# or AMX have AVX-512 VNNI too.
_VNNI_BY_FEATURE = (("AVX-512 VNNI", "AVX512_CORE_VNNI"), ("AVX-512 BF16", "AVX512_CORE_VNNI"),
                    ("AMX", "AVX512_CORE_VNNI"), ("AVX-VNNI", "AVX2_VNNI"))
# The process-wide cap on oneDNN's instructions (OpenVINO's CPU plugin honours it; `bench --isa` sets it in its children).
ISA_CAP_ENV = "ONEDNN_MAX_CPU_ISA"


def read_cpuinfo() -> tuple[str, set[str], int | None]:
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or "unknown", set(), None
    model, flags, cores = "unknown", set(), set()
    physical = None
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "Hardware") and model == "unknown":
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    return model, flags, (len(cores) or None)


def cpu_features() -> tuple[str, ...]:
    """This CPU's ``DeviceInfo.features`` alone (no engine is imported)."""
    return features_of(read_cpuinfo()[1])


def features_of(flags: set[str]) -> tuple[str, ...]:
    return tuple(name for flag, name in _FEATURES.items() if flag in flags)


def cpu_isa(features: Sequence[str]) -> str | None:
    """The highest oneDNN ISA of ``ISA_CHOICES`` that a CPU with these ``DeviceInfo.features``
    has (``None``: below AVX2, or not x86)."""
    return next((isa for feature, isa in _ISA_BY_FEATURE if feature in features), None)


def isa_cap(environ: Mapping[str, str] | None = None) -> str | None:
    """The oneDNN ISA cap of this process (``ONEDNN_MAX_CPU_ISA`` in ``environ``, default
    ``os.environ``), as a name of ``ISA_CHOICES``; ``None`` when unset, ``ALL`` or not a name oneDNN knows."""
    value = (os.environ if environ is None else environ).get(ISA_CAP_ENV, "").strip().upper()
    return value if value in ISA_CHOICES and value != "ALL" else None


def _vnni_isas(features: Sequence[str]) -> list[str]:
    return [isa for feature, isa in _VNNI_BY_FEATURE if feature in features]


def has_vnni(features: Sequence[str], cap: str | None = None) -> bool:
    """Whether a CPU with these ``DeviceInfo.features`` has INT8 dot-product instructions (VNNI),
    and, with a oneDNN ISA ``cap`` (``isa_cap()``), whether the cap leaves them usable (a cap below
    the CPU's VNNI level, e.g. ``AVX512_CORE`` or ``AVX2`` on an AVX-512 VNNI CPU, takes them away)."""
    levels = _vnni_isas(features)
    if cap is None:
        return bool(levels)
    return any(ISA_CHOICES.index(level) <= ISA_CHOICES.index(cap) for level in levels)


def vnni_name(features: Sequence[str]) -> str | None:
    """The VNNI of a CPU with these features, as people name it (``AVX-512 VNNI``, ``AVX-VNNI``), or None."""
    levels = _vnni_isas(features)
    return "AVX-512 VNNI" if "AVX512_CORE_VNNI" in levels else "AVX-VNNI" if levels else None


def int8_class(features: Sequence[str]) -> str:
    """One sentence on where this CPU stands against the budgets' reference cart (2 x86 cores,
    AVX2 without VNNI) for INT8 inference. What decides INT8 speed is VNNI (INT8 dot products):
    without it INT8 runs about 2× slower, whatever else the CPU has (AVX-512, BF16)."""
    isa = cpu_isa(features)
    cap = "`gout-edge bench --isa AVX2` caps oneDNN to that cart's instructions"
    if isa is None:
        return "this CPU has no AVX2 and no VNNI: INT8 runs slower here than on the budgets' reference cart (AVX2)"
    if isa == "AVX2":
        return ("this CPU has AVX2 without VNNI or AVX-512: the reference cart class the budgets are written for, "
                "where INT8 runs about 2× slower than on a CPU with VNNI (INT8 dot-product instructions)")
    vnni = vnni_name(features)
    if vnni is None:
        return ("this CPU has AVX-512 without VNNI: INT8 runs on wider vectors than on the budgets' reference cart "
                "(AVX2 without VNNI) but still without VNNI's INT8 dot products, about 2× slower than with them; " + cap)
    return (f"this CPU has {vnni}: INT8 runs about 2× faster here than on the budgets' reference cart (AVX2 without "
            "VNNI); " + cap)
