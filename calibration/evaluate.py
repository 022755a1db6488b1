"""``gout-edge evaluate``: the paper's tables for a bundle on labelled data, through the runtime.

Image level (every image of the table, as the paper's classifier tables): accuracy, sensitivity
and specificity at the bundle's image cut-off with Wilson 95 % CIs, and the AUC with DeLong's
95 % CI (plain normal interval, as pROC). Patient level: what the cart would say — each
patient's images run through the cart's pipeline as ``scan --images`` runs them
(``calibrate.exam_tallies``) and decided by the one verdict rule (``Tally.decide``: scope, the
vote, completeness), so ``evaluate`` and the cart give every patient the same verdict and reason.
Indeterminate patients are counted by reason (and as the refusal rate); accuracy, sensitivity
and specificity are over the decided patients, and accuracy also over all patients. A bundle
whose threshold was never calibrated gets image-level figures only; every patient is
"indeterminate".

With a second model (``compare``: another bundle, or the same bundle at another precision), the
paper's Table I: DeLong's test of the two AUCs and McNemar's test of the paired image decisions —
on correctness over all images (accuracy), over lesion images (sensitivity) and over the others
(specificity); at patient level McNemar's test over the patients both models decided.

When the compared model is another bundle, the evaluated one is measured as its student
(``Fidelity``, docs/design.md §9b): the paired DeLong difference of image AUC with its CI, the
agreement of the patient verdicts under the cart's rule (indeterminate counts as a verdict), and
the correlation of the CAMs (the student's upsampled to the teacher's grid, Pearson per image,
over the images both models found usable); with ``record`` it goes into the student's manifest
(``evaluation.fidelity``) with the teacher's identity and both scope guards' AUROC.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge._io import atomic_write_json, sha256_file, to_json
from gout_edge.edge_runtime.inference.backends import PRECISIONS
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.stages import Tally
from gout_edge.edge_runtime.pipeline.verdict import GOUT, INDETERMINATE, Diagnosis, Reason
from gout_edge.errors import UsageError
from gout_edge.manifest import MANIFEST_NAME, Manifest

from .calibrate import (
    ProgressFn,
    check_report_dir,
    default_report_dir,
    exam_tallies,
    score_table,
    update_manifest,
)
from .index import PatientRecord, read_index
from .plots import RocSeries, confusion_plot, roc_plot
from .stats import (
    AucEstimate,
    Confusion,
    DelongTest,
    McNemarTest,
    Proportion,
    RocCurve,
    auc_delong,
    confusion,
    delong_test,
    mcnemar_paired,
    proportion,
    roc_curve,
)

__all__ = [
    "Comparison",
    "EvaluationConfig",
    "EvaluationResult",
    "Fidelity",
    "ImageLevel",
    "ModelEvaluation",
    "PatientLevel",
    "PatientOutcome",
    "compare_models",
    "evaluate",
    "image_level",
    "patient_level",
]

log = logging.getLogger(__name__)

METRICS = ("accuracy", "sensitivity", "specificity")


@dataclass(frozen=True)
class EvaluationConfig:
    bundle: Path
    data: Path
    backend: str = "auto"
    precision: str = "auto"
    compare: str | None = None  # a bundle directory, or a precision name for this bundle
    threads: int | None = None
    out: Path | None = None  # default: default_report_dir(bundle, "evaluation")
    public_key: Path | None = None
    level: float = 0.95
    record: bool = False  # write the held-out summary into the bundle's manifest (evaluation.held_out)
    sign_key: Path | None = None  # re-sign the manifest after recording


@dataclass(frozen=True)
class ImageLevel:
    confusion: Confusion
    auc: AucEstimate
    roc: RocCurve
    images: int
    unusable: int  # blank, colour or out of scope: scored here, left out of the vote at the bedside
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        props = self.confusion.proportions(self.level)
        return {"images": self.images, "unusable": self.unusable, "confusion": self.confusion.to_dict(),
                **{k: props[k].to_dict() for k in METRICS}, "auc": self.auc.to_dict(),
                "roc": self.roc.to_dict()}


def image_level(labels: np.ndarray, probabilities: np.ndarray, cutoff: float, usable: np.ndarray | None = None,
                level: float = 0.95) -> ImageLevel:
    labels = np.asarray(labels)
    p = np.asarray(probabilities, dtype=np.float64)
    unusable = 0 if usable is None else int((~np.asarray(usable, bool)).sum())
    return ImageLevel(confusion(labels, p > cutoff), auc_delong(labels, p, level), roc_curve(labels, p),
                      int(p.size), unusable, level)


@dataclass(frozen=True)
class PatientOutcome:
    """One patient of the table as the cart would see it: the verdict and reason of ``Tally.decide``."""

    patient_id: str
    label: int  # 1 = gout
    key_frames: int  # the images that voted (the cart's key frames)
    abnormal_key_frames: int
    fraction: float | None
    diagnosis: Diagnosis
    reason: Reason

    @property
    def decided(self) -> bool:
        return self.diagnosis is not INDETERMINATE

    @property
    def positive(self) -> bool:
        return self.diagnosis is GOUT

    def to_dict(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "label": self.label, "key_frames": self.key_frames,
                "abnormal_key_frames": self.abnormal_key_frames, "fraction": self.fraction,
                "decision": self.diagnosis.value, "reason": self.reason.text(), "reason_code": self.reason.code.value}


@dataclass(frozen=True)
class PatientLevel:
    """Every patient's verdict under the cart's rule: decided ones and indeterminate ones by reason;
    accuracy, sensitivity and specificity over the decided patients, and accuracy over all of
    them (an indeterminate patient counts as not right)."""

    calibrated: bool
    threshold: float | None
    patients: tuple[PatientOutcome, ...]
    level: float = 0.95

    @property
    def decided(self) -> tuple[PatientOutcome, ...]:
        return tuple(p for p in self.patients if p.decided)

    @property
    def indeterminate(self) -> int:
        return len(self.patients) - len(self.decided)

    @property
    def indeterminate_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.reason.code.value for p in self.patients if not p.decided))

    @property
    def confusion(self) -> Confusion | None:
        """Over the patients with a decision; ``None`` when there are none."""
        d = self.decided
        if not d:
            return None
        return confusion([p.label for p in d], [int(p.positive) for p in d])

    @property
    def accuracy_all(self) -> Proportion:
        """Right verdicts over all patients, indeterminate ones counted as not right."""
        right = sum(p.positive == bool(p.label) for p in self.decided)
        return proportion(right, len(self.patients), self.level)

    def to_dict(self) -> dict[str, Any]:
        c = self.confusion
        props = {} if c is None else {k: v.to_dict() for k, v in c.proportions(self.level).items()}
        n = len(self.patients)
        return {"calibrated": self.calibrated, "threshold": self.threshold, "decided": len(self.decided),
                "indeterminate": self.indeterminate, "indeterminate_by_reason": self.indeterminate_by_reason,
                "refusal_rate": self.indeterminate / n if n else None,
                "confusion": None if c is None else c.to_dict(),
                **{k: props.get(k) for k in METRICS},
                "accuracy_all_patients": self.accuracy_all.to_dict(),
                "patients": [p.to_dict() for p in self.patients]}


def patient_level(tallies: Sequence[tuple[PatientRecord, Tally]], manifest: Manifest, level: float = 0.95) -> PatientLevel:
    """The cart's verdict (``Tally.decide``) for every patient of the table."""
    results = []
    for rec, tally in tallies:
        d = tally.decide(manifest)
        results.append(PatientOutcome(rec.patient_id, rec.label, d.key_frames, d.abnormal_frames,
                                      d.abnormal_fraction, d.diagnosis, d.reason))
    return PatientLevel(manifest.decision.patient_threshold is not None, manifest.decision.patient_threshold,
                        tuple(results), level)


@dataclass(frozen=True)
class ModelEvaluation:
    name: str
    bundle: Path
    identity: str
    backend: str
    precision: str
    image_cutoff: float
    threshold_source: str
    probabilities: np.ndarray
    image: ImageLevel
    patient: PatientLevel

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bundle": str(self.bundle), "identity": self.identity,
                "backend": self.backend, "precision": self.precision, "image_cutoff": self.image_cutoff,
                "threshold_source": self.threshold_source,
                "image_level": self.image.to_dict(), "patient_level": self.patient.to_dict()}


@dataclass(frozen=True)
class Comparison:
    """Table I's p-values: ``other`` against ``reference`` on the same images."""

    reference: str
    other: str
    auc: DelongTest
    image: dict[str, McNemarTest]  # accuracy, sensitivity, specificity
    patient: dict[str, McNemarTest] | None  # over patients decided by both; None if not both calibrated
    patients_compared: int

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "other": self.other, "auc_delong": self.auc.to_dict(),
                "image_mcnemar": {k: v.to_dict() for k, v in self.image.items()},
                "patient_mcnemar": None if self.patient is None else {k: v.to_dict() for k, v in self.patient.items()},
                "patients_compared": self.patients_compared}


def _mcnemar_by_metric(truth: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, McNemarTest]:
    truth = np.asarray(truth).astype(bool)
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    return {
        "accuracy": mcnemar_paired(truth, a, b),
        "sensitivity": mcnemar_paired(truth[truth], a[truth], b[truth]),
        "specificity": mcnemar_paired(truth[~truth], a[~truth], b[~truth]),
    }


def compare_models(labels: np.ndarray, reference: ModelEvaluation, other: ModelEvaluation, level: float = 0.95) -> Comparison:
    labels = np.asarray(labels)
    auc_test = delong_test(labels, reference.probabilities, other.probabilities, level)
    image = _mcnemar_by_metric(labels, reference.probabilities > reference.image_cutoff,
                               other.probabilities > other.image_cutoff)
    patient = None
    both = [(p, q) for p, q in zip(reference.patient.patients, other.patient.patients, strict=True) if p.decided and q.decided]
    if reference.patient.calibrated and other.patient.calibrated:
        patient = _mcnemar_by_metric(np.array([p.label for p, _ in both], dtype=np.int64),
                                     np.array([p.positive for p, _ in both], dtype=bool),
                                     np.array([q.positive for _, q in both], dtype=bool))
    return Comparison(reference.name, other.name, auc_test, image, patient, len(both))


@dataclass(frozen=True)
class Fidelity:
    """A student (the evaluated bundle) against its teacher (the compared bundle), same images."""

    teacher: dict[str, Any]  # name, version, manifest_sha256, input, parameters, macs_per_frame
    auc: DelongTest  # student − teacher, paired
    verdicts_agree: Proportion  # patients given the same verdict (indeterminate included) by the cart's rule
    cam_correlation_median: float
    cam_correlation_p05: float  # 5th percentile over the images
    cam_images: int  # images both models found usable
    scope_auroc: dict[str, float | None]  # student, teacher: in-scope vs generated out-of-scope, at export

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "image_auc": {**self.auc.to_dict(), "method": "DeLong (paired), student − teacher"},
                "verdict_agreement": self.verdicts_agree.to_dict(),
                "cam_correlation": {"median": self.cam_correlation_median, "p05": self.cam_correlation_p05,
                                    "images": self.cam_images,
                                    "method": "Pearson per image, the student's CAM upsampled (bilinear) to the teacher's grid"},
                "scope_auroc": self.scope_auroc}


def scope_auroc(manifest: Manifest) -> float | None:
    """The scope guard's AUROC (in-scope held-out vs generated out-of-scope) recorded at export."""
    scope = manifest.scope
    if scope is None:
        return None
    for c in scope.comparison.get("candidates", ()):
        if c.get("method") == scope.method and c.get("k") == scope.k:
            return c.get("auroc")
    return None


def cam_correlations(student: Sequence[np.ndarray | None], teacher: Sequence[np.ndarray | None],
                     usable: np.ndarray) -> np.ndarray:
    """Pearson correlation of each usable image's CAMs, the student's resized to the teacher's grid."""
    out = []
    for s, t, ok in zip(student, teacher, usable, strict=True):
        if not ok or s is None or t is None:
            continue
        up = cv2.resize(np.asarray(s, np.float32), (t.shape[1], t.shape[0]), interpolation=cv2.INTER_LINEAR)
        a, b = up.ravel() - up.mean(), np.asarray(t, np.float32).ravel() - t.mean()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        if den > 0:
            out.append(float((a * b).sum() / den))
    return np.asarray(out)


def fidelity(student: ModelEvaluation, teacher: ModelEvaluation, scored: Sequence[Any], comparison: Comparison,
             manifests: tuple[Manifest, Manifest], teacher_root: Path, level: float = 0.95) -> Fidelity:
    s_manifest, t_manifest = manifests
    t = t_manifest.model
    same = sum(p.diagnosis is q.diagnosis for p, q in zip(student.patient.patients, teacher.patient.patients, strict=True))
    r = cam_correlations(scored[0].cams, scored[1].cams, scored[0].usable & scored[1].usable)
    return Fidelity(
        teacher={"name": t.name, "version": t.version, "manifest_sha256": sha256_file(teacher_root / MANIFEST_NAME),
                 "input": f"{t_manifest.input.height}x{t_manifest.input.width}", "parameters": t.parameters,
                 "macs_per_frame": t.macs_per_frame, "precision": teacher.precision, "backend": teacher.backend},
        auc=comparison.auc,
        verdicts_agree=proportion(same, len(student.patient.patients), level),
        cam_correlation_median=float(np.median(r)) if r.size else float("nan"),
        cam_correlation_p05=float(np.percentile(r, 5)) if r.size else float("nan"),
        cam_images=int(r.size),
        scope_auroc={"student": scope_auroc(s_manifest), "teacher": scope_auroc(t_manifest)},
    )


@dataclass(frozen=True)
class EvaluationResult:
    data: Path
    data_sha256: str
    models: tuple[ModelEvaluation, ...]  # the reference first
    comparison: Comparison | None
    rows: tuple[dict[str, Any], ...]  # per image: line, image, patient_id, label, usable
    usable: np.ndarray
    not_for_clinical_use: bool
    out: Path
    figures: tuple[Path, ...]
    level: float = 0.95
    fidelity: Fidelity | None = None  # the evaluated bundle as the compared bundle's student

    @property
    def model(self) -> ModelEvaluation:
        return self.models[0]

    def to_dict(self) -> dict[str, Any]:
        images = []
        for i, row in enumerate(self.rows):
            entry = {**row, "usable": bool(self.usable[i]), "probability": float(self.models[0].probabilities[i])}
            if len(self.models) > 1:
                entry["probability_compare"] = float(self.models[1].probabilities[i])
            images.append(entry)
        return to_json({
            "data": {"path": str(self.data), "sha256": self.data_sha256, "images": len(self.rows),
                     "patients": len(self.model.patient.patients)},
            "level": self.level,
            "ci_methods": {"proportions": "Wilson score", "auc": "DeLong variance, plain normal interval clipped to [0, 1]",
                           "auc_test": "DeLong (paired)",
                           "paired_decisions": "McNemar: exact binomial below 25 discordant pairs, else chi-square with continuity correction"},
            "not_for_clinical_use": self.not_for_clinical_use,
            "models": [m.to_dict() for m in self.models],
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "fidelity": None if self.fidelity is None else self.fidelity.to_dict(),
            "report_dir": str(self.out),
            "figures": [str(p) for p in self.figures],
            "images": images,
        })


def _open_models(config: EvaluationConfig):

    bundle = open_bundle(config.bundle, config.public_key)
    pairs = [(bundle, config.precision)]
    if config.compare is not None:
        value = config.compare.strip()
        if value.lower() in PRECISIONS:
            pairs.append((bundle, value.lower()))
        elif Path(value).expanduser().exists():
            pairs.append((open_bundle(Path(value).expanduser(), config.public_key), config.precision))
        else:
            raise UsageError(
                f"--compare {value!r} is neither a precision ({', '.join(PRECISIONS)}) nor an existing "
                "bundle directory; give another bundle's path (./fp32 for a folder of that name)"
            )
    scorers = []
    try:
        for b, precision in pairs:
            scorers.append(Scorer(b, config.backend, precision, config.threads))
    except BaseException:
        for s in scorers:
            s.close()
        raise
    if len(scorers) == 2 and scorers[0].bundle.root == scorers[1].bundle.root \
            and (scorers[0].backend, scorers[0].precision) == (scorers[1].backend, scorers[1].precision):
        log.warning("--compare names the same model, engine and precision as the bundle itself; the tests will show no difference")
    return scorers


def _name(scorer) -> str:
    return f"{scorer.bundle.root.name} {scorer.precision} ({scorer.backend})"


def evaluate(config: EvaluationConfig, progress: ProgressFn | None = None) -> EvaluationResult:
    """Score the table with the bundle (and the compared model), compute the paper's figures,
    draw the ROC curve(s) and confusion matrices, write ``evaluation.json`` to the report folder."""
    scorers = _open_models(config)
    try:
        out = check_report_dir(config.out or default_report_dir(scorers[0].bundle.root, "evaluation"), scorers[0].bundle.root)
        table = read_index(config.data)
        scored = score_table(table, scorers, progress)
        tallies = [exam_tallies(table, s) for s in scorers]  # the cart's pipeline, patient by patient
    finally:
        for s in scorers:
            s.close()
    labels = table.labels
    names = [_name(s) for s in scorers]
    if len(names) == 2 and names[0] == names[1]:
        names = [f"{n} #{k}" for k, n in zip((1, 2), names, strict=True)]
    models = []
    for s, sc, name, tally in zip(scorers, scored, names, tallies, strict=True):
        m = s.bundle.manifest
        models.append(ModelEvaluation(
            name, s.bundle.root, s.bundle.identity, sc.backend, sc.precision, m.decision.image_cutoff,
            m.decision.source, sc.probabilities,
            image_level(labels, sc.probabilities, m.decision.image_cutoff, sc.usable, config.level),
            patient_level(tally, m, config.level),
        ))
    comparison = compare_models(labels, models[0], models[1], config.level) if len(models) == 2 else None
    fid = None
    if comparison is not None and scorers[0].bundle.root != scorers[1].bundle.root:
        fid = fidelity(models[0], models[1], scored, comparison,
                       (scorers[0].bundle.manifest, scorers[1].bundle.manifest), scorers[1].bundle.root, config.level)
    not_clinical = any("phantom" in s.bundle.manifest.model.provenance.lower() for s in scorers)

    figures = [roc_figure(out / "roc.png", models)]
    panels = []
    for mdl in models:
        panels.append((f"images: {mdl.name}", mdl.image.confusion))
        if mdl.patient.confusion is not None:
            panels.append((f"patients: {mdl.name}", mdl.patient.confusion, ("control", "gout")))
    figures.append(confusion_plot(out / "confusion.png", panels))
    rows = tuple({"line": r.line, "image": table.relative(r), "patient_id": r.patient_id, "label": r.image_label,
                  "view": r.view} for r in table.rows)
    result = EvaluationResult(table.path, table.sha256, tuple(models), comparison, rows, scored[0].usable,
                              not_clinical, out, tuple(figures), config.level, fid)
    atomic_write_json(out / "evaluation.json", result.to_dict())
    if config.record:
        record_held_out(scorers[0].bundle, result, config.sign_key)
    return result


def held_out_summary(result: EvaluationResult) -> dict[str, Any]:
    """The figures a manifest keeps about held-out data: small, and enough to judge the model."""
    m = result.model
    image = m.image.to_dict()
    patient = m.patient.to_dict()
    keep = ("accuracy", "sensitivity", "specificity")
    return to_json({
        "data_sha256": result.data_sha256,
        "images": m.image.images,
        "patients": len(m.patient.patients),
        "backend": m.backend,
        "precision": m.precision,
        "image_auc": image["auc"],
        "image": {k: image[k] for k in keep},
        "patient": {k: patient.get(k) for k in keep},
        "patient_threshold": m.patient.threshold,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    })


def record_held_out(bundle, result: EvaluationResult, sign_key: Path | None) -> None:
    """``evaluation.held_out`` and, against a teacher bundle, ``evaluation.fidelity`` (with the
    data's hash and the student's engine)."""
    manifest = bundle.manifest
    evaluation = dataclasses.replace(manifest.evaluation, held_out=held_out_summary(result))
    if result.fidelity is not None:
        m = result.model
        evaluation = dataclasses.replace(evaluation, fidelity=to_json({
            **result.fidelity.to_dict(), "data_sha256": result.data_sha256, "images": m.image.images,
            "patients": len(m.patient.patients), "student": {"backend": m.backend, "precision": m.precision},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}))
    update_manifest(bundle.root, dataclasses.replace(manifest, evaluation=evaluation), sign_key)


def roc_figure(path: Path, models: Sequence[ModelEvaluation]) -> Path:
    curves = []
    for m in models:
        a, c = m.image.auc, m.image.confusion
        curves.append(RocSeries(m.name, m.image.roc.fpr, m.image.roc.tpr, a.auc, (a.ci_low, a.ci_high), a.level,
                                (1 - c.specificity, c.sensitivity), f"{m.name}: cut-off {m.image_cutoff:g}"))
    return roc_plot(path, curves, title="ROC curve, image level")
