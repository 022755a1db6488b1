"""The paper's diagnostic model: the patient threshold on the fraction of abnormal images (numpy).

Per patient, the fraction of images classed abnormal (probability > the bundle's image cut-off);
the patient is diagnosed with gouty arthritis when the fraction **exceeds** the threshold. The
threshold is searched on a grid from 0 to 1 in steps of 0.02 and is the one with the highest
patient accuracy on the training patients.

**Tie rule.** Fractions are discrete, so the best accuracy is usually reached on a run of
neighbouring grid thresholds (a plateau: every threshold between two consecutive patient
fractions classifies the patients alike). Among the grid thresholds that reach the best accuracy
(counted in correctly classified patients, so no floating-point ties), take the longest run of
consecutive grid points; if several runs are equally long, the lowest; within it the middle grid
point (the lower of the two middle points for a run of even length). The middle of the widest
plateau lies farthest from the training fractions that bound it, so a new patient's fraction
near a boundary is least likely to flip — the smallest tied threshold would sit right on one.

Cross-validation is patient-wise (``calibration.folds.patient_folds``, stratified by diagnosis):
each fold's threshold is chosen on the other folds' patients and applied to the fold (the paper's
Table III); the reported threshold is then fitted on all patients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gout_edge.errors import DataError

from .folds import patient_folds
from .stats import Confusion, Proportion, confusion, mean_sd

__all__ = [
    "GRID",
    "STEP",
    "CrossValidation",
    "FoldResult",
    "ThresholdCalibration",
    "ThresholdFit",
    "accuracy_curve",
    "calibrate_threshold",
    "cross_validate",
    "fit_threshold",
    "threshold_grid",
]

STEP = 0.02
TIE_RULE = "middle of the longest run of tied-best grid thresholds (lowest run, lower middle)"


def threshold_grid(step: float = STEP) -> np.ndarray:
    """Thresholds 0, step, …, 1; each the double nearest its decimal value (0.34, not 0.34000…01)."""
    n = round(1.0 / step)
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"the threshold step must divide 1, got {step}")
    return np.array([round(i * step, 10) for i in range(n + 1)], dtype=np.float64)


GRID = threshold_grid()


def _check(fractions, labels) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 1 or f.shape != y.shape:
        raise ValueError(f"fractions and labels must be 1-D of the same length, got {f.shape} and {y.shape}")
    if np.isnan(f).any():
        raise ValueError("fractions contain NaN (a patient without images?)")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must hold only 0 (control) and 1 (gout)")
    return f, y.astype(bool)


def _correct_counts(f: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    predicted = f[None, :] > thresholds[:, None]
    return (predicted == y[None, :]).sum(axis=1)


def accuracy_curve(fractions, labels, thresholds: np.ndarray = GRID) -> np.ndarray:
    """Patient accuracy at each threshold (rule: fraction > threshold → gout)."""
    f, y = _check(fractions, labels)
    if not f.size:
        return np.full(len(thresholds), math.nan)
    return _correct_counts(f, y, np.asarray(thresholds, dtype=np.float64)) / f.size


@dataclass(frozen=True)
class ThresholdFit:
    """The threshold chosen on a set of patients, with the accuracy curve it was chosen from."""

    threshold: float
    accuracy: float
    patients: int
    thresholds: np.ndarray
    accuracies: np.ndarray
    plateau: tuple[float, float]  # first and last grid threshold of the run the choice is the middle of
    tied_best: int  # how many grid thresholds reach the best accuracy (in all runs)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "patients": self.patients,
            "plateau": list(self.plateau),
            "tied_best": self.tied_best,
            "tie_rule": TIE_RULE,
            "curve": {"thresholds": self.thresholds.tolist(), "accuracies": self.accuracies.tolist()},
        }


def fit_threshold(fractions, labels, thresholds: np.ndarray = GRID) -> ThresholdFit:
    """The grid threshold with the highest patient accuracy, ties broken by the module's rule."""
    f, y = _check(fractions, labels)
    t = np.asarray(thresholds, dtype=np.float64)
    if not f.size:
        raise DataError("no patients to choose a threshold on")
    correct = _correct_counts(f, y, t)
    best = np.flatnonzero(correct == correct.max())
    # runs of consecutive grid indices among the best
    breaks = np.flatnonzero(np.diff(best) > 1)
    starts = np.r_[best[0], best[breaks + 1]]
    ends = np.r_[best[breaks], best[-1]]
    lengths = ends - starts + 1
    run = int(np.argmax(lengths))  # argmax takes the first (lowest) of equally long runs
    lo, hi = int(starts[run]), int(ends[run])
    chosen = lo + (hi - lo) // 2
    return ThresholdFit(
        threshold=float(t[chosen]),
        accuracy=float(correct[chosen] / f.size),
        patients=int(f.size),
        thresholds=t,
        accuracies=correct / f.size,
        plateau=(float(t[lo]), float(t[hi])),
        tied_best=int(best.size),
    )


@dataclass(frozen=True)
class FoldResult:
    """One fold of Table III: the threshold chosen on the other folds, applied to this one."""

    fold: int  # 1-based
    fit: ThresholdFit  # on the training patients (the other folds)
    test: Confusion  # patient decisions on this fold at fit.threshold

    @property
    def threshold(self) -> float:
        return self.fit.threshold

    @property
    def accuracy(self) -> Proportion:
        return self.test.proportions()["accuracy"]

    @property
    def sensitivity(self) -> Proportion:
        return self.test.proportions()["sensitivity"]

    @property
    def specificity(self) -> Proportion:
        return self.test.proportions()["specificity"]

    def to_dict(self) -> dict:
        return {
            "fold": self.fold,
            "threshold": self.threshold,
            "train_patients": self.fit.patients,
            "train_accuracy": self.fit.accuracy,
            "test_patients": self.test.total,
            "test": self.test.to_dict(),
            "accuracy": self.accuracy.to_dict(),
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            "train_curve": self.fit.to_dict()["curve"],
            "plateau": list(self.fit.plateau),
        }


@dataclass(frozen=True)
class CrossValidation:
    """Patient-wise k-fold cross-validation of the threshold rule."""

    folds: tuple[FoldResult, ...]

    @property
    def pooled(self) -> Confusion:
        """Every patient's out-of-fold decision, pooled over folds."""
        total = Confusion(0, 0, 0, 0)
        for f in self.folds:
            total = total + f.test
        return total

    def mean_sd(self, metric: str) -> tuple[float, float]:
        """Mean ± sd over folds of ``threshold``, ``accuracy``, ``sensitivity`` or ``specificity``."""
        if metric == "threshold":
            return mean_sd([f.threshold for f in self.folds])
        return mean_sd([getattr(f.test, metric) for f in self.folds])

    def to_dict(self) -> dict:
        return {
            "k": len(self.folds),
            "folds": [f.to_dict() for f in self.folds],
            "mean_sd": {m: dict(zip(("mean", "sd"), self.mean_sd(m), strict=True))
                        for m in ("threshold", "accuracy", "sensitivity", "specificity")},
            "pooled": {"confusion": self.pooled.to_dict(),
                       **{k: v.to_dict() for k, v in self.pooled.proportions().items()}},
        }


def cross_validate(
    fractions, labels, folds: Sequence[Sequence[int]], thresholds: np.ndarray = GRID
) -> CrossValidation:
    """For each fold (positions into ``fractions``): fit on the rest, apply to the fold."""
    f, y = _check(fractions, labels)
    seen = np.concatenate([np.asarray(fold, dtype=np.int64) for fold in folds]) if folds else np.array([], int)
    if np.unique(seen).size != seen.size:
        raise ValueError("a patient appears in two folds")
    results = []
    for i, fold in enumerate(folds):
        test = np.zeros(f.size, bool)
        test[np.asarray(fold, dtype=np.int64)] = True
        if not test.any() or test.all():
            raise DataError(f"fold {i + 1} has {int(test.sum())} of {f.size} patients; every fold needs some, and some must train")
        fit = fit_threshold(f[~test], y[~test], thresholds)
        results.append(FoldResult(i + 1, fit, confusion(y[test], f[test] > fit.threshold)))
    return CrossValidation(tuple(results))


@dataclass(frozen=True)
class ThresholdCalibration:
    """The paper's diagnostic-model calibration: per-patient fractions, CV, all-patient threshold."""

    patient_ids: tuple[str, ...]
    fractions: np.ndarray
    labels: np.ndarray  # 1 = gout
    fold_of: np.ndarray  # 0-based fold of each patient; -1 without cross-validation
    cv: CrossValidation | None
    overall: ThresholdFit
    seed: int

    @property
    def threshold(self) -> float:
        return self.overall.threshold

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "rule": "abnormal_fraction > threshold -> gouty arthritis",
            "grid_step": float(self.overall.thresholds[1] - self.overall.thresholds[0]) if self.overall.thresholds.size > 1 else None,
            "tie_rule": TIE_RULE,
            "seed": self.seed,
            "overall": self.overall.to_dict(),
            "cross_validation": None if self.cv is None else self.cv.to_dict(),
            "patients": [
                {"patient_id": pid, "label": int(lab), "fraction": float(fr),
                 "fold": None if fo < 0 else int(fo) + 1}
                for pid, fr, lab, fo in zip(self.patient_ids, self.fractions, self.labels, self.fold_of, strict=True)
            ],
        }


def calibrate_threshold(
    patient_ids: Sequence[str],
    fractions,
    labels,
    folds: int = 5,
    seed: int = 0,
    thresholds: np.ndarray = GRID,
) -> ThresholdCalibration:
    """Cross-validate the rule over ``folds`` patient folds (0: skip) and fit it on all patients."""
    f, y = _check(fractions, labels)
    ids = tuple(str(p) for p in patient_ids)
    if len(ids) != f.size or len(set(ids)) != len(ids):
        raise ValueError("patient_ids must name each patient once, parallel to fractions")
    fold_of = np.full(f.size, -1, dtype=np.int64)
    cv = None
    if folds:
        split = patient_folds(ids, ["gout" if v else "control" for v in y], folds, seed)
        position = {pid: i for i, pid in enumerate(ids)}
        members = [[position[pid] for pid in fold] for fold in split]
        for k, fold in enumerate(members):
            fold_of[fold] = k
        cv = cross_validate(f, y, members, thresholds)
    return ThresholdCalibration(ids, f, y.astype(np.int64), fold_of, cv, fit_threshold(f, y, thresholds), seed)
