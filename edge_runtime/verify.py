"""Field verification: does this device reproduce the model owner's outputs? (DESIGN.md §4, issue 7)

``verify_bundle`` is what ``gout-edge verify`` runs when a cart is installed, updated or serviced:

1. **integrity** — the manifest's signature (when this device has a public key) and every file's
   SHA-256 (``open_bundle``; a mismatch raises ``BundleTamperedError`` naming the file, exit 4);
2. **reference outputs** — every input of the bundle's reference set (raw scanner screens that
   need ROI extraction, DICOM files decoded here) through the whole edge path — ``prepare`` →
   backend → CAM — on each available backend × precision the bundle offers, compared with the
   outputs the model owner recorded for that model file: probabilities, image decisions, CAM
   correlation, ROI boxes and blank/colour flags;
3. **reference patients** — their decisions recomputed with the *current* manifest's decision
   settings, from the recorded probabilities and from the ones measured here, against the
   expected decisions (set at export and refreshed by whoever sets the threshold: see
   ``refresh_expected_decisions``), so that an edited threshold that changes a decision fails;
4. **latency** — p50 / p99 end to end (raw frame → probability with CAM) against the budgets.

Every check has a name, the measured value, the tolerance and pass/fail; the
``VerificationRecord`` adds the device (hashed host name, CPU features, library versions), the
bundle's identity and the SHA-256 of its ``manifest.json``, and the UTC time. No patient data.

The reference set's layout (written by ``gout_edge.export.reference``): the manifest's
``reference`` section lists the inputs (``id``, ``file``, npz ``key``, ``kind``, ``label``,
``patient``), the reference patients with their recorded probabilities per model file, the
expected decisions, the tolerances and the engines that made the expected outputs. Frames live
in ``reference/inputs.npz`` (uint8, read with ``allow_pickle=False``) and ``reference/*.dcm``;
expected outputs in ``reference/expected.npz``: ``roi`` (N, 4) int32, ``blank`` / ``colour`` (N,)
bool, and per model file ``<role>.probability`` (N,) float32, ``<role>.cam`` (N, h, w) uint8 with
``<role>.cam_lo`` / ``<role>.cam_scale`` (N,) float32 (cam ≈ lo + scale · u8). Every one of these
files is listed in the manifest with role ``reference`` and hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.bundle import MANIFEST_NAME, DecisionSpec, Manifest, sha256_file
from gout_edge.errors import BundleError, UsageError

from .cam import cam_correlation
from .preprocess import Roi

__all__ = [
    "DEFAULT_TOLERANCES",
    "REFERENCE_ENGINES",
    "REFERENCE_ROLE",
    "Check",
    "ReferenceFrame",
    "ReferenceOutputs",
    "VerificationRecord",
    "decode_cam",
    "encode_cam",
    "load_expected",
    "load_reference_frames",
    "model_role",
    "patient_decisions",
    "refresh_expected_decisions",
    "refused_record",
    "run_reference",
    "verify_bundle",
]

REFERENCE_ROLE = "reference"
RECORD_FORMAT = "gout-edge-verification"
RECORD_VERSION = 1

# The engine that records the expected outputs of each model file at export.
REFERENCE_ENGINES: dict[str, tuple[str, str]] = {
    "onnx-fp32": ("onnxruntime", "fp32"),
    "onnx-int8": ("onnxruntime", "int8"),
    "openvino-int8": ("openvino", "int8"),
}

# Written into every reference set at export; verify reads the bundle's own.
DEFAULT_TOLERANCES: dict[str, Any] = {
    "fp32": {"probability_abs": 1e-4, "image_decision_band": 1e-4, "cam_correlation_min": 0.99},
    "int8": {"probability_abs": 0.05, "image_decision_band": 0.05, "cam_correlation_min": 0.95},
    "roi_max_abs_px": 2,
    "patient_decisions": "identical",
    "flags": "identical (blank, colour)",
}


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Check:
    """One verification check: what was measured, against what tolerance, and the verdict."""

    name: str
    group: str  # integrity | reference | decisions | latency
    passed: bool
    measured: Any
    tolerance: Any
    detail: str = ""
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VerificationRecord:
    """The outcome of ``verify_bundle``; ``to_dict()`` is the JSON record written to disk."""

    status: str  # passed | failed | refused
    created_utc: str
    device: dict[str, Any]
    bundle: dict[str, Any]
    options: dict[str, Any]
    checks: tuple[Check, ...]
    error: str | None = None
    format: str = RECORD_FORMAT
    format_version: int = RECORD_VERSION

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({
            "format": self.format,
            "format_version": self.format_version,
            "status": self.status,
            "created_utc": self.created_utc,
            "device": self.device,
            "bundle": self.bundle,
            "options": self.options,
            "summary": {
                "checks": len(self.checks),
                "passed": sum(c.passed and not c.skipped for c in self.checks),
                "failed": len(self.failures),
                "skipped": sum(c.skipped for c in self.checks),
                "failed_checks": [c.name for c in self.failures],
            },
            "checks": [c.to_dict() for c in self.checks],
            "error": self.error,
        })


def _json_safe(value: Any) -> Any:
    """Plain JSON: numpy scalars as Python numbers, NaN and infinities as strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# the reference set, shared with export


@dataclass(frozen=True)
class ReferenceOutputs:
    """What the edge path made of the reference inputs on one backend × precision."""

    probability: np.ndarray  # (N,) float32, abnormal class
    cam: np.ndarray  # (N, h, w) float32, abnormal-class CAM
    roi: np.ndarray  # (N, 4) int32: x0, y0, x1, y1 in frame pixels
    blank: np.ndarray  # (N,) bool
    colour: np.ndarray  # (N,) bool


def encode_cam(cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, h, w) float → uint8 per image with ``lo`` and ``scale`` (cam ≈ lo + scale · u8)."""
    flat = cam.reshape(len(cam), -1).astype(np.float64)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 0.0)
    q = np.where(scale[:, None] > 0, np.rint((flat - lo[:, None]) / np.maximum(scale[:, None], 1e-30)), 0)
    return q.clip(0, 255).astype(np.uint8).reshape(cam.shape), lo.astype(np.float32), scale.astype(np.float32)


def decode_cam(u8: np.ndarray, lo: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (lo[:, None, None] + scale[:, None, None] * u8.astype(np.float32)).astype(np.float32)


def _reference(manifest: Manifest) -> dict[str, Any]:
    ref = manifest.reference
    if not ref or not ref.get("inputs"):
        raise BundleError(
            "the bundle has no reference set (manifest 'reference' section is empty), so it cannot be "
            "verified in the field; re-export it with this version of gout-edge"
        )
    return ref


def _reference_file(bundle, rel: str) -> Path:
    """A reference file, only when the manifest lists (and so hashes) it with role ``reference``."""
    for entry in bundle.manifest.files:
        if entry.path == rel and entry.role == REFERENCE_ROLE:
            return bundle.root / entry.path
    raise BundleError(
        f"the reference set names {rel!r}, which the manifest's files do not list with role "
        f"{REFERENCE_ROLE!r}; an unlisted file is never read — re-export the bundle"
    )


@dataclass(frozen=True)
class ReferenceFrame:
    """A raw reference frame and, for DICOM, the B-mode region the file declares."""

    image: np.ndarray  # uint8, H×W grey or H×W×3 BGR
    roi: Roi | None = None


def _decode_dicom(path: Path, input_id: str) -> ReferenceFrame:
    """A reference DICOM file as the cart reads one: the runtime's DICOM source (first frame and
    the Sequence of Ultrasound Regions) when installed, else the index-table loader."""
    from gout_edge.errors import InputError

    try:
        from .sources.dicom import decode_frames, read_dicom_file
    except ImportError:
        from gout_edge.calibration.index import load_image

        return ReferenceFrame(load_image(path))
    try:
        file = read_dicom_file(path)
        frames = decode_frames(file)
        try:
            image = next(iter(frames))
        finally:
            getattr(frames, "close", lambda: None)()
    except (InputError, StopIteration) as exc:
        raise BundleError(f"reference input {input_id} ({path.name}) cannot be decoded on this device: {exc}") from None
    return ReferenceFrame(image, file.region.roi)


def load_reference_frames(bundle) -> list[ReferenceFrame]:
    """The raw reference frames, in manifest order: npz frames as stored, DICOM decoded here."""
    archives: dict[str, Any] = {}
    frames = []
    try:
        for item in _reference(bundle.manifest)["inputs"]:
            path = _reference_file(bundle, item["file"])
            if item.get("key") is not None:
                if item["file"] not in archives:
                    archives[item["file"]] = np.load(path, allow_pickle=False)
                try:
                    frame = ReferenceFrame(archives[item["file"]][item["key"]])
                except KeyError:
                    raise BundleError(f"reference input {item['id']}: {item['file']} has no array {item['key']!r}") from None
            else:
                frame = _decode_dicom(path, item["id"])
            if frame.image.dtype != np.uint8:
                raise BundleError(f"reference input {item['id']} is {frame.image.dtype}; raw frames are uint8")
            frames.append(frame)
    except ValueError as exc:  # a damaged or pickled npz
        raise BundleError(f"the reference inputs cannot be read ({exc}); re-export the bundle") from None
    finally:
        for archive in archives.values():
            archive.close()
    return frames


def load_expected(bundle) -> tuple[dict[str, ReferenceOutputs], int]:
    """Expected outputs per model file (role), decoded; and the number of reference inputs."""
    ref = _reference(bundle.manifest)
    n = len(ref["inputs"])
    path = _reference_file(bundle, ref["expected"])
    out: dict[str, ReferenceOutputs] = {}
    with np.load(path, allow_pickle=False) as z:
        try:
            roi, blank, colour = z["roi"], z["blank"], z["colour"]
            for role in ref.get("engines", {}):
                out[role] = ReferenceOutputs(
                    probability=z[f"{role}.probability"],
                    cam=decode_cam(z[f"{role}.cam"], z[f"{role}.cam_lo"], z[f"{role}.cam_scale"]),
                    roi=roi,
                    blank=blank,
                    colour=colour,
                )
        except KeyError as exc:
            raise BundleError(f"{ref['expected']} lacks {exc}; the reference set is incomplete — re-export") from None
    for role, o in out.items():
        if len(o.probability) != n or len(o.cam) != n or len(o.roi) != n:
            raise BundleError(f"{ref['expected']} holds outputs for {len(o.probability)} inputs of {role}, the manifest lists {n}")
    return out, n


def model_role(bundle, backend: str, precision: str) -> str | None:
    """The model file ``backend`` runs at ``precision`` for this bundle (None: it cannot)."""
    from .backends import REGISTRY

    target = REGISTRY.get(backend)
    if target is None:
        return None
    module = importlib.import_module(target.split(":")[0], f"{__package__}.backends")
    roles = getattr(module, "ROLES", {}).get(precision, ())
    roles = (roles,) if isinstance(roles, str) else tuple(roles)
    return next((r for r in roles if bundle.has(r)), None)


def run_reference(
    bundle, frames: Sequence[ReferenceFrame | np.ndarray], backend: str, precision: str, threads: int | None = None,
    batch: int = 8,
) -> ReferenceOutputs:
    """Raw frames through the edge path (``Scorer``: ROI → preprocess → backend → CAM)."""
    from .scoring import Scorer

    items = [f if isinstance(f, ReferenceFrame) else ReferenceFrame(f) for f in frames]
    scorer = Scorer(bundle, backend, precision, threads)
    scores = []
    try:
        for i in range(0, len(items), batch):
            scores += scorer.score_prepared([scorer.prepare(f.image, f.roi) for f in items[i : i + batch]])
    finally:
        scorer.close()
    return ReferenceOutputs(
        probability=np.array([s.probability for s in scores], np.float32),
        cam=np.stack([np.asarray(s.cam, np.float32) for s in scores]),
        roi=np.array([[s.roi.x0, s.roi.y0, s.roi.x1, s.roi.y1] for s in scores], np.int32).reshape(-1, 4),
        blank=np.array([s.blank for s in scores], bool),
        colour=np.array([s.colour for s in scores], bool),
    )


def patient_decisions(reference: dict[str, Any], probabilities: Sequence[float], decision: DecisionSpec) -> dict[str, str]:
    """Each reference patient's diagnosis by the paper's vote, from per-input probabilities."""
    from .vote import decide

    index = {item["id"]: i for i, item in enumerate(reference["inputs"])}
    p = np.asarray(probabilities, np.float64)
    return {pt["name"]: decide(p[[index[i] for i in pt["inputs"]]], decision).diagnosis for pt in reference.get("patients", [])}


def _stored_decisions(reference: dict[str, Any], role: str, decision: DecisionSpec) -> dict[str, str]:
    from .vote import decide

    return {pt["name"]: decide(pt["probabilities"][role], decision).diagnosis for pt in reference.get("patients", [])}


def refresh_expected_decisions(manifest: Manifest) -> Manifest:
    """The manifest with its reference patients' expected decisions recomputed for its current
    decision settings. Whoever sets the threshold (``export``, ``gout-edge calibrate``) calls this
    before writing (and signing) the manifest; verification then fails on a later edit that
    changes a reference patient's decision."""
    ref = dict(manifest.reference)
    if not ref.get("patients"):
        return manifest
    d = manifest.decision
    ref["expected_decisions"] = {role: _stored_decisions(ref, role, d) for role in ref.get("engines", {})}
    ref["decided_with"] = {
        "image_cutoff": d.image_cutoff,
        "patient_threshold": d.patient_threshold,
        "min_key_frames": d.min_key_frames,
    }
    return dataclasses.replace(manifest, reference=ref)


# --------------------------------------------------------------------------------------------
# the checks


def _compare(
    label: str,
    ref: dict[str, Any],
    expected: ReferenceOutputs,
    measured: ReferenceOutputs,
    tol: dict[str, Any],
    roi_tol: int,
    decision: DecisionSpec,
    expected_decisions: dict[str, str] | None,
) -> list[Check]:
    ids = [item["id"] for item in ref["inputs"]]
    checks = []
    diff = np.abs(measured.probability.astype(np.float64) - expected.probability)
    worst = int(np.argmax(diff))
    checks.append(Check(
        f"{label}: probabilities", "reference", bool(diff.max() <= tol["probability_abs"]),
        {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "worst_input": ids[worst]},
        {"max_abs_diff": tol["probability_abs"]},
        f"{len(ids)} inputs",
    ))
    cut = decision.image_cutoff
    exp_d, got_d = expected.probability > cut, measured.probability > cut
    band = np.abs(expected.probability.astype(np.float64) - cut) <= tol["image_decision_band"]
    flipped = exp_d != got_d
    outside = [ids[i] for i in np.flatnonzero(flipped & ~band)]
    checks.append(Check(
        f"{label}: image decisions", "reference", not outside,
        {"differ_outside_band": len(outside), "differ_within_band": int((flipped & band).sum()), "inputs": outside},
        {"identical_outside_band_around_cutoff": tol["image_decision_band"], "image_cutoff": cut},
    ))
    usable = ~expected.blank  # a blank frame's CAM is noise and is never shown
    corr = cam_correlation(expected.cam[usable], measured.cam[usable]) if usable.any() else np.ones(1)
    checks.append(Check(
        f"{label}: CAM correlation", "reference", bool(corr.min() >= tol["cam_correlation_min"]),
        {"min": float(corr.min()), "mean": float(corr.mean())},
        {"min": tol["cam_correlation_min"]},
        "Pearson, per input, abnormal-class CAM; blank frames excluded",
    ))
    roi_diff = int(np.abs(measured.roi.astype(np.int64) - expected.roi).max()) if len(ids) else 0
    flags = int((measured.blank != expected.blank).sum() + (measured.colour != expected.colour).sum())
    checks.append(Check(
        f"{label}: ROI and frame flags", "reference", roi_diff <= roi_tol and flags == 0,
        {"roi_max_abs_px": roi_diff, "flag_mismatches": flags},
        {"roi_max_abs_px": roi_tol, "flag_mismatches": 0},
        "B-mode region found by preprocessing; blank and colour (Doppler) flags",
    ))
    if ref.get("patients"):
        got = patient_decisions(ref, measured.probability, decision)
        want = expected_decisions or {}
        wrong = {k: {"measured": got.get(k), "expected": v} for k, v in want.items() if got.get(k) != v}
        checks.append(Check(
            f"{label}: patient decisions", "decisions", bool(want) and not wrong,
            got, {"identical_to": want},
            "; ".join(f"{k}: {w['measured']} here, {w['expected']} expected" for k, w in wrong.items())
            if wrong else ("no expected decisions for this model file" if not want else ""),
        ))
    return checks


def _manifest_decision_checks(ref: dict[str, Any], expected: dict[str, ReferenceOutputs], decision: DecisionSpec) -> list[Check]:
    """Recorded probabilities + the current decision settings → the expected decisions?"""
    if not ref.get("patients"):
        return []
    checks = []
    index = {item["id"]: i for i, item in enumerate(ref["inputs"])}
    worst = 0.0
    for pt in ref["patients"]:
        for role, probs in pt.get("probabilities", {}).items():
            if role in expected:
                stored = expected[role].probability[[index[i] for i in pt["inputs"]]]
                worst = max(worst, float(np.abs(np.asarray(probs, np.float64) - stored).max()))
            else:
                worst = float("inf")
    checks.append(Check(
        "reference patients: recorded probabilities", "decisions", worst <= 1e-6,
        {"max_abs_diff_manifest_vs_expected_file": worst}, {"max_abs_diff": 1e-6},
        "the manifest's per-patient probabilities agree with reference/expected outputs",
    ))
    decided_with = ref.get("decided_with", {})
    now = {"image_cutoff": decision.image_cutoff, "patient_threshold": decision.patient_threshold,
           "min_key_frames": decision.min_key_frames}
    for role, want in ref.get("expected_decisions", {}).items():
        got = _stored_decisions(ref, role, decision) if all(role in pt.get("probabilities", {}) for pt in ref["patients"]) else {}
        wrong = sorted(k for k, v in want.items() if got.get(k) != v)
        detail = ""
        if wrong:
            detail = (
                f"with the manifest's decision settings {now}, reference patient(s) {', '.join(wrong)} get "
                f"{', '.join(str(got.get(k)) for k in wrong)} instead of {', '.join(want[k] for k in wrong)} "
                f"(expected decisions were set with {decided_with}): the threshold or decision rule changed "
                "after the reference decisions were set — if this was a recalibration, rerun `gout-edge calibrate`, "
                "otherwise the manifest has been edited"
            )
        checks.append(Check(
            f"reference patients ({role}): decisions with the current threshold", "decisions", not wrong,
            got, {"identical_to": want, "decided_with": decided_with}, detail,
        ))
    return checks


def _latency_checks(bundle, frames, backend: str, precision: str, n: int, threads: int | None) -> list[Check]:
    from .scoring import Scorer

    budgets = bundle.manifest.budgets
    label = f"{backend}/{precision}"
    if n <= 0:
        return [Check(f"latency end to end ({label})", "latency", True, "skipped", budgets.get("end_to_end_p50_ms"),
                      "latency frames set to 0", skipped=True)]
    scorer = Scorer(bundle, backend, precision, threads)
    try:
        for frame in frames[:3]:
            scorer.score_prepared([scorer.prepare(frame.image, frame.roi)])
        times = []
        for i in range(n):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter()
            scorer.score_prepared([scorer.prepare(frame.image, frame.roi)])
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        scorer.close()
    measured = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
    checks = []
    for q in ("p50", "p99"):
        budget = budgets.get(f"end_to_end_{q}_ms")
        ok = budget is None or measured[q] <= float(budget)
        checks.append(Check(
            f"latency end to end {q} ({label})", "latency", bool(ok), {"ms": round(measured[q], 3), "frames": n},
            {"max_ms": budget} if budget is not None else "no budget in the bundle",
            "raw reference frame → ROI → preprocess → inference with CAM, batch 1, ROI detected on every frame (DICOM: its declared region)",
        ))
    return checks


# --------------------------------------------------------------------------------------------
# the record


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _device() -> dict[str, Any]:
    from .device import device_info

    info = device_info()
    return {
        "node_sha256": hashlib.sha256(platform.node().encode("utf-8")).hexdigest()[:16],
        "machine": info.machine,
        "system": info.system,
        "cpu_model": info.cpu_model,
        "logical_cores": info.logical_cores,
        "physical_cores": info.physical_cores,
        "cpu_features": list(info.features),
        "backends": list(info.backends),
        "versions": {"gout_edge": _version(), **info.versions},
    }


def _version() -> str:
    from gout_edge import __version__

    return __version__


def _bundle_identity(root: Path, manifest: Manifest | None, key: Path | None, checked: bool) -> dict[str, Any]:
    from gout_edge.signing import SIGNATURE_NAME

    manifest_path = root / MANIFEST_NAME
    out: dict[str, Any] = {
        "path": str(root),
        "manifest_sha256": sha256_file(manifest_path) if manifest_path.is_file() else None,
        "signed": (root / SIGNATURE_NAME).is_file(),
        "signature_checked": checked,
        "public_key_sha256": hashlib.sha256(key.read_bytes()).hexdigest() if key is not None and key.is_file() else None,
    }
    if manifest is not None:
        m = manifest.model
        out.update({
            "model": {"name": m.name, "version": m.version, "architecture": m.architecture, "blocks": m.blocks,
                      "checkpoint_sha256": m.checkpoint_sha256},
            "files": {e.path: {"role": e.role, "sha256": e.sha256} for e in manifest.files},
            "decision": dataclasses.asdict(manifest.decision),
        })
    return out


def refused_record(path: Path | str | None, error: Exception, public_key: Path | str | None = None,
                   options: dict[str, Any] | None = None) -> VerificationRecord:
    """The record of a bundle refused before any output was compared (invalid or tampered)."""
    from gout_edge.signing import configured_public_key

    from .bundle import default_bundle_path

    root = Path(path) if path is not None else default_bundle_path()
    key = configured_public_key(public_key)
    manifest = None
    try:
        from gout_edge.bundle import read_manifest

        manifest = read_manifest(root)
    except Exception:  # noqa: BLE001 - the record describes what could be read
        pass
    check = Check("bundle", "integrity", False, "refused", "a valid bundle: signature and every file's SHA-256 match", str(error))
    return VerificationRecord(
        status="refused", created_utc=_utc_now(), device=_device(),
        bundle=_bundle_identity(root, manifest, key, key is not None), options=dict(options or {}),
        checks=(check,), error=str(error),
    )


def _precisions_offered(bundle) -> list[str]:
    roles = set(bundle.manifest.roles())
    return ["fp32"] + (["int8"] if roles & {"onnx-int8", "openvino-int8"} else [])


def verify_bundle(
    path: Path | str | None = None,
    public_key: Path | str | None = None,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    latency_frames: int = 20,
    threads: int | None = None,
) -> VerificationRecord:
    """Verify the bundle at ``path`` (default: the demo bundle) on this device.

    Raises ``BundleError`` / ``BundleTamperedError`` when the bundle is invalid or tampered with
    (``refused_record`` describes that case); otherwise returns the record, ``passed`` or
    ``failed``.
    """
    from gout_edge.signing import configured_public_key

    from .backends import REGISTRY, available_backends
    from .bundle import default_bundle_path, open_bundle

    for b in backends or ():
        if b not in REGISTRY:
            raise UsageError(f"unknown backend {b!r}; choose from {', '.join(REGISTRY)}")
    for p in precisions or ():
        if p not in ("fp32", "int8"):
            raise UsageError(f"unknown precision {p!r}; choose fp32 or int8")
    root = Path(path) if path is not None else default_bundle_path()
    if path is None and not root.exists():
        raise BundleError(f"no bundle given and the demo bundle is not installed ({root}); pass one: gout-edge verify BUNDLE")
    key = configured_public_key(public_key)
    options = {"backends": list(backends) if backends else "all available", "precisions": list(precisions) if precisions
               else "all in the bundle", "latency_frames": latency_frames, "threads": threads}
    created = _utc_now()
    bundle = open_bundle(root, public_key)  # signature (when a key is configured) and every file's hash
    manifest = bundle.manifest
    ref = _reference(manifest)
    checks = [
        Check("files", "integrity", True, f"{len(manifest.files)} files, SHA-256 as in the manifest",
              "every file listed and unmodified"),
        Check("signature", "integrity", True,
              f"valid Ed25519 signature by the configured key {key}" if key is not None
              else "not checked: no public key configured on this device"
              + (" (the bundle is signed)" if (bundle.root / "manifest.sig").is_file() else " (the bundle is unsigned)"),
              "required when a public key is configured (--public-key, GOUT_EDGE_PUBLIC_KEY, trusted.pub)"),
    ]
    frames = load_reference_frames(bundle)
    expected, n = load_expected(bundle)
    tolerances = {**DEFAULT_TOLERANCES, **ref.get("tolerances", {})}
    decision = manifest.decision
    checks.append(Check(
        "reference set", "reference", n >= 1 and bool(expected), {"inputs": n, "model_files": sorted(expected)},
        "inputs with expected outputs for each model file",
    ))
    checks += _manifest_decision_checks(ref, expected, decision)

    installed = available_backends()
    wanted_backends = list(backends) if backends else list(REGISTRY)
    wanted_precisions = list(precisions) if precisions else _precisions_offered(bundle)
    combos = []
    for b in wanted_backends:
        for p in wanted_precisions:
            role = model_role(bundle, b, p)
            if role is None:
                if backends and precisions:
                    checks.append(Check(f"{b}/{p}", "reference", False, "cannot run", "the bundle has a model for it",
                                        f"the bundle has no model file that {b} runs at {p}"))
                continue
            if b not in installed:
                checks.append(Check(f"{b}/{p}", "reference", not backends, "not installed", "run when installed",
                                    f"{b} is not installed on this device", skipped=not backends))
                continue
            combos.append((b, p, role))
    if not combos:
        checks.append(Check("edge path", "reference", False, "nothing ran", "at least one backend × precision",
                            "no requested backend × precision can run this bundle here"))
    engines = ref.get("engines", {})
    runs = []
    for b, p, role in combos:
        label = f"{b}/{p}"
        if role not in expected:
            checks.append(Check(f"{label}: expected outputs", "reference", False, "missing", role,
                                f"the reference set has no expected outputs for {role}"))
            continue
        measured = run_reference(bundle, frames, b, p, threads)
        checks += _compare(
            label, ref, expected[role], measured, tolerances[p], int(tolerances["roi_max_abs_px"]), decision,
            ref.get("expected_decisions", {}).get(role),
        )
        runs.append({"backend": b, "precision": p, "model_file": role, "expected_made_by": engines.get(role)})
    if combos:
        auto = None
        try:
            from .backends import resolve

            auto = resolve(bundle)
        except Exception:  # noqa: BLE001 - fall back to the first verified pair
            pass
        b, p = auto if auto and any(auto == (c[0], c[1]) for c in combos) else combos[0][:2]
        checks += _latency_checks(bundle, frames, b, p, latency_frames, threads)
    options["runs"] = runs
    status = "passed" if all(c.passed for c in checks) else "failed"
    return VerificationRecord(
        status=status, created_utc=created, device=_device(),
        bundle={**_bundle_identity(bundle.root, manifest, key, key is not None), "identity": bundle.identity},
        options=options, checks=tuple(checks),
    )
