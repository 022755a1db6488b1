"""The scope guard's cost per frame (docs/design.md §14; budget ≤ 1 ms): the bundle's own guard
on one frame's pooled features, and both fitted methods at the demo bundle's sizes, against the
inference that makes the features. Each candidate's answer is checked against a plain-float
reference computation."""

from __future__ import annotations

import numpy as np
import pytest

from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session
from gout_edge.edge_runtime.inference.scope_guard import ScopeGuard, scope_distances


@pytest.fixture(scope="module")
def session(bundle):
    s = open_session(bundle, "openvino", SessionOptions(precision="int8"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def features(session, inputs):
    f = session.run(inputs[:4]).features
    if f is None:
        pytest.skip("the bundle's graph has no features output (exported before the scope guard)")
    return f


def test_inference_for_comparison(benchmark, session, inputs):
    benchmark.group = "scope guard vs the inference it follows (OpenVINO INT8, batch 1)"
    benchmark(session.run, inputs[:1])


def test_bundle_guard_per_frame(benchmark, bundle, features):
    guard = ScopeGuard.of(bundle)
    if guard is None:
        pytest.skip("the bundle has no scope guard")
    benchmark.group = "scope guard vs the inference it follows (OpenVINO INT8, batch 1)"
    d = benchmark(guard.distance, features[:1])
    np.testing.assert_allclose(d, guard.distance(features)[:1], rtol=1e-5)


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_method_per_frame(benchmark, features, method):
    rng = np.random.default_rng(0)
    width = features.shape[1]
    if method == "mahalanobis":
        arrays = {"means": rng.normal(size=(2, width)).astype(np.float32),
                  "whiten": rng.normal(size=(width, width)).astype(np.float32) / width}
        want = np.sqrt(min(np.sum(((features[0] - m) @ arrays["whiten"].T) ** 2) for m in arrays["means"]))
    else:
        bank = rng.normal(size=(320, width))
        arrays = {"bank": (bank / np.linalg.norm(bank, axis=1, keepdims=True)).astype(np.float32)}
        want = 1 - np.sort(arrays["bank"] @ (features[0] / np.linalg.norm(features[0])))[-5]
    benchmark.group = "scope guard methods, one frame"
    d = benchmark(scope_distances, method, arrays, features[:1], 5)
    np.testing.assert_allclose(d[0], want, rtol=1e-4)
