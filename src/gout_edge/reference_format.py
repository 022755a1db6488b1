"""The reference-set format: what ``export`` writes into a bundle and ``verify`` reads on the cart.

The reference set's layout (written by ``gout_edge.export.reference_writer``): the manifest's
``reference`` section (``gout_edge.manifest.ReferenceSet``) lists the inputs (``id``, ``file``, npz
``key``, ``kind``, ``label``, ``patient``), the reference patients with their recorded
probabilities per model file, the expected decisions, the tolerances and the engines that made
the expected outputs. Frames live in ``reference/inputs.npz`` (uint8, read with ``allow_pickle=False``) and ``reference/*.dcm``;
expected outputs in ``reference/expected.npz``: ``roi`` (N, 4) int32, ``blank`` / ``colour`` (N,)
bool, and per model file ``<role>.probability`` (N,) float32, ``<role>.cam`` (N, h, w) uint8 with
``<role>.cam_lo`` / ``<role>.cam_scale`` (N,) float32 (cam ≈ lo + scale · u8) and, when the bundle
has a scope guard, ``<role>.scope`` (N,) float32 (the guard's distance; the set then also holds
out-of-scope screens the guard refuses). Every one of these files is listed in the manifest with
role ``reference`` and hashed.

CAMs are stored as uint8 per input with an offset and a scale (``encode_cam`` / ``decode_cam``);
``.npz`` files are written with fixed timestamps (``write_npz``) so that the same arrays give the
same bytes, and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BundleError
from .manifest import Manifest, ReferenceSet, Role, Tolerances

__all__ = [
    "DEFAULT_TOLERANCES",
    "EXPECTED_NAME",
    "INPUTS_NAME",
    "REFERENCE_ENGINES",
    "REFERENCE_ROLE",
    "ReferenceOutputs",
    "decode_cam",
    "encode_cam",
    "reference_section",
    "write_npz",
]

REFERENCE_ROLE = Role.REFERENCE
INPUTS_NAME = "reference/inputs.npz"
EXPECTED_NAME = "reference/expected.npz"

# The engine that records the expected outputs of each model file at export.
REFERENCE_ENGINES: dict[str, tuple[str, str]] = {
    Role.ONNX_FP32: ("onnxruntime", "fp32"),
    Role.ONNX_INT8: ("onnxruntime", "int8"),
    Role.OPENVINO_INT8: ("openvino", "int8"),
}


# Written into every reference set at export; verify reads the bundle's own.
DEFAULT_TOLERANCES = Tolerances()



@dataclass(frozen=True)
class ReferenceOutputs:
    """What the edge path made of the reference inputs on one backend × precision."""

    probability: np.ndarray  # (N,) float32, abnormal class
    cam: np.ndarray  # (N, h, w) float32, abnormal-class CAM
    roi: np.ndarray  # (N, 4) int32: x0, y0, x1, y1 in frame pixels
    blank: np.ndarray  # (N,) bool
    colour: np.ndarray  # (N,) bool
    scope: np.ndarray | None = None  # (N,) float32: the scope guard's distance; None without a guard


def encode_cam(cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, h, w) float → uint8 per image with ``lo`` and ``scale`` (cam ≈ lo + scale · u8)."""
    flat = cam.reshape(len(cam), -1).astype(np.float64)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 0.0)
    q = np.where(scale[:, None] > 0, np.rint((flat - lo[:, None]) / np.maximum(scale[:, None], 1e-30)), 0)
    return q.clip(0, 255).astype(np.uint8).reshape(cam.shape), lo.astype(np.float32), scale.astype(np.float32)


def decode_cam(u8: np.ndarray, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (lo[:, None, None] + scale[:, None, None] * u8.astype(np.float32)).astype(np.float32)


def reference_section(manifest: Manifest) -> ReferenceSet:
    """The manifest's reference section; ``BundleError`` when the bundle has none."""
    ref = manifest.reference
    if ref is None or not ref.inputs:
        raise BundleError(
            "the bundle has no reference set (the manifest's 'reference' section is absent or empty), so it cannot be "
            "verified in the field; re-export it with this version of gout-edge"
        )
    return ref


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed timestamps, so that the same arrays give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)

