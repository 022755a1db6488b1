"""Crop → model input of a 1080p screen, region known: naive vs one pass.

Baseline (``naive``): ``prepare(frame, roi=roi)`` — the whole frame converted to grey, then the
crop, resize and standardization, and the colour test gathering its sample with numpy's strided
copy. Candidate (``fast``): ``crop_to_tensor`` — only the region converted to grey, straight from
the crop view, resized and standardized — with the colour test's sample gathered by OpenCV
(``FramePreparer``). The candidate must give the baseline's model input and flags.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gout_edge.edge_runtime.imaging.preprocess import prepare
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, RoiTracker


@pytest.mark.parametrize("path", ["naive", "fast"])
def test_crop_to_tensor_1080p(benchmark, bundle, screens, path):
    m = bundle.manifest
    data = cv2.imencode(".jpg", screens[0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()  # as a grabber sends it
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    roi = RoiTracker(m.preprocess).locate(frame)[0]
    reference = prepare(frame, m.input, m.preprocess, roi)
    benchmark.group = "crop → tensor, 1080p screen, region known"
    if path == "naive":
        result = benchmark(prepare, frame, m.input, m.preprocess, roi)
    else:
        result = benchmark(FramePreparer(m.input, m.preprocess), frame, roi)
    assert result.roi == reference.roi and (result.blank, result.colour) == (reference.blank, reference.colour)
    np.testing.assert_allclose(result.tensor, reference.tensor, atol=1e-5)
