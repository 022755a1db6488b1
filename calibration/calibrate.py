"""``gout-edge calibrate``: the paper's patient threshold, measured through the runtime, written
into the bundle (torch-free).

Each patient's images run through the cart's pipeline (``exam_tallies``: ``pipeline.stages``, the
engine and precision the cart will use — ``auto``: its rule — each patient's images in path order,
as ``scan --images`` reads a patient's folder), so the threshold is fitted to the abnormal
fraction the cart's vote compares: over the patient's key frames (blank, colour, out-of-scope
and repeated images never vote, as at the bedside). Then
``threshold.calibrate_threshold``: patient-wise k-fold cross-validation (the paper's Table III)
and the threshold over all patients, which goes into ``manifest.json``
(``decision.patient_threshold``, ``calibrated``, a one-line ``source``, and a summary under
``evaluation.threshold_calibration``). The manifest is rewritten atomically; with a signing
key it is re-signed, without one a signature that no longer matches is removed.

The report (``calibration.json``, the threshold–accuracy curve of the paper's Figure S1) goes to
``--out`` or to a new folder under ``./gout-edge-reports/`` (``default_report_dir``), never inside
a bundle or the installed package; the installed demo bundle itself is never calibrated in place.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge._io import atomic_write_bytes, atomic_write_json, to_json
from gout_edge.edge_runtime.field.reference_inputs import refresh_expected_decisions
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.stages import Tally, compose
from gout_edge.edge_runtime.sources.images import frames_of_file, load_still
from gout_edge.errors import BundleError, DataError, InputError, UsageError
from gout_edge.manifest import MANIFEST_NAME, Manifest, manifest_bytes
from gout_edge.signing import SIGNATURE_NAME, signature_for

from .index import IndexTable, PatientRecord, read_index
from .plots import threshold_plot
from .threshold import GRID, TIE_RULE, ThresholdCalibration, calibrate_threshold

__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "ProgressFn",
    "ScoredTable",
    "calibrate",
    "default_report_dir",
    "exam_tallies",
    "score_table",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""``progress(images_done, images_total)`` while scoring."""


# --------------------------------------------------------------------------------------------
# scoring a table through the runtime


@dataclass(frozen=True)
class ScoredTable:
    """Every image of a table scored by one model: abnormal-class probability and usability."""

    table: IndexTable
    probabilities: np.ndarray  # (N,) float64
    usable: np.ndarray  # (N,) bool: neither blank, colour nor out of scope — the frames that vote at the bedside
    backend: str
    precision: str
    image_cutoff: float
    cams: tuple[np.ndarray | None, ...] = ()  # per image: the abnormal-class CAM (None: not scored)

    @property
    def labels(self) -> np.ndarray:
        return self.table.labels

    @property
    def abnormal(self) -> np.ndarray:
        return self.probabilities > self.image_cutoff


def score_table(
    table: IndexTable,
    scorers: Sequence[Any],
    progress: ProgressFn | None = None,
    batch: int = 8,
) -> list[ScoredTable]:
    """Score every image with each ``edge_runtime.inference.scoring.Scorer``, loading each image once.

    Scorers whose bundles share input and preprocessing settings also share the prepared frames.
    Images that cannot be read are reported together, by line number, in one ``DataError``.
    """
    n = len(table)
    probs = [np.full(n, math.nan) for _ in scorers]
    usable = [np.zeros(n, bool) for _ in scorers]
    cams: list[list[np.ndarray | None]] = [[None] * n for _ in scorers]
    keys = [(s.bundle.manifest.input, s.bundle.manifest.preprocess) for s in scorers]
    first_with_key = {k: i for i, k in reversed(list(enumerate(keys)))}
    problems: list[str] = []
    for start in range(0, n, batch):
        loaded: list[tuple[int, tuple[np.ndarray, Any]]] = []
        for i in range(start, min(n, start + batch)):
            try:  # the image and the region a DICOM still declares, as scan reads them
                loaded.append((i, load_still(table.rows[i].image)))
            except InputError as exc:
                problems.append(f"  line {table.rows[i].line}: {exc}")
        prepared: dict[Any, list] = {}
        for key, owner in first_with_key.items():
            frames = []
            for i, (image, roi) in loaded:
                try:
                    frames.append((i, scorers[owner].prepare(image, roi)))
                except InputError as exc:
                    problems.append(f"  line {table.rows[i].line}: {exc}")
            prepared[key] = frames
        for s, key, p, u, c in zip(scorers, keys, probs, usable, cams, strict=True):
            frames = prepared[key]
            for (i, _frame), score in zip(frames, s.score_prepared([f for _, f in frames]), strict=True):
                p[i], u[i], c[i] = score.probability, score.usable, score.cam
        if progress is not None:
            progress(min(n, start + batch), n)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise DataError(f"{len(unique)} image(s) of {table.path} could not be scored:\n" + "\n".join(unique))
    return [
        ScoredTable(table, p, u, s.backend, s.precision, s.bundle.manifest.decision.image_cutoff, tuple(c))
        for s, p, u, c in zip(scorers, probs, usable, cams, strict=True)
    ]


def exam_tallies(table: IndexTable, scorer: Any, progress: ProgressFn | None = None) -> list[tuple[PatientRecord, Tally]]:
    """Each patient's images run through the cart's pipeline (``pipeline.stages.compose``), as
    ``scan --images`` runs a patient's folder: in path order, each file's frames as the images
    source reads them (``frames_of_file``: a still's view from its folder and file name, or its
    DICOM tags), one pipeline per patient. ``Tally.decide`` of each is the cart's verdict."""
    out = []
    done, total = 0, len(table)
    for rec in table.patients():
        pipeline, tally = compose(scorer.bundle.manifest, scorer), Tally()
        for i in sorted(rec.rows, key=lambda i: table.rows[i].image.as_posix()):
            path = table.rows[i].image
            try:
                for frame in frames_of_file(path, f"{path.parent.name}/{path.name}"):
                    tally.add(pipeline(dataclasses.replace(frame, index=tally.frames_seen, group=rec.patient_id,
                                                           patient_id=rec.patient_id)))
            except InputError as exc:
                raise DataError(f"line {table.rows[i].line} of {table.path}: {exc}") from None
            done += 1
            if progress is not None:
                progress(done, total)
        out.append((rec, tally))
    return out


# --------------------------------------------------------------------------------------------
# calibrate


REPORTS_DIR = "gout-edge-reports"


def default_report_dir(bundle: Path, kind: str) -> Path:
    """``./gout-edge-reports/<kind>-<bundle name>-<UTC time>/`` under the working directory (a new
    folder each run): never inside the bundle, nor beside it — the demo bundle lies inside the
    installed package."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path.cwd() / REPORTS_DIR / f"{kind}-{Path(bundle).resolve().name}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def check_report_dir(out: Path, bundle: Path) -> Path:
    from importlib import resources

    out, bundle = Path(out).resolve(), Path(bundle).resolve()
    if out == bundle or bundle in out.parents:
        raise UsageError(
            f"--out {out} lies inside the bundle {bundle}; reports go outside the bundle "
            "(the runtime reads only the files its manifest lists)"
        )
    package = Path(str(resources.files("gout_edge"))).resolve()
    if out == package or package in out.parents:
        raise UsageError(f"--out {out} lies inside the installed gout-edge package ({package}); choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the report folder {out} ({exc.strerror}); choose another --out") from None
    return out


@dataclass(frozen=True)
class CalibrationConfig:
    bundle: Path
    data: Path
    folds: int = 5
    seed: int = 0
    backend: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    sign_key: Path | None = None
    out: Path | None = None  # default: default_report_dir(bundle, "calibration")
    public_key: Path | None = None  # require a signature by this key when opening the bundle


@dataclass(frozen=True)
class CalibrationResult:
    bundle: Path
    data: Path
    data_sha256: str
    images: int
    images_voting: int  # not blank, not colour
    patients_excluded: int  # patients without one usable image
    patients_below_min_key_frames: int
    n_images: np.ndarray  # per calibrated patient, parallel to calibration.patient_ids
    n_abnormal: np.ndarray
    calibration: ThresholdCalibration
    backend: str
    precision: str
    image_cutoff: float
    source: str
    date: str
    signed: bool
    signature_removed: bool
    out: Path
    figures: tuple[Path, ...]
    not_for_clinical_use: bool

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def to_dict(self) -> dict[str, Any]:
        cal = self.calibration.to_dict()
        for row, n, a in zip(cal["patients"], self.n_images, self.n_abnormal, strict=True):
            row["images"], row["abnormal_images"] = int(n), int(a)
        return to_json({
            "bundle": str(self.bundle),
            "data": {"path": str(self.data), "sha256": self.data_sha256, "images": self.images,
                     "images_voting": self.images_voting, "patients": len(self.calibration.patient_ids),
                     "patients_excluded": self.patients_excluded,
                     "patients_below_min_key_frames": self.patients_below_min_key_frames},
            "model": {"backend": self.backend, "precision": self.precision, "image_cutoff": self.image_cutoff},
            "date": self.date,
            "source": self.source,
            "signed": self.signed,
            "signature_removed": self.signature_removed,
            "report_dir": str(self.out),
            "figures": [str(p) for p in self.figures],
            "not_for_clinical_use": self.not_for_clinical_use,
            **cal,
        })


def _source_line(data: IndexTable, cal: ThresholdCalibration, backend: str, precision: str, date: str) -> str:
    cv = ""
    if cal.cv is not None:
        mean, sd = cal.cv.mean_sd("accuracy")
        sd_text = "" if math.isnan(sd) else f" ± {sd:.3f}"
        cv = f", {len(cal.cv.folds)}-fold CV accuracy {mean:.3f}{sd_text}"
    return (
        f"gout-edge calibrate {date}: {data.path.name} (sha256 {data.sha256[:16]}), "
        f"{len(cal.patient_ids)} patients{cv}; threshold {cal.threshold:.2f} over all patients "
        f"(accuracy {cal.overall.accuracy:.3f}); {backend} {precision}"
    )


def _manifest_summary(result_fields: dict[str, Any], cal: ThresholdCalibration) -> dict[str, Any]:
    summary: dict[str, Any] = {
        **result_fields,
        "threshold": cal.threshold,
        "grid_step": float(GRID[1] - GRID[0]),
        "tie_rule": TIE_RULE,
        "plateau": list(cal.overall.plateau),
        "accuracy_all_patients": cal.overall.accuracy,
    }
    if cal.cv is not None:
        summary["cross_validation"] = {
            "k": len(cal.cv.folds),
            "seed": cal.seed,
            "fold_thresholds": [f.threshold for f in cal.cv.folds],
            **{m: dict(zip(("mean", "sd"), cal.cv.mean_sd(m), strict=True)) for m in ("accuracy", "sensitivity", "specificity")},
            "pooled": cal.cv.pooled.to_dict(),
        }
    return to_json(summary)


def check_signing_key(key: Path) -> None:
    """Raise ``InputError`` now if ``key`` cannot sign (by signing a scratch manifest)."""
    signature_for(b"{}\n", key)


def update_manifest(bundle_dir: Path, manifest: Manifest, sign_key: Path | None) -> tuple[bool, bool]:
    """Write ``manifest`` atomically; re-sign with ``sign_key`` or remove a stale signature.

    With a key, the signature is made on the new bytes first, so a key that cannot be used changes
    nothing. Returns (signed, stale signature removed).
    """
    bundle_dir = Path(bundle_dir)
    data = manifest_bytes(manifest)
    sig_path = bundle_dir / SIGNATURE_NAME
    try:
        if sign_key is not None:
            signature = signature_for(data, sign_key)
            atomic_write_bytes(bundle_dir / MANIFEST_NAME, data)
            atomic_write_bytes(sig_path, signature)
            return True, False
        atomic_write_bytes(bundle_dir / MANIFEST_NAME, data)
        if sig_path.exists():
            sig_path.unlink()
            log.warning(
                "removed %s: it signed the previous manifest and no longer matches; "
                "pass --sign-key to re-sign the calibrated bundle", SIGNATURE_NAME,
            )
            return False, True
        return False, False
    except OSError as exc:
        raise BundleError(f"cannot rewrite the manifest of {bundle_dir} ({exc.strerror}); is the bundle writable?") from None


def figure_s1(path: Path, cal: ThresholdCalibration) -> Path:
    """Threshold–accuracy curves: all patients with the chosen threshold, then one panel per fold."""
    folds = []
    if cal.cv is not None:
        for fold in cal.cv.folds:
            folds.append((f"fold {fold.fold} (training patients)", fold.fit.thresholds, fold.fit.accuracies,
                          fold.threshold))
    o = cal.overall
    notes = []
    if cal.cv is not None:
        mean, sd = cal.cv.mean_sd("threshold")
        notes.append(f"fold thresholds: mean {mean:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}"))
    return threshold_plot(
        path, (f"all {o.patients} patients: accuracy {o.accuracy:.3f} at the chosen threshold", o.thresholds,
               o.accuracies, o.threshold), folds,
        title="Patient accuracy vs threshold on the abnormal-image fraction",
        x_label="threshold (gout when the abnormal-image fraction > threshold)", y_label="patient accuracy",
        notes=notes,
    )


def calibrate(config: CalibrationConfig, progress: ProgressFn | None = None) -> CalibrationResult:
    """Score the table through the runtime, calibrate the threshold, write it into the bundle."""

    bundle = open_bundle(config.bundle, config.public_key)
    if config.folds == 1 or config.folds < 0:
        raise UsageError(f"--folds {config.folds}: use 0 (no cross-validation) or at least 2")
    if config.sign_key is not None:
        check_signing_key(config.sign_key)  # before minutes of scoring, not after
    out = check_report_dir(config.out or default_report_dir(bundle.root, "calibration"), bundle.root)
    table = read_index(config.data)
    m = bundle.manifest
    scorer = Scorer(bundle, config.backend, config.precision, config.threads)
    try:  # each patient through the cart's pipeline: the fraction the cart's vote will compare
        tallies = exam_tallies(table, scorer, progress)
    finally:
        scorer.close()

    kept = [(rec, t) for rec, t in tallies if t.key_frames]
    excluded = len(tallies) - len(kept)
    if excluded:
        log.warning("%d patient(s) have no key frame (every image blank, colour, out of scope, repeated or too "
                    "flat) and are left out", excluded)
    if not kept:
        raise DataError(f"no patient of {table.path} has a key frame; nothing to calibrate on")
    n_images = np.array([t.key_frames for _, t in kept], dtype=np.int64)
    n_abnormal = np.array([t.abnormal_key_frames for _, t in kept], dtype=np.int64)
    fractions = n_abnormal / n_images
    voting = int(sum(t.key_frames for _, t in tallies))
    below = int((n_images < m.decision.min_key_frames).sum())
    if below:
        log.warning(
            "%d patient(s) have fewer than %d usable images (the bundle's minimum key frames); "
            "they are calibrated on, but the cart would call them indeterminate", below, m.decision.min_key_frames,
        )
    cal = calibrate_threshold([rec.patient_id for rec, _ in kept], fractions, [rec.label for rec, _ in kept],
                              config.folds, config.seed)

    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    source = _source_line(table, cal, scorer.backend, scorer.precision, date)
    fields = {"date": date, "data": table.path.name, "data_sha256": table.sha256, "images": len(table),
              "images_voting": voting, "patients": len(kept), "backend": scorer.backend,
              "precision": scorer.precision}
    new_manifest = dataclasses.replace(
        m,
        decision=dataclasses.replace(m.decision, patient_threshold=cal.threshold, calibrated=True, source=source),
        evaluation=dataclasses.replace(m.evaluation, threshold_calibration=_manifest_summary(fields, cal)),
    )

    # the report first: a report folder that cannot be written leaves the bundle untouched
    figures = (figure_s1(out / "threshold-accuracy.png", cal),)
    not_clinical = "phantom" in m.model.provenance.lower()
    signed_expected = config.sign_key is not None
    draft = CalibrationResult(
        bundle.root, table.path, table.sha256, len(table), voting, excluded, below,
        n_images, n_abnormal, cal, scorer.backend, scorer.precision, m.decision.image_cutoff, source, date,
        signed_expected, False, out, figures, not_clinical,
    )
    # The reference patients' expected decisions follow the new threshold (gout-edge verify).
    new_manifest = refresh_expected_decisions(new_manifest)
    signed, removed = update_manifest(bundle.root, new_manifest, config.sign_key)
    result = dataclasses.replace(draft, signed=signed, signature_removed=removed)
    atomic_write_json(out / "calibration.json", result.to_dict())
    return result
