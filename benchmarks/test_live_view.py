"""The live view's picture of a 1080p frame (docs/design.md §13 budget: ≤ 5 ms): the frame shrunk
by a whole factor, the CAM laid over its region on the bundle's fixed scale through lookup tables,
the region outlined and the legend beside it (``live.render_live``) — against a plain float
rendering of the same picture, which it must match; plus the JPEG the live page fetches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.inference.cam_scale import cam_scale_for
from gout_edge.edge_runtime.live.render import render_live
from gout_edge.edge_runtime.present.overlay import ALPHA_MAX, CLEAR_BELOW, cam_legend
from gout_edge.edge_runtime.sources import Frame


class _Result:
    """What ``render_live`` reads of a ``FrameResult``."""

    key_frame = True

    def __init__(self, roi: Roi, cam: np.ndarray) -> None:
        self.roi, self.cam = roi, cam


@pytest.fixture(scope="module")
def scored(bundle, screens):
    """The first 1080p screen, its region and its abnormal-class CAM from the demo bundle."""
    from gout_edge.edge_runtime.inference.scoring import Scorer

    scorer = Scorer(bundle, "onnxruntime", "fp32")
    score = scorer.score([screens[0]])[0]
    scorer.close()
    assert screens[0].shape[:2] == (1080, 1920)
    return Frame(screens[0], 0, 0.0), _Result(score.roi, score.cam)


def _float_reference(frame: Frame, result: _Result, scale) -> np.ndarray:
    """The same picture in float arithmetic, pixel by pixel (the baseline)."""
    img = cv2.resize(frame.image, (960, 540), interpolation=cv2.INTER_AREA).astype(np.float64)
    r = result.roi
    x0, y0, x1, y1 = r.x0 // 2, r.y0 // 2, r.x1 // 2, r.y1 // 2
    v = np.clip((result.cam.astype(np.float64) - scale.lo) / (scale.hi - scale.lo), 0, 1)
    v = cv2.resize(v, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    a = (ALPHA_MAX * np.clip((v - CLEAR_BELOW) / (1 - CLEAR_BELOW), 0, 1))[..., None]
    colours = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0].astype(np.float64)
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + colours[np.rint(v * 255).astype(int)] * a
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 190, 255), 2)
    return np.hstack([out, cam_legend(scale, out.shape[0], dark=True)])


@pytest.mark.parametrize("variant", ["float_reference", "render_live"])
def test_live_view_render_1080p(benchmark, bundle, scored, variant):
    frame, result = scored
    scale = cam_scale_for(bundle)
    benchmark.group = "live view: one 1080p frame with its CAM, legend and region"
    fn = (lambda: _float_reference(frame, result, scale)) if variant == "float_reference" else (
        lambda: render_live(frame, result, scale, status=False))
    out = benchmark(fn)
    reference = _float_reference(frame, result, scale)
    assert out.shape == reference.shape and out.shape[0] == 540
    diff = np.abs(out.astype(np.int16) - reference.astype(np.int16))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 4  # LUT rounding only


def test_live_page_jpeg(benchmark, bundle, scored):
    """Encoding the picture for the page (done in the server's thread, once per picture fetched)."""
    frame, result = scored
    picture = render_live(frame, result, cam_scale_for(bundle), status=False)
    benchmark.group = "live view: JPEG for the page"
    ok, buf = benchmark(cv2.imencode, ".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 82])
    assert ok and cv2.imdecode(buf, cv2.IMREAD_COLOR).shape == picture.shape
