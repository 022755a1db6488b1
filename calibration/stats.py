"""Statistics of a binary classifier, in numpy: AUC (Mann-Whitney) and the confusion counts.

Shared by training (per-fold metrics), threshold calibration and evaluation. Nothing here needs
scipy or scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Confusion", "auc", "confusion", "mean_sd", "midranks"]


def _as_binary(labels: Sequence[int] | np.ndarray, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return y.astype(bool)


def midranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1…n of ``values``; tied values share the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each tie group
    return (upper - (counts - 1) / 2.0)[inverse.reshape(-1)]


def auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed with the Mann-Whitney U statistic over midranks, O(n log n). Returns ``nan`` when
    ``labels`` holds only one class (the AUC is undefined there).
    """
    y = _as_binary(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"labels and scores differ in shape: {y.shape} vs {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = midranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True)
class Confusion:
    """Counts of a binary decision against the truth; rates are ``nan`` when undefined."""

    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def total(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.total)

    @property
    def sensitivity(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.tn + self.fp)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp, "fn": self.fn, "tn": self.tn, "fp": self.fp,
            "accuracy": self.accuracy,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
        }


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def confusion(labels: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> Confusion:
    """Confusion counts of binary ``predicted`` (1 = abnormal) against binary ``labels``."""
    y = _as_binary(labels)
    p = _as_binary(predicted, "predicted")
    if p.shape != y.shape:
        raise ValueError(f"labels and predicted differ in shape: {y.shape} vs {p.shape}")
    return Confusion(
        tp=int((y & p).sum()), fn=int((y & ~p).sum()), tn=int((~y & ~p).sum()), fp=int((~y & p).sum())
    )


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of the finite values; ``nan`` when undefined."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return float(x.mean()), sd
