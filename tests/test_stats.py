"""Statistics against published values, hand-worked cases and brute-force re-computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gout_edge.calibration.stats import (
    auc,
    auc_delong,
    confusion,
    delong_test,
    mcnemar,
    mcnemar_paired,
    proportion,
    roc_curve,
    wilson_ci,
)

Z95 = 1.959963984540054


# --- Wilson ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, n, low, high",
    [  # Newcombe (1998), Stat Med 17:857, Table I, method 3 (score interval without correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998(k, n, low, high):
    lo, hi = wilson_ci(k, n)
    assert lo == pytest.approx(low, abs=6e-5) and hi == pytest.approx(high, abs=6e-5)


def test_wilson_closed_form_by_hand_and_edges():
    # 7/10: centre (0.7 + z²/20) / (1 + z²/10), half z·sqrt(0.021 + z²/400) / (1 + z²/10)
    z2 = Z95**2
    centre = (0.7 + z2 / 20) / (1 + z2 / 10)
    half = Z95 * math.sqrt(0.7 * 0.3 / 10 + z2 / 400) / (1 + z2 / 10)
    assert wilson_ci(7, 10) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson_ci(10, 10)[1] == 1.0 and wilson_ci(0, 10)[0] == 0.0
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    p = proportion(3, 4)
    assert (p.k, p.n, p.estimate) == (3, 4, 0.75) and p.ci_low < 0.75 < p.ci_high
    # a wider level gives a wider interval
    assert wilson_ci(7, 10, 0.99)[0] < wilson_ci(7, 10)[0]
    with pytest.raises(ValueError):
        wilson_ci(5, 4)


def test_confusion_proportions_carry_the_counts():
    c = confusion([1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 0, 1, 0])
    props = c.proportions()
    assert (props["sensitivity"].k, props["sensitivity"].n) == (2, 3)
    assert (props["specificity"].k, props["specificity"].n) == (3, 4)
    assert (props["accuracy"].k, props["accuracy"].n) == (5, 7)
    assert (c + c).tp == 4


# --- AUC, ROC, DeLong -----------------------------------------------------------------------


def test_delong_variance_on_a_hand_worked_example():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.3. ψ rows: [1,1], [1,1], [0,1]
    # V10 = (1, 1, 1/2), V01 = (2/3, 1); AUC 5/6; S10 = 1/12, S01 = 1/18;
    # var = S10/3 + S01/2 = 1/36 + 1/36 = 1/18
    est = auc_delong([1, 1, 1, 0, 0], [0.9, 0.8, 0.4, 0.7, 0.3])
    assert est.auc == pytest.approx(5 / 6, abs=1e-15)
    assert est.variance == pytest.approx(1 / 18, abs=1e-15)
    assert est.ci_low == pytest.approx(5 / 6 - Z95 * math.sqrt(1 / 18), abs=1e-12)
    assert est.ci_high == 1.0  # 5/6 + 0.46 clipped, as pROC does


def _brute_components(y, s):
    """ψ over every (positive, negative) pair, written out: the definition, not the midrank trick."""
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def test_delong_matches_brute_force_structural_components_with_ties():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 60)
    a = np.round(y * 0.8 + rng.normal(0, 1, 60), 1)  # rounding makes ties, within and across classes
    b = np.round(y * 0.4 + rng.normal(0, 1, 60), 1)
    m, n = int(y.sum()), int((1 - y).sum())
    v10a, v01a = _brute_components(y, a)
    v10b, v01b = _brute_components(y, b)
    var_a = v10a.var(ddof=1) / m + v01a.var(ddof=1) / n
    est = auc_delong(y, a)
    assert est.auc == pytest.approx(v10a.mean(), abs=1e-12) == pytest.approx(auc(y, a), abs=1e-12)
    assert est.variance == pytest.approx(var_a, rel=1e-10)

    cov = lambda p, q: np.cov(p, q)[0, 1]  # noqa: E731
    var_b = v10b.var(ddof=1) / m + v01b.var(ddof=1) / n
    cov_ab = cov(v10a, v10b) / m + cov(v01a, v01b) / n
    z = (v10a.mean() - v10b.mean()) / math.sqrt(var_a + var_b - 2 * cov_ab)
    test = delong_test(y, a, b)
    assert test.z == pytest.approx(z, rel=1e-10)
    assert test.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-10)
    assert 0 < test.p_value < 1
    swapped = delong_test(y, b, a)
    assert swapped.z == pytest.approx(-test.z) and swapped.p_value == pytest.approx(test.p_value)


def test_delong_test_of_a_model_with_itself_or_a_monotone_transform_gives_p_one():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = y + rng.normal(0, 1, 40)
    for other in (s, np.exp(3 * s)):
        t = delong_test(y, s, other)
        assert t.difference == 0 and t.p_value == 1.0


def test_clearly_different_aucs_give_a_small_p():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 200)
    good = y * 2.0 + rng.normal(0, 1, 400)
    noise = rng.normal(0, 1, 400)
    t = delong_test(y, good, noise)
    assert t.auc_a > 0.85 and abs(t.auc_b - 0.5) < 0.1 and t.p_value < 1e-10
    assert t.ci_low > 0  # the CI of the difference excludes 0


def test_logit_interval_stays_inside_and_contains_the_auc():
    y = np.array([1] * 10 + [0] * 10)
    s = np.r_[np.linspace(0.5, 1, 10), np.linspace(0, 0.52, 10)]
    plain, logit = auc_delong(y, s), auc_delong(y, s, transform="logit")
    assert plain.auc == logit.auc == 0.99  # one discordant pair of 100
    assert 0 < logit.ci_low < logit.auc < logit.ci_high < 1
    assert plain.ci_high == 1.0


def test_auc_estimate_is_nan_with_one_class():
    est = auc_delong([1, 1, 1], [0.1, 0.2, 0.3])
    assert math.isnan(est.auc) and math.isnan(est.ci_low)


def test_roc_area_equals_the_mann_whitney_auc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    s = np.round(y * 0.5 + rng.normal(0, 1, 100), 1)
    r = roc_curve(y, s)
    area = float(np.sum(np.diff(r.fpr) * (r.tpr[1:] + r.tpr[:-1]) / 2))
    assert area == pytest.approx(auc(y, s), abs=1e-12)
    assert (r.fpr[0], r.tpr[0], r.fpr[-1], r.tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(r.fpr) >= 0) and np.all(np.diff(r.tpr) >= 0)


# --- McNemar --------------------------------------------------------------------------------


def test_mcnemar_exact_on_known_counts():
    # b=2, c=8: 2·P(X ≤ 2 | n=10, 1/2) = 2·(1 + 10 + 45)/1024 = 112/1024
    t = mcnemar(2, 8)
    assert t.method == "exact binomial" and t.p_value == 112 / 1024
    assert mcnemar(0, 5).p_value == 2 / 32
    assert mcnemar(5, 5).p_value == 1.0
    assert mcnemar(0, 0).p_value == 1.0
    assert mcnemar(8, 2).p_value == mcnemar(2, 8).p_value


def test_mcnemar_chi_square_with_continuity_correction():
    # the discordant cells 121 and 59: chi² = (|121 − 59| − 1)² / 180 = 3721 / 180
    t = mcnemar(121, 59)
    assert t.method.startswith("chi-square")
    assert t.statistic == pytest.approx(3721 / 180)
    assert t.p_value == pytest.approx(5.4501e-06, rel=1e-3)  # chi-square(1) upper tail at 20.672


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs():
    assert mcnemar(4, 20).method == "exact binomial"
    assert mcnemar(5, 20).method.startswith("chi-square")
    # forced exact on a large count agrees closely with the chi-square approximation
    assert mcnemar(121, 59, exact=True).p_value == pytest.approx(mcnemar(121, 59).p_value, rel=0.3)


def test_mcnemar_paired_counts_the_discordant_correctness():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 0, 0, 0, 1, 0])  # wrong on 3 and 6
    b = np.array([1, 0, 0, 1, 0, 0, 1, 1])  # wrong on 1, 2, 6, 7
    t = mcnemar_paired(truth, a, b)
    assert (t.b, t.c) == (3, 1)  # only a right: 1, 2, 7; only b right: 3
