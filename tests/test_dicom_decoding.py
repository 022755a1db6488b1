"""DICOM decoding through the runtime's own reader (``sources.dicom.decode_frames``): the same
pixels in every byte order and transfer syntax pydicom reads, palette and VOI applied as the
scanner showed them, declared ultrasound regions fitted to the image, the protocol view read from
the tags, and one probability per image whichever way it arrives (scan --dicom, scan --images,
evaluate).

Test data: pydicom's own test files ("pydicom's test data", shipped with pydicom and with its
pydicom-data package, under pydicom's licence and the notes in pydicom's data/test_files README).
They are looked up with ``get_testdata_file(..., download=False)``: a file that is not installed
skips its test, saying what to install (``pip install pydicom-data``); nothing is downloaded. A
pair whose compressed member needs a decoder that is not installed skips as well.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.screens import region

from gout_edge.edge_runtime.imaging.preprocess import Roi, find_roi, to_gray
from gout_edge.edge_runtime.pipeline.verdict import Vote, missing_coverage
from gout_edge.edge_runtime.sources import open_source
from gout_edge.edge_runtime.sources._base import to_uint8
from gout_edge.edge_runtime.sources.dicom import (
    check_decoder,
    decode_frames,
    frame_origin,
    read_dicom_file,
    ultrasound_region,
)
from gout_edge.edge_runtime.sources.images import load_still
from gout_edge.errors import InputError

VIEWS = ("dorsal", "medial", "plantar")


def pydicom_file(name: str) -> Path:
    """A pydicom test file, or a skip saying what to install (never a download)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed here: pip install pydicom-data")
    return Path(path)


def decodable(name: str) -> Path:
    """A pydicom test file whose transfer syntax an installed decoder handles (else a skip)."""
    path = pydicom_file(name)
    file = read_dicom_file(path)
    assert file is not None
    try:
        check_decoder(file.transfer_syntax, name)
    except InputError as exc:
        pytest.skip(str(exc))
    return path


def decoded(path: Path) -> np.ndarray:
    """Every frame of a file through the runtime's reader, stacked."""
    file = read_dicom_file(path)
    assert file is not None
    return np.stack(list(decode_frames(file)))


@pytest.fixture(scope="module")
def scorer():
    """The demo bundle through the public API, on one thread, without its scope guard: these real
    files are not first-MTP scans and the guard refuses them (tests/test_scope_demo.py); here the
    probabilities show whether two encodings of an image decode alike."""
    import dataclasses

    from gout_edge import Scorer, open_bundle
    from gout_edge.edge_runtime.inference.loading import Bundle

    demo = open_bundle()
    s = Scorer(Bundle(demo.root, dataclasses.replace(demo.manifest, scope=None), demo.blobs), threads=1)
    yield s
    s.close()


def scan_probabilities(scorer, path: Path) -> list[float | None]:
    """What ``scan --dicom`` scores each frame of a file with: the frame as the DICOM source gives
    it, its declared region, the bundle's preprocessing and engine (None: blank or colour)."""
    out = []
    for frame in open_source("dicom", path):
        score = scorer.score_prepared([scorer.prepare(frame.image, frame.roi)])[0]
        out.append(score.probability if score.usable else None)
    return out


# -- 1. the same pixels in every byte order and transfer syntax ------------------------------

LOSSLESS_PAIRS = [
    # PALETTE COLOR ultrasound (Philips, 8-bit indices, 16-bit tables): little endian, big endian, RLE
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"),
    # PALETTE COLOR ultrasound with 16-bit indices and segmented tables (Aloka), implicit VR vs big endian
    ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),
    # RGB ultrasound vs JPEG 2000 lossless (YBR_RCT)
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),
    # RGB secondary captures, 8, 16 and 32 bits, one and two frames
    ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb.dcm", "SC_rgb_gdcm2k_uncompressed.dcm"),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG Lossless SV1, RGB: the default install (OpenCV's libjpeg-turbo)
    ("SC_rgb_2frame.dcm", "SC_rgb_expb_2frame.dcm"),
    ("SC_rgb_2frame.dcm", "SC_rgb_rle_2frame.dcm"),
    ("SC_rgb_16bit.dcm", "SC_rgb_expb_16bit.dcm"),
    ("SC_rgb_16bit.dcm", "SC_rgb_rle_16bit.dcm"),
    ("SC_rgb_32bit.dcm", "SC_rgb_expb_32bit.dcm"),
    ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm"),
    # signed 16-bit MONOCHROME2 with a window
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_expb.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    # 12 in 16 bits, 10 frames
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    # 1 bit
    ("liver_1frame.dcm", "liver_expb_1frame.dcm"),
    # MONOCHROME1, 10 bits, window
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm"),
    # rescaled CT with a window; the JPEG 2000 copy declares 16 bits stored instead of 14: shown alike
    ("693_UNCR.dcm", "693_J2KR.dcm"),
]

LOSSY_PAIRS = [
    ("US1_UNCR.dcm", "US1_J2KI.dcm"),  # JPEG 2000 irreversible (YBR_ICT)
    ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm"),  # JPEG baseline, YBR_FULL
    ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm"),  # JPEG baseline, YBR_FULL_422
    ("SC_rgb.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm"),
    ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cr.dcm"),  # JPEG baseline, RGB
    ("SC_rgb.dcm", "SC_rgb_jls_lossy_line.dcm"),  # JPEG-LS near lossless
    ("SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm"),  # converted to YBR_FULL in 8 bits
]


@pytest.mark.parametrize(("reference", "other"), LOSSLESS_PAIRS, ids=[b for _, b in LOSSLESS_PAIRS])
def test_lossless_variants_decode_to_the_same_frames(reference, other):
    a, b = decoded(decodable(reference)), decoded(decodable(other))
    assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape
    assert np.array_equal(a, b), f"{other}: {np.count_nonzero(a != b)} pixel values differ from {reference}"


@pytest.mark.parametrize(("reference", "other"), LOSSY_PAIRS, ids=[b for _, b in LOSSY_PAIRS])
def test_lossy_variants_decode_close_to_the_original(reference, other):
    a, b = decoded(decodable(reference)).astype(int), decoded(decodable(other)).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() <= 3.0 and abs(a.mean() - b.mean()) <= 1.0


# -- 1b. what scanners write, decoded by the default install ------------------------------------


def _first_frame(path: Path) -> bytes:
    import pydicom
    from pydicom.encaps import generate_frames

    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=int(getattr(ds, "NumberOfFrames", 1) or 1)))


def test_jpeg_lossless_and_jpeg_ls_decode_without_gpl_or_gdcm():
    """JPEG Lossless (Process 14 SV1) through OpenCV's libjpeg-turbo and JPEG-LS through pyjpegls
    (MIT): both in the runtime's dependencies; neither pylibjpeg-libjpeg (GPLv3) nor python-gdcm."""
    import importlib.util

    from pydicom.pixels.decoders import JPEGLosslessDecoder, JPEGLosslessSV1Decoder, JPEGLSLosslessDecoder

    from gout_edge.edge_runtime.sources._jpeg_lossless import LABEL

    assert LABEL in JPEGLosslessSV1Decoder.available_plugins and LABEL in JPEGLosslessDecoder.available_plugins
    assert "pyjpegls" in JPEGLSLosslessDecoder.available_plugins
    for module in ("libjpeg", "gdcm"):  # what pydicom would otherwise need: not installed, not used
        if importlib.util.find_spec(module) is not None:
            pytest.skip(f"{module} is installed here: the default install is not what this test sees")
    for name in ("SC_rgb_jpeg_gdcm.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        check_decoder(read_dicom_file(pydicom_file(name)).transfer_syntax, name)  # no "needs a decoder" error


def test_a_jpeg_lossless_ultrasound_file_is_scored(scorer):
    """A real JPEG Lossless SV1 ultrasound image (8-bit MONOCHROME2, 1024 × 768, from pydicom's
    test files), through what scan --dicom does: decoded, its region found, scored."""
    path = pydicom_file("JPGLosslessP14SV1_1s_1f_8b.dcm")
    file = read_dicom_file(path)
    assert file is not None and file.transfer_syntax == "1.2.840.10008.1.2.4.70"
    frame = decoded(path)[0]
    assert frame.shape == (768, 1024) and frame.dtype == np.uint8 and 5 < frame.mean() < 100 and frame.std() > 5
    probabilities = scan_probabilities(scorer, path)
    assert len(probabilities) == 1 and probabilities[0] is not None and 0.0 <= probabilities[0] <= 1.0


def test_a_jpeg_lossless_rgb_frame_is_decoded_as_stored_whatever_its_markers():
    """A JFIF marker tells libjpeg the three components are YCbCr, which it cannot convert in
    lossless mode: plain OpenCV gives nothing (or, converting, other pixels). The frame is handed
    over as stored: the same pixels with component IDs 1, 2, 3 and a JFIF marker as with R, G, B
    and Adobe's."""
    from gout_edge.edge_runtime.sources import _jpeg_lossless as jl

    src = _first_frame(pydicom_file("SC_rgb_jpeg_gdcm.dcm"))
    reference = decoded(pydicom_file("SC_rgb.dcm"))[0]  # BGR, as the runtime's frames are
    assert jl.lossless_header(src) == (8, 100, 100, 3)
    # the same codestream with IDs 1, 2, 3 in the frame and scan headers, Adobe out and JFIF in
    segments = jl._segments(src)
    out = bytearray(b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for marker, start, end in segments[1:]:
        seg = bytearray(src[start:end])
        if marker == 0xEE:
            continue
        if marker in (0xC3, 0xDA):
            first = 10 if marker == 0xC3 else 5
            step = 3 if marker == 0xC3 else 2
            for k in range(3):
                seg[first + step * k] = k + 1
        out += seg
    renamed = bytes(out + src[segments[-1][2]:])
    naive = cv2.imdecode(np.frombuffer(renamed, np.uint8), cv2.IMREAD_UNCHANGED)
    assert naive is None or not np.array_equal(naive, reference)  # what plain libjpeg does

    class Runner:  # what pydicom's DecodeRunner is told
        options: dict = {}

        def set_option(self, name, value):
            self.options[name] = value

    for stream in (src, renamed):
        got = np.frombuffer(jl._decode_frame(stream, Runner()), np.uint8).reshape(100, 100, 3)  # as stored: RGB
        assert np.array_equal(got[:, :, ::-1], reference)


def test_a_jpeg_lossless_frame_of_more_than_8_bits_says_what_decodes_it():
    path = pydicom_file("JPEG-LL.dcm")  # 16-bit NM
    file = read_dicom_file(path)
    with pytest.raises(InputError, match=r"JPEG-LL\.dcm.*8-bit lossless JPEG only.*16-bit.*python-gdcm"):
        list(decode_frames(file))


def test_a_big_endian_palette_file_is_not_blank():
    """The bug this file started from: the big-endian copy of a PALETTE COLOR screen decoded to a
    frame of 0s and 1s, because the 16-bit tables were read in the machine's byte order."""
    from pydicom import dcmread
    from pydicom.pixels import apply_color_lut

    little = pydicom_file("OBXXXX1A.dcm")
    big = decoded(pydicom_file("OBXXXX1A_expb.dcm"))[0]
    assert big.max() > 200 and big.mean() > 5
    ds = dcmread(little)
    rgb = apply_color_lut(ds.pixel_array, ds)  # little endian on a little-endian machine: right
    expected = cv2.cvtColor((rgb.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert np.array_equal(big, expected)


def test_files_without_meta_information_and_deflated_files_decode():
    """No File Meta Information (the transfer syntax comes from the encoding pydicom detected), and
    Deflated Explicit VR Little Endian (pydicom inflates the whole dataset first)."""
    from pydicom import dcmread
    from pydicom.pixels import apply_color_lut

    no_meta = pydicom_file("OT-PAL-8-face.dcm")
    (face,) = decoded(no_meta)
    ds = dcmread(no_meta, force=True)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    rgb = apply_color_lut(ds.pixel_array, ds)
    expected = cv2.cvtColor((rgb.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert np.array_equal(face, expected)
    deflated = pydicom_file("image_dfl.dcm")
    (image,) = decoded(deflated)
    assert np.array_equal(image, dcmread(deflated).pixel_array)  # 8-bit MONOCHROME2 without a window


SCORED_PAIRS = [
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
    ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
]


def test_scan_scores_little_and_big_endian_copies_alike(scorer):
    for reference, other in SCORED_PAIRS:
        a, b = scan_probabilities(scorer, decodable(reference)), scan_probabilities(scorer, decodable(other))
        assert len(a) == len(b) and any(p is not None for p in a), (reference, a)
        for p, q in zip(a, b, strict=True):
            assert (p is None) == (q is None) and (p is None or abs(p - q) <= 1e-6), (reference, other, a, b)


# -- 2. declared regions that do not fit the image --------------------------------------------


def _us1_with_region(path: Path, corners: tuple[int, int, int, int], scale: float = 1.0) -> Path:
    """pydicom's US1_UNCR.dcm (a 640 × 480 RGB ultrasound screen) with one declared 2-D tissue
    region, its pixels reduced by ``scale`` (area interpolation) while the region stays as declared."""
    from pydicom import dcmread
    from pydicom.sequence import Sequence

    ds = dcmread(pydicom_file("US1_UNCR.dcm"))
    rgb = ds.pixel_array
    if scale != 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ds.Rows, ds.Columns = rgb.shape[:2]
        ds.PlanarConfiguration = 0
        ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds.SequenceOfUltrasoundRegions = Sequence([region(*corners)])
    ds.save_as(path)
    return path


US1_SECTOR = (12, 106, 625, 338)  # inclusive corners of US1's B-mode rectangle on the 640 × 480 screen


def _iou(a: Roi, b: Roi) -> float:
    w = max(0, min(a.x1, b.x1) - max(a.x0, b.x0))
    h = max(0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


def test_regions_declared_for_the_full_screen_are_rescaled_to_a_halved_export(tmp_path, caplog):
    full = _us1_with_region(tmp_path / "full.dcm", US1_SECTOR)
    (f_full,) = frames_of_source(full)
    assert f_full.roi == Roi(12, 106, 626, 339)
    with caplog.at_level(logging.WARNING):
        (half,) = frames_of_source(_us1_with_region(tmp_path / "half.dcm", US1_SECTOR, scale=0.5))
    assert half.image.shape[:2] == (240, 320)
    assert half.roi == Roi(6, 53, 313, 170)  # corners outwards: 339 / 2 = 169.5 → 170
    assert half.pixel_mm == pytest.approx(2 * f_full.pixel_mm)
    assert "rescaled by 1/2" in caplog.text and "640×480" in caplog.text
    # the rescaled region covers the sector the image shows: what image analysis finds there
    found = find_roi(to_gray(half.image)[0])
    assert found is not None and _iou(found, half.roi) > 0.9
    assert found.x0 >= half.roi.x0 - 2 and found.y0 >= half.roi.y0 - 2
    assert found.x1 <= half.roi.x1 + 2 and found.y1 <= half.roi.y1 + 2


def test_regions_no_uniform_reduction_explains_are_ignored_for_image_analysis(tmp_path, caplog, scorer):
    # as declared for 640 wide but 960 high: no reduction of a standard size gives 320 × 240
    corners = (US1_SECTOR[0], US1_SECTOR[1], US1_SECTOR[2], 700)
    with caplog.at_level(logging.WARNING):
        (frame,) = frames_of_source(_us1_with_region(tmp_path / "odd.dcm", corners, scale=0.5))
    assert frame.roi is None and frame.pixel_mm is None
    assert "ignored" in caplog.text and "analysed instead" in caplog.text
    # scan then finds the region in the image, as for a file declaring none: it covers the sector
    prepared = scorer.prepare(frame.image, frame.roi)
    assert _iou(prepared.roi, Roi(6, 53, 313, 170)) > 0.9


def frames_of_source(path: Path) -> list:
    source = open_source("dicom", path)
    try:
        return list(source)
    finally:
        source.close()


@pytest.mark.parametrize(("size", "corners", "expected"), [
    ((400, 300), (60, 30, 799, 599), Roi(30, 15, 400, 300)),  # 800 × 600 at 1/2
    ((768, 576), (100, 80, 1023, 767), Roi(75, 60, 768, 576)),  # 1024 × 768 at 3/4
    ((427, 320), (30, 60, 639, 479), Roi(20, 40, 427, 320)),  # 640 × 480 at 2/3 (426.7 columns)
    ((320, 180), (100, 50, 1279, 719), Roi(25, 12, 320, 180)),  # 1280 × 720 at 1/4
    ((800, 600), (120, 60, 800, 518), Roi(120, 60, 800, 519)),  # one past the edge: clipped (OBXXXX1A)
    ((320, 480), (40, 30, 639, 479), None),  # only the width halved: not uniform
    ((300, 200), (10, 10, 599, 399), None),  # 600 × 400 at 1/2: not a scanner frame size
    ((640, 480), (10, 10, 1600, 1600), None),  # nothing fits
])
def test_the_rescaling_rule(size, corners, expected):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = Sequence([region(*corners)])
    info = ultrasound_region(ds, size[1], size[0])
    assert info.roi == expected and info.declared, info.note
    if expected is None:
        assert "analysed instead" in info.note


# -- 3. MONOCHROME with a window or a VOI LUT -------------------------------------------------


def _to_255(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.rint((np.asarray(values, np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def test_a_window_is_applied_as_the_scanner_showed_it():
    """MR_small: signed 16 bits, Window Center 600, Width 1600; pydicom's windowing gives values
    over the signed 16-bit range, mapped onto 0–255."""
    from pydicom import dcmread
    from pydicom.pixels import apply_voi_lut

    path = pydicom_file("MR_small.dcm")
    ds = dcmread(path)
    windowed = apply_voi_lut(ds.pixel_array, ds)
    (frame,) = decoded(path)
    assert np.array_equal(frame, _to_255(windowed, -32768, 32767))
    assert frame.max() == 255  # above the window
    plain = to_uint8(ds.pixel_array, 16)  # what it was before: stored values over the 16 bits
    assert frame.std() > 20 * plain.std()


def test_a_rescale_then_window_matches_pydicom():
    """693_UNCR: CT with Rescale Slope 1, Intercept −1024, window 40/100."""
    from pydicom import dcmread
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = pydicom_file("693_UNCR.dcm")
    ds = dcmread(path)
    windowed = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    lo = -(2 ** (ds.BitsStored - 1)) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    hi = (2 ** (ds.BitsStored - 1) - 1) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    (frame,) = decoded(path)
    assert np.array_equal(frame, _to_255(windowed, lo, hi))


def test_a_voi_lut_sequence_is_applied():
    """vlut_04: 8-bit MONOCHROME2 with a 256-entry, 16-bit VOI LUT."""
    from pydicom import dcmread
    from pydicom.pixels import apply_voi_lut

    path = pydicom_file("vlut_04.dcm")
    ds = dcmread(path)
    assert "VOILUTSequence" in ds and ds.VOILUTSequence[0].LUTDescriptor[2] == 16
    (frame,) = decoded(path)
    assert np.array_equal(frame, _to_255(apply_voi_lut(ds.pixel_array, ds), 0, 65535))


def test_monochrome1_is_windowed_then_inverted():
    """RG1_UNCR: MONOCHROME1 radiograph, 15 bits stored, window 15000/30000."""
    from pydicom import dcmread
    from pydicom.pixels import apply_voi_lut

    path = pydicom_file("RG1_UNCR.dcm")
    ds = dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    (frame,) = decoded(path)
    assert np.array_equal(frame, 255 - _to_255(apply_voi_lut(ds.pixel_array, ds), 0, 2**15 - 1))


def test_a_window_pydicom_refuses_is_left_out_with_a_warning(tmp_path, caplog):
    from pydicom import dcmread

    ds = dcmread(pydicom_file("MR_small.dcm"))
    ds.WindowWidth = 0  # LINEAR windows need a width of at least 1
    ds.save_as(tmp_path / "bad-window.dcm")
    with caplog.at_level(logging.WARNING):
        (frame,) = decoded(tmp_path / "bad-window.dcm")
    assert "bad-window.dcm" in caplog.text and "cannot be applied" in caplog.text
    assert frame.dtype == np.uint8 and frame.shape == (64, 64)


# -- 4. views from the tags -------------------------------------------------------------------


def _us_file(path: Path, source: str = "OBXXXX1A.dcm", **tags) -> Path:
    from pydicom import dcmread
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = dcmread(pydicom_file(source))
    for keyword, value in tags.items():
        if keyword == "ViewCodeSequence":
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "99", "99TEST", value
            ds.ViewCodeSequence = Sequence([code])
        else:
            setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


@pytest.mark.parametrize(("tags", "view"), [
    ({"ViewCodeSequence": "Medial"}, "medial"),
    ({"ViewName": "DORSAL LONG"}, "dorsal"),
    ({"ImageComments": "MTP1 plantar, transverse"}, "plantar"),
    ({"SeriesDescription": "1st MTP joint, Medial"}, "medial"),
    ({"ProtocolName": "MSK_FOOT_plantar"}, "plantar"),
    ({"ViewCodeSequence": "Medial", "ViewName": "dorsal"}, "medial"),  # the code first
    ({"ImageComments": "dorsal and medial", "ProtocolName": "plantar"}, "plantar"),  # two named: passed over
    ({"ImageComments": "dorsomedial"}, None),  # not a view word
    ({"SeriesDescription": "OB"}, None),
])
def test_the_view_comes_from_the_tags(tmp_path, tags, view):
    path = _us_file(tmp_path / "IM0001.dcm", **tags)
    (frame,) = frames_of_source(path)
    assert frame.view == view
    assert frame.origin == frame.file == "IM0001.dcm"  # the view is a field, never appended to the origin


def test_views_of_cines_image_folders_and_file_names(tmp_path, caplog):
    cine = _us_file(tmp_path / "cine.dcm", "OBXXXX1A_2frame.dcm", ViewName="plantar")
    frames = frames_of_source(cine)
    assert [f.origin for f in frames] == ["cine.dcm frame 1", "cine.dcm frame 2"]
    assert [(f.file, f.frame_number, f.view) for f in frames] == [("cine.dcm", 1, "plantar"), ("cine.dcm", 2, "plantar")]
    # --images reads DICOM files the same way
    folder = tmp_path / "images"
    _us_file(folder / "a.dcm", ViewName="dorsal")
    assert [(f.origin, f.view) for f in open_source("images", folder)] == [("a.dcm", "dorsal")]
    # a file name naming the same view
    same = _us_file(tmp_path / "IM03_medial.dcm", ViewName="medial")
    assert frames_of_source(same)[0].view == "medial"
    # a file name naming another view: the view counts as unknown, with a warning
    with caplog.at_level(logging.WARNING):
        (odd,) = frames_of_source(_us_file(tmp_path / "IM04_dorsal.dcm", ViewName="medial"))
    assert odd.origin == "IM04_dorsal.dcm" and odd.view is None
    assert "IM04_dorsal.dcm" in caplog.text and "unknown" in caplog.text
    file = read_dicom_file(same)
    assert frame_origin("x/y.dcm", file) == "x/y.dcm"


def test_tagged_views_count_for_the_protocol(tmp_path):
    study = tmp_path / "study"
    for k, view in enumerate(("dorsal", "medial", "plantar"), 1):
        _us_file(study / f"IM{k:04d}.dcm", SeriesDescription=f"MTP1 {view}", InstanceNumber=k)
    votes = [Vote(0.5, 0.0, True, f.view) for f in frames_of_source(study)]
    assert missing_coverage(votes, _decision()) is None
    assert missing_coverage(votes[:2], _decision()).missing == ("plantar",)


def _decision():
    from gout_edge.manifest import DecisionSpec

    return DecisionSpec()


# -- 5. one probability per image: scan --dicom, scan --images, evaluate ----------------------


@pytest.fixture(scope="module")
def stills(tmp_path_factory) -> Path:
    """Real ultrasound stills with declared regions (palette, little and big endian; segmented
    palette, 16-bit) in one folder, with an index table as ``evaluate`` reads it."""
    import shutil

    folder = tmp_path_factory.mktemp("dicom-stills") / "P1"
    folder.mkdir()
    names = ["OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", "gdcm-US-ALOKA-16.dcm"]
    for name in names:
        shutil.copy(pydicom_file(name), folder / name)
    rows = [f"P1,P1/{name},0,control," for name in names]
    (folder.parent / "index.csv").write_text("patient_id,image,image_label,diagnosis,view\n" + "\n".join(rows) + "\n")
    return folder


def _scanned(scorer, kind: str, target: Path, out: Path) -> dict[str, float]:
    """Every frame's probability as ``scan`` computes it (run_exam, as the command does)."""
    from gout_edge.edge_runtime.exam.driver import run_exam

    seen: dict[str, float] = {}

    def on_frame(frame, result, session):
        if result.probability is not None:
            seen[frame.origin] = result.probability

    run_exam(open_source(kind, target), scorer.bundle, scorer, out, on_frame=on_frame)
    return seen


def test_scan_dicom_and_scan_images_agree_on_dicom_stills(scorer, stills, tmp_path):
    by_dicom = _scanned(scorer, "dicom", stills, tmp_path / "d")
    by_images = _scanned(scorer, "images", stills, tmp_path / "i")
    assert set(by_dicom) == set(by_images) == {p.name for p in stills.iterdir()}
    for origin, p in by_dicom.items():
        assert abs(p - by_images[origin]) <= 1e-6, (origin, p, by_images[origin])
        image, roi = load_still(stills / origin)  # what scoring each file alone with its region gives
        assert roi is not None
        alone = scorer.score_prepared([scorer.prepare(image, roi)])[0].probability
        assert abs(alone - p) <= 1e-6, (origin, alone, p)


def test_evaluate_agrees_with_scan_on_dicom_stills(scorer, stills, tmp_path):
    from gout_edge.calibration.calibrate import score_table
    from gout_edge.calibration.index import read_index

    table = read_index(stills.parent / "index.csv")
    (scored,) = score_table(table, [scorer])
    by_dicom = _scanned(scorer, "dicom", stills, tmp_path / "d")
    for row, p in zip(table.rows, scored.probabilities, strict=True):
        assert abs(p - by_dicom[row.image.name]) <= 1e-6, (row.image.name, p, by_dicom[row.image.name])
