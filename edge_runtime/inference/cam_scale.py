"""The CAM as numbers: the bundle's display scale (fitted at export, or derived from the reference
set for a bundle made before it existed) and the correlation of two CAM stacks. Rendering is
``present.overlay``'s job (docs/design.md §13).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from gout_edge.manifest import CamScale, Role

from .loading import load_expected

__all__ = ["HI_PERCENTILE", "LO_PERCENTILE", "cam_correlation", "cam_scale_for", "fit_cam_scale", "reference_cam_scale"]

log = logging.getLogger(__name__)

LO_PERCENTILE, HI_PERCENTILE = 1.0, 99.5  # of abnormal-class CAM values over the fitting images


# ------------------------------------------------------------------------------------ the scale


def fit_cam_scale(cams: np.ndarray, fitted_on: str, lo_percentile: float = LO_PERCENTILE,
                  hi_percentile: float = HI_PERCENTILE) -> CamScale:
    """The display scale from a stack of abnormal-class CAMs (N, h, w): ``lo`` the
    ``lo_percentile``-th percentile of all values but never below 0 (evidence against a lesion is
    not drawn, as in Grad-CAM), ``hi`` the ``hi_percentile``-th."""
    values = np.asarray(cams, np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return CamScale(0.0, 1.0, f"{fitted_on} (no finite CAM values: a placeholder scale)")
    lo = max(0.0, float(np.percentile(values, lo_percentile)))
    hi = float(np.percentile(values, hi_percentile))
    if not hi > lo + 1e-6:
        hi = lo + max(1.0, abs(lo))
    return CamScale(round(lo, 4), round(hi, 4), fitted_on)


def reference_cam_scale(bundle) -> CamScale:
    """A scale fitted (``fit_cam_scale``) on the expected CAMs of the bundle's reference set — the
    FP32 model's when recorded — leaving out its blank and colour frames. ``BundleError`` when the
    bundle has no reference set."""

    outputs, _ = load_expected(bundle)
    role = Role.ONNX_FP32 if Role.ONNX_FP32 in outputs else next(iter(outputs))
    o = outputs[role]
    keep = ~(np.asarray(o.blank, bool) | np.asarray(o.colour, bool))
    return fit_cam_scale(o.cam[keep], f"reference set, {int(keep.sum())} frames, {role}")


_derived: dict[tuple[str, str], CamScale | None] = {}
_derived_lock = threading.Lock()


def cam_scale_for(bundle) -> CamScale | None:
    """The bundle's CAM display scale: the manifest's ``cam`` section; for a bundle made before
    it existed, one fitted (``fit_cam_scale``) on the expected CAMs of its reference set — the
    FP32 model's when recorded — computed once per bundle and process; ``None`` when the bundle
    has neither (overlays are then scaled per image, and their legend says so)."""
    m = bundle.manifest
    if m.cam is not None:
        return m.cam
    key = (str(bundle.root), m.model.checkpoint_sha256)
    with _derived_lock:
        if key in _derived:
            return _derived[key]
        scale = None
        try:
            scale = reference_cam_scale(bundle)
            scale = CamScale(scale.lo, scale.hi, scale.fitted_on + "; derived on opening: the manifest has no cam section")
        except Exception as exc:  # no reference set, or one that cannot be read: scale per image
            log.warning("bundle %s has no CAM scale and none can be derived from its reference set (%s); "
                        "overlays are scaled per image", bundle.root.name, exc)
        _derived[key] = scale
        return scale


# ------------------------------------------------------------------------------------ comparing maps


def cam_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image Pearson correlation of two CAM stacks (N, h, w); 1 where either is flat."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return np.where(denom > 0, (x * y).sum(axis=1) / np.maximum(denom, 1e-30), 1.0)
