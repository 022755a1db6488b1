"""FP32 vs INT8 per engine, and batch 1 vs batch 8 (a DICOM study is scored as a batch)."""

from __future__ import annotations

import numpy as np
import pytest

from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session
from gout_edge.edge_runtime.inference.cam_scale import cam_correlation

ENGINES = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]


@pytest.fixture(scope="module")
def reference(bundle, inputs):
    return open_session(bundle, "onnxruntime", SessionOptions("fp32")).run(inputs)


@pytest.mark.parametrize("backend, precision", ENGINES)
def test_engine_latency_batch1(benchmark, bundle, inputs, reference, backend, precision):
    session = open_session(bundle, backend, SessionOptions(precision))
    benchmark.group = "engine, batch 1"
    benchmark(session.run, inputs[:1])
    pred = session.run(inputs)
    tolerance = 1e-4 if precision == "fp32" else 0.05
    assert np.abs(pred.probability - reference.probability).max() <= tolerance
    assert cam_correlation(pred.cam, reference.cam).min() >= (0.999 if precision == "fp32" else 0.95)


@pytest.mark.parametrize("batch", [1, 8])
def test_study_throughput_by_batch(benchmark, bundle, inputs, batch):
    """Images per call for a DICOM study: 8 images scored one by one, or as one batch."""
    session = open_session(bundle, "openvino", SessionOptions("int8"))
    benchmark.group = "DICOM study of 8 images (OpenVINO INT8)"

    def score_study():
        return np.concatenate([session.run(inputs[i : i + batch]).probability for i in range(0, len(inputs), batch)])

    probabilities = benchmark(score_study)
    one_by_one = np.concatenate([session.run(inputs[i : i + 1]).probability for i in range(len(inputs))])
    np.testing.assert_allclose(probabilities, one_by_one, atol=1e-3)
