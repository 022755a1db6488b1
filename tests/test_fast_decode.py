"""The fast decode path: MJPG decoded once, YUYV's Y plane taken as it is with its colour sample
carried to the Doppler gate, crop → tensor in one pass, files decoded ahead.

The proof that matters: over phantom screen recordings, every frame's probability by the new path
(``ScreenDecoder`` → ``RoiTracker`` → ``FramePreparer``) stays within the bundle's INT8 probability
tolerance of the old full-colour path (``cv2.imdecode(IMREAD_COLOR)`` → ``prepare``) — it is the
same model input, so the same probability — with the same blank and colour flags and the same
region. Where libturbojpeg is installed the new path decodes MJPG to the JPEG's own planes (Y as the
grey image, the colour sample from the chroma); those tests also compare it frame by frame with the
OpenCV path a decoder falls back to when the library is missing, and skip, saying why, without it."""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
import pytest
from support.bundles import SMALL
from support.screens import screen, write_video

from gout_edge.edge_runtime.imaging.preprocess import (
    COLOUR_STRIDE,
    Roi,
    crop_to_tensor,
    grid_sample,
    is_doppler,
    prepare,
)
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, FrameStream, RoiTracker, contrast
from gout_edge.edge_runtime.sources import Frame, _jpeg_planes, open_source
from gout_edge.edge_runtime.sources.video import CaptureSource, ScreenDecoder
from gout_edge.manifest import InputSpec, PreprocessSpec

PLANES = ScreenDecoder().planes  # libturbojpeg found: MJPG is decoded to its planes
needs_planes = pytest.mark.skipif(
    not PLANES, reason="no libturbojpeg for PyTurboJPEG (Debian: apt-get install libturbojpeg0): "
                       "MJPG takes the OpenCV path, there is no planes path to compare")


def _opencv_decoder(tmp_path) -> ScreenDecoder:
    """A decoder whose libturbojpeg is a path where there is none: it must fall back to OpenCV."""
    return ScreenDecoder(libturbojpeg=str(tmp_path / "missing" / "libturbojpeg.so.0"))


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _neutral_grey_equal(grey: np.ndarray, bgr: np.ndarray) -> bool:
    """``grey`` equals the OpenCV path's grey image at every pixel that decoded grey (B = G = R).
    (Where the decoded pixel has colour — flow, a coloured overlay — its luma Y and the grey of
    its clamped BGR may differ by a few levels; such frames are flagged colour, never scored.)"""
    neutral = (bgr[:, :, 0] == bgr[:, :, 1]) & (bgr[:, :, 1] == bgr[:, :, 2])
    return bool(np.array_equal(grey[neutral], _grey(bgr)[neutral]))


def _jpeg(image: np.ndarray, quality: int = 90, sampling: int | None = None, progressive: bool = False) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    if sampling is not None:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    return cv2.imencode(".jpg", image, params)[1].tobytes()


S420, S422, S444 = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                    cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)


def _with_flow(image: np.ndarray, roi: Roi) -> np.ndarray:
    """Colour flow blobs (as a Doppler colour box shows them) in the middle of the region."""
    out = image.copy()
    cx, cy = (roi.x0 + roi.x1) // 2, (roi.y0 + roi.y1) // 2
    cv2.ellipse(out, (cx, cy), (roi.width // 10, roi.height // 12), 20, 0, 360, (40, 40, 220), -1)
    cv2.ellipse(out, (cx + roi.width // 8, cy + roi.height // 10), (roi.width // 14, roi.height // 16), -10, 0, 360,
                (220, 80, 30), -1)
    return out


# -- the old full-colour path against the new one, over phantom recordings ----------------------


def _old_path(data: bytes, tracker: RoiTracker, m):
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    roi, _ = tracker.locate(image)
    return prepare(image, m.input, m.preprocess, roi)


def _new_path(data: bytes, decoder: ScreenDecoder, tracker: RoiTracker, preparer: FramePreparer):
    image, colour_sample = decoder(data)
    roi, _ = tracker.locate(image)
    return preparer(image, roi, colour_sample), image


@pytest.fixture(scope="module")
def phantom_screens():
    """1080p screen recordings of two phantom patients (live views, freezes, probe lifts), every
    third frame with colour flow drawn into the region, JPEG-encoded as an MJPG grabber sends them."""
    from gout_edge.phantom import generate_cohort
    from gout_edge.phantom._screen import layout_for
    from gout_edge.phantom.video import clip

    out = []
    for patient in generate_cohort(2, seed=11):
        layout = layout_for(patient.scanner, (1920, 1080))
        frames = [f for f, _ in clip(patient, layout, seed=11, seconds_per_view=0.4)]
        out.append(frames)
    return out


@pytest.mark.slow
def test_every_frame_scores_within_the_int8_tolerance_by_the_old_and_the_new_path(demo_bundle_or_skip, phantom_screens):
    from gout_edge.edge_runtime.inference.scoring import Scorer

    bundle = demo_bundle_or_skip
    m = bundle.manifest
    tol = m.reference.tolerances if m.reference is not None else None
    p_tol = tol.int8.probability_abs if tol is not None else 0.05
    scorer = Scorer(bundle)
    compared = flow_frames = 0
    worst = 0.0
    for frames in phantom_screens:
        old_tracker = RoiTracker(m.preprocess)
        decoder = ScreenDecoder()
        new_tracker, preparer = RoiTracker(m.preprocess), FramePreparer(m.input, m.preprocess)
        flow_roi = None
        for i, frame in enumerate(frames):
            if i % 3 == 2 and flow_roi is not None:
                frame = _with_flow(frame, flow_roi)
                flow_frames += 1
            data = _jpeg(frame)
            old = _old_path(data, old_tracker, m)
            new, image = _new_path(data, decoder, new_tracker, preparer)
            assert _neutral_grey_equal(_grey(image), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
            assert new.blank == old.blank, f"frame {i}: blank flag differs"
            assert new.colour == old.colour, f"frame {i}: colour flag differs"
            if old.blank:
                continue
            flow_roi = flow_roi or old.roi
            assert new.roi == old.roi, f"frame {i}"
            if not old.usable:
                continue
            p_old, p_new = (s.probability for s in scorer.score_prepared([old, new]))
            worst = max(worst, abs(p_old - p_new))
            assert abs(p_old - p_new) <= p_tol, f"frame {i}: p {p_old:.4f} by the old path, {p_new:.4f} by the new"
            assert contrast(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), old.roi) == contrast(image, new.roi)
            compared += 1
    assert compared >= 40 and flow_frames >= 10
    assert worst == 0.0  # the same model input, the same probability
    print(f"compared {compared} frames; max |Δp| = {worst:.4f} (tolerance {p_tol})")


@needs_planes
@pytest.mark.parametrize("sampling", [S420, S422], ids=["4:2:0", "4:2:2"])
def test_every_phantom_frame_gives_the_same_model_input_by_the_planes_and_the_opencv_path(
        sampling, phantom_screens, tmp_path):
    """Over every phantom frame (every third with colour flow), as a grabber's MJPG in either
    chroma subsampling: the planes path finds the same region and the same blank and colour
    flags as the OpenCV path; its grey image is the OpenCV path's exactly wherever the frame is
    grey, and so, on every frame the model scores (not blank, not colour), the model input is
    the same to the bit — hence the same probability (the slow test above scores it)."""
    planes, opencv = ScreenDecoder(), _opencv_decoder(tmp_path)
    assert planes.planes and not opencv.planes
    compared = flow_frames = colour_frames = scored = 0
    for frames in phantom_screens:
        trackers, preparer = (RoiTracker(), RoiTracker()), FramePreparer(SMALL)
        flow_roi = None
        for i, frame in enumerate(frames):
            if i % 3 == 2 and flow_roi is not None:
                frame = _with_flow(frame, flow_roi)
                flow_frames += 1
            data = _jpeg(frame, sampling=sampling)
            (grey, sample), (bgr, none) = planes(data), opencv(data)
            assert grey.ndim == 2 and bgr.ndim == 3 and none is None and sample is not None
            assert grey.dtype == np.uint8 and grey.flags.c_contiguous
            assert _neutral_grey_equal(grey, bgr), f"frame {i}: the grey image differs"
            roi, roi_old = trackers[0].locate(grey)[0], trackers[1].locate(bgr)[0]
            assert roi == roi_old, f"frame {i}: region"
            new, old = preparer(grey, roi, sample), preparer(bgr, roi_old)
            assert (new.blank, new.colour, new.roi) == (old.blank, old.colour, old.roi), f"frame {i}"
            if old.usable:
                assert np.array_equal(grey[roi.y0 : roi.y1, roi.x0 : roi.x1], _grey(bgr)[roi.y0 : roi.y1, roi.x0 : roi.x1])
                assert np.array_equal(new.tensor, old.tensor), f"frame {i}: model input"
                scored += 1
            flow_roi = flow_roi or (roi if not old.blank else None)
            colour_frames += old.colour
            compared += 1
    assert compared >= 60 and flow_frames >= 10 and colour_frames >= 10 and scored >= 40


@needs_planes
@pytest.mark.parametrize("sampling", [S420, S422, S444], ids=["4:2:0", "4:2:2", "4:4:4"])
@pytest.mark.parametrize("flow", [False, True])
def test_the_colour_gate_sees_the_same_on_doppler_screens_by_the_planes_path(sampling, flow, tmp_path):
    """Colour flow in the region, coloured marks (an arrow, text) that are not flow: the planes
    path's sample gives the flags the full-colour decode gives."""
    image, rect = _doppler_screen() if flow else (cv2.cvtColor(screen(1080, 1920, rect=(120, 90, 1560, 930), seed=4),
                                                               cv2.COLOR_GRAY2BGR), Roi(120, 90, 1560, 930))
    cv2.arrowedLine(image, (400, 300), (700, 500), (60, 220, 60), 3)
    cv2.putText(image, "MTP1 DORSAL", (300, 800), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (40, 230, 230), 2)
    data = _jpeg(image, sampling=sampling)
    (grey, sample), (bgr, _) = ScreenDecoder()(data), _opencv_decoder(tmp_path)(data)
    assert sample.shape == (-(-1080 // COLOUR_STRIDE), -(-1920 // COLOUR_STRIDE), 3)
    assert _neutral_grey_equal(grey, bgr)
    for roi in (rect, Roi(121, 93, 1559, 927), Roi(300, 200, 1400, 900)):  # on and off the sample grid
        new, old = FramePreparer(SMALL)(grey, roi, sample), FramePreparer(SMALL)(bgr, roi)
        assert new.colour is old.colour is flow and not new.blank


def _cmyk_jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("CMYK", (64, 48), (10, 200, 30, 0)).save(out, format="JPEG", quality=90)
    return out.getvalue()


JPEG_VARIANTS = {  # name: (encoded, decoded to planes? None: either)
    "4:2:0": (lambda im: _jpeg(im, sampling=S420), True),
    "4:2:2": (lambda im: _jpeg(im, sampling=S422), True),
    "4:4:4": (lambda im: _jpeg(im, sampling=S444), True),
    "grey": (lambda im: _jpeg(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)), True),  # one component
    "progressive": (lambda im: _jpeg(im, progressive=True), False),
    "4:4:0": (lambda im: _jpeg(im, sampling=cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440), False),
    "4:1:1": (lambda im: _jpeg(im, sampling=cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411), False),
    "truncated": (lambda im: _jpeg(im)[: len(_jpeg(im)) * 2 // 3], False),  # libjpeg warns: OpenCV decides
    # libjpeg warns (here: at 640 × 480) and OpenCV still gives an image; the planes path refuses on a warning
    "extraneous bytes": (lambda im: _jpeg(im)[:-2] + b"\0\0\0" + _jpeg(im)[-2:], None),
}


@pytest.mark.parametrize("size", [(480, 640), (241, 323)], ids=["even", "odd"])
@pytest.mark.parametrize("variant", list(JPEG_VARIANTS))
def test_every_jpeg_variant_gives_the_opencv_path_s_grey_image(variant, size, tmp_path):
    """4:2:0, 4:2:2, 4:4:4 and grey JPEGs are decoded to their planes; progressive, 4:4:0, 4:1:1
    and damaged data (libjpeg errors or warnings) fall back to OpenCV; every one gives the grey
    image the OpenCV path gives (exactly: the screen is grey), or nothing where OpenCV gives none."""
    h, w = size
    image = cv2.cvtColor(screen(h, w, rect=(w // 8, h // 8, w * 7 // 8, h * 7 // 8), seed=3), cv2.COLOR_GRAY2BGR)
    encode, to_planes = JPEG_VARIANTS[variant]
    data = encode(image)
    reference = ScreenDecoder.jpeg(data)  # the OpenCV path
    if variant == "truncated":  # OpenCV refuses it: a damaged frame, by either path
        assert reference is None and ScreenDecoder()(data) is None and _opencv_decoder(tmp_path)(data) is None
        return
    assert reference is not None and reference[0].shape == (h, w, 3)
    for decoder in (ScreenDecoder(), _opencv_decoder(tmp_path)):
        got, sample = decoder(data)
        assert np.array_equal(_grey(got), _grey(reference[0])), f"{variant} by {decoder.libturbojpeg or 'planes'}"
        planes_taken = got.ndim == 2
        if to_planes is not None or size == (480, 640):
            assert planes_taken is (bool(to_planes) and decoder.planes)
        if planes_taken:
            assert got.shape == (h, w) and (sample is None) is (variant == "grey")
        else:
            assert np.array_equal(got, reference[0]) and sample is None


def test_a_cmyk_jpeg_and_undecodable_data_take_the_opencv_path(tmp_path):
    data = _cmyk_jpeg()
    got = ScreenDecoder()(data)
    assert got is not None and np.array_equal(got[0], ScreenDecoder.jpeg(data)[0]) and got[1] is None
    for junk in (b"\xff\xd8 damaged", b"", b"\xff\xd8\xff\xc0", _jpeg(screen(seed=1))[:200]):
        assert ScreenDecoder()(junk) == ScreenDecoder.jpeg(junk) == _opencv_decoder(tmp_path)(junk) == None  # noqa: E711


def test_a_decoder_without_libturbojpeg_falls_back_to_opencv_and_says_so_once(tmp_path, caplog):
    """A real missing library (a path where there is none) and a file that is not one: no error,
    one debug line, every JPEG decoded by OpenCV in colour as before — also when many threads ask
    for the library at once (it is loaded once per process)."""
    not_a_library = tmp_path / "libturbojpeg.so.0"
    not_a_library.write_text("not a shared library")
    data = _jpeg(_doppler_screen()[0])
    for path in (str(tmp_path / "missing" / "libturbojpeg.so.0"), str(not_a_library)):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger=_jpeg_planes.__name__):
            decoders = [ScreenDecoder(libturbojpeg=path) for _ in range(8)]
            results: list = []
            threads = [threading.Thread(target=lambda d=d, out=results: out.append(d(data))) for d in decoders]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not any(d.planes for d in decoders)
        unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1 and unavailable[0].levelno == logging.DEBUG
        assert all(r.levelno == logging.DEBUG for r in caplog.records)
        image, sample = results[0]
        assert len(results) == 8 and sample is None and np.array_equal(image, ScreenDecoder.jpeg(data)[0])
        prepared = FramePreparer(SMALL)(image, Roi(120, 90, 1560, 930), sample)
        assert prepared.colour and not prepared.blank


@pytest.fixture
def demo_bundle_or_skip():
    from gout_edge.edge_runtime.inference.loading import open_bundle

    try:
        return open_bundle()
    except Exception as exc:  # pragma: no cover - a checkout without the demo bundle
        pytest.skip(f"no demo bundle: {exc}")


# -- the colour gate on the YUYV image ---------------------------------------------------------


@pytest.mark.parametrize("flow", [False, True])
def test_the_colour_gate_sees_the_same_on_the_y_plane_with_its_colour_sample(flow):
    rect = Roi(120, 90, 1560, 930)
    image = cv2.cvtColor(screen(1080, 1920, rect=(120, 90, 1560, 930), seed=4), cv2.COLOR_GRAY2BGR)
    cv2.arrowedLine(image, (400, 300), (700, 500), (60, 220, 60), 3)  # a coloured mark: not flow
    cv2.putText(image, "MTP1 DORSAL", (300, 800), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (40, 230, 230), 2)
    if flow:
        image = _with_flow(image, rect)
    assert prepare(image, SMALL, PreprocessSpec(), rect).colour is flow
    grey, sample = ScreenDecoder().yuyv(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_YUY2))
    assert grey.ndim == 2 and sample.shape == (-(-1080 // COLOUR_STRIDE), -(-1920 // COLOUR_STRIDE), 3)
    assert FramePreparer(SMALL)(grey, rect, sample).colour is flow
    assert FramePreparer(SMALL)(grey, rect).colour is False  # without its sample a grey frame has no colour


def test_a_yuyv_frame_gives_its_y_plane_as_the_grey_image():
    image = cv2.cvtColor(screen(480, 640, rect=(80, 60, 560, 400), seed=2), cv2.COLOR_GRAY2BGR)
    raw = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_YUY2)  # video range, as grabbers send it
    got, sample = ScreenDecoder()(raw)
    assert got.shape == (480, 640) and got.dtype == np.uint8 and sample.shape == (120, 160, 3)
    old = cv2.cvtColor(cv2.cvtColor(raw, cv2.COLOR_YUV2BGR_YUY2), cv2.COLOR_BGR2GRAY)  # the old conversion
    assert np.abs(got.astype(int) - old).max() <= 1
    assert RoiTracker().locate(got)[0] == RoiTracker().locate(old)[0]
    roi = Roi(80, 60, 560, 400)
    a, b = FramePreparer(SMALL)(got, roi, sample), prepare(image, SMALL, PreprocessSpec(), roi)
    assert np.abs(a.tensor - b.tensor).mean() < 0.05 and not a.colour and not a.blank


# -- crop → tensor in one pass ------------------------------------------------------------------


@pytest.mark.parametrize("channels", [0, 1, 3, 4])
def test_crop_to_tensor_equals_prepare_with_the_region(channels):
    grey = screen(480, 640, rect=(80, 60, 560, 400), seed=5)
    image = {0: grey, 1: grey[:, :, None], 3: np.dstack([grey, grey // 2, grey]),
             4: np.dstack([grey, grey // 3, grey, np.full_like(grey, 255)])}[channels]
    roi = Roi(80, 60, 560, 400)
    tensor, sd = crop_to_tensor(image, roi, SMALL)
    expected = prepare(image, SMALL, PreprocessSpec(), roi)
    assert np.array_equal(tensor, expected.tensor) and (sd < 2.0) == expected.blank
    assert crop_to_tensor(image, Roi(0, 0, 10, 10), SMALL) is None  # implausible: the caller uses prepare


STUDENT = InputSpec(height=224, width=490)  # the compact student's input (issue 21)


@pytest.mark.parametrize("spec", [SMALL, STUDENT, InputSpec()], ids=["small", "student", "paper"])
@pytest.mark.parametrize("colour", [False, True])
def test_the_crop_is_resized_once_straight_to_the_bundle_s_input(spec, colour, monkeypatch):
    """Preprocessing works at the bundle's own input size: the region goes to (width, height) in
    one resize from the crop — no intermediate at another model's size (a 224 × 490 student pays
    for no 320 × 700 image) — and equals ``prepare`` at that size."""
    grey = screen(1080, 1920, rect=(228, 172, 1640, 908), seed=6)
    image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if colour else grey
    roi = Roi(228, 172, 1640, 908)
    expected = prepare(image, spec, PreprocessSpec(), roi)
    resized = []
    real = cv2.resize

    def spy(src, dsize, *args, **kwargs):
        if src.shape[:2] == (roi.height, roi.width):  # the crop (the colour check's grid sample is not)
            resized.append(tuple(dsize))
        return real(src, dsize, *args, **kwargs)

    monkeypatch.setattr(cv2, "resize", spy)
    got = FramePreparer(spec)(image, roi)
    assert resized == [(spec.width, spec.height)]
    assert got.tensor.shape == (1, spec.height, spec.width) and np.array_equal(got.tensor, expected.tensor)
    assert (got.blank, got.colour, got.roi) == (expected.blank, expected.colour, expected.roi)


@pytest.mark.parametrize("shape", [(740, 1412), (17, 17), (9, 3), (101, 203), (5, 1)])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_the_opencv_gathered_colour_sample_is_numpy_s_strided_one(shape, stride):
    rng = np.random.default_rng(0)
    for channels in (3, 4):
        region = rng.integers(0, 256, (*shape, channels), dtype=np.uint8)
        assert np.array_equal(grid_sample(region, stride), np.ascontiguousarray(region[::stride, ::stride, :3]))
        view = np.pad(region, ((3, 3), (5, 5), (0, 0)))[3:-3, 5:-5]  # a view into a larger frame
        assert np.array_equal(grid_sample(view, stride), np.ascontiguousarray(region[::stride, ::stride, :3]))
    assert not is_doppler(np.zeros((40, 40), np.uint8))  # grey has no colour


# -- capture: raw frames through the decoder, files decoded ahead ---------------------------------


class RawCapture:
    """A ``cv2.VideoCapture`` stand-in handing out undecoded frames — MJPG bytes (as 1 × N) or YUYV
    buffers (H × W × 2) — then ends."""

    def __init__(self, frames: list) -> None:
        self.frames = list(frames)

    def read(self):
        if not self.frames:
            return False, None
        raw = self.frames.pop(0)
        return True, np.frombuffer(raw, np.uint8)[None, :] if isinstance(raw, bytes) else raw

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


@pytest.mark.parametrize("path", ["default", "opencv"])
def test_a_capture_of_undecoded_frames_yields_decoded_screens_and_skips_damaged_ones(path, tmp_path):
    good = _jpeg(cv2.cvtColor(screen(seed=1), cv2.COLOR_GRAY2BGR))
    cap = RawCapture([good, b"\xff\xd8 damaged", good])
    decoder = ScreenDecoder() if path == "default" else _opencv_decoder(tmp_path)
    source = CaptureSource(lambda: cap, "capture device test", live=False, decoder=decoder)
    source.promised_frames = 2  # frames it delivers; the damaged one is skipped by a retry
    frames = list(source)
    assert len(frames) == 2 and source.damaged_frames == 1
    if decoder.planes:  # the Y plane, and the colour sample from the chroma
        assert frames[0].image.shape == (240, 320) and frames[0].colour_sample.shape == (60, 80, 3)
    else:
        assert frames[0].image.shape == (240, 320, 3) and frames[0].colour_sample is None


class PacedCapture(RawCapture):
    """Undecoded frames at a grabber's pace: ``read`` blocks until the next frame is due."""

    def __init__(self, frames: list, fps: float) -> None:
        super().__init__(frames)
        self.period, self.next_due = 1.0 / fps, time.monotonic()

    def read(self):
        time.sleep(max(0.0, self.next_due - time.monotonic()))
        self.next_due += self.period
        return super().read()


def test_a_live_capture_decodes_only_the_frames_its_reader_takes():
    """The capture thread only grabs; the reader decodes the newest frame when it takes it, so
    frames a slow reader never takes are never decoded, capture → result includes the decode,
    and a damaged frame is skipped and counted instead of ending the capture."""
    good = _jpeg(cv2.cvtColor(screen(seed=1), cv2.COLOR_GRAY2BGR))
    decoded = []
    decode_s = 0.03

    def decoder(raw):
        decoded.append(threading.current_thread().name)
        time.sleep(decode_s)
        return ScreenDecoder()(raw)

    cap = PacedCapture([b"\xff\xd8 damaged"] + [good] * 29, fps=25)  # the idle reader takes the first at once
    source = CaptureSource(lambda: cap, "capture device test", live=True, decoder=decoder, backoff_s=())
    stream = FrameStream(source)
    taken, since_capture = [], []
    try:
        for frame in stream:
            since_capture.append(time.monotonic() - stream.captured_at)
            taken.append(frame)
            time.sleep(0.1)  # a reader slower than the grabber
    finally:
        stream.close()
    assert taken and all(f.image.shape[:2] == (240, 320) for f in taken)
    assert stream.captured == 30 and stream.dropped > 0 and len(taken) < 30
    assert len(decoded) == len(taken) + source.damaged_frames  # nothing decoded that the reader did not take
    assert set(decoded) == {threading.current_thread().name}
    assert min(since_capture) >= decode_s  # the decode counts in capture → result
    assert source.damaged_frames == 1  # skipped, not the end of the capture


def _doppler_screen() -> tuple[np.ndarray, Roi]:
    rect = Roi(120, 90, 1560, 930)
    image = cv2.cvtColor(screen(1080, 1920, rect=(120, 90, 1560, 930), seed=4), cv2.COLOR_GRAY2BGR)
    return _with_flow(image, rect), rect


def test_a_yuyv_capture_carries_its_colour_sample_to_the_session(demo_bundle_or_skip, tmp_path):
    """Y plane as the image, the colour sample in ``Frame.colour_sample``, and ``ExamSession.feed``
    hands it to the preparer: a Doppler frame from a YUYV grabber is flagged colour."""
    from gout_edge.edge_runtime.exam.session import ExamSession
    from gout_edge.edge_runtime.inference.scoring import FrameScore

    image, _ = _doppler_screen()
    cap = RawCapture([cv2.cvtColor(image, cv2.COLOR_BGR2YUV_YUY2)])
    frame = next(iter(CaptureSource(lambda: cap, "capture device test", live=False, decoder=ScreenDecoder())))
    assert frame.image.shape == (1080, 1920) and frame.colour_sample is not None
    assert "colour_sample" not in repr(frame)

    class Oracle:
        backend, precision, guard = "oracle", "fp32", None

        def score_prepared(self, frames):
            return [FrameScore(0.1, False, np.zeros((4, 4), np.float32), f.roi, f.blank, f.colour) for f in frames]

    session = ExamSession(demo_bundle_or_skip, Oracle(), tmp_path / "s", dicom_results=False)
    with_sample = session.feed(frame)
    session.close()
    assert with_sample.colour and not with_sample.blank and not with_sample.key_frame


class CountingSource:
    """A file-like source (every frame, in order) that records how far ahead it was read."""

    kind = "counting"
    live = False
    lost = False
    end_reason = None
    complete = True
    skipped = ()

    def defer_decoding(self):
        return None

    def __init__(self, n: int, read_ahead: int = 1, fail_at: int | None = None) -> None:
        self.n, self.read_ahead, self.fail_at = n, read_ahead, fail_at
        self.produced = 0
        self.image = screen()
        self.threads: set[str] = set()
        self.closed = False

    def __iter__(self):
        for i in range(self.n):
            if self.closed:
                return
            if i == self.fail_at:
                raise RuntimeError("decoder exploded")
            self.threads.add(threading.current_thread().name)
            self.produced += 1
            yield Frame(self.image, i, i / 30)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("depth", [1, 2])
def test_files_are_decoded_ahead_on_a_thread_with_a_bounded_queue(depth):
    source = CountingSource(60, read_ahead=depth)
    stream = FrameStream(source)
    assert not stream.latest_wins and stream.read_ahead == depth
    seen, ahead, stamps = [], [], []
    for frame in stream:
        time.sleep(0.003)  # inference
        seen.append(frame.index)
        ahead.append(source.produced - len(seen))
        stamps.append(stream.captured_at)
    stream.close()
    assert seen == list(range(60)) and stream.dropped == 0 and stream.captured == stream.taken == 60
    assert max(ahead) <= depth + 1  # the queue plus the frame waiting to enter it: bounded memory
    assert max(ahead) >= 1  # and it did read ahead
    assert source.threads == {"gout-edge-read-ahead"}
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))  # captured_at: when each left the source


def test_read_ahead_passes_errors_on_stops_early_and_can_be_switched_off():
    with pytest.raises(RuntimeError, match="exploded"):
        for _ in FrameStream(CountingSource(10, fail_at=4)):
            pass
    source = CountingSource(10_000)
    stream = FrameStream(source)
    for n, _ in enumerate(stream, 1):
        if n == 5:
            break
    stream.close()
    assert source.closed and source.produced < 20
    plain = CountingSource(5)
    assert [f.index for f in FrameStream(plain, read_ahead=0)] == list(range(5))
    assert plain.threads == {threading.current_thread().name}


def test_a_video_file_is_read_ahead_in_order(tmp_path):
    source = open_source("video", write_video(tmp_path / "ahead.avi", n=12))
    assert source.read_ahead == 1  # double buffering: one frame decoded while one is inferred
    stream = FrameStream(source)
    got = [f.index for f in stream]
    stream.close()
    assert got == list(range(12)) and source.complete
