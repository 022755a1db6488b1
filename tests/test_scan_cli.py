"""`gout-edge scan`: phantom video, DICOM and image folders end to end; exit codes; SIGINT; no torch."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.cli import CLI_WITHOUT_TORCH
from support.json_schemas import validate
from support.screens import CT_IMAGE, screen, write_dicom

from gout_edge.cli import main
from gout_edge.edge_runtime.sources import Frame

DIAGNOSES = ("gout", "no gout", "indeterminate")


def scan(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    doc = validate("scan", out) if "--json" in args and out.strip().startswith("{") else None
    return code, doc, err


def test_scan_a_phantom_video_to_json_journal_and_report(capsys, scan_bundle_dir, phantom_dir, tmp_path):
    video = next(p for p in (phantom_dir / "video").iterdir() if p.suffix in (".mp4", ".avi") and p.stem == "P0001")
    code, doc, err = scan(capsys, "--video", str(video), "--bundle", str(scan_bundle_dir), "--out", str(tmp_path),
                          "--patient", "P0001", "--max-frames", "40", "--no-display", "--json")
    assert code == 0, err
    (p,) = doc["patients"]  # one patient: still a list (docs/schemas/scan.schema.json)
    assert p["diagnosis"] in DIAGNOSES and p["threshold"] == 0.3 and p["patient_id"] == "P0001"
    assert doc["frames_seen"] == 40 and doc["dropped"] == 0 and 0 < p["frames_scored"] <= 40
    assert p["key_frames"] >= 3 and p["abnormal_fraction"] is not None
    assert Path(p["journal"]).is_file() and Path(p["report"]).is_file()
    assert doc["bundle"]["checkpoint_sha256"] and doc["bundle"]["backend"] == "onnxruntime"
    report = json.loads(Path(p["report"]).read_text())
    assert report["diagnosis"] == p["diagnosis"] and report["ended_by"] == "frame limit (40) reached"
    assert "Traceback" not in err and "P0001" not in err  # the patient ID stays out of the logs


def test_scan_a_phantom_dicom_tree_gives_one_result_per_patient(capsys, scan_bundle_dir, phantom_dir, tmp_path):
    code, doc, err = scan(capsys, "--dicom", str(phantom_dir / "dicom"), "--bundle", str(scan_bundle_dir), "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert [p["patient_id"] for p in doc["patients"]] == ["P0001", "P0002"]
    for p in doc["patients"]:
        assert p["diagnosis"] in DIAGNOSES and p["key_frames"] >= 3 and Path(p["report"]).is_file()
    assert doc["frames_seen"] == 47 and "diagnosis" not in doc  # answers are in patients only


def test_scan_one_patient_of_an_image_folder_as_a_table(capsys, scan_bundle_dir, phantom_dir, tmp_path):
    code = main(["scan", "--images", str(phantom_dir / "images"), "--patient", "P0002", "--bundle", str(scan_bundle_dir), "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "diagnosis" in out and "P0002" in out and "not for clinical use" in out


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    junk = tmp / "junk.mp4"
    junk.write_bytes(b"no video here" * 20)
    (tmp / "empty").mkdir()
    (tmp / "notes.txt").write_text("not an image")
    (tmp / "broken.png").write_bytes(b"\x89PNG broken")
    ct = write_dicom(tmp / "ct" / "ct.dcm", [screen()], sop=CT_IMAGE, modality="CT")
    jls = write_dicom(tmp / "jls.dcm", [screen()], syntax="1.2.840.10008.1.2.4.80")
    return {
        "missing device": (["--video", "/dev/video99"], 5, "/dev/video99 does not exist"),
        "missing video": (["--video", str(tmp / "gone.mp4")], 3, "not found"),
        "not a video": (["--video", str(junk)], 3, "could not be opened as a video"),
        "empty folder": (["--images", str(tmp / "empty")], 3, "empty"),
        "not an image": (["--images", str(tmp / "broken.png")], 3, "not a readable PNG or JPEG"),
        "not DICOM": (["--dicom", str(tmp / "notes.txt")], 3, "not a DICOM file"),
        "non-ultrasound, strict": (["--dicom", str(ct), "--strict"], 3, "not ultrasound"),
        "missing decoder": (["--dicom", str(jls)], 3, "pip install"),
        "no input": ([], 2, "exactly one input"),
        "two inputs": (["--video", "0", "--demo"], 2, "exactly one input"),
    }


def test_bad_input_gives_a_clear_message_and_the_design_exit_code(capsys, scan_bundle_dir, tmp_path):
    for name, (args, expected, message) in bad_inputs(tmp_path).items():
        code, _, err = scan(capsys, *args, "--bundle", str(scan_bundle_dir), "--out", str(tmp_path / "out"), "--no-display")
        assert code == expected, f"{name}: exit {code}, {err}"
        assert message in err and "Traceback" not in err, f"{name}: {err}"
    assert not (tmp_path / "out").exists()  # nothing was scanned


def test_non_ultrasound_dicom_is_scanned_with_a_warning(capsys, caplog, scan_bundle_dir, tmp_path):
    ct = write_dicom(tmp_path / "ct.dcm", [screen()], sop=CT_IMAGE, modality="CT")
    with caplog.at_level(logging.WARNING):
        code, doc, err = scan(capsys, "--dicom", str(ct), "--bundle", str(scan_bundle_dir), "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert "not ultrasound" in caplog.text and doc["patients"][0]["diagnosis"] == "indeterminate"


def test_display_asked_for_where_none_exists_is_a_usage_error(capsys, monkeypatch, scan_bundle_dir, phantom_dir, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = scan(capsys, "--images", str(phantom_dir / "images"), "--bundle", str(scan_bundle_dir), "--display")
    assert code == 2 and "--no-display" in err


def test_a_lost_device_still_prints_the_result_then_exits_5(capsys, monkeypatch, scan_bundle_dir, tmp_path):
    import gout_edge.edge_runtime.sources as sources

    class Dying:
        kind, live, lost, end_reason = "v4l2", True, False, None
        complete, skipped, read_ahead = True, (), 0  # the rest of the FrameSource Protocol

        def defer_decoding(self):
            return None

        def __iter__(self):
            for i in range(3):
                yield Frame(screen(seed=i), i, float(i))
            self.lost, self.end_reason = True, "capture lost: capture device /dev/video0 gave no frames"

        def close(self):
            pass

    monkeypatch.setattr(sources, "open_source", lambda kind, target, **kw: Dying())
    code, doc, err = scan(capsys, "--video", "/dev/video0", "--bundle", str(scan_bundle_dir), "--out", str(tmp_path), "--json")
    assert code == 5
    assert doc["capture_lost"] and doc["ended_by"].startswith("capture lost")
    assert Path(doc["patients"][0]["report"]).is_file()
    assert "ended early" in err


def test_sigint_ends_a_live_demo_exam_and_the_report_is_written_without_torch(scan_bundle_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_WITHOUT_TORCH, "scan", "--demo", "--bundle", str(scan_bundle_dir), "--out", str(out),
         "--no-display", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = []
    deadline = time.monotonic() + 90
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("scan ") or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(seen) + rest
    assert proc.returncode == 0, err
    doc = validate("scan", stdout)
    assert doc["ended_by"] == "stopped by SIGINT" and doc["source"]["live"]
    assert doc["frames_seen"] < 90  # it did stop early (the recording has about 95 frames)
    report = Path(doc["patients"][0]["report"])
    assert report.is_file() and json.loads(report.read_text())["ended_by"] == "stopped by SIGINT"
    assert "Traceback" not in err and "torch is blocked" not in err


def test_the_live_view_is_headless_here_and_never_shows_the_patient(scan_bundle_dir, tmp_path, monkeypatch):
    import io

    import numpy as np

    from gout_edge.edge_runtime.exam.session import ExamSession
    from gout_edge.edge_runtime.inference.loading import open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer
    from gout_edge.edge_runtime.live.render import ProgressLine, render_live
    from gout_edge.edge_runtime.live.views import display_available, open_view

    monkeypatch.setenv("DISPLAY", ":0")
    ok, why = display_available()  # opencv-python-headless: no GUI backend, whatever DISPLAY says
    assert not ok and "headless" in why
    web = open_view(None, port=0, open_browser=False, hold_s=0.0)  # a screen but no OpenCV GUI: the live page
    assert type(web).__name__ == "WebView"
    web.close()
    monkeypatch.delenv("DISPLAY")
    assert isinstance(open_view(None), ProgressLine)  # no screen: the progress line
    bundle = open_bundle(scan_bundle_dir)
    session = ExamSession(bundle, Scorer(bundle, threads=1), tmp_path / "s", patient="MRN-5")
    text = io.StringIO()
    view = ProgressLine(text, interval_s=0.0)
    frame = Frame(screen(seed=1), 0, 0.0)
    before = frame.image.copy()
    result = session.feed(frame)
    assert view(frame, result, session) is True
    view.close()
    line = text.getvalue()
    assert "key frames 1" in line and "abnormal" in line and session.session_id in line and "MRN-5" not in line
    image = render_live(frame, result)
    assert image.shape[0] == frame.image.shape[0] + 32 and image.shape[2] == 3
    assert np.array_equal(frame.image, before)  # the overlay is drawn on a copy
    session.close()
