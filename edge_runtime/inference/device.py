"""What this device offers: CPU model and features, cores, inference engines and their versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ISA_CHOICES", "DeviceInfo", "cpu_isa", "device_info", "has_vnni", "int8_class"]

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
_PACKAGES = ("numpy", "opencv-python-headless", "onnxruntime", "openvino", "pydicom", "torch")


@dataclass(frozen=True)
class DeviceInfo:
    machine: str
    system: str
    cpu_model: str
    logical_cores: int
    physical_cores: int | None
    features: tuple[str, ...]
    backends: tuple[str, ...]
    versions: dict[str, str] = field(default_factory=dict)


def _cpuinfo() -> tuple[str, set[str], int | None]:
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


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def device_info() -> DeviceInfo:
    from .backends import available_backends

    model, flags, physical = _cpuinfo()
    return DeviceInfo(
        machine=platform.machine(),
        system=f"{platform.system()} {platform.release()}",
        cpu_model=model,
        logical_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        physical_cores=physical,
        features=tuple(name for flag, name in _FEATURES.items() if flag in flags),
        backends=tuple(available_backends()),
        versions=_versions(),
    )


def cpu_isa(features: Sequence[str]) -> str | None:
    """The highest oneDNN ISA of ``ISA_CHOICES`` that a CPU with these ``DeviceInfo.features``
    has (``None``: below AVX2, or not x86)."""
    return next((isa for feature, isa in _ISA_BY_FEATURE if feature in features), None)


def has_vnni(features: Sequence[str]) -> bool:
    """Whether a CPU with these ``DeviceInfo.features`` has INT8 dot-product instructions (VNNI)."""
    return cpu_isa(features) in ("AVX2_VNNI", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_AMX")


def int8_class(features: Sequence[str]) -> str:
    """One sentence on where this CPU stands against the budgets' reference cart (2 x86 cores,
    AVX2 without VNNI) for INT8 inference."""
    isa = cpu_isa(features)
    if isa is None:
        return "this CPU has no AVX2: INT8 runs slower here than on the budgets' reference cart (AVX2)"
    if isa == "AVX2":
        return "this CPU has AVX2 without VNNI or AVX-512: the reference cart class the budgets are written for"
    return (f"this CPU has {isa}: INT8 runs faster here than on the budgets' reference cart (AVX2 without VNNI); "
            "`gout-edge bench --isa AVX2` caps oneDNN to that cart's instructions")
