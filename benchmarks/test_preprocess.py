"""Naive vs fast preprocessing of a 1080p screen (docs/design.md §9 budget: ≤ 3 ms p50, ROI cached).

Baseline: ``prepare(frame)`` — grey conversion of the whole frame and a fresh region detection.
Candidate: the streaming path — ``RoiTracker`` (cached region, layout check) + ``FramePreparer``
(works on the region only). Both must produce the same model input.
"""

from __future__ import annotations

import numpy as np
import pytest

from gout_edge.edge_runtime.imaging.preprocess import prepare
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, RoiTracker


@pytest.mark.parametrize("path", ["naive", "fast"])
def test_preprocess_1080p(benchmark, bundle, screens, path):
    m = bundle.manifest
    frame = screens[0]
    benchmark.group = "preprocess a 1080p screen"
    if path == "naive":
        result = benchmark(prepare, frame, m.input, m.preprocess)
    else:
        tracker, preparer = RoiTracker(m.preprocess), FramePreparer(m.input, m.preprocess)
        tracker.locate(frame)  # the region is cached from the previous frames of the stream

        def fast():
            roi, _ = tracker.locate(frame)
            return preparer(frame, roi)

        result = benchmark(fast)
    reference = prepare(frame, m.input, m.preprocess)
    assert result.roi == reference.roi
    np.testing.assert_allclose(result.tensor, reference.tensor, atol=1e-5)
