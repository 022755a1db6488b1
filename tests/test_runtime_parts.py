"""Runtime pieces: the vote, CAM rendering, backend resolution, the scorer on raw frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from gout_edge.edge_runtime.inference.backends import resolve
from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import GOUT, INDETERMINATE, NO_GOUT, decide
from gout_edge.edge_runtime.present.overlay import cam_heatmap, overlay_cam
from gout_edge.errors import UsageError
from gout_edge.manifest import DecisionSpec

CALIBRATED = DecisionSpec(image_cutoff=0.5, patient_threshold=0.33, min_key_frames=5, calibrated=True)


def test_vote_follows_the_paper_rule():
    # 2 of 6 abnormal = 0.333… > 0.33 → gout; 1 of 6 → no gout
    assert decide([0.9, 0.8, 0.1, 0.2, 0.3, 0.4], CALIBRATED).diagnosis == GOUT
    d = decide([0.9, 0.1, 0.1, 0.2, 0.3, 0.4], CALIBRATED)
    assert d.diagnosis == NO_GOUT and d.abnormal_frames == 1 and d.abnormal_fraction == pytest.approx(1 / 6)
    # exactly at the threshold is not above it
    assert decide([0.9] * 1 + [0.1] * 3 + [0.1], CALIBRATED, threshold=0.2).diagnosis == NO_GOUT
    # an image at exactly the cut-off is not abnormal
    assert decide([0.5] * 6, CALIBRATED).abnormal_frames == 0


def test_vote_is_indeterminate_with_too_few_frames_or_no_threshold():
    few = decide([0.9, 0.9, 0.9], CALIBRATED)
    assert few.diagnosis == INDETERMINATE and "at least 5" in str(few.reason)
    uncalibrated = decide([0.9] * 10, DecisionSpec())
    assert uncalibrated.diagnosis == INDETERMINATE and "not calibrated" in str(uncalibrated.reason)
    assert decide([], CALIBRATED).abnormal_fraction is None


def test_cam_overlay_is_hot_where_the_cam_peaks():
    cam = np.zeros((4, 8), np.float32)
    cam[1, 6] = 3.0
    cam[3, 0] = -5.0  # negative evidence is clipped, as in Grad-CAM
    heat = cam_heatmap(cam, 40, 80)
    assert 0.8 < heat.max() <= 1.0 and heat.min() == 0.0
    assert np.unravel_index(heat.argmax(), heat.shape)[1] > 50
    grey = np.full((40, 80), 100, np.uint8)
    out = overlay_cam(grey, cam)
    assert out.shape == (40, 80, 3)
    assert (out[5:15, 60:70] != 100).any() and (out[30:40, 0:10] == 100).all()


def test_auto_resolution_prefers_int8_openvino_and_fp32_onnxruntime(small_bundle):
    result, _ = small_bundle
    fp32_only = open_bundle(result.bundle)
    assert resolve(fp32_only) == ("onnxruntime", "fp32")
    with pytest.raises(UsageError, match="no installed backend"):
        resolve(fp32_only, precision="int8")
    with_int8 = Bundle(fp32_only.root, dataclasses.replace(
        fp32_only.manifest, files=fp32_only.manifest.files + (dataclasses.replace(fp32_only.manifest.files[0], role="onnx-int8"),)))
    assert resolve(with_int8) == ("openvino", "int8")
    assert resolve(with_int8, backend="onnxruntime") == ("onnxruntime", "int8")
    with pytest.raises(UsageError, match="unknown precision"):
        resolve(with_int8, precision="int4")


def test_scorer_scores_raw_scanner_frames(small_bundle):
    result, _ = small_bundle
    scorer = Scorer(open_bundle(result.bundle), threads=1)
    rng = np.random.default_rng(0)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[60:400, 80:600] = rng.integers(30, 200, (340, 520, 1), dtype=np.uint8)
    cv2.putText(frame, "GAIN 50", (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    blank = np.zeros((480, 640), np.uint8)
    scores = scorer.score([frame, blank])
    assert len(scores) == 2
    roi = scores[0].roi
    assert abs(roi.x0 - 80) <= 4 and abs(roi.y0 - 60) <= 4 and abs(roi.x1 - 600) <= 4 and abs(roi.y1 - 400) <= 4
    assert not (scores[0].blank or scores[0].colour) and not scores[1].usable and scores[1].blank
    assert scores[0].scope_distance is not None  # judged by the guard (a random-weight model refuses noise)
    m = scorer.bundle.manifest.outputs
    assert scores[0].cam.shape == (m.cam_height, m.cam_width)
    assert 0.0 <= scores[0].probability <= 1.0


def test_a_no_signal_screen_with_console_overlays_is_blank():
    """A black screen with text and a ruler has no B-mode region: flagged blank, kept out of the vote."""
    from gout_edge.edge_runtime.imaging.preprocess import find_roi, prepare

    screen = np.zeros((768, 1024, 3), np.uint8)
    cv2.putText(screen, "ID: P0001  GAIN 50  DR 60  13MHz", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 2)
    for y in range(120, 600, 20):
        cv2.line(screen, (900, y), (915, y), (200, 200, 200), 1)
    assert find_roi(cv2.cvtColor(screen, cv2.COLOR_BGR2GRAY)) is None
    prepared = prepare(screen)
    assert prepared.blank and not prepared.usable
