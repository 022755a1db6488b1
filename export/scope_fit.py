"""The scope guard, fitted at export (docs/design.md §14; the cart's side is ``edge_runtime.inference.scope_guard``).

On the FP32 model's pooled features of the export's in-scope images, two guards are fitted and
compared:

``mahalanobis`` — class-conditional means with one shared covariance, shrunk towards a multiple
    of the identity by the Ledoit-Wolf formula (Lee et al. 2018); stored as the means and the
    whitening matrix ``L⁻¹`` (``Σ = L Lᵀ``).
``knn`` — the cosine distance to the k-th nearest fitted image (Sun et al. 2022), k = 1 and 5.

Each is fitted on the INT8 calibration half of the export's images and scored on the other half
(held-out patients) and on a generated out-of-scope set (``phantom.out_of_scope``,
its own seed: other anatomy, Doppler, near misses, non-ultrasound). The guard with the highest
AUROC (in-scope vs out-of-scope frames) is kept. Its threshold is the distance that refuses
``false_refusal`` of the held-out in-scope frames with every model file of the bundle, each run by
its own engine: INT8 features differ from FP32 ones (with ONNX Runtime's U8S8 model, in-scope
distances run ≈ 30 % higher), and the cart must not refuse more with the engine it happens to
have. The comparison, with each model file's figures, is kept in the manifest.

Both in-scope halves also enter a second time with their crop tightened by up to
``CROP_JITTER`` of each side (``crop_jitter``): a DICOM file's declared ultrasound region is the
exact image area, a few pixels inside the region that image analysis finds (and that training
used), and the guard is sensitive to that — unaugmented, it refused most stills of some phantom
DICOM studies whose PNG twins it accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gout_edge.calibration.stats import auc
from gout_edge.edge_runtime.imaging.preprocess import prepare
from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.inference.scope_guard import scope_distances
from gout_edge.manifest import SCOPE_ROLE, InputSpec, Manifest, PreprocessSpec, Role, ScopeSpec
from gout_edge.reference_format import REFERENCE_ENGINES, write_npz

from .int8 import LabelledInputs

__all__ = ["SCOPE_FILE", "ScopeFit", "add_scope_guard", "fit_mahalanobis", "fit_scope_guard", "out_of_scope_inputs",
           "refusal_threshold"]

SCOPE_FILE = "scope.npz"
FALSE_REFUSAL = 0.02  # of held-out in-scope frames, at the threshold
OOS_SEED = 11  # the comparison's out-of-scope set; the done-when figures use other seeds
OOS_PER_CATEGORY = 2
CROP_JITTER = 0.03  # the largest inset, as a fraction of each side
CANDIDATES = (("mahalanobis", 1), ("knn", 1), ("knn", 5))

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScopeFit:
    spec: ScopeSpec
    arrays: dict[str, np.ndarray]


def _ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance of centred rows ``x`` (n, p) and the shrinkage used (Ledoit & Wolf 2004)."""
    n, p = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / p
    d2 = float(np.sum((s - mu * np.eye(p)) ** 2))
    norms = np.sum(x**2, axis=1)
    b2 = float(np.sum(norms**2) - 2 * np.einsum("ij,jk,ik->", x, s, x) + n * np.sum(s**2)) / n**2
    shrink = 1.0 if d2 <= 0 else min(max(b2, 0.0), d2) / d2
    return shrink * mu * np.eye(p) + (1.0 - shrink) * s, shrink


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Class means and the whitening matrix of their shared, shrunk covariance."""
    f = np.asarray(features, np.float64)
    classes = np.unique(labels)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, labels)]
    cov, _ = _ledoit_wolf(centred)
    lower = np.linalg.cholesky(cov + 1e-9 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    whiten = np.linalg.solve(lower, np.eye(len(cov)))
    return {"means": means.astype(np.float32), "whiten": whiten.astype(np.float32)}


def _fit(method: str, features: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    if method == "mahalanobis":
        return fit_mahalanobis(features, labels)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return {"bank": unit.astype(np.float32)}


def crop_jitter(inputs: np.ndarray, seed: int = 0, max_fraction: float = CROP_JITTER) -> np.ndarray:
    """Each model input (N, 1, H, W) cropped by a random inset of up to ``max_fraction`` of each
    side, resized back and standardized again, as a tighter region would have given it."""
    import cv2

    rng = np.random.default_rng(seed)
    _, _, h, w = inputs.shape
    out = np.empty_like(inputs, dtype=np.float32)
    for i, x in enumerate(inputs):
        top, bottom = (rng.uniform(0, max_fraction, 2) * h).round().astype(int)
        left, right = (rng.uniform(0, max_fraction, 2) * w).round().astype(int)
        crop = cv2.resize(np.ascontiguousarray(x[0, top : h - bottom, left : w - right], np.float32), (w, h),
                          interpolation=cv2.INTER_LINEAR)
        out[i, 0] = (crop - crop.mean()) / max(float(crop.std()), 1e-6)
    return out


def out_of_scope_inputs(input_spec: InputSpec, preprocess: PreprocessSpec, seed: int = OOS_SEED,
                        per_category: int = OOS_PER_CATEGORY) -> tuple[np.ndarray, list[str]]:
    """The generated out-of-scope screens as the cart prepares them (N, 1, H, W), with their kinds;
    screens the cart finds blank are left out (they never reach the guard)."""
    from gout_edge.phantom import generate_out_of_scope

    tensors, kinds = [], []
    for image in generate_out_of_scope(seed=seed, per_category=per_category):
        prepared = prepare(image.screen, input_spec, preprocess)
        if not prepared.blank:
            tensors.append(prepared.tensor)
            kinds.append(f"{image.category}/{image.kind}")
    return np.stack(tensors), kinds


def _features(bundle: Bundle, backend: str, precision: str, inputs: np.ndarray, threads: int | None) -> np.ndarray:
    session = open_session(bundle, backend, SessionOptions(precision=precision, threads=threads))
    try:
        out = [session.run(inputs[i : i + 8].astype(np.float32)).features for i in range(0, len(inputs), 8)]
    finally:
        session.close()
    if any(f is None for f in out):
        raise RuntimeError("the exported graph has no features output; the scope guard needs one")
    return np.concatenate(out)


def refusal_threshold(held: np.ndarray, fraction: float = FALSE_REFUSAL) -> float:
    """The smallest distance that refuses at most ``fraction`` of ``held`` (a frame is refused above
    it): the sample quantile rounded up to a held-out value, so that rounding never refuses more
    (an interpolated 98th percentile of 346 distances refused 7, 2.02 %)."""
    return float(np.quantile(held, 1.0 - fraction, method="higher"))


def fit_scope_guard(bundle_dir: Path, manifest: Manifest, data: LabelledInputs, threads: int | None = None,
                    progress: Progress = lambda msg: None) -> ScopeFit:
    """Fit, compare and choose the guard (see the module's docstring); FP32 features."""
    bundle = Bundle(Path(bundle_dir), manifest)
    progress("scope guard: features of the in-scope images")
    fit_x = np.concatenate([data.calibration, crop_jitter(data.calibration, seed=1)])
    fit_labels = np.r_[data.calibration_labels, data.calibration_labels]
    fit_f = _features(bundle, "onnxruntime", "fp32", fit_x, threads)
    held_x = np.concatenate([data.fidelity, crop_jitter(data.fidelity, seed=2)])
    held_f = _features(bundle, "onnxruntime", "fp32", held_x, threads)
    progress("scope guard: generating and scoring the out-of-scope comparison set")
    oos_x, oos_kinds = out_of_scope_inputs(manifest.input, manifest.preprocess)
    oos_f = _features(bundle, "onnxruntime", "fp32", oos_x, threads)
    labels = np.r_[np.zeros(len(held_f), int), np.ones(len(oos_f), int)]

    results = []
    for method, k in CANDIDATES:
        arrays = _fit(method, fit_f, fit_labels)
        held = scope_distances(method, arrays, held_f, k)
        oos = scope_distances(method, arrays, oos_f, k)
        threshold = refusal_threshold(held)
        refused = oos > threshold
        by_category: dict[str, list[bool]] = {}
        for kind, r in zip(oos_kinds, refused, strict=True):
            by_category.setdefault(kind.split("/")[0], []).append(bool(r))
        results.append({
            "method": method, "k": k, "arrays": arrays, "threshold": threshold, "held": held, "oos": oos,
            "auroc": float(auc(labels, np.r_[held, oos])),
            "refused_out_of_scope": float(refused.mean()),
            "refused_by_category": {c: round(float(np.mean(v)), 3) for c, v in sorted(by_category.items())},
            "refused_in_scope_held_out": float((held > threshold).mean()),
        })
    best = max(results, key=lambda r: (r["auroc"], r["refused_out_of_scope"]))
    progress("scope guard: the threshold with every model file's features")
    by_file: dict[str, dict] = {}
    for role, (backend, precision) in REFERENCE_ENGINES.items():
        if role not in manifest.roles():
            continue
        held = best["held"] if role == Role.ONNX_FP32 else scope_distances(
            best["method"], best["arrays"], _features(bundle, backend, precision, held_x, threads), best["k"])
        oos = best["oos"] if role == Role.ONNX_FP32 else scope_distances(
            best["method"], best["arrays"], _features(bundle, backend, precision, oos_x, threads), best["k"])
        by_file[role] = {"engine": f"{backend} {precision}", "held": held, "oos": oos,
                         "threshold": refusal_threshold(held)}
    threshold = max(f["threshold"] for f in by_file.values())
    model_files = {role: {"engine": f["engine"], "threshold_alone": round(f["threshold"], 6),
                          "refused_in_scope_held_out": float((f["held"] > threshold).mean()),
                          "refused_out_of_scope": float((f["oos"] > threshold).mean()),
                          "auroc": float(auc(labels, np.r_[f["held"], f["oos"]]))}
                   for role, f in by_file.items()}
    comparison = {
        "chosen": f"{best['method']} (k={best['k']})" if best["method"] == "knn" else best["method"],
        "chosen_because": "highest AUROC, in-scope held-out frames vs the out-of-scope comparison set",
        "out_of_scope_set": f"gout-edge phantom --out-of-scope, seed {OOS_SEED}, {OOS_PER_CATEGORY} per kind "
                            f"and category: {len(oos_f)} non-blank screens",
        "in_scope_held_out": f"{len(held_f) // 2} frames of held-out patients (the INT8 fidelity half), each also "
                             f"with its crop tightened by up to {CROP_JITTER:.0%} of each side",
        "candidates": [{key: v for key, v in r.items() if key not in ("arrays", "held", "oos")} for r in results],
        "threshold_rule": f"the largest of the model files' distances refusing {FALSE_REFUSAL:.0%} of the held-out "
                          "in-scope frames (each file run by its own engine)",
        "model_files": model_files,
    }
    source = data.summary.get("source", "index table")
    spec = ScopeSpec(
        method=best["method"], file=SCOPE_FILE, threshold=round(threshold, 6), false_refusal_target=FALSE_REFUSAL,
        k=best["k"],
        fitted_on=f"{len(fit_f) // 2} in-scope images ({source}; the INT8 calibration half), each also with its crop "
                  f"tightened by up to {CROP_JITTER:.0%} of each side; FP32 pooled features",
        threshold_set_on=f"{len(held_f) // 2} images of held-out patients, each also with a tightened crop: refuses "
                         f"at most {FALSE_REFUSAL:.0%} of them with any model file of the bundle",
        comparison=comparison,
    )
    return ScopeFit(spec, best["arrays"])


def add_scope_guard(out: Path, manifest: Manifest, data: LabelledInputs, entry: Callable[[str, str], object],
                    threads: int | None = None, progress: Progress = lambda msg: None) -> Manifest:
    """Fit the guard, write its file and return the manifest with the file and the ``scope`` section."""
    fit = fit_scope_guard(out, manifest, data, threads, progress)
    write_npz(Path(out) / SCOPE_FILE, fit.arrays)
    return dataclasses.replace(manifest, files=manifest.files + (entry(SCOPE_FILE, SCOPE_ROLE),), scope=fit.spec)
