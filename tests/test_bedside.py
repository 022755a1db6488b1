"""The bedside screen (docs/design.md §13): one CAM colour scale per bundle (the manifest's ``cam``
section, or derived from the reference set), overlays with a legend that keep the anatomy
visible, the summary and the printable report, the live page's server, and the plain ``scan``
output that points to the files."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import re
import threading
import time

import cv2
import numpy as np
import pytest
from support.fakes import OracleScorer
from support.screens import screen, still

from gout_edge.cli import main
from gout_edge.edge_runtime.exam.driver import Stop
from gout_edge.edge_runtime.exam.session import ExamSession
from gout_edge.edge_runtime.inference.cam_scale import cam_scale_for, fit_cam_scale, reference_cam_scale
from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.live.render import frame_state, render_live
from gout_edge.edge_runtime.live.views import open_view
from gout_edge.edge_runtime.live.web import WebView
from gout_edge.edge_runtime.present.overlay import ALPHA_MAX, cam_legend, overlay_cam, with_legend
from gout_edge.edge_runtime.present.report import (
    Tile,
    render_overlay,
    render_summary,
    source_label,
    why_line,
)
from gout_edge.edge_runtime.sources import Frame
from gout_edge.errors import BundleError, UsageError
from gout_edge.manifest import CamScale, Manifest, manifest_bytes, read_manifest, write_manifest

SCALE = CamScale(0.0, 40.0, "test")


@pytest.fixture(scope="module")
def bundle(scan_bundle_dir) -> Bundle:
    return open_bundle(scan_bundle_dir)


# ------------------------------------------------------------------------------------ the scale


def test_the_manifest_cam_section_round_trips_and_is_checked(small_bundle):
    result, _ = small_bundle
    m = dataclasses.replace(result.manifest, cam=CamScale(0.0, 41.5, "160 INT8 calibration images"))
    back = Manifest.from_dict(json.loads(manifest_bytes(m)))
    assert back.cam == m.cam
    plain = json.loads(manifest_bytes(m))
    for bad, field in (({"lo": 5.0, "hi": 5.0}, "hi"), ({"lo": float("nan"), "hi": 1.0}, "lo"),
                       ({"lo": 0.0, "hi": 1e9}, "hi")):
        with pytest.raises(BundleError, match=rf"manifest\.cam\.{field} is"):
            Manifest.from_dict({**plain, "cam": {**plain["cam"], **bad}})
    with pytest.raises(BundleError, match="unknown field"):
        Manifest.from_dict({**plain, "cam": {**plain["cam"], "gamma": 2}})
    assert Manifest.from_dict({**plain, "cam": None}).cam is None


def test_fit_cam_scale_takes_percentiles_and_never_goes_below_zero():
    rng = np.random.default_rng(0)
    cams = rng.normal(0, 5, (50, 20, 44)).astype(np.float32)
    cams[:5] += 40  # a few lesions
    s = fit_cam_scale(cams, "test set")
    assert s.lo == 0.0 and s.hi == pytest.approx(np.percentile(cams, 99.5), rel=1e-3) and s.fitted_on == "test set"
    assert fit_cam_scale(cams + 100, "shifted").lo == pytest.approx(np.percentile(cams + 100, 1), rel=1e-3)
    flat = fit_cam_scale(np.full((2, 3, 3), -1.0), "flat")
    assert flat.hi > flat.lo == 0.0


def test_export_writes_a_scale_and_a_bundle_without_one_derives_it_from_its_reference_set(small_bundle, tmp_path,
                                                                                         caplog):
    result, _ = small_bundle
    exported = open_bundle(result.bundle)
    assert exported.manifest.cam is not None and "calibration images" in exported.manifest.cam.fitted_on
    assert cam_scale_for(exported) == exported.manifest.cam

    old = tmp_path / "old"  # a bundle made before the cam section existed
    old.mkdir()
    for f in result.bundle.rglob("*"):
        if f.is_file():
            (old / f.relative_to(result.bundle)).parent.mkdir(parents=True, exist_ok=True)
            (old / f.relative_to(result.bundle)).write_bytes(f.read_bytes())
    write_manifest(old, dataclasses.replace(result.manifest, cam=None))
    legacy = open_bundle(old)
    derived = cam_scale_for(legacy)
    assert derived is not None and "derived on opening" in derived.fitted_on
    want = reference_cam_scale(legacy)  # the FP32 CAMs of its reference set
    assert (derived.lo, derived.hi) == (want.lo, want.hi)
    assert cam_scale_for(legacy) is derived  # once per bundle, never per frame

    bare = Bundle(old, dataclasses.replace(legacy.manifest, reference=None,
                                           model=dataclasses.replace(legacy.manifest.model, checkpoint_sha256="0" * 64)))
    with caplog.at_level(logging.WARNING):
        assert cam_scale_for(bare) is None
    assert "scaled per image" in caplog.text


def test_the_demo_bundle_carries_its_cam_scale():
    demo = open_bundle()
    scale = read_manifest(demo.root).cam
    assert scale is not None and "calibration images" in scale.fitted_on
    assert 0.0 <= scale.lo < scale.hi and cam_scale_for(demo) == scale


def test_export_fits_the_scale_on_the_calibration_images(small_bundle):
    from gout_edge.export.int8 import LabelledInputs, calibration_cam_scale

    result, _ = small_bundle
    m = result.manifest
    rng = np.random.default_rng(1)
    images = rng.normal(0, 1, (12, 1, m.input.height, m.input.width)).astype(np.float32)
    data = LabelledInputs(images, np.zeros(12), images[:2], np.zeros(2), np.array(["a", "b"]), {"source": "test phantoms"})
    scale = calibration_cam_scale(result.bundle, m, data)
    assert scale.hi > scale.lo >= 0.0 and scale.fitted_on.startswith("12 INT8 calibration images (test phantoms)")


# ------------------------------------------------------------------------------------ overlays


def test_overlays_share_one_scale_so_a_weak_map_stays_faint():
    grey = np.tile(np.linspace(40, 200, 160, dtype=np.uint8), (80, 1))
    weak = np.zeros((4, 8), np.float32)
    weak[1, 2] = 3.0  # below CLEAR_BELOW of a 0…40 scale
    strong = weak * 12.0  # 36 of 40
    # per image (no bundle scale) both maps look alike: the misleading old behaviour
    assert np.abs(overlay_cam(grey, weak).astype(int) - overlay_cam(grey, strong).astype(int)).max() <= 2
    faint, hot = overlay_cam(grey, weak, SCALE), overlay_cam(grey, strong, SCALE)
    assert np.array_equal(faint, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))  # clear: nothing drawn
    assert np.abs(hot.astype(int) - faint.astype(int)).max() > 40


def test_the_anatomy_stays_visible_under_the_hottest_colour():
    stripes = np.zeros((80, 160), np.uint8)
    stripes[:, ::8] = 220  # bright lines, as a cortex or a tophus edge
    cam = np.full((4, 8), 40.0, np.float32)  # the whole region at the top of the scale
    out = overlay_cam(stripes, cam, SCALE).astype(int)
    line, gap = out[:, ::8].mean(), out[:, 4::8].mean()
    assert line - gap >= (1 - ALPHA_MAX) * 220 - 2  # the lines keep (1 - ALPHA_MAX) of their contrast


def test_every_overlay_has_its_legend_and_a_caption():
    legend = cam_legend(SCALE, 200)
    assert legend.shape[0] == 200 and legend.shape[2] == 3
    bar = legend[:, 12:14].astype(int)
    top, bottom = bar[60:70].mean(axis=(0, 1)), bar[-20:-12].mean(axis=(0, 1))
    assert top[2] - top[0] > 40 and abs(bottom[2] - bottom[0]) < 12  # hot red above, clear grey below
    assert not np.array_equal(cam_legend(None, 200), legend)  # "per image" is said, not drawn alike
    crop = screen(seed=3)[30:200, 40:280]
    out = with_legend(overlay_cam(crop, np.ones((4, 8), np.float32) * 30, SCALE), SCALE)
    assert out.shape[1] == crop.shape[1] + legend.shape[1]
    tile = Tile(4, 0.93, crop, np.ones((4, 8), np.float32), "P1/02_medial.png", 3.0, True, True)
    picture = render_overlay(tile, SCALE, width=600)
    assert picture.shape[1] <= 600 and picture.shape[0] > crop.shape[0]


def test_source_labels_say_file_or_time_and_the_view():
    """The view is the frame's field (set by its source), never re-read from the words of its origin."""
    assert source_label("P0001/03_dorsal.png", 0.0, True, "dorsal") == "03_dorsal.png · dorsal view"
    assert source_label("P0001/03_dorsal.png", 0.0, True) == "03_dorsal.png"  # no view field: none shown
    assert source_label("frame 149", 12.42, False) == "at 0:12.4 (frame 149)"
    assert source_label("", 64.0, False, "plantar", file="study/CINE_plantar.dcm", frame_number=5) == \
        "at 1:04.0 (CINE_plantar.dcm frame 5) · plantar view"
    assert source_label("frame 3", 0.25, False, short=True) == "at 0:00.2"


# ------------------------------------------------------------------------------------ the report


def _exam(bundle, tmp_path, probabilities, blanks=0, colours=0, patient="MRN-77"):
    oracle = OracleScorer()
    session = ExamSession(bundle, oracle, tmp_path / "s", patient=patient, dicom_results=False)
    for i in range(max(blanks, colours, len(probabilities))):  # interleaved: no frame repeats the one before
        if i < blanks:
            session.feed(Frame(np.zeros((240, 320), np.uint8), 100 + i, 10.0 + i, still=True, origin=f"blank{i}.png"))
        if i < colours:
            session.feed(still(200 + i, colour=True))
        if i < len(probabilities):
            oracle.next = probabilities[i]
            session.feed(still(i))
    return session, session.close()


def test_the_summary_and_the_printable_page_are_written_beside_the_report(bundle, tmp_path):
    session, r = _exam(bundle, tmp_path, [0.9, 0.8, 0.7, 0.2, 0.1], blanks=3, colours=2)
    assert r.diagnosis == "gout" and r.pdf is not None and r.pdf.name == "report.pdf"
    pdf = r.pdf.read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Count 1" in pdf  # one page
    report = json.loads(r.report.read_text())
    assert report["pdf"] == str(r.pdf) and report["summary"] == str(r.summary)
    summary = cv2.imread(str(r.summary))
    assert summary.shape[1] == 1200 and 900 < summary.shape[0] < 1800  # fits an A4 page at its width
    overlay = cv2.imread(str(r.overlays[0]))
    assert overlay is not None and overlay.shape[1] > 200
    assert session.excluded.counts == {"blank": 3, "colour": 2}
    assert [e.frame_index for e in session.excluded.examples("blank")] == [100, 102]  # the first and the latest


def test_the_why_line_reads_in_one_line(bundle, tmp_path):
    _, gout = _exam(bundle, tmp_path / "a", [0.9, 0.8, 0.2, 0.1, 0.1])
    assert why_line(gout) == "2 of 5 key frames abnormal: fraction 0.40 is above the threshold 0.30"
    _, none = _exam(bundle, tmp_path / "b", [0.1, 0.2, 0.1, 0.9, 0.1])
    assert why_line(none) == "1 of 5 key frames abnormal: fraction 0.20 is not above the threshold 0.30"
    _, few = _exam(bundle, tmp_path / "c", [0.9], blanks=4)
    line = why_line(few)
    assert line.startswith("No verdict: 1 key frame; at least 3 are needed") and "2 without signal" in line


def test_summaries_of_each_verdict_render_with_identity_and_exclusions(bundle, tmp_path):
    for name, probs, blanks in (("gout", [0.9, 0.8, 0.7], 0), ("no gout", [0.1, 0.2, 0.1], 0), ("indeterminate", [0.9], 5)):
        session, r = _exam(bundle, tmp_path / name.replace(" ", "-"), probs, blanks=blanks)
        assert r.diagnosis == name
        keys = session.key_frames
        tiles = [Tile(k.key_index, k.probability, screen(seed=k.key_index)[30:200, 40:280], np.ones((4, 8), np.float32),
                      k.origin, k.timestamp_s, k.still, k.abnormal) for k in keys]
        image = render_summary(r, tiles, scale=SCALE, excluded=session.excluded)
        assert image.dtype == np.uint8 and image.shape[1] == 1200
        assert render_summary(r, [], width=800).shape[1] == 800  # text and layout scale with the width


def _poppler(tool: str) -> str:
    import shutil

    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: apt-get install poppler-utils")
    return path


def _pdf_text(path) -> str:
    import subprocess

    return subprocess.run([_poppler("pdftotext"), str(path), "-"], check=True, capture_output=True, text=True).stdout


def test_the_printable_report_is_text_with_embedded_fonts_on_a4_or_letter(bundle, tmp_path, monkeypatch):
    """report.pdf is a vector page: its words can be searched and copied (pdftotext finds them),
    its fonts are embedded, the key frames are images; A4 by default, US Letter on request."""
    import subprocess

    _, r = _exam(bundle, tmp_path / "a4", [0.9, 0.8, 0.2, 0.1, 0.1], blanks=2, patient="MRN-PAPER-1")
    text = _pdf_text(r.pdf)
    for words in ("GOUT", why_line(r), "MRN-PAPER-1", r.session_id, "RESEARCH SOFTWARE: NOT", "FOR CLINICAL USE",
                  "Reviewed by a clinician", "Signature", "Frames not counted", "2 no signal", "page 1 of 1",
                  "Key frame 1 · p = 0.90", "Key frame 2 · p = 0.80", "above the cut-off", "below the cut-off",
                  r.bundle.identity.split(" (")[0]):
        assert words in " ".join(text.split()), words
    assert "Key frame 0" not in text  # numbered from 1, as the summary and the file names
    info = subprocess.run([_poppler("pdfinfo"), str(r.pdf)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"Pages:\s+1\n", info) and "595.276 x 841.89 pts (A4)" in info
    assert "MRN-PAPER-1" not in info  # the patient is on the page, not in the file's metadata
    fonts = subprocess.run([_poppler("pdffonts"), str(r.pdf)], check=True, capture_output=True, text=True).stdout
    rows = fonts.strip().splitlines()[2:]
    assert rows and all(row.split()[-5] == "yes" for row in rows), fonts  # every font embedded
    images = subprocess.run([_poppler("pdfimages"), "-list", str(r.pdf)], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[2:]
    assert len(images) >= 5  # the five key frames' overlays (and examples of the frames not counted)
    monkeypatch.setenv("GOUT_EDGE_PAPER", "letter")
    _, letter = _exam(bundle, tmp_path / "letter", [0.9, 0.8, 0.2, 0.1, 0.1])
    info = subprocess.run([_poppler("pdfinfo"), str(letter.pdf)], check=True, capture_output=True, text=True).stdout
    assert "612 x 792 pts (letter)" in info and re.search(r"Pages:\s+1\n", info)
    monkeypatch.setenv("GOUT_EDGE_PAPER", "legal")
    with pytest.raises(UsageError, match="GOUT_EDGE_PAPER 'legal' is not a paper size.*a4 or letter"):
        ExamSession(bundle, OracleScorer(), tmp_path / "legal", dicom_results=False)


def test_key_frames_are_numbered_from_1_in_files_and_chart(bundle, tmp_path):
    from gout_edge.edge_runtime.present.report import chart_labels, key_number

    session, r = _exam(bundle, tmp_path, [0.9, 0.2, 0.7, 0.1, 0.1])
    assert [k.key_index for k in session.key_frames][:3] == [0, 1, 2]  # the journal counts from 0
    names = [p.name for p in r.overlays]
    assert names[:2] == ["overlay_01_key0001.png", "overlay_02_key0003.png"]  # p 0.9 is key frame 1, p 0.7 is 3
    assert key_number(0) == 1 and key_number(None) is None
    assert chart_labels(15, 60.0, 8.0) == list(range(15))  # room for every number
    assert chart_labels(200, 5.0, 8.0) == [0] + list(range(9, 200, 10))  # 1, 10, 20 … 200


def test_a_key_frame_below_the_cutoff_shows_no_cam_and_says_so():
    """A frame the model does not count as abnormal keeps its anatomy uncoloured: its CAM, though
    strong, is not drawn (it would read as a lesion); one above the cut-off shows it."""
    from gout_edge.edge_runtime.present.report import below_cutoff, overlay_body

    crop = screen(seed=5)[30:200, 40:280]  # grey, as a B-mode region
    hot = np.full((4, 8), 40.0, np.float32)  # the top of the scale everywhere
    below = Tile(2, 0.27, crop, hot, "a.png", 0.0, True, False)
    above = Tile(3, 0.93, crop, hot, "b.png", 0.0, True, True)
    assert below_cutoff(below, 0.5) and not below_cutoff(above, 0.5)
    assert below_cutoff(Tile(1, 0.5, crop, hot), 0.5) and not below_cutoff(Tile(1, 0.51, crop, hot), 0.5)

    def chroma(image: np.ndarray) -> float:
        region = image[image.shape[0] // 2 :, : crop.shape[1] // 2].astype(int)  # under the band, left of the legend
        return float((region.max(axis=2) - region.min(axis=2)).mean())

    assert chroma(overlay_body(below, SCALE, 600, cutoff=0.5)) < 1.0  # grey: the B-mode image alone
    assert chroma(overlay_body(above, SCALE, 600, cutoff=0.5)) > 20.0  # the CAM's colours


def test_overlay_files_carry_the_patient_and_the_exam(bundle, tmp_path):
    from gout_edge.edge_runtime.present.report import ExamIdentity, identity_line, render_overlay

    session, r = _exam(bundle, tmp_path, [0.9, 0.8, 0.7], patient="MRN-OVL-3")
    line = identity_line(ExamIdentity("MRN-OVL-3"), r.session_id, r.started_at)
    assert line.startswith("Patient MRN-OVL-3 · exam " + r.session_id)
    written = cv2.imread(str(r.overlays[0]))
    k = session.key_frames[0]
    tile = Tile(k.key_index, k.probability, np.zeros((10, 10), np.uint8), np.zeros((4, 8), np.float32))
    plain, headed = render_overlay(tile, SCALE, 600), render_overlay(tile, SCALE, 600, header=line)
    assert headed.shape[0] > plain.shape[0]  # a band above the caption
    assert written is not None and (written[:8].astype(int).sum(axis=2) < 3 * 250).any()  # drawn on the file's top


def test_no_log_line_names_the_patient_while_the_pictures_are_made(bundle, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        _exam(bundle, tmp_path, [0.9, 0.1, 0.9], blanks=1, patient="MRN-SECRET-9")
    assert "MRN-SECRET-9" not in caplog.text


# ------------------------------------------------------------------------------------ the live view


def _result(bundle, tmp_path, **flags):
    session = ExamSession(bundle, OracleScorer(), tmp_path / "live", patient="MRN-5", dicom_results=False)
    frame = Frame(screen(seed=2), 0, 0.0)
    return session, frame, dataclasses.replace(session.feed(frame), **flags)


@pytest.mark.parametrize("flags, state, counted", [
    ({"blank": True}, "blank", False), ({"colour": True}, "colour", False),
    ({"duplicate": True, "key_frame": False}, "duplicate", False), ({"key_frame": False}, "scored", False),
    ({}, "key", True)])
def test_the_live_view_says_why_a_frame_counts_or_not(bundle, tmp_path, flags, state, counted):
    session, _, result = _result(bundle, tmp_path, **flags)
    assert frame_state(result)[:2] == (state, counted)
    session.close()


def test_render_live_shrinks_by_a_whole_factor_and_draws_the_legend(bundle, tmp_path):
    session, frame, result = _result(bundle, tmp_path)
    big = Frame(cv2.resize(frame.image, (1920, 1080)), 1, 0.1)
    moved = dataclasses.replace(result, roi=dataclasses.replace(result.roi, x0=result.roi.x0 * 6, x1=result.roi.x1 * 6,
                                                               y0=result.roi.y0 * 4, y1=result.roi.y1 * 4))
    out = render_live(big, moved, session.cam_scale, status=False)
    assert out.shape[0] == 540 and out.shape[1] == 960 + cam_legend(session.cam_scale, 540, dark=True).shape[1]
    session.close()


def _request(view: WebView, method: str, path: str, headers: dict | None = None) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection(view.host, view.port, timeout=5)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body, r.getheader("Content-Type") or ""


def test_the_live_page_serves_state_picture_and_controls_and_never_the_patient(bundle, tmp_path):
    import io

    stop = Stop()
    view = open_view(True, io.StringIO(), kind="web", port=0, hold_s=0.0, stop=stop, open_browser=False)
    assert isinstance(view, WebView) and view.url.startswith("http://127.0.0.1:")
    session, frame, result = _result(bundle, tmp_path)
    assert view(frame, result, session) is True
    code, body, kind = _request(view, "GET", "/status")
    status = json.loads(body)
    assert code == 200 and status["state"] == "scanning" and status["frame"]["counted"]
    assert status["key_frames"] == 1 and status["threshold"] == 0.3 and status["cam_scale"]["hi"] > 0
    code, page, kind = _request(view, "GET", "/")
    assert code == 200 and kind.startswith("text/html") and b"gout-edge" in page and b"MRN-5" not in page
    assert b"MRN-5" not in body
    code, jpeg, kind = _request(view, "GET", "/frame.jpg")
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert kind == "image/jpeg" and picture.shape[0] == frame.image.shape[0]
    # controls need the page's header and a local Host: another site cannot end the exam
    assert _request(view, "POST", "/control?action=end")[0] == 403
    assert _request(view, "POST", "/control?action=end", {"X-Gout-Edge": "1", "Host": "evil.example"})[0] == 403
    assert _request(view, "POST", "/control?action=jump", {"X-Gout-Edge": "1"})[0] == 400
    # pause holds the exam inside view() until the page resumes it
    assert json.loads(_request(view, "POST", "/control?action=pause", {"X-Gout-Edge": "1"})[1])["state"] == "paused"
    returned = []
    worker = threading.Thread(target=lambda: returned.append(view(frame, result, session)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive() and not returned
    _request(view, "POST", "/control?action=resume", {"X-Gout-Edge": "1"})
    worker.join(5)
    assert returned == [True]
    # End: the exam's stop is requested and the view says so
    _request(view, "POST", "/control?action=end", {"X-Gout-Edge": "1"})
    assert stop.is_set() and stop.reason == "ended from the live view" and view(frame, result, session) is False
    session.close()
    view.close()
    with pytest.raises(OSError):
        _request(view, "GET", "/status")


def test_after_the_exam_the_page_shows_the_verdict_until_a_browser_has_seen_it(bundle, tmp_path):
    import io

    view = WebView(port=0, hold_s=20.0, stream=io.StringIO())
    session, frame, result = _result(bundle, tmp_path)
    view(frame, result, session)
    _request(view, "GET", "/status?viewer=page1")
    session.close()
    closer = threading.Thread(target=view.close)
    t0 = time.monotonic()
    closer.start()
    time.sleep(0.3)
    status = json.loads(_request(view, "GET", "/status?viewer=page1")[1])
    assert status["state"] == "ended" and status["verdicts"][0]["diagnosis"] == session.result().diagnosis
    assert status["verdicts"][0]["pdf"].endswith("report.pdf") and closer.is_alive()
    _request(view, "POST", "/control?action=ack&viewer=page1", {"X-Gout-Edge": "1"})
    closer.join(5)
    assert not closer.is_alive() and time.monotonic() - t0 < 5


def test_a_busy_port_is_a_usage_error_that_says_what_to_do():
    import io

    from gout_edge.errors import UsageError

    first = WebView(port=0, hold_s=0.0, stream=io.StringIO())
    try:
        with pytest.raises(UsageError, match="--live-port 0"):
            WebView(port=first.port, hold_s=0.0, stream=io.StringIO())
    finally:
        first.close()


# ------------------------------------------------------------------------------------ plain output


@pytest.mark.slow
def test_plain_scan_prints_verdict_why_and_the_files_and_the_demo_its_truth(capsys, scan_bundle_dir, tmp_path):
    code = main(["scan", "--demo", "--bundle", str(scan_bundle_dir), "--out", str(tmp_path), "--no-display",
                 "--max-frames", "40"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "phantom's true diagnosis" in out and "why" in out
    for name in ("summary.png", "report.pdf", "report.json"):
        assert name in out
    session = next(tmp_path.iterdir())
    assert (session / "report.pdf").is_file() and (session / "summary.png").is_file()
