"""Issue 20, "a value checked where it enters": a number a file states about itself — DICOM Frame
Time, Cine Rate, Physical Delta X, a video's frame rate and frame positions — is used only when it is
finite and plausible; NaN, infinities (``1e309``), negative, zero or absurd values count as absent,
with one warning per file naming the tag and the class of the value (docs/design.md §8). The fuzz
case of the issue: a cine whose Frame Time decodes to NaN crashed the report at the end of the exam
(exit 70); it now ends with a verdict."""

from __future__ import annotations

import json
import logging
import math
import struct
from pathlib import Path

import cv2
import pytest
from support.json_schemas import validate
from support.screens import region, screen, write_dicom

from gout_edge.cli import main
from gout_edge.edge_runtime.sources import open_source
from gout_edge.edge_runtime.sources._values import (
    FRAME_INTERVAL_MS,
    FRAME_RATE_HZ,
    FRAME_TIME_S,
    ValueChecks,
    checked_number,
)
from gout_edge.edge_runtime.sources.dicom import read_dicom_file
from gout_edge.edge_runtime.sources.video import CaptureSource
from gout_edge.errors import INTERNAL_ERROR_EXIT

ENGINE = ["--backend", "onnxruntime", "--precision", "int8", "--no-display"]
FRAME_TIME = (0x0018, 0x1063)
# the fuzz cases of the issue, and their neighbours: each is absent, for its reason
BAD_FRAME_TIMES = {b"NaN": "not a number (NaN)", b"inf": "infinite", b"-40": "negative", b"1e309": "infinite",
                   b"-inf": "infinite", b"0": "zero", b"3.6e9": "too large", b"abc": "not a number",
                   b"40\\50": "several values"}


def set_ds(path: Path, tag: tuple[int, int], text: bytes) -> Path:
    """Rewrite the DS element ``tag`` of an explicit-VR little-endian file with any bytes at all
    (pydicom refuses to write a DS that is no number; a fuzzer does not ask)."""
    data = path.read_bytes()
    head = struct.pack("<HH", *tag) + b"DS"
    i = data.index(head)
    old = struct.unpack("<H", data[i + 6 : i + 8])[0]
    text += b" " * (len(text) % 2)
    path.write_bytes(data[:i] + head + struct.pack("<H", len(text)) + text + data[i + 8 + old :])
    return path


def cine(path: Path, frames: int = 6, **kw) -> Path:
    """A multi-frame ultrasound cine (Frame Time 50 ms) with a Sequence of Ultrasound Regions."""
    return write_dicom(path, [screen(seed=k) for k in range(frames)], regions=[region(40, 30, 279, 199)], **kw)


# -- the check itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "why"), [
    (float("nan"), "not a number (NaN)"), ("NaN", "not a number (NaN)"), (float("inf"), "infinite"),
    ("-inf", "infinite"), ("1e309", "infinite"), (-40.0, "negative"), ("-40", "negative"), (0, "zero"),
    (3.6e6 + 1, "too large"), (1e300, "too large"), ("forty", "not a number"), (b"\xff\xfe", "not a number"),
    ([40.0, 50.0], "several values"), (True, "not a number"), (object(), "not a number"),
])
def test_a_bad_frame_interval_is_absent_with_its_reason(value, why):
    assert checked_number(value, FRAME_INTERVAL_MS) == (None, why)


@pytest.mark.parametrize(("value", "expected"), [
    (40.0, 40.0), ("40", 40.0), (" 33.3 ", 33.3), (1, 1.0), (3.6e6, 3.6e6), (1e-3, 1e-3),
])
def test_a_good_frame_interval_is_kept(value, expected):
    assert checked_number(value, FRAME_INTERVAL_MS) == (expected, None)


def test_absent_is_not_a_problem_and_ranges_differ_by_what_they_measure():
    assert checked_number(None, FRAME_INTERVAL_MS) == (None, None)
    assert checked_number("  ", FRAME_INTERVAL_MS) == (None, None)
    assert checked_number(0.0, FRAME_TIME_S) == (0.0, None)  # a position may be 0; an interval may not
    assert checked_number(-0.5, FRAME_TIME_S) == (None, "negative")
    assert checked_number(90_000.0, FRAME_TIME_S) == (None, "too large")  # more than a day into a clip
    assert checked_number(25.0, FRAME_RATE_HZ) == (25.0, None)
    assert checked_number(1e6, FRAME_RATE_HZ) == (None, "too large")


def test_one_warning_per_file_names_each_tag_and_why_never_the_value(caplog):
    checks = ValueChecks("IM0001.dcm")
    with caplog.at_level(logging.WARNING):
        assert checks.number("Frame Time (0018,1063)", "1e309", FRAME_INTERVAL_MS) is None
        assert checks.number("Cine Rate (0018,0040)", "-25", FRAME_RATE_HZ) is None
        assert checks.number("Recommended Display Frame Rate (0008,2144)", "30", FRAME_RATE_HZ) == 30.0
        checks.warn()
        checks.number("Frame Time (0018,1063)", "nan", FRAME_INTERVAL_MS)  # the same tag again: no new line
        checks.warn()
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = record.getMessage()
    assert text == "IM0001.dcm: Frame Time (0018,1063) is infinite; Cine Rate (0018,0040) is negative; treated as absent"
    assert "1e309" not in text and "-25" not in text


# -- DICOM: where the values enter ------------------------------------------------------------


def test_a_dicom_frame_time_that_is_no_usable_number_is_absent(tmp_path, caplog):
    good = cine(tmp_path / "good.dcm")
    assert read_dicom_file(good).frame_time_ms == 50.0
    for text, why in BAD_FRAME_TIMES.items():
        caplog.clear()
        path = set_ds(cine(tmp_path / "IM0001.dcm"), FRAME_TIME, text)
        with caplog.at_level(logging.WARNING):
            file = read_dicom_file(path)
        assert file.frame_time_ms is None, text
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"IM0001.dcm: Frame Time (0018,1063) is {why}; treated as absent"], (text, warnings)


def test_a_cine_rate_stands_in_for_a_bad_frame_time_and_a_bad_spacing_is_unknown(tmp_path, caplog):
    import pydicom

    path = cine(tmp_path / "IM0002.dcm")
    ds = pydicom.dcmread(path)
    ds.CineRate = 25
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = float("-inf")  # FD: a binary double, any at all
    ds.save_as(path)
    set_ds(path, FRAME_TIME, b"NaN")
    with caplog.at_level(logging.WARNING):
        file = read_dicom_file(path)
    assert file.frame_time_ms == pytest.approx(40.0)  # 1000 / Cine Rate
    assert file.region.roi is not None and file.region.pixel_mm is None  # the region stays; its scale is unknown
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]  # one per file
    assert "Frame Time (0018,1063) is not a number (NaN)" in warning
    assert "Physical Delta X (0018,602C) is infinite" in warning
    frames = list(open_source("dicom", path))
    assert [f.timestamp_s for f in frames] == pytest.approx([0.04 * k for k in range(len(frames))])


def phantom_cine(phantom_dir: Path, dest: Path, frame_time: bytes) -> Path:
    """The phantom patient's cine (which the demo bundle finds in scope, so that key frames reach the
    report), with Frame Time replaced and no other timing tag: the time between frames is unknown."""
    import pydicom

    ds = pydicom.dcmread(phantom_dir / "dicom" / "P0001" / "CINE.dcm")
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        if keyword in ds:
            delattr(ds, keyword)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return set_ds(dest, FRAME_TIME, frame_time)


@pytest.mark.parametrize("text", [b"NaN", b"inf", b"-40", b"1e309"])
def test_the_nan_timing_fuzz_case_ends_with_a_verdict_not_exit_70(text, phantom_dir, tmp_path, capfd, caplog,
                                                                   no_device_key):
    path = phantom_cine(phantom_dir, tmp_path / "study" / "CINE.dcm", text)
    with caplog.at_level(logging.WARNING):
        code = main(["scan", "--dicom", str(path), "--out", str(tmp_path / "scans"), "--json", *ENGINE])
    out, err = capfd.readouterr()
    assert code != INTERNAL_ERROR_EXIT and code == 0, err
    assert "Traceback" not in err and "internal error" not in err
    doc = validate("scan", out)
    (patient,) = doc["patients"]
    assert patient["diagnosis"] in ("gout", "no gout", "indeterminate")
    report = json.loads(Path(patient["report"]).read_text(encoding="utf-8"))
    assert report["diagnosis"] == patient["diagnosis"] and Path(patient["pdf"]).is_file()
    assert Path(patient["summary"]).is_file()
    journal = [json.loads(line) for line in Path(patient["journal"]).read_text(encoding="utf-8").splitlines()]
    stamps = [r["timestamp_s"] for r in journal if "timestamp_s" in r]
    assert stamps and all(isinstance(s, (int, float)) and math.isfinite(s) and s >= 0 for s in stamps)
    assert patient["overlays"] and all(Path(p).is_file() for p in patient["overlays"])  # key frames drawn, with times
    assert sum("Frame Time (0018,1063)" in r.getMessage() for r in caplog.records) == 1


# -- video: the container's frame rate and frame positions -------------------------------------


class OddCapture:
    """A cv2.VideoCapture stand-in for a file whose container states nonsense about time."""

    def __init__(self, n: int, fps: float, positions_ms: list[float]) -> None:
        self.n, self.fps, self.positions = n, fps, positions_ms
        self.i = 0

    def read(self):
        if self.i >= self.n:
            return False, None
        self.i += 1
        return True, screen(seed=self.i)

    def get(self, prop):
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.positions[self.i - 1]
        return 0.0

    def release(self):
        pass


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -25.0, 1e7])
def test_a_video_with_a_bad_frame_rate_and_positions_gets_finite_times(fps, caplog):
    positions = [0.0, float("nan"), -40.0, float("inf"), 1e12, 200.0]
    with caplog.at_level(logging.WARNING):
        source = CaptureSource(lambda: OddCapture(len(positions), fps, positions), "video clip.avi", live=False)
        frames = list(source)
    assert source.fps == 0.0  # absent: as for a container that states none
    stamps = [f.timestamp_s for f in frames]
    assert stamps == pytest.approx([0.0, 1 / 30, 2 / 30, 3 / 30, 4 / 30, 0.2])  # index / 30 where absent
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(w.startswith("video clip.avi: ") for w in warnings)  # one per tag
    assert "frame rate (CAP_PROP_FPS) is" in warnings[0] and "frame position (CAP_PROP_POS_MSEC) is" in warnings[1]
