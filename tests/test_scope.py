"""The scope guard: its distances, its fit at export, its place in the manifest, the vote and verify.

Behaviour on the demo bundle (real out-of-scope screens refused, in-scope phantoms of an unseen
seed answered) is in ``tests/test_scope_demo.py``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from support.bundles import calibrated_copy
from support.screens import still

from gout_edge.calibration.stats import auc
from gout_edge.edge_runtime.exam.session import ExamSession
from gout_edge.edge_runtime.field.verify import verify_bundle
from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.inference.scope_guard import ScopeGuard, scope_distances
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import INDETERMINATE, SCOPE_REASON, ReasonCode, scope_refusal
from gout_edge.errors import BundleError
from gout_edge.export.scope_fit import _ledoit_wolf, fit_mahalanobis, refusal_threshold
from gout_edge.manifest import SCOPE_ROLE, Manifest, manifest_bytes


def test_mahalanobis_distance_is_the_textbook_one_with_the_shrunk_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    labels = (rng.random(300) > 0.5).astype(int)
    x[labels == 1] += 2.0
    arrays = fit_mahalanobis(x, labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in (0, 1)])
    cov, shrink = _ledoit_wolf(x - means[labels])
    assert 0.0 <= shrink <= 1.0
    inv = np.linalg.inv(cov)
    probe = rng.normal(size=(5, 16)) * 3
    want = np.sqrt(np.min([np.einsum("ni,ij,nj->n", probe - m, inv, probe - m) for m in means], axis=0))
    np.testing.assert_allclose(scope_distances("mahalanobis", arrays, probe), want, rtol=1e-3)


def test_knn_distance_is_one_minus_the_kth_cosine_similarity():
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(40, 8))
    unit = (bank / np.linalg.norm(bank, axis=1, keepdims=True)).astype(np.float32)
    probe = rng.normal(size=(3, 8))
    sims = (probe / np.linalg.norm(probe, axis=1, keepdims=True)) @ unit.T
    for k in (1, 5):
        want = 1 - np.sort(sims, axis=1)[:, -k]
        np.testing.assert_allclose(scope_distances("knn", {"bank": unit}, probe, k), want, rtol=1e-5)


def test_both_guards_separate_a_shifted_population():
    rng = np.random.default_rng(2)
    inside = np.abs(rng.normal(size=(400, 32)))
    labels = np.arange(400) % 2
    outside = np.abs(rng.normal(size=(100, 32))) * np.r_[np.full(16, 3.0), np.full(16, 0.2)]  # another direction
    fit, held = inside[:200], inside[200:]
    for method, arrays in (("mahalanobis", fit_mahalanobis(fit, labels[:200])),
                           ("knn", {"bank": fit / np.linalg.norm(fit, axis=1, keepdims=True)})):
        d = scope_distances(method, arrays, np.r_[held, outside], 5 if method == "knn" else 1)
        assert auc(np.r_[np.zeros(200), np.ones(100)], d) > 0.95, method


@pytest.mark.parametrize("refused, judged, fraction, refuses", [
    (6, 10, 0.5, True), (5, 10, 0.5, False), (0, 0, 0.5, False), (1, 1, 0.5, True), (3, 10, 0.2, True)])
def test_the_exam_rule_refuses_when_most_judged_frames_are_out_of_scope(refused, judged, fraction, refuses):
    reason = scope_refusal(refused, judged, fraction)
    assert (reason is not None) == refuses
    if refuses:
        assert reason.text().startswith(SCOPE_REASON) and f"{refused} of {judged}" in reason.text()


def test_export_fits_stores_and_signs_in_the_guard(small_bundle):
    result, _ = small_bundle
    m = result.manifest
    assert m.outputs.features == "features" and m.export.parity.features_max_abs_diff <= m.export.parity.tolerance
    scope = m.scope
    assert scope is not None and scope.file in {e.path for e in m.files if e.role == SCOPE_ROLE}
    candidates = scope.comparison["candidates"]
    assert {c["method"] for c in candidates} == {"mahalanobis", "knn"}
    assert all(0.0 <= c["auroc"] <= 1.0 and c["threshold"] > 0 for c in candidates)
    chosen = max(candidates, key=lambda c: (c["auroc"], c["refused_out_of_scope"]))
    assert (scope.method, scope.k) == (chosen["method"], chosen["k"])
    files = scope.comparison["model_files"]
    assert set(files) == {r for r in m.roles() if r in ("onnx-fp32", "onnx-int8", "openvino-int8")}
    assert scope.threshold == pytest.approx(max(f["threshold_alone"] for f in files.values()), rel=1e-5)
    assert scope.threshold >= chosen["threshold"] * (1 - 1e-5)  # the FP32 candidate's own threshold
    assert all(f["refused_in_scope_held_out"] <= scope.false_refusal_target + 0.01 for f in files.values())

    bundle = open_bundle(result.bundle)
    guard = ScopeGuard.of(bundle)
    assert guard is not None and guard.spec == scope
    scorer = Scorer(bundle, "onnxruntime", "fp32", threads=1)
    try:
        score = scorer.score([still(0).image])[0]
    finally:
        scorer.close()
    assert score.scope_distance is not None and score.out_of_scope == (score.scope_distance > scope.threshold)


def test_a_guard_without_features_or_without_its_file_is_refused(small_bundle):
    result, _ = small_bundle
    data = json.loads(manifest_bytes(result.manifest))
    data["outputs"]["features"] = None
    with pytest.raises(BundleError, match="features"):
        Manifest.from_dict(data)
    data = json.loads(manifest_bytes(result.manifest))
    data["files"] = [f for f in data["files"] if f["role"] != SCOPE_ROLE]
    with pytest.raises(BundleError, match="scope-guard"):
        Manifest.from_dict(data)
    data = json.loads(manifest_bytes(result.manifest))
    data["scope"]["method"] = "energy"
    with pytest.raises(BundleError, match="method"):
        Manifest.from_dict(data)


def _with_threshold(bundle: Bundle, threshold: float) -> Bundle:
    scope = dataclasses.replace(bundle.manifest.scope, threshold=threshold)
    return Bundle(bundle.root, dataclasses.replace(bundle.manifest, scope=scope), bundle.blobs)


@pytest.mark.parametrize("threshold, refused", [(0.0, True), (1e6, False)])
def test_out_of_scope_frames_stay_out_of_the_vote_and_end_the_exam_with_the_scope_reason(
        small_bundle, tmp_path, threshold, refused):
    bundle = _with_threshold(open_bundle(calibrated_copy(small_bundle, tmp_path / "b", scope=True)), threshold)
    scorer = Scorer(bundle, "onnxruntime", "fp32", threads=1)
    with ExamSession(bundle, scorer, tmp_path / "s") as session:
        results = [session.feed(still(i)) for i in range(6)]
    result = session.result()
    scorer.close()
    assert all(r.out_of_scope == refused and r.scope_distance is not None for r in results)
    assert all((r.probability is None) == refused for r in results)
    assert (result.scope_judged, result.scope_refused, result.out_of_scope_frames) == (6, 6 * refused, 6 * refused)
    assert result.not_key_frames + result.key_frames == (0 if refused else 6)  # refused frames are not "passed over"
    if refused:
        assert result.diagnosis == INDETERMINATE and result.reason.code is ReasonCode.OUT_OF_SCOPE
        assert result.key_frames == 0 and session.excluded.counts == {"scope": 6}
        end = [line for line in result.journal.read_text().splitlines() if '"type":"end"' in line][0]
        assert '"out_of_scope":6' in end
    else:
        assert result.reason.code is not ReasonCode.OUT_OF_SCOPE and result.key_frames >= 1


def test_verify_checks_the_guard_on_out_of_scope_references(small_bundle, tmp_path):
    result, _ = small_bundle
    ref = result.manifest.reference
    kinds = [i.kind for i in ref.inputs]
    record = verify_bundle(result.bundle, backends=["onnxruntime"], precisions=["fp32"], latency_frames=3, threads=1)
    checks = {c.name: c for c in record.checks}
    check = checks["onnxruntime/fp32: scope guard"]
    assert check.passed, check
    oos = [i.id for i in ref.inputs if i.kind == "out-of-scope screen"]
    assert oos and set(oos) <= set(check.measured["refused"])
    assert kinds.count("out-of-scope screen") == len(oos)


@pytest.mark.parametrize("n", [10, 49, 50, 51, 173, 346, 1000])
def test_the_threshold_never_refuses_more_than_the_target_fraction(n):
    """At most 2 % of the held-out in-scope distances lie above the threshold, whatever their
    number (an interpolated quantile refused 7 of 346, 2.02 %), and no fewer than the largest
    count that 2 % allows."""
    held = np.random.default_rng(n).gamma(2.0, 3.0, n)
    refused = int((held > refusal_threshold(held, 0.02)).sum())
    assert refused <= 0.02 * n and refused >= int(0.02 * (n - 1))
