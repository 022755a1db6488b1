"""Statistics of a binary classifier, in numpy: the paper's figures and tests.

Shared by training (per-fold metrics), threshold calibration and evaluation. Nothing here needs
scipy or scikit-learn; normal tail probabilities come from ``math.erfc`` and quantiles from
``statistics.NormalDist``.

- ``auc``: Mann-Whitney AUC over midranks (ties count 1/2).
- ``confusion`` → ``Confusion``: counts, accuracy / sensitivity / specificity, and their CIs.
- ``proportion`` / ``wilson_ci``: a proportion with its **Wilson score** interval (no continuity
  correction). Wilson rather than Clopper-Pearson: its coverage is close to nominal for the small
  counts of a patient-level table, where Clopper-Pearson is markedly conservative, and unlike the
  Wald interval it never leaves [0, 1] nor collapses to a point at 0/n or n/n.
- ``auc_delong`` → ``AucEstimate``: the AUC with DeLong's variance (DeLong, DeLong & Clarke-Pearson
  1988, in the midrank form of Sun & Xu 2014) and a **plain** normal CI, AUC ± z·SE, clipped to
  [0, 1] — the interval pROC reports (``ci.auc(method="delong")``); ``transform="logit"`` gives
  the logit-scale interval instead, which stays inside (0, 1) near a perfect AUC.
- ``delong_test`` → ``DelongTest``: two correlated AUCs (two models on the same images).
- ``mcnemar`` / ``mcnemar_paired`` → ``McNemarTest``: paired binary outcomes; the exact binomial
  test when the discordant pairs number fewer than 25, otherwise chi-square (1 df) with
  continuity correction.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AucEstimate",
    "Confusion",
    "DelongTest",
    "McNemarTest",
    "Proportion",
    "RocCurve",
    "auc",
    "auc_delong",
    "confusion",
    "delong_test",
    "mcnemar",
    "mcnemar_paired",
    "mean_sd",
    "midranks",
    "normal_two_sided_p",
    "proportion",
    "roc_curve",
    "wilson_ci",
]

MCNEMAR_EXACT_BELOW = 25  # discordant pairs: fewer → exact binomial, else chi-square with correction


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
    y, s = _check_pair(labels, scores)
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

    def proportions(self, level: float = 0.95) -> dict[str, Proportion]:
        """Accuracy, sensitivity and specificity as ``Proportion``s with Wilson intervals."""
        return {
            "accuracy": proportion(self.tp + self.tn, self.total, level),
            "sensitivity": proportion(self.tp, self.tp + self.fn, level),
            "specificity": proportion(self.tn, self.tn + self.fp, level),
        }

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fn + other.fn, self.tn + other.tn, self.fp + other.fp)


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


# --------------------------------------------------------------------------------------------
# normal distribution helpers


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic, ``erfc(|z| / √2)`` (exact in the tails)."""
    if math.isnan(z):
        return math.nan
    return math.erfc(abs(z) / math.sqrt(2.0))


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    return statistics.NormalDist().inv_cdf(0.5 + level / 2.0)


# --------------------------------------------------------------------------------------------
# proportions


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with its Wilson score interval; ``nan`` throughout when ``n`` is 0."""

    k: int
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    level: float = 0.95

    def to_dict(self) -> dict[str, float | int]:
        return {"k": self.k, "n": self.n, "estimate": self.estimate,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "level": self.level}

    def __str__(self) -> str:
        if not self.n:
            return "– (0/0)"
        return (f"{100 * self.estimate:.1f}% ({self.k}/{self.n}) "
                f"[{100 * self.ci_low:.1f}, {100 * self.ci_high:.1f}]")


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (no continuity correction).

    ``(p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)``; ``(nan, nan)`` when ``n`` is 0.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 ≤ k ≤ n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    z = _z(level)
    p = k / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # at k = 0 or k = n one bound is exactly 0 or 1; keep it so despite rounding
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def proportion(k: int, n: int, level: float = 0.95) -> Proportion:
    low, high = wilson_ci(int(k), int(n), level)
    return Proportion(int(k), int(n), k / n if n else math.nan, low, high, level)


# --------------------------------------------------------------------------------------------
# ROC, AUC with DeLong's variance, DeLong's test


@dataclass(frozen=True)
class RocCurve:
    """ROC points from (0, 0) to (1, 1), one per distinct score, highest score first."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray  # an image is called positive when its score ≥ threshold

    def to_dict(self) -> dict[str, list[float]]:
        return {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist(), "thresholds": self.thresholds.tolist()}


def roc_curve(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> RocCurve:
    """The empirical ROC curve; its trapezoidal area equals ``auc`` (ties give diagonal steps)."""
    y = _as_binary(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"labels and scores differ in shape: {y.shape} vs {s.shape}")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1] if s.size else np.array([], int)
    tps = np.cumsum(y_sorted)[last_of_group]
    fps = (last_of_group + 1) - tps
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.r_[0.0, np.full(tps.size, math.nan)]
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.r_[0.0, np.full(fps.size, math.nan)]
    thresholds = np.r_[math.inf, s_sorted[last_of_group]]
    return RocCurve(fpr, tpr, thresholds)


def _structural_components(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values from midranks (Sun & Xu 2014).

    ``v10[i]`` = mean over negatives j of ψ(x_i, y_j) for positive i; ``v01[j]`` = mean over
    positives i of ψ(x_i, y_j) for negative j; ψ = 1 if x > y, 1/2 if tied, 0 otherwise.
    """
    x, z = s[y], s[~y]
    m, n = x.size, z.size
    tz = midranks(s)
    v10 = (tz[y] - midranks(x)) / n
    v01 = 1.0 - (tz[~y] - midranks(z)) / m
    return v10, v01


def _check_pair(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(labels)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"labels and scores differ in shape: {y.shape} vs {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


@dataclass(frozen=True)
class AucEstimate:
    """An AUC, its DeLong variance and a normal confidence interval."""

    auc: float
    variance: float
    ci_low: float
    ci_high: float
    positives: int
    negatives: int
    level: float = 0.95
    transform: str = "plain"

    @property
    def se(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan

    def to_dict(self) -> dict[str, float | int | str]:
        return {"auc": self.auc, "variance": self.variance, "se": self.se, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "positives": self.positives, "negatives": self.negatives,
                "level": self.level, "ci_method": f"DeLong, {self.transform} normal"}

    def __str__(self) -> str:
        if math.isnan(self.auc):
            return "– (needs both classes)"
        if math.isnan(self.ci_low):
            return f"{self.auc:.3f} [–]"
        return f"{self.auc:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def auc_delong(
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    level: float = 0.95,
    transform: str = "plain",
) -> AucEstimate:
    """AUC with DeLong's variance ``S10/m + S01/n`` and a normal CI.

    ``transform="plain"``: AUC ± z·SE clipped to [0, 1] (as pROC). ``"logit"``: the interval of
    logit(AUC) with SE/(AUC(1−AUC)), mapped back; it equals the AUC itself at 0 or 1. The AUC and
    its interval are ``nan`` when a class is missing; the variance needs at least two of each.
    """
    if transform not in ("plain", "logit"):
        raise ValueError(f"transform must be 'plain' or 'logit', got {transform!r}")
    y, s = _check_pair(labels, scores)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return AucEstimate(math.nan, math.nan, math.nan, math.nan, m, n, level, transform)
    v10, v01 = _structural_components(y, s)
    a = float(v10.mean())
    var = (float(v10.var(ddof=1)) / m if m > 1 else math.nan) + (float(v01.var(ddof=1)) / n if n > 1 else math.nan)
    z = _z(level)
    if math.isnan(var):
        low = high = math.nan
    elif transform == "plain":
        se = math.sqrt(var)
        low, high = max(0.0, a - z * se), min(1.0, a + z * se)
    elif a in (0.0, 1.0):
        low = high = a
    else:
        logit = math.log(a / (1.0 - a))
        half = z * math.sqrt(var) / (a * (1.0 - a))
        low, high = 1.0 / (1.0 + math.exp(-(logit - half))), 1.0 / (1.0 + math.exp(-(logit + half)))
    return AucEstimate(a, var, low, high, m, n, level, transform)


@dataclass(frozen=True)
class DelongTest:
    """DeLong's test of two correlated AUCs (two score sets on the same images)."""

    auc_a: float
    auc_b: float
    difference: float  # a − b
    se: float
    z: float
    p_value: float
    ci_low: float  # of the difference
    ci_high: float
    level: float = 0.95

    def to_dict(self) -> dict[str, float]:
        return {"auc_a": self.auc_a, "auc_b": self.auc_b, "difference": self.difference, "se": self.se,
                "z": self.z, "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "level": self.level, "method": "DeLong"}


def delong_test(
    labels: Sequence[int] | np.ndarray,
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    level: float = 0.95,
) -> DelongTest:
    """z = (A − B) / sqrt(var A + var B − 2 cov(A, B)), two-sided normal p-value.

    When the variance of the difference is zero (both score sets rank every pair alike), the
    AUCs are identical and p = 1.
    """
    y, a = _check_pair(labels, scores_a)
    _, b = _check_pair(labels, scores_b)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        auc_a, auc_b = auc(y, a), auc(y, b)
        return DelongTest(auc_a, auc_b, auc_a - auc_b, math.nan, math.nan, math.nan, math.nan, math.nan, level)
    v10a, v01a = _structural_components(y, a)
    v10b, v01b = _structural_components(y, b)
    s10 = np.cov(np.vstack([v10a, v10b]))  # ddof=1
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    diff = float(v10a.mean() - v10b.mean())
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    zq = _z(level)
    if var <= 1e-300:
        se = 0.0
        z_stat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        se = math.sqrt(var)
        z_stat = diff / se
    p = normal_two_sided_p(z_stat) if math.isfinite(z_stat) else 0.0
    return DelongTest(float(v10a.mean()), float(v10b.mean()), diff, se, z_stat, p,
                      diff - zq * se, diff + zq * se, level)


# --------------------------------------------------------------------------------------------
# McNemar


@dataclass(frozen=True)
class McNemarTest:
    """McNemar's test on the discordant pairs ``b`` (only A right) and ``c`` (only B right)."""

    b: int
    c: int
    statistic: float  # chi-square with continuity correction, or min(b, c) for the exact test
    p_value: float
    method: str  # "exact binomial" | "chi-square, continuity-corrected" | "no discordant pairs"

    def to_dict(self) -> dict[str, float | int | str]:
        return {"b": self.b, "c": self.c, "statistic": self.statistic, "p_value": self.p_value,
                "method": self.method}


def _binomial_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n trials with p = 1/2: 2·P(X ≤ min(k, n−k)), capped at 1."""
    lo = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(lo + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar(b: int, c: int, exact: bool | None = None) -> McNemarTest:
    """McNemar's test of ``b`` vs ``c`` discordant pairs.

    ``exact=None`` picks the exact binomial test when ``b + c < 25`` and otherwise chi-square
    ``(|b − c| − 1)² / (b + c)`` (1 df). With no discordant pairs, p = 1.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return McNemarTest(b, c, 0.0, 1.0, "no discordant pairs")
    if exact is None:
        exact = n < MCNEMAR_EXACT_BELOW
    if exact:
        return McNemarTest(b, c, float(min(b, c)), _binomial_two_sided_half(b, n), "exact binomial")
    chi2 = max(abs(b - c) - 1.0, 0.0) ** 2 / n
    return McNemarTest(b, c, chi2, math.erfc(math.sqrt(chi2 / 2.0)), "chi-square, continuity-corrected")


def mcnemar_paired(
    truth: Sequence[int] | np.ndarray,
    predicted_a: Sequence[int] | np.ndarray,
    predicted_b: Sequence[int] | np.ndarray,
    exact: bool | None = None,
) -> McNemarTest:
    """McNemar on the correctness of two paired binary decision sets against the same truth.

    Restrict ``truth`` to positives (negatives) to compare sensitivities (specificities).
    """
    y = _as_binary(truth)
    a = _as_binary(predicted_a, "predicted_a")
    b = _as_binary(predicted_b, "predicted_b")
    if not (y.shape == a.shape == b.shape):
        raise ValueError(f"shapes differ: truth {y.shape}, a {a.shape}, b {b.shape}")
    right_a, right_b = a == y, b == y
    return mcnemar(int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()), exact)
