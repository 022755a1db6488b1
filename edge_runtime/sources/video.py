"""A video file or a stream URL, read with OpenCV (``cv2.VideoCapture``).

A file is read frame by frame, every frame, at whatever speed the reader asks (``live`` is
False); a stream URL (``rtsp://``, ``http://``, ``udp://`` …) is live: frames arrive in real
time, and a stream that stops is reopened with back-off before the source gives up
(``lost``). ``CaptureSource`` is the shared part, also used by the V4L2 device source.

A file that ends before the frame count its container promises, or whose decoding stops with an
error, is **cut short**: ``complete`` becomes False and ``end_reason`` says how many frames came,
so the exam's report says so too (a damaged frame in the middle is skipped, counted in
``damaged_frames``, and also makes the input incomplete). Messages name a file by its base name.

A file is decoded one frame ahead of its reader (``read_ahead``: ``stream.FrameStream`` runs the
source on a thread with a queue that small), so frame n+1 is decoded while frame n is inferred.
A live capture with a decoder (a grabber's undecoded MJPG or YUYV) is decoded by the reader
instead, and only the frame it takes (``defer_decoding``): the capture thread only grabs, so the
frames a slower reader never takes cost no decoding, and capture → result includes the decode.

``ScreenDecoder`` turns what a grabber sends undecoded (MJPG bytes, a raw YUYV buffer) into the
image the runtime needs and no more (docs/design.md §6, §9). A JPEG is decoded to its own Y, Cb, Cr
planes by the system's libturbojpeg (PyTurboJPEG; ``_jpeg_planes``): the Y plane is the grey image
and a sparse BGR sample built from the chroma at every ``COLOUR_STRIDE``-th pixel goes with the
frame (``Frame.colour_sample``) for the Doppler gate — no chroma upsampling, no colour conversion
of the frame. Against the full-colour decode this cut decode + gate per 1080p frame by 31–33 %
(phantom screen, 4:2:0: 4.7 → 3.1–3.3 ms) and 20–26 % (4:2:2), on uncorrelated speckle by 5–18 %
(AMD EPYC with AVX-512, 2 cores, busy; ``benchmarks/decode_planes.py``, interleaved medians of two
runs; Zen 4 earlier: ≈ 29 % and ≈ 18 %). Over every phantom frame (a third
with colour flow) the region, the blank and colour flags and, on every frame the model scores,
the model input are the OpenCV path's exactly (``tests/test_fast_decode.py``); the grey image is
the same wherever the frame is grey, while on coloured pixels (flow, a coloured overlay) the luma
may differ by a few levels from the grey of the clamped BGR — such frames are flagged colour and
never scored. 8-bit sequential YCbCr JPEGs with 4:2:0, 4:2:2 or 4:4:4 chroma and grey JPEGs
take this path; anything else (progressive, CMYK, 12-bit, 4:4:0, a libjpeg error or warning) and
every JPEG where libturbojpeg is missing (one debug line) take the OpenCV path: decoded once, in
colour and at full size (decoding grey plus a small colour image for the gate costs two entropy
decodes, as much as one colour decode; a reduced-scale decode moved probabilities beyond the INT8
tolerance). A YUYV frame gives its Y plane as the grey image, plus the same kind of sparse BGR
sample from its chroma (``_colour_sample``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import COLOUR_STRIDE
from gout_edge.errors import CaptureError, InputError

from . import _jpeg_planes
from ._base import BACKOFF_S, Frame, Reconnect, SkippedFile
from ._values import FRAME_RATE_HZ, FRAME_TIME_S, ValueChecks

__all__ = ["CaptureSource", "ScreenDecoder", "VideoSource", "is_stream_url"]

log = logging.getLogger(__name__)


def is_stream_url(target: str | Path) -> bool:
    return "://" in str(target)


# Video-range luma (16…235, what OpenCV's YUYV → BGR conversion assumes) → full-range grey, as that
# conversion followed by BGR → grey gives for grey pixels; black stays under the region threshold.
_LUMA_TO_GREY = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)


class ScreenDecoder:
    """Undecoded grabber frames → (image, colour sample or ``None``): only what the model and the
    gates use.

    ``__call__`` takes what an unconverted capture gives: JPEG bytes (MJPG; ``bytes`` or a 1-D /
    1×N uint8 array), a H×W×2 YUYV buffer, or an image already decoded (H×W grey or H×W×3 BGR,
    passed through). A JPEG is decoded to its own planes where libturbojpeg is at hand (``mjpg``:
    its H×W Y plane as the grey image, and a BGR sample for the Doppler gate built from its
    chroma), else in colour, at full size, by OpenCV (``jpeg``: H×W×3 BGR, no sample); a YUYV
    frame gives its grey Y plane and a BGR sample for the Doppler gate (``yuyv``). Returns ``None``
    for data that does not decode (a damaged frame).

    ``libturbojpeg``: the shared library's path (``None``: the system's, wherever PyTurboJPEG finds
    it). It is loaded on the first JPEG, once per process; where it is missing or unusable, a
    debug line says so once and every JPEG takes the OpenCV path.
    """

    def __init__(self, libturbojpeg: str | None = None) -> None:
        self.libturbojpeg = libturbojpeg

    @property
    def planes(self) -> bool:
        """Whether JPEGs are decoded to their planes (libturbojpeg loaded), rather than by OpenCV."""
        return _jpeg_planes.load(self.libturbojpeg) is not None

    def __call__(self, raw: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            return self.mjpg(raw)
        raw = np.asarray(raw)
        if raw.dtype == np.uint8 and (raw.ndim == 1 or (raw.ndim == 2 and raw.shape[0] == 1)):
            return self.mjpg(raw)
        if raw.dtype == np.uint8 and raw.ndim == 3 and raw.shape[2] == 2:
            return self.yuyv(raw)
        return raw, None  # decoded already (a backend that ignored CONVERT_RGB=0)

    def mjpg(self, data: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
        """A JPEG → (its Y plane, the BGR sample from its chroma; ``None`` for a grey JPEG) where
        libturbojpeg takes it (8-bit sequential YCbCr 4:2:0, 4:2:2, 4:4:4, or grey), else what
        ``jpeg`` gives (progressive, CMYK, 12-bit, damaged data, no libturbojpeg)."""
        buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
        decoder = _jpeg_planes.load(self.libturbojpeg)
        planes = _jpeg_planes.decode(decoder, buf) if decoder is not None else None
        if planes is None:
            return self.jpeg(buf)
        if planes.cb is None or planes.cr is None or planes.chroma is None:
            return planes.y, None  # grey: no colour to find
        return planes.y, _colour_sample(planes.y, planes.cb, planes.cr, planes.chroma, video_range=False)

    @staticmethod
    def jpeg(data: Any) -> tuple[np.ndarray, None] | None:
        """A JPEG decoded by OpenCV, in colour, at full size: (H×W×3 BGR, ``None``)."""
        buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
        try:
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        return None if image is None else (image, None)

    @staticmethod
    def yuyv(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A packed YUYV (4:2:2) frame → (the Y plane expanded from video range: a new array, the
        buffer may be the driver's; BGR at every ``COLOUR_STRIDE``-th pixel of every
        ``COLOUR_STRIDE``-th row, for the Doppler gate)."""
        w = raw.shape[1] - raw.shape[1] % 2  # whole pixel pairs: Y0 U Y1 V
        grey = cv2.LUT(cv2.extractChannel(raw, 0), _LUMA_TO_GREY)
        return grey, _colour_sample(raw[:, :w, 0], raw[:, 0:w:2, 1], raw[:, 1:w:2, 1], (1, 2), video_range=True)


def _colour_sample(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, chroma: tuple[int, int], *,
                   video_range: bool) -> np.ndarray:
    """BGR at every ``COLOUR_STRIDE``-th pixel of every ``COLOUR_STRIDE``-th row of a frame given as
    planes — luma ``y`` and chroma ``cb``, ``cr`` subsampled ``chroma`` = (rows, columns) times —
    for the Doppler gate (``Frame.colour_sample``): each sampled pixel takes the chroma sample it
    lies in; only those pixels are converted. ``video_range``: YUYV from a grabber (BT.601, luma
    16…235, as OpenCV's YUYV conversion assumes); else JPEG's full-range YCbCr."""
    k = COLOUR_STRIDE
    luma = y[::k, ::k]
    rows, cols = luma.shape
    u = cb[:: k // chroma[0], :: k // chroma[1]][:rows, :cols]
    v = cr[:: k // chroma[0], :: k // chroma[1]][:rows, :cols]
    if not video_range:
        return cv2.cvtColor(cv2.merge([np.ascontiguousarray(luma), np.ascontiguousarray(v), np.ascontiguousarray(u)]),
                            cv2.COLOR_YCrCb2BGR)
    packed = np.empty((rows, cols, 4), np.uint8)  # one pixel pair per sample: Y U Y V
    packed[:, :, 0], packed[:, :, 1], packed[:, :, 2], packed[:, :, 3] = luma, u, luma, v
    bgr = cv2.cvtColor(packed.reshape(rows, cols * 2, 2), cv2.COLOR_YUV2BGR_YUYV)
    return np.ascontiguousarray(bgr[:, ::2])


class CaptureSource:
    """Frames from an opened ``cv2.VideoCapture``-like object (``read()``, ``get()``, ``release()``).

    ``opener`` opens (and reopens, after a loss) the capture and raises on failure. A live
    capture that stops giving frames is reopened with the waits in ``backoff_s``; when every
    attempt fails the iteration ends with ``lost`` set and ``end_reason`` saying so.
    ``decoder``: what turns each undecoded capture into the frame's image and colour sample
    (``ScreenDecoder``); a capture that does not decode counts as a failed read. ``read_ahead``:
    how many frames a reader may have decoded ahead on a thread (files: 1, double buffering — the
    decode is far shorter than an inference, so one frame ready is enough; 0 for live captures,
    which keep only the newest).
    """

    kind = "capture"
    READ_AHEAD = 1

    def __init__(
        self,
        opener: Callable[[], Any],
        describe: str,
        live: bool,
        *,
        backoff_s: Sequence[float] = BACKOFF_S,
        realtime: bool = False,
        patient: str | None = None,
        decoder: Callable[[Any], tuple[np.ndarray, np.ndarray | None] | None] | None = None,
    ) -> None:
        self._opener = opener
        self.decoder = decoder
        self.describe = describe
        self.live = live or realtime
        self.realtime = realtime  # a file paced at its frame rate, as if it came from a device
        self.read_ahead = 0 if self.live else self.READ_AHEAD
        self.patient = patient
        self.lost = False
        self.end_reason: str | None = None
        self._reconnect = Reconnect(backoff_s)
        self._iterating = False
        self._cap = opener()
        # what the container or device states is checked as it enters: NaN, negative or absurd → absent
        self._checks = ValueChecks(describe)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = (self._checks.number("frame rate (CAP_PROP_FPS)", fps, FRAME_RATE_HZ) or 0.0) if fps else 0.0
        self._checks.warn()
        self.complete = True  # False: a file that ended before its promised frames, or with errors
        self.skipped: tuple[SkippedFile, ...] = ()  # one file or device: nothing is left out
        self.promised_frames = 0  # the frame count a file's container declares (0: unknown)
        self.damaged_frames = 0
        self._deferred = False  # frames leave undecoded; the reader decodes the ones it takes

    @property
    def reconnects(self) -> int:
        return self._reconnect.attempts

    def __iter__(self) -> Iterator[Frame]:
        # The iterating thread owns the capture: ``close`` from another thread only asks it to
        # stop, and the capture is released here — never while a read() is running.
        self._iterating = True
        try:
            yield from self._frames()
        finally:
            self._iterating = False
            if self._reconnect.closed.is_set():
                self._release()

    def _frames(self) -> Iterator[Frame]:
        index = 0
        start = time.monotonic()
        period = 1.0 / self.fps if self.realtime and self.fps > 0 else 0.0
        while not self._reconnect.closed.is_set():
            cap = self._cap
            if cap is None:
                return
            ok, image, colour_sample = self._read(cap, index)
            if not ok or image is None:
                if not self.live or self.realtime:
                    self._end_of_file(index)
                    return
                if not self._reconnect.run(self._reopen, self.describe):
                    if not self._reconnect.closed.is_set():
                        self.lost = True
                        self.end_reason = (
                            f"capture lost: {self.describe} gave no frames, and "
                            f"{len(self._reconnect.backoff_s)} reconnect attempts over "
                            f"{self._reconnect.total_s:.0f} s failed"
                        )
                        log.error("%s", self.end_reason)
                    return
                continue
            if self.live and not self.realtime:
                stamp = time.monotonic() - start
            else:
                stamp = self._file_time(cap, index)
            if period:
                delay = start + index * period - time.monotonic()
                if delay > 0 and self._reconnect.closed.wait(delay):
                    return
            yield Frame(image, index, stamp, patient_id=self.patient, origin=f"frame {index}",
                        colour_sample=colour_sample)
            index += 1

    def _file_time(self, cap: Any, index: int) -> float:
        """A file's frame time: its position as the container states it, or, where that is absent
        (0 after the first frame) or fails its check (NaN, negative, beyond a day: one warning per
        file), the index over the frame rate."""
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        seconds = self._checks.number("frame position (CAP_PROP_POS_MSEC)", msec / 1000.0 if msec else 0.0,
                                      FRAME_TIME_S)
        self._checks.warn()
        if seconds is not None and (seconds > 0 or index == 0):
            return seconds
        return index / (self.fps or 30.0)

    # Reads after a failed one, before the promised end, to tell a damaged frame from a cut file.
    RETRIES_AFTER_FAILURE = 3

    def defer_decoding(self) -> Callable[[Frame], Frame | None] | None:
        """For a reader that keeps only the newest frame of a live capture (``stream.FrameStream``):
        from now on frames leave this source undecoded (``image`` is the capture's buffer), and the
        returned function decodes the one the reader takes (``None`` for a damaged frame, counted
        in ``damaged_frames``). On a 2-core cart whose reader is slower than the grabber this
        halves the decoding (the dropped frames are never decoded) and leaves the CPU to
        inference: with a 30 frames/s MJPG feed and OpenVINO INT8 on AVX2, grab → result p50 went
        from ≈ 91 to ≈ 79 ms (``benchmarks/live_capture.py``).
        ``None``: nothing to defer (no decoder, or not live)."""
        if self.decoder is None or not self.live:
            return None
        self._deferred = True
        return self._decode_taken

    def _decode_taken(self, frame: Frame) -> Frame | None:
        assert self.decoder is not None
        try:
            decoded = self.decoder(frame.image)
        except cv2.error:
            decoded = None
        if decoded is None:
            self.damaged_frames += 1
            log.log(logging.WARNING if self.damaged_frames == 1 else logging.DEBUG,
                    "%s: a frame that does not decode was skipped (%d so far)", self.describe, self.damaged_frames)
            return None
        image, sample = decoded
        return dataclasses.replace(frame, image=image, colour_sample=sample)

    def _grab(self, cap: Any) -> tuple[bool, Any, np.ndarray | None]:
        """One ``cap.read()``, through the decoder when there is one and decoding is not deferred:
        (ok, image, colour sample)."""
        ok, image = cap.read()
        if not ok or image is None or self.decoder is None or self._deferred:
            return ok, image, None
        decoded = self.decoder(image)
        if decoded is None:
            return False, None, None
        return True, *decoded

    def _read(self, cap: Any, index: int) -> tuple[bool, Any, np.ndarray | None]:
        try:
            ok, image, sample = self._grab(cap)
        except cv2.error as exc:  # a decoder error surfaced by OpenCV: the file is damaged here
            log.debug("%s: read failed at frame %d: %s", self.describe, index, exc)
            ok, image, sample = False, None, None
        if ok and image is not None:
            return ok, image, sample
        if self.live and not self.realtime:
            return False, None, None
        if not self.promised_frames or index >= self._promised_floor():
            return False, None, None
        for _ in range(self.RETRIES_AFTER_FAILURE):  # before the promised end: skip a damaged frame?
            try:
                ok, image, sample = self._grab(cap)
            except cv2.error:
                ok, image, sample = False, None, None
            self.damaged_frames += 1
            if ok and image is not None:
                log.warning("%s: a damaged frame near frame %d was skipped", self.describe, index + 1)
                return ok, image, sample
        return False, None, None

    def _promised_floor(self) -> int:
        """Fewest frames that count as all the promised ones: all of them. (Containers without an
        index estimate their count from duration × rate; OpenCV's estimate matched the frames
        decoded for AVI, MP4 and MKV here, so a shortfall of even one frame is reported.)"""
        return self.promised_frames

    def _end_of_file(self, index: int) -> None:
        promised = self.promised_frames
        if promised and index < self._promised_floor():
            self.complete = False
            self.end_reason = (
                f"{self.describe} cut short: {index} of the {promised} frames its container promises could be "
                "decoded (the file is truncated or damaged); the result uses only those frames"
            )
            log.warning("%s", self.end_reason)
        elif self.damaged_frames:
            self.complete = False
            self.end_reason = (f"{self.describe} ended with {self.damaged_frames} damaged frame(s) skipped; "
                               "the result uses the frames that could be decoded")
            log.warning("%s", self.end_reason)
        else:
            self.end_reason = "end of video"

    def _reopen(self) -> bool:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._cap = self._opener()
        return True

    def close(self) -> None:
        """Stop; the capture is released now, or by the iterating thread when it is reading."""
        self._reconnect.closed.set()
        if not self._iterating:
            self._release()

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _open_file(path: Path) -> cv2.VideoCapture:
    name = path.name
    if not path.exists():
        raise InputError(f"video file {name} not found; give a video file, a stream URL or a device such as /dev/video0")
    if path.is_dir():
        raise InputError(f"{name} is a folder, not a video; for a folder of images use --images")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"video file {name} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        cap = cv2.VideoCapture(str(path))
    except cv2.error as exc:
        raise InputError(f"{name} could not be opened as a video ({exc.err or 'OpenCV error'})") from None
    if not cap.isOpened():
        cap.release()
        raise InputError(
            f"{name} could not be opened as a video: it is not a video, is damaged, or uses a codec "
            "this OpenCV build cannot decode (MP4/H.264, AVI/MJPG and MKV are expected to work)"
        )
    return cap


def _open_url(url: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(url)
    if not cap.isOpened():
        cap.release()
        raise CaptureError(
            f"stream {url} could not be opened; check the address, that the streamer is running "
            "and that this cart can reach it on the network"
        )
    return cap


class VideoSource(CaptureSource):
    """A video file (every frame, in order) or a stream URL (live, reconnected when it stops).

    ``realtime=True`` paces a file at its frame rate and makes it live: a stand-in for a device.
    """

    kind = "video"

    def __init__(
        self,
        target: str | Path,
        *,
        realtime: bool = False,
        backoff_s: Sequence[float] = BACKOFF_S,
        patient: str | None = None,
    ) -> None:
        if is_stream_url(target):
            url = str(target)
            super().__init__(lambda: _open_url(url), "video stream", True, backoff_s=backoff_s, patient=patient)
            return
        path = Path(target).expanduser()
        super().__init__(lambda: _open_file(path), f"video {path.name}", False, backoff_s=backoff_s,
                         realtime=realtime, patient=patient)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.promised_frames = int(count) if count and 0 < count < 1e9 else 0
        if not realtime:
            self._check_first_frame(path)

    def _check_first_frame(self, path: Path) -> None:
        try:
            ok, _ = self._cap.read()
        except cv2.error:
            ok = False
        self._cap.release()
        if not ok:
            self._cap = None
            raise InputError(f"video {path.name} holds no frame OpenCV can decode; is the file complete?")
        self._cap = self._opener()  # from the first frame again (seeking is not exact in every container)
