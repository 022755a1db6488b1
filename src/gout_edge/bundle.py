"""The bundle contract between ``export`` and ``edge_runtime`` (DESIGN.md §4).

A bundle is a directory with ``manifest.json`` at its root. The manifest is a tree of frozen
dataclasses; ``Manifest.from_dict`` validates a parsed manifest and names the first field that
breaks the contract. This module is torch-free and numpy-free: the runtime and the exporter both
import it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import atomic_write_bytes
from .errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "DecisionSpec",
    "FileEntry",
    "InputSpec",
    "Manifest",
    "ModelInfo",
    "OutputSpec",
    "PreprocessSpec",
    "read_manifest",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
NOT_FOR_CLINICAL_USE = "Research software; a model trained on synthetic phantoms is not for clinical use."


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    architecture: str
    blocks: int
    widths: tuple[int, ...]
    parameters: int
    macs_per_frame: int
    checkpoint_sha256: str
    class_names: tuple[str, ...] = ("normal", "gout lesion")
    abnormal_index: int = 1
    provenance: str = "unknown"
    intended_use: str = NOT_FOR_CLINICAL_USE


@dataclass(frozen=True)
class InputSpec:
    height: int = 320
    width: int = 700
    channels: int = 1
    dtype: str = "float32"
    normalization: str = "per-image-standardization"


@dataclass(frozen=True)
class PreprocessSpec:
    """How a frame becomes a model input; the same code runs at export, calibration and bedside."""

    roi_method: str = "auto"  # "auto": DICOM ultrasound region if present, else threshold+morphology
    roi_threshold: int = 12  # grey level above which a pixel may belong to the B-mode area
    roi_morph_kernel: int = 9  # opening kernel (px, on the analysis image) that removes text
    roi_analysis_width: int = 480  # frames are analysed at this width for speed
    roi_min_area_fraction: float = 0.04
    resize: str = "stretch"
    interpolation: str = "area"


@dataclass(frozen=True)
class OutputSpec:
    logits: str = "logits"
    cam: str = "cam"
    cam_stride: int = 16
    cam_height: int = 20
    cam_width: int = 44


@dataclass(frozen=True)
class DecisionSpec:
    image_cutoff: float = 0.5
    patient_threshold: float | None = None
    rule: str = "abnormal_fraction > patient_threshold -> gouty arthritis"
    min_key_frames: int = 5
    calibrated: bool = False
    source: str = "not calibrated: run `gout-edge calibrate`"


@dataclass(frozen=True)
class FileEntry:
    path: str
    role: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    model: ModelInfo
    input: InputSpec
    preprocess: PreprocessSpec
    outputs: OutputSpec
    decision: DecisionSpec
    files: tuple[FileEntry, ...]
    format_version: int = FORMAT_VERSION
    export: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # held-out figures, when measured

    def file(self, role: str) -> FileEntry:
        for entry in self.files:
            if entry.role == role:
                return entry
        roles = ", ".join(sorted(e.role for e in self.files)) or "none"
        raise BundleError(f"the bundle has no file with role {role!r} (it has: {roles})")

    def roles(self) -> tuple[str, ...]:
        return tuple(e.role for e in self.files)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise BundleError("manifest.json must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"manifest format_version is {version!r}; this gout-edge reads {FORMAT_VERSION}. "
                "Re-export the bundle with this version of gout-edge."
            )
        return _from_plain(cls, data, "manifest")


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _from_plain(tp: Any, value: Any, where: str) -> Any:
    """Build ``tp`` from parsed JSON, raising ``BundleError`` naming the offending field."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise BundleError(f"{where} must be an object, found {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise BundleError(f"{where} has unknown field(s) {unknown}; expected only {sorted(known)}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _from_plain(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BundleError(f"{where}.{f.name} is missing; it is required by the bundle contract")
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_plain(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise BundleError(f"{where} must be a list, found {type(value).__name__}")
        (inner, _ellipsis) = typing.get_args(tp)
        return tuple(_from_plain(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise BundleError(f"{where} must be an object, found {type(value).__name__}")
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and (type(value) is not tp):
        raise BundleError(f"{where} must be {tp.__name__}, found {value!r}")
    return value


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical serialisation (sorted keys): what is hashed and signed."""
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    return atomic_write_bytes(Path(bundle_dir) / MANIFEST_NAME, manifest_bytes(manifest))


def read_manifest(bundle_dir: Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"{path} not found: a bundle is a directory with manifest.json at its root "
            "(made by `gout-edge export`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged, re-export it") from None
    return Manifest.from_dict(data)
