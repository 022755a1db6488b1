"""What this device offers: CPU model and features, cores, inference engines and their versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass, field

from .cpu import (
    ISA_CAP_ENV,
    ISA_CHOICES,
    cpu_features,
    cpu_isa,
    features_of,
    has_vnni,
    int8_class,
    isa_cap,
    read_cpuinfo,
    vnni_name,
)

__all__ = ["ISA_CAP_ENV", "ISA_CHOICES", "DeviceInfo", "cpu_features", "cpu_isa", "device_info", "has_vnni", "int8_class",
           "isa_cap", "vnni_name"]

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

    model, flags, physical = read_cpuinfo()
    return DeviceInfo(
        machine=platform.machine(),
        system=f"{platform.system()} {platform.release()}",
        cpu_model=model,
        logical_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        physical_cores=physical,
        features=features_of(flags),
        backends=tuple(available_backends()),
        versions=_versions(),
    )
