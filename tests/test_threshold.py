"""The paper's threshold rule on crafted fractions: grid, tie rule, cross-validation, and
agreement with the runtime's vote."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gout_edge.calibration.threshold import (
    GRID,
    accuracy_curve,
    calibrate_threshold,
    cross_validate,
    fit_threshold,
    threshold_grid,
)
from gout_edge.edge_runtime.pipeline.verdict import GOUT, NO_GOUT, decide
from gout_edge.manifest import DecisionSpec


def test_grid_is_0_to_1_in_steps_of_0_02_with_exact_decimals():
    assert GRID.size == 51 and GRID[0] == 0.0 and GRID[-1] == 1.0
    assert GRID[17] == 0.34 and GRID[14] == 0.28 and GRID[50] == 1.0
    assert np.all(np.diff(GRID) > 0)
    with pytest.raises(ValueError):
        threshold_grid(0.03)


def test_the_rule_is_strictly_greater_than():
    # a gout patient exactly at the threshold is called "no gout"
    acc = accuracy_curve([0.5], [1], np.array([0.48, 0.5]))
    assert acc.tolist() == [1.0, 0.0]


def test_single_plateau_takes_its_middle():
    # perfect separation for every t in [0.2, 0.5): grid 0.20 … 0.48, 15 points → the 8th, 0.34
    fit = fit_threshold([0.0, 0.1, 0.2, 0.5, 0.6, 0.9], [0, 0, 0, 1, 1, 1])
    assert fit.accuracy == 1.0
    assert fit.plateau == (0.20, 0.48) and fit.tied_best == 15
    assert fit.threshold == 0.34


def test_even_plateau_takes_the_lower_middle():
    # best on t in [0.2, 0.28): 0.20, 0.22, 0.24, 0.26 → lower middle 0.22
    fit = fit_threshold([0.0, 0.2, 0.28, 0.5], [0, 0, 1, 1])
    assert fit.plateau == (0.20, 0.26) and fit.threshold == 0.22


def test_the_longest_of_two_tied_runs_wins_even_when_it_is_higher():
    # controls 0.1 and 0.6, gout 0.2 and 0.9: 3/4 correct on [0.1, 0.2) (5 grid points) and on
    # [0.6, 0.9) (15 points); 2/4 elsewhere → the middle of the longer run, 0.74
    fit = fit_threshold([0.1, 0.2, 0.6, 0.9], [0, 1, 0, 1])
    assert fit.accuracy == 0.75 and fit.tied_best == 20
    assert fit.plateau == (0.60, 0.88) and fit.threshold == 0.74


def test_equally_long_runs_take_the_lowest():
    # 3/4 on [0.1, 0.2) and on [0.6, 0.7): both 5 grid points → the first, middle 0.14
    fit = fit_threshold([0.1, 0.2, 0.6, 0.7], [0, 1, 0, 1])
    assert fit.plateau == (0.10, 0.18) and fit.threshold == 0.14


def test_fractions_and_thresholds_agree_with_the_runtime_vote_at_exact_ties():
    """calibrate's fractions and rule must make the cart's decisions, including fraction == t."""
    rng = np.random.default_rng(0)
    decision = DecisionSpec(image_cutoff=0.5, min_key_frames=1)
    groups, probs, start = [], [], 0
    for n, k in [(50, 17), (6, 2), (3, 1), (10, 5), (7, 0), (25, 25)]:  # 17/50 = 0.34 sits on the grid
        p = np.r_[rng.uniform(0.51, 1, k), rng.uniform(0, 0.5, n - k)]
        rng.shuffle(p)
        probs.append(p)
        groups.append(list(range(start, start + n)))
        start += n
    votes = [decide(p, decision) for p in probs]  # the vote's own fraction, as calibrate reads it from a Tally
    assert [v.abnormal_frames for v in votes] == [17, 2, 1, 5, 0, 25] and votes[0].abnormal_fraction == 0.34
    fractions = np.array([v.abnormal_fraction for v in votes])
    for t in GRID:
        ours = fractions > t
        runtime = [decide(p, decision, threshold=float(t)).diagnosis for p in probs]
        assert [GOUT if o else NO_GOUT for o in ours] == runtime, t


def _brute_fit(f, y):
    """Loops and lists, independent of the module: best accuracy, longest run, lower middle."""
    best, runs, current = -1, [], []
    counts = [sum((fi > t) == bool(yi) for fi, yi in zip(f, y, strict=True)) for t in GRID]
    best = max(counts)
    for i, c in enumerate(counts):
        if c == best:
            current.append(i)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    longest = max(runs, key=len)  # max returns the first of equal lengths
    return float(GRID[longest[(len(longest) - 1) // 2]])


def test_cross_validation_fits_on_the_other_folds_and_scores_the_held_out_one():
    rng = np.random.default_rng(5)
    y = np.array([0] * 12 + [1] * 13)
    f = np.clip(np.round(0.15 + 0.25 * y + rng.normal(0, 0.12, 25), 3), 0, 1)
    folds = [list(range(i, 25, 5)) for i in range(5)]
    cv = cross_validate(f, y, folds)
    assert len(cv.folds) == 5
    for k, fold in enumerate(cv.folds):
        test = np.zeros(25, bool)
        test[folds[k]] = True
        t = _brute_fit(f[~test], y[~test])
        assert fold.threshold == t
        pred = f[test] > t
        assert fold.test.tp == int((pred & (y[test] == 1)).sum())
        assert fold.test.tn == int((~pred & (y[test] == 0)).sum())
        assert fold.test.total == 5
    pooled = cv.pooled
    assert pooled.total == 25 and pooled.tp == sum(x.test.tp for x in cv.folds)
    accs = [x.test.accuracy for x in cv.folds]
    assert cv.mean_sd("accuracy") == pytest.approx((np.mean(accs), np.std(accs, ddof=1)))
    assert cv.mean_sd("threshold")[0] == pytest.approx(np.mean([x.threshold for x in cv.folds]))


def test_calibrate_threshold_folds_by_patient_and_fits_on_all():
    rng = np.random.default_rng(2)
    y = np.array([0, 1] * 10)
    f = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.1, 20), 0, 1)
    ids = [f"P{i:02d}" for i in range(20)]
    cal = calibrate_threshold(ids, f, y, folds=5, seed=3)
    assert cal.threshold == _brute_fit(f, y)
    assert sorted(np.bincount(cal.fold_of).tolist()) == [4] * 5
    for k in range(5):  # stratified: two gout and two control per fold
        assert y[cal.fold_of == k].sum() == 2
    doc = json.loads(json.dumps(cal.to_dict()))
    assert len(doc["patients"]) == 20 and {"patient_id", "label", "fraction", "fold"} <= set(doc["patients"][0])
    assert len(doc["cross_validation"]["folds"]) == 5 and doc["tie_rule"]
    # same seed, same folds; no cross-validation with folds=0
    assert calibrate_threshold(ids, f, y, folds=5, seed=3).fold_of.tolist() == cal.fold_of.tolist()
    assert calibrate_threshold(ids, f, y, folds=0).cv is None
