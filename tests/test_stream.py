"""Streaming: latest-wins capture, the region cache, the stream preparer, key-frame decisions."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support.bundles import SMALL
from support.screens import screen, write_video

from gout_edge.edge_runtime.imaging.preprocess import Roi, prepare
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, FrameStream, KeyFrameSelector, RoiTracker, StreamSpec
from gout_edge.edge_runtime.sources import Frame, open_source
from gout_edge.manifest import PreprocessSpec


class SyntheticLive:
    """A live source producing ``n`` distinct frames as fast as it can (or every ``period_s``)."""

    kind = "synthetic"
    live = True
    complete = True
    skipped = ()
    read_ahead = 0

    def defer_decoding(self):
        return None

    def __init__(self, n: int, period_s: float = 0.0, fail_at: int | None = None) -> None:
        self.n, self.period_s, self.fail_at = n, period_s, fail_at
        self.lost = False
        self.end_reason = None
        self.closed = threading.Event()
        self.image = screen()

    def __iter__(self):
        for i in range(self.n):
            if self.closed.is_set():
                return
            if i == self.fail_at:
                raise RuntimeError("device exploded")
            if self.period_s:
                time.sleep(self.period_s)
            yield Frame(self.image, i, float(i))

    def close(self):
        self.closed.set()


def test_latest_wins_with_a_video_file_a_fast_producer_and_a_slow_reader(tmp_path):
    path = write_video(tmp_path / "fast.avi", n=200)
    stream = FrameStream(open_source("video", path), latest_wins=True)
    lags, taken = [], []
    for frame in stream:
        lags.append(stream.captured - 1 - frame.index)  # how far behind the newest frame we are
        taken.append(frame.index)
        time.sleep(0.02)  # a slow backend
    stream.close()
    assert stream.captured == 200 and stream.taken == len(taken)
    assert stream.dropped == stream.captured - stream.taken > 0
    assert taken == sorted(taken) and taken[-1] == 199  # always the newest, never old ones
    assert max(lags) <= 2  # the reader is never more than the frame in flight behind
    half = len(lags) // 2
    assert np.mean(lags[half:]) <= np.mean(lags[:half]) + 1  # latency does not grow


def test_drops_are_counted_exactly_and_every_frame_is_read_or_dropped():
    stream = FrameStream(SyntheticLive(500))
    n = 0
    for _ in stream:
        n += 1
        time.sleep(0.001)
    assert stream.captured == 500 and n + stream.dropped == 500


def test_a_file_source_is_read_in_order_without_drops(tmp_path):
    stream = FrameStream(open_source("video", write_video(tmp_path / "c.avi", n=10)))
    assert not stream.latest_wins
    assert [f.index for f in stream] == list(range(10)) and stream.dropped == 0


def test_stop_ends_the_stream_and_capture_errors_reach_the_reader():
    stop = threading.Event()
    stream = FrameStream(SyntheticLive(10_000, period_s=0.001), stop=stop)
    got = 0
    for _ in stream:
        got += 1
        if got == 5:
            stop.set()
    stream.close()
    assert got == 5
    failing = FrameStream(SyntheticLive(10, fail_at=3))
    with pytest.raises(RuntimeError, match="exploded"):
        for _ in failing:
            time.sleep(0.01)


# -- region cache -----------------------------------------------------------------------------


def test_the_region_is_detected_once_while_the_layout_holds():
    tracker = RoiTracker()
    rois = [tracker.locate(screen(seed=i))[0] for i in range(40)]
    assert tracker.detections == 1 and len(set(rois)) == 1
    r = rois[0]
    assert abs(r.x0 - 40) <= 3 and abs(r.y0 - 30) <= 3 and abs(r.x1 - 280) <= 3 and abs(r.y1 - 200) <= 3


def test_the_region_is_re_detected_when_the_layout_changes():
    tracker = RoiTracker()
    for i in range(5):
        tracker.locate(screen(seed=i))
    # the sonographer changes depth: the B-mode area shrinks on the same screen
    moved = [tracker.locate(screen(seed=i, rect=(60, 30, 260, 150)))[0] for i in range(5)]
    assert tracker.detections == 2 and len(set(moved)) == 1 and abs(moved[0].y1 - 150) <= 3
    # a new capture size
    big = tracker.locate(screen(480, 640, rect=(80, 60, 560, 400)))[0]
    assert tracker.detections == 3 and abs(big.x1 - 560) <= 4


def test_blank_frames_do_not_replace_the_cached_region():
    tracker = RoiTracker()
    good = tracker.locate(screen())[0]
    blank = np.zeros((240, 320), np.uint8)
    for _ in range(3):
        assert tracker.locate(blank)[0] == good  # the probe is lifted; the layout is unchanged
    assert tracker.locate(screen(seed=9)) == (good, False)


def test_a_declared_region_is_used_as_given_and_a_periodic_recheck_runs():
    tracker = RoiTracker(stream=StreamSpec(roi_recheck_frames=10))
    assert tracker.locate(screen(), Roi(40, 30, 280, 200)) == (Roi(40, 30, 280, 200), False)
    assert tracker.detections == 0
    assert tracker.locate(screen(), Roi(-10, -10, 900, 900))[0] == Roi(0, 0, 320, 240)  # clipped
    for i in range(25):
        tracker.locate(screen(seed=i))
    assert tracker.detections == 3  # the first frame, then every 10 frames


# -- the stream preparer ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grey", "bgr", "bgra", "doppler", "faint-colour"])
def test_the_stream_preparer_gives_exactly_what_prepare_gives(kind):
    image = screen(480, 640, rect=(80, 60, 560, 400), colour=kind in ("doppler", "faint-colour"))
    if kind == "bgr":
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif kind == "bgra":
        image = np.dstack([image, image, image, np.full_like(image, 255)])
    elif kind == "faint-colour":  # a few coloured pixels: around prepare's colour fraction
        image = np.repeat(screen(480, 640, rect=(80, 60, 560, 400))[:, :, None], 3, axis=2)
        image[100:104:1, 100:140, 2] = 255
    roi = Roi(80, 60, 560, 400)
    expected = prepare(image, SMALL, PreprocessSpec(), roi)
    got = FramePreparer(SMALL, PreprocessSpec())(image, roi)
    assert np.array_equal(got.tensor, expected.tensor)
    assert (got.roi, got.blank, got.colour) == (expected.roi, expected.blank, expected.colour)
    if kind == "doppler":
        assert got.colour


# -- key frames -------------------------------------------------------------------------------


def thumb_of(image, selector):
    return selector.thumbnail(prepare(image, SMALL, PreprocessSpec(), Roi(40, 30, 280, 200)).tensor)


def test_repeats_are_duplicates_and_distinct_settled_frames_are_key_frames():
    sel = KeyFrameSelector()
    a, b = screen(seed=1), screen(seed=1, rect=(40, 30, 280, 200))
    dup, motion = sel.observe(thumb_of(a, sel))
    assert not dup and sel.is_key(thumb_of(a, sel), True, 40.0, False, motion)
    assert sel.observe(thumb_of(b, sel))[0]  # the same picture again (a frozen screen)
    # a different picture that arrives in one jump is a transition, not yet a key frame
    c = screen(seed=1)[::-1].copy()
    dup, motion = sel.observe(thumb_of(c, sel))
    assert not dup and motion > StreamSpec().settle_diff
    assert not sel.is_key(thumb_of(c, sel), True, 40.0, False, motion)
    # held still, it is one
    dup, motion = sel.observe(thumb_of(c, sel))
    assert dup and motion < 1e-6
    assert sel.is_key(thumb_of(c, sel), True, 40.0, False, motion)
    # and not twice
    assert not sel.is_key(thumb_of(c, sel), True, 40.0, False, 0.0)


def test_unusable_or_flat_frames_are_never_key_frames_and_stills_need_only_differ():
    sel = KeyFrameSelector()
    t = thumb_of(screen(seed=3), sel)
    assert not sel.is_key(t, False, 40.0, True, 0.0)
    assert not sel.is_key(t, True, 2.0, True, 0.0)  # too little contrast
    assert sel.is_key(t, True, 40.0, True, 0.0)
    # a second still of the same view, slightly different: enough for a still, not for video
    shifted = thumb_of(np.roll(screen(seed=3), 2, axis=1), sel)
    assert sel.is_key(shifted, True, 40.0, True, 0.0)
