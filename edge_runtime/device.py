"""What this device offers: CPU model and features, cores, inference engines and their versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DeviceInfo", "device_info"]

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
