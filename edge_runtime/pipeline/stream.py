"""Streaming: the capture thread, the region cache and the key-frame policy (docs/design.md §7).

- ``FrameStream`` reads a live source on its own thread and keeps only the newest frame: the
  reader always gets the latest, older unread frames are counted as dropped, so latency never
  grows with the length of a session. A live source that can defer its decoding
  (``defer_decoding``: a grabber's undecoded frames) hands them over undecoded and the reader
  decodes only the frame it takes. Non-live sources (files) are read in order, every frame;
  one that offers ``read_ahead`` (a video file: 1) is read on a thread into a queue that small, so
  frame n+1 is decoded while frame n is inferred and memory stays bounded.
- ``RoiTracker`` caches the B-mode region while the screen layout holds. The layout signature
  is cheap — the fill of thin bands just inside and just outside the cached region, sampled
  sparsely — and the region is re-detected (``find_roi``) only when the frame size or that
  signature changes, or every ``roi_recheck_frames`` frames as a safety net.
- ``KeyFrameSelector`` compares small thumbnails of the standardized model input: a frame
  within ``duplicate_diff`` of the last checked one repeats it (frozen screen, duplicate file) and
  is not scored again. A key frame — one that enters the vote — is usable (not blank, not
  colour), has enough contrast, is settled (live/cine: it moved at most ``settle_diff`` since the
  previous frame, so transitions and fast sweeps are skipped) and is distinct (it differs from
  each of the last ``key_memory`` key frames by ``key_diff``; a stored still only needs to be no
  duplicate). Thresholds were set on the phantom recordings: consecutive live frames differ by
  0.003–0.04, frozen frames by ≤ 0.002, a view's sweep by up to 0.1–0.23, different views by
  0.24–0.64, probe-lift transitions by 0.09–0.54 from frame to frame.
- ``FramePreparer`` is ``preprocess.prepare`` with a known region, computed on the region only
  (and, for a grey frame from a YUYV grabber, with the colour sample its decoder kept).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import (
    BLANK_STD,
    COLOUR_STRIDE,
    PreparedFrame,
    Roi,
    colour_blobs,
    crop_to_tensor,
    find_roi,
    is_doppler,
    prepare,
)
from gout_edge.edge_runtime.sources._base import Frame, FrameSource
from gout_edge.manifest import InputSpec, PreprocessSpec

__all__ = [
    "FramePreparer",
    "FrameStream",
    "KeyFrameSelector",
    "RoiTracker",
    "StreamSpec",
    "contrast",
    "thumbnail",
    "thumbnail_diff",
]


@dataclass(frozen=True)
class StreamSpec:
    """Streaming settings; the differences are mean absolute differences of standardized thumbnails."""

    duplicate_diff: float = 0.005  # below: the frame repeats the last checked one (frozen, duplicate)
    key_diff: float = 0.06  # live or cine: a new key frame differs this much from each recent one
    settle_diff: float = 0.08  # live or cine: a key frame differs at most this much from the frame
    # before it (the probe is not moving fast, the view is not in transition)
    key_memory: int = 32  # recent key frames a new one must differ from
    min_contrast: float = 10.0  # grey-level standard deviation inside the region a key frame needs
    thumb_width: int = 32
    thumb_height: int = 16
    roi_recheck_frames: int = 300  # re-detect the region at least this often (frames)
    layout_tolerance: float = 0.35  # change in a band's fill that means the layout moved


def thumbnail(tensor: np.ndarray, spec: StreamSpec = StreamSpec(), out: np.ndarray | None = None) -> np.ndarray:
    """A small float32 image of a standardized model input (1, H, W) or (H, W)."""
    image = tensor[0] if tensor.ndim == 3 else tensor
    h, w = image.shape
    tw, th = spec.thumb_width, spec.thumb_height
    if h >= th and w >= tw:  # whole blocks: OpenCV's integer-factor area path is ~10× faster
        y0, x0 = (h % th) // 2, (w % tw) // 2
        image = image[y0 : y0 + h - h % th, x0 : x0 + w - w % tw]
    return cv2.resize(image, (tw, th), dst=out, interpolation=cv2.INTER_AREA)


def thumbnail_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size


def contrast(image: np.ndarray, roi: Roi, step: int = 8) -> float:
    """Grey-level standard deviation inside ``roi``, sampled every ``step`` pixels (cheap)."""
    view = image[roi.y0 : roi.y1 : step, roi.x0 : roi.x1 : step]
    if view.ndim == 3:
        view = view[:, :, 1]  # green ≈ luminance for grey B-mode; colour frames are flagged anyway
    return float(view.std()) if view.size else 0.0


# -- capture ----------------------------------------------------------------------------------


class FrameStream:
    """Frames of ``source`` for one reader.

    ``latest_wins`` (default: ``source.live``) runs a capture thread that keeps only the newest
    frame; ``captured`` counts frames read from the source, ``dropped`` those overwritten before
    anyone took them. Iteration ends when the source ends or ``stop`` is set; an exception in the
    capture thread is raised in the reader. ``captured_at`` is the ``time.monotonic()`` at which
    the frame last handed out left the source: the start of its capture-to-result latency. When
    the source offers ``defer_decoding`` (a live grabber), frames leave it undecoded — the
    capture thread only grabs — and the reader decodes the one it takes, so ``captured_at`` is
    before the decode and a damaged frame is skipped (the source counts it).

    In order (not ``latest_wins``), a source with ``read_ahead`` > 0 (``read_ahead`` here
    overrides it) is read on a thread that stays at most that many frames ahead of the reader
    (a bounded queue: every frame, in order, none dropped): frame n+1 is decoded while frame n is
    inferred. ``captured_at`` is still when each frame left the source, so the time it waited to
    enter the queue and in it counts in its capture-to-result latency: when the reader is the
    slower side, about two frames' processing time with a depth of 1 (each extra slot adds one).
    """

    def __init__(
        self,
        source: FrameSource,
        latest_wins: bool | None = None,
        stop: threading.Event | None = None,
        poll_s: float = 0.1,
        read_ahead: int | None = None,
    ) -> None:
        self.source = source
        self.latest_wins = source.live if latest_wins is None else latest_wins
        ahead = source.read_ahead if read_ahead is None else read_ahead
        self.read_ahead = 0 if self.latest_wins else max(0, int(ahead or 0))
        self.stop = stop or threading.Event()
        self.poll_s = poll_s
        self.captured = 0
        self.dropped = 0
        self.taken = 0
        self.captured_at: float | None = None
        self._cond = threading.Condition()
        self._slot: tuple[Frame, float] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[tuple[Frame, float] | None] | None = None
        self._decode: Callable[[Frame], Frame | None] | None = None
        if self.latest_wins:
            self._decode = source.defer_decoding()
            self._thread = threading.Thread(target=self._capture, name="gout-edge-capture", daemon=True)
            self._thread.start()
        elif self.read_ahead:
            self._queue = queue.Queue(maxsize=self.read_ahead)
            self._thread = threading.Thread(target=self._read_ahead, name="gout-edge-read-ahead", daemon=True)
            self._thread.start()

    def _read_ahead(self) -> None:
        """Fill the bounded queue in source order, then ``None``: the end (an error is kept for the reader)."""
        try:
            for frame in self.source:
                if not self._put((frame, time.monotonic())):
                    return  # closed
        except BaseException as exc:  # handed to the reader
            self._error = exc
        self._put(None)

    def _put(self, item: tuple[Frame, float] | None) -> bool:
        """Put ``item`` in the queue once there is room; False when the stream is closed first."""
        assert self._queue is not None
        while not self._quit.is_set():
            try:
                self._queue.put(item, timeout=self.poll_s)
                return True
            except queue.Full:
                continue
        return False

    def _in_order(self) -> Iterator[Frame]:
        assert self._queue is not None
        while not self.stop.is_set():
            try:
                item = self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                continue
            if item is None:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                return
            frame, self.captured_at = item
            self.captured += 1
            self.taken += 1
            yield frame

    def _capture(self) -> None:
        try:
            for frame in self.source:
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (frame, time.monotonic())
                    self.captured += 1
                    self._cond.notify()
                if self._quit.is_set():
                    break
        except BaseException as exc:  # handed to the reader
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def next(self, timeout: float | None = None) -> Frame | None:
        """The newest unread frame; None when the source ended, on ``stop`` or after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (taken := self._take(deadline)) is not None:
            frame, at = taken
            decoded = frame if self._decode is None else self._decode(frame)
            if decoded is None:
                continue  # a damaged frame: the source counted it
            self.captured_at = at
            self.taken += 1
            return decoded
        return None

    def _take(self, deadline: float | None) -> tuple[Frame, float] | None:
        """The newest unread (frame, captured_at) off the slot, or None (ended, stopped, timed out)."""
        with self._cond:
            while self._slot is None:
                if self._done or self.stop.is_set():
                    break
                wait = self.poll_s if deadline is None else min(self.poll_s, deadline - time.monotonic())
                if wait <= 0:
                    return None
                self._cond.wait(wait)
            slot, self._slot = self._slot, None
            if slot is None and self._error is not None:
                error, self._error = self._error, None
                raise error
        return slot

    @property
    def finished(self) -> bool:
        with self._cond:
            return (self._done and self._slot is None) or self.stop.is_set()

    def __iter__(self) -> Iterator[Frame]:
        if self._queue is not None:
            yield from self._in_order()
            return
        if not self.latest_wins:
            for frame in self.source:
                self.captured_at = time.monotonic()
                self.captured += 1
                self.taken += 1
                yield frame
                if self.stop.is_set():
                    return
            return
        while True:
            frame = self.next()
            if frame is None:
                if self.finished:
                    return
                continue
            yield frame

    def close(self) -> None:
        """Stop the capture thread and close the source."""
        self._quit.set()
        self.stop.set()
        self.source.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


# -- region cache -----------------------------------------------------------------------------


class RoiTracker:
    """The B-mode region of each frame, re-detected only when the screen layout changes.

    A region the source declares (DICOM) is used as given when plausible. Otherwise the cached
    region holds while the frame size and the layout signature hold; a detection that finds
    nothing (a blank screen: ``find_roi`` falls back to the whole frame) is used for that frame
    but never cached.
    """

    def __init__(self, spec: PreprocessSpec = PreprocessSpec(), stream: StreamSpec = StreamSpec()) -> None:
        self.spec = spec
        self.stream = stream
        self.roi: Roi | None = None
        self._shape: tuple[int, ...] | None = None
        self._signature: np.ndarray | None = None
        self._age = 0
        self.detections = 0

    def locate(self, image: np.ndarray, declared: Roi | None = None, still: bool = False) -> tuple[Roi | None, bool]:
        """(region — ``None`` when the frame has none and none is cached —, whether it was detected on this frame).

        A ``still`` (a stored image) always gets its own region, never the cached one: the same
        image must give the same region, and so the same probability, whichever folder or command
        it arrives through."""
        h, w = image.shape[:2]
        if declared is not None:
            roi = declared.clip(h, w)
            if roi.is_plausible(h, w, self.spec.roi_min_area_fraction):
                return roi, False
        if still:
            self.detections += 1
            return find_roi(_grey(image), self.spec), True
        self._age += 1
        if (
            self.roi is not None
            and self._shape == image.shape
            and self._age < self.stream.roi_recheck_frames
            and self._signature is not None
            and float(np.abs(self._bands(image, self.roi) - self._signature).max()) <= self.stream.layout_tolerance
        ):
            return self.roi, False
        return self._detect(image), True

    def _detect(self, image: np.ndarray) -> Roi | None:
        self.detections += 1
        roi = find_roi(_grey(image), self.spec)
        self._age = 0
        if roi is None:  # nothing found (no signal): keep the cached layout for the next frames
            return self.roi if self.roi is not None and self._shape == image.shape else None
        self.roi, self._shape = roi, image.shape
        self._signature = self._bands(image, roi)
        return roi

    def _bands(self, image: np.ndarray, roi: Roi) -> np.ndarray:
        """Fill (share of pixels above the ROI threshold) of 8 thin bands: 4 inside, 4 outside."""
        h, w = image.shape[:2]
        m = max(2, min(h, w) // 100)  # margin from the edge
        b = max(2, min(h, w) // 150)  # band thickness
        x0, y0, x1, y1 = roi.x0, roi.y0, roi.x1, roi.y1
        xa, xb, ya, yb = x0 + m, max(x0 + m + 1, x1 - m), y0 + m, max(y0 + m + 1, y1 - m)
        bands = (
            (y0 + m, y0 + m + b, xa, xb), (y1 - m - b, y1 - m, xa, xb),  # inside: top, bottom
            (ya, yb, x0 + m, x0 + m + b), (ya, yb, x1 - m - b, x1 - m),  # inside: left, right
            (y0 - m - b, y0 - m, xa, xb), (y1 + m, y1 + m + b, xa, xb),  # outside: above, below
            (ya, yb, x0 - m - b, x0 - m), (ya, yb, x1 + m, x1 + m + b),  # outside: left, right
        )
        out = np.zeros(len(bands), np.float32)
        threshold = self.spec.roi_threshold
        for i, (r0, r1, c0, c1) in enumerate(bands):
            r0, r1, c0, c1 = max(0, r0), min(h, r1), max(0, c0), min(w, c1)
            if r1 <= r0 or c1 <= c0:
                continue  # the band lies off the frame: it reads as empty, as the frame border does
            view = image[r0:r1:2, c0:c1:2]
            if view.ndim == 3:
                view = view[:, :, 1]
            out[i] = np.count_nonzero(view > threshold) / view.size
        return out


# -- key frames -------------------------------------------------------------------------------


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)


class KeyFrameSelector:
    """Duplicate and key-frame decisions from thumbnails of the model input.

    ``observe`` each frame's thumbnail first: it says whether the frame repeats the last checked
    one and how far it moved from the previous frame. ``is_key`` then decides for a checked frame.
    """

    def __init__(self, spec: StreamSpec = StreamSpec()) -> None:
        self.spec = spec
        self._buf = np.empty((spec.thumb_height, spec.thumb_width), np.float32)
        self._prev = np.empty_like(self._buf)
        self._checked = np.empty_like(self._buf)
        self._keys = np.empty((spec.key_memory, spec.thumb_height, spec.thumb_width), np.float32)
        self._n_keys = 0
        self._have_prev = False

    def thumbnail(self, tensor: np.ndarray) -> np.ndarray:
        """Thumbnail into a reused buffer, valid until the next call."""
        return thumbnail(tensor, self.spec, self._buf)

    def observe(self, thumb: np.ndarray) -> tuple[bool, float]:
        """(duplicate of the last checked frame, motion since the previous frame)."""
        if not self._have_prev:
            self._have_prev = True
            np.copyto(self._prev, thumb)
            np.copyto(self._checked, thumb)
            return False, float("inf")
        motion = thumbnail_diff(thumb, self._prev)
        np.copyto(self._prev, thumb)
        duplicate = thumbnail_diff(thumb, self._checked) < self.spec.duplicate_diff
        if not duplicate:
            np.copyto(self._checked, thumb)
        return duplicate, motion

    def is_key(self, thumb: np.ndarray, usable: bool, contrast_value: float, still: bool, motion: float) -> bool:
        """Whether a checked frame enters the vote; remembered as a recent key frame if so."""
        if not usable or contrast_value < self.spec.min_contrast:
            return False
        if not still and self._n_keys and motion > self.spec.settle_diff:
            return False
        needed = self.spec.duplicate_diff if still else self.spec.key_diff
        recent = self._keys[: min(self._n_keys, self.spec.key_memory)]
        for old in recent:
            if thumbnail_diff(thumb, old) < needed:
                return False
        np.copyto(self._keys[self._n_keys % self.spec.key_memory], thumb)
        self._n_keys += 1
        return True


class FramePreparer:
    """``preprocess.prepare(image, …, roi)`` computed on the region only, for streams.

    The result is identical to ``prepare`` with the same region (tests check it): the crop goes to
    the tensor in one pass (``crop_to_tensor``: only the region is converted to grey) and colour is
    checked with the same ``is_doppler``. A grey image that came from colour video (a YUYV
    grabber's Y plane, ``sources.video.ScreenDecoder``) has no colour left to check: its decoder's
    ``colour_sample`` (``Frame.colour_sample``: BGR on the ``COLOUR_STRIDE`` grid of frame
    pixels) is passed along and the Doppler test reads the part of it under the region.
    """

    def __init__(self, input_spec: InputSpec = InputSpec(), spec: PreprocessSpec = PreprocessSpec()) -> None:
        self.input_spec = input_spec
        self.spec = spec

    def __call__(self, image: np.ndarray, roi: Roi | None, colour_sample: np.ndarray | None = None) -> PreparedFrame:
        if roi is None:  # no region: ``prepare`` flags the frame blank
            return prepare(image, self.input_spec, self.spec)
        fast = crop_to_tensor(image, roi, self.input_spec, self.spec)
        if fast is None:
            return prepare(image, self.input_spec, self.spec, roi)
        tensor, sd = fast
        if image.ndim == 3 and image.shape[2] in (3, 4):
            colour = is_doppler(image[roi.y0 : roi.y1, roi.x0 : roi.x1])
        elif colour_sample is not None:
            colour = colour_blobs(_sample_under(colour_sample, roi))
        else:
            colour = False
        return PreparedFrame(tensor, roi, sd < BLANK_STD, colour)


def _sample_under(sample: np.ndarray, roi: Roi) -> np.ndarray:
    """The part of a frame's colour sample (every ``COLOUR_STRIDE``-th pixel of every
    ``COLOUR_STRIDE``-th row) that lies inside ``roi``."""
    k = COLOUR_STRIDE
    return sample[-(-roi.y0 // k) : -(-roi.y1 // k), -(-roi.x0 // k) : -(-roi.x1 // k)]
