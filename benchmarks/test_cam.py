"""CAM vs no CAM: the in-graph CAM (one einsum over the last feature map) against a graph whose
head is global average pooling + the linear layer, from the same weights; plus the cost of
rendering the CAM overlay. docs/design.md §9 budget: CAM overhead ≤ 5 % of inference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from gout_edge.edge_runtime.present.overlay import overlay_cam
from gout_edge.export.onnx import without_cam


@pytest.fixture(scope="module")
def sessions(bundle):
    path = bundle.path("onnx-int8")
    with_cam = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    plain = without_cam(onnx.load(str(path)))
    no_cam = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"])
    return with_cam, no_cam


@pytest.mark.parametrize("variant", ["no_cam", "with_cam"])
def test_cam_in_graph(benchmark, sessions, inputs, variant):
    with_cam, no_cam = sessions
    benchmark.group = "CAM in the graph (ONNX Runtime INT8, batch 1)"
    session = with_cam if variant == "with_cam" else no_cam
    benchmark(session.run, None, {"input": inputs[:1]})
    logits_cam = with_cam.run(["logits"], {"input": inputs})[0]
    logits_plain = no_cam.run(["logits"], {"input": inputs})[0]
    # the QDQ graph quantizes the head's final Add: logits agree to its step, not to float precision
    np.testing.assert_allclose(logits_plain, logits_cam, atol=0.05)


def test_cam_overlay_render(benchmark, bundle, screens, sessions, inputs):
    """Rendering one key frame's CAM over its 1080p region (done for key frames and the live view)."""
    cam = sessions[0].run(["cam"], {"input": inputs[:1]})[0][0, bundle.manifest.model.abnormal_index]
    region = np.ascontiguousarray(screens[0][150:930, 200:1700])
    benchmark.group = "CAM overlay"
    out = benchmark(overlay_cam, region, cam)
    assert out.shape == region.shape
