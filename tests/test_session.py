"""Exam sessions: scoring once, the vote, the journal (crash-safe), the report, run_exam's endings."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.fakes import OracleScorer
from support.screens import screen, still

from gout_edge.edge_runtime.exam.driver import Stop, run_exam
from gout_edge.edge_runtime.exam.session import ExamSession
from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import GOUT, INDETERMINATE, NO_GOUT
from gout_edge.edge_runtime.sources import Frame, open_source
from gout_edge.errors import UsageError


@pytest.fixture(scope="module")
def bundle(scan_bundle_dir) -> Bundle:
    return open_bundle(scan_bundle_dir)


@pytest.fixture(scope="module")
def scorer(bundle):
    s = Scorer(bundle, threads=1)
    yield s
    s.close()


def journal_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_identical_frames_are_scored_once(bundle, scorer, tmp_path):
    calls = []

    class Counting:
        backend, precision, guard = scorer.backend, scorer.precision, scorer.guard

        def score_prepared(self, frames):
            calls.append(len(frames))
            return scorer.score_prepared(frames)

    with ExamSession(bundle, Counting(), tmp_path / "s") as session:
        results = [session.feed(Frame(screen(seed=1), i, i / 30)) for i in range(6)]
    assert sum(calls) == 1 and session.tally.frames_scored == 1 and session.tally.duplicates == 5
    assert [r.duplicate for r in results] == [False] + [True] * 5
    assert len({r.probability for r in results}) == 1 and results[0].key_frame
    assert not any(r.key_frame for r in results[1:])


def test_too_few_key_frames_is_indeterminate_never_a_guess(bundle, tmp_path):
    oracle = OracleScorer()
    oracle.next = 0.99
    session = ExamSession(bundle, oracle, tmp_path / "s")
    for i in range(2):
        session.feed(still(i))
    result = session.close()
    assert result.key_frames == 2 and result.diagnosis == INDETERMINATE and "at least 3" in str(result.reason)
    report = json.loads(result.report.read_text())
    assert report["diagnosis"] == INDETERMINATE and report["abnormal_fraction"] == 1.0


@pytest.mark.parametrize("probabilities, diagnosis", [([0.9, 0.1, 0.1, 0.1], NO_GOUT), ([0.9, 0.8, 0.1, 0.1], GOUT)])
def test_the_vote_is_the_papers_fraction_against_the_threshold(bundle, tmp_path, probabilities, diagnosis):
    oracle = OracleScorer()
    with ExamSession(bundle, oracle, tmp_path / "s") as session:
        for i, p in enumerate(probabilities):
            oracle.next = p
            r = session.feed(still(i))
            assert r.key_frame and r.probability == p
    result = session.result()
    assert result.diagnosis == diagnosis and result.threshold == 0.3
    assert result.abnormal_fraction == pytest.approx(sum(p > 0.5 for p in probabilities) / 4)


def test_blank_and_colour_frames_are_flagged_unscored_and_kept_out_of_the_vote(bundle, tmp_path):
    oracle = OracleScorer()
    session = ExamSession(bundle, oracle, tmp_path / "s")
    blank = session.feed(Frame(np.zeros((240, 320), np.uint8), 0, 0.0, still=True))
    doppler = session.feed(Frame(screen(seed=1, colour=True), 1, 0.1, still=True))
    grey = session.feed(still(2))
    result = session.close()
    assert blank.blank and blank.probability is None and not blank.key_frame
    assert doppler.colour and doppler.probability is None and not doppler.key_frame
    assert grey.key_frame and oracle.calls == 1
    assert (result.blank_frames, result.colour_frames, result.key_frames) == (1, 1, 1)


def test_every_key_frame_is_journalled_before_feed_returns_and_the_report_is_complete(bundle, tmp_path, caplog):
    oracle = OracleScorer()
    out = tmp_path / "s"
    with caplog.at_level(logging.INFO):
        session = ExamSession(bundle, oracle, out, patient="MRN-7781")
        for i in range(8):
            oracle.next = 0.05 + 0.1 * i
            r = session.feed(still(i))
            lines = journal_lines(out / "journal.jsonl")
            keys = [rec for rec in lines if rec["type"] == "key_frame"]
            assert len(keys) == r.key_frames  # on disk before we see it
            assert keys[-1]["probability"] == pytest.approx(oracle.next)
        result = session.close()
    lines = journal_lines(out / "journal.jsonl")
    assert lines[0]["type"] == "session" and lines[0]["patient_id"] == "MRN-7781"
    assert lines[-1]["type"] == "end" and lines[-1]["diagnosis"] == result.diagnosis
    report = json.loads((out / "report.json").read_text())
    assert report["patient_id"] == "MRN-7781" and report["key_frames"] == 8
    assert len(report["key_frame_list"]) == 8 and report["bundle"]["checkpoint_sha256"]
    # the six most abnormal key frames as CAM overlays, most abnormal first; a summary image
    assert [Path(p).name[:10] for p in report["overlays"]] == [f"overlay_{i:02d}" for i in range(1, 7)]
    assert Path(report["overlays"][0]).name.endswith("key0008.png")  # key_index 7: key frame 8, numbered from 1
    assert (out / "summary.png").stat().st_size > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert "MRN-7781" not in caplog.text and session.session_id in caplog.text
    with pytest.raises(UsageError, match="closed"):
        session.feed(still(9))
    with pytest.raises(UsageError, match="already holds a session journal"):
        ExamSession(bundle, oracle, out)


CRASH_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from pathlib import Path
    from gout_edge.edge_runtime.inference.loading import open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer
    from gout_edge.edge_runtime.exam.session import ExamSession
    from gout_edge.edge_runtime.sources import Frame
    bundle = open_bundle(sys.argv[1])
    session = ExamSession(bundle, Scorer(bundle, threads=1), Path(sys.argv[2]), patient="P-crash")
    rng = np.random.default_rng(0)
    i = 0
    while True:
        image = np.zeros((240, 320), np.uint8)
        image[30:200, 40:280] = rng.integers(20, 255, (170, 240), dtype=np.uint8)
        result = session.feed(Frame(image, i, i / 30, still=True))
        if result.key_frame:
            print("shown", result.key_frames, flush=True)
        i += 1
""")


def test_a_process_killed_mid_exam_leaves_a_journal_with_every_key_frame_it_showed(bundle, tmp_path):
    out = tmp_path / "crash"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(bundle.root), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = 0
    try:
        for line in proc.stdout:
            shown = int(line.split()[1])
            if shown >= 12:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert shown >= 12, proc.stderr.read()
    raw = (out / "journal.jsonl").read_text()
    assert raw.endswith("\n")
    lines = [json.loads(line) for line in raw.splitlines()]  # every line intact JSON
    keys = [rec for rec in lines if rec["type"] == "key_frame"]
    assert len(keys) >= shown and [k["key_index"] for k in keys] == list(range(len(keys)))
    assert not (out / "report.json").exists()


# -- run_exam ---------------------------------------------------------------------------------


class OracleFeed:
    """Wraps a file source and sets the oracle's probability from ground truth as each frame passes."""

    kind = "oracle-feed"
    live = False
    lost = False
    end_reason = None
    complete = True
    skipped = ()
    read_ahead = 0

    def defer_decoding(self):
        return None

    def __init__(self, source, oracle, label_of):
        self.source, self.oracle, self.label_of = source, oracle, label_of

    def __iter__(self):
        for frame in self.source:
            self.oracle.next = 0.9 if self.label_of(frame) else 0.1
            yield frame

    def close(self):
        self.source.close()


def test_phantom_video_end_to_end_gives_the_truth_for_clear_cases(bundle, phantom_dir, tmp_path):
    data = phantom_dir
    truth = json.loads((data / "ground_truth.json").read_text())
    for patient in truth["patients"]:
        pid = patient["patient_id"]
        frames_truth = json.loads((data / "video" / f"{pid}.json").read_text())["frames"]
        video = next((data / "video").glob(f"{pid}.*[!n]"))  # .mp4 or .avi, not the .json
        oracle = OracleScorer()
        labels = [f["image_label"] for f in frames_truth]
        feed = OracleFeed(open_source("video", video, patient=pid), oracle, lambda f, labels=labels: labels[f.index])
        result = run_exam(feed, bundle, oracle, tmp_path / pid)
        (p,) = result.patients
        assert p.diagnosis == (GOUT if patient["diagnosis"] == "gout" else NO_GOUT), p
        assert p.patient_id == pid and p.key_frames >= 6 and p.duplicates >= 5  # freezes scored once
        assert p.frames_seen == len(frames_truth) and oracle.calls == p.frames_scored < p.frames_seen


def test_phantom_dicom_studies_end_to_end_one_result_per_patient(bundle, phantom_dir, tmp_path):
    data = phantom_dir
    truth = {p["patient_id"]: p for p in json.loads((data / "ground_truth.json").read_text())["patients"]}
    labels = {img["dicom"]: img["image_label"] for p in truth.values() for img in p["images"]}

    def label_of(frame):
        rel = frame.origin.split()[0]  # "P0001/IM01_dorsal.dcm", or "P0001/CINE.dcm frame 3"
        pid, name = rel.split("/")
        if name == "CINE.dcm":  # the cine shows the dorsal view
            return any(img["image_label"] for img in truth[pid]["images"] if img["view"] == "dorsal")
        return labels[f"dicom/{rel}"]

    oracle = OracleScorer()
    result = run_exam(OracleFeed(open_source("dicom", data / "dicom"), oracle, label_of), bundle, oracle, tmp_path)
    assert [p.patient_id for p in result.patients] == ["P0001", "P0002"]
    for p in result.patients:
        assert p.diagnosis == (GOUT if truth[p.patient_id]["diagnosis"] == "gout" else NO_GOUT)
        assert p.report.exists() and p.session_dir.parent == tmp_path
    assert result.patients[0].ended_by == "end of this patient's frames"
    assert len({p.session_dir for p in result.patients}) == 2


def test_run_exam_ends_on_limits_stop_and_the_live_view(bundle, tmp_path):
    oracle = OracleScorer()
    images = [screen(seed=i) for i in range(30)]

    class Stills:
        kind, live, lost, end_reason = "stills", False, False, None
        complete, skipped, read_ahead = True, (), 0  # the rest of the FrameSource Protocol

        def defer_decoding(self):
            return None

        def __iter__(self):
            return (Frame(img, i, float(i), still=True) for i, img in enumerate(images))

        def close(self):
            pass

    r = run_exam(Stills(), bundle, oracle, tmp_path / "a", max_frames=7)
    assert r.frames_seen == 7 and "frame limit" in r.ended_by and r.patients[0].ended_by == r.ended_by
    stop = Stop()
    r = run_exam(Stills(), bundle, oracle, tmp_path / "b", stop=stop,
                 on_frame=lambda f, res, s: stop.request("stopped by SIGINT") if f.index == 4 else None)
    assert r.frames_seen == 5 and r.ended_by == "stopped by SIGINT" and r.patients[0].report.exists()
    r = run_exam(Stills(), bundle, oracle, tmp_path / "c", on_frame=lambda f, res, s: f.index < 2)
    assert r.frames_seen == 3 and r.ended_by == "stopped from the live view"


def test_a_lost_device_ends_the_exam_with_what_was_gathered(bundle, tmp_path):
    oracle = OracleScorer()

    class Dying:
        kind, live, lost, end_reason = "v4l2", True, False, None
        complete, skipped, read_ahead = True, (), 0  # the rest of the FrameSource Protocol

        def defer_decoding(self):
            return None

        def __iter__(self):
            for i in range(4):
                yield Frame(screen(seed=i, rect=(40, 30, 280, 200)), i, float(i))
            self.lost, self.end_reason = True, "capture lost: capture device /dev/video0 gave no frames"

        def close(self):
            pass

    r = run_exam(Dying(), bundle, oracle, tmp_path)
    assert r.capture_lost and r.ended_by.startswith("capture lost") and r.frames_seen >= 1
    p = r.patients[0]
    assert not p.complete and p.report.exists() and json.loads(p.report.read_text())["complete"] is False


def test_an_exam_without_a_single_frame_still_reports(bundle, tmp_path):
    class Nothing:
        kind, live, lost, end_reason = "v4l2", True, False, None
        complete, skipped, read_ahead = True, (), 0  # the rest of the FrameSource Protocol

        def defer_decoding(self):
            return None

        def __iter__(self):
            return iter(())

        def close(self):
            pass

    r = run_exam(Nothing(), bundle, OracleScorer(), tmp_path, patient="42")
    (p,) = r.patients
    assert p.diagnosis == INDETERMINATE and p.key_frames == 0 and p.patient_id == "42" and p.report.exists()


def test_capture_to_result_latency_is_journalled_and_reported(bundle, scorer, phantom_dir, tmp_path):
    """As the scan really runs: a capture thread (latest wins) ahead of the model; each key frame's
    journal line carries its capture-to-result time, the report its p50/p99 and the frame rate."""
    data = phantom_dir
    video = next(p for p in (data / "video").iterdir() if p.suffix != ".json")
    result = run_exam(open_source("video", video), bundle, scorer, tmp_path, latest_wins=True, max_frames=25)
    (p,) = result.patients
    lines = [json.loads(line) for line in p.journal.read_text().splitlines()]
    keys = [line for line in lines if line.get("type") == "key_frame"]
    assert keys and all(k["capture_to_result_ms"] > 0 for k in keys)
    timing = json.loads(p.report.read_text())["timing"]
    assert timing["frames"] == p.frames_seen > 0 and timing["frames_per_s"] > 0  # latest wins: a busy machine drops
    assert timing["capture_to_result_ms"]["p50"] >= timing["feed_ms"]["p50"] > 0  # queueing included
    assert timing["capture_to_result_ms"]["p99"] >= timing["capture_to_result_ms"]["p50"]


def test_frames_fed_without_a_capture_time_report_feed_latency_only(bundle, scorer, tmp_path):
    with ExamSession.start(bundle, scorer, scans=tmp_path) as session:
        for seed in range(3):
            session.feed(screen(seed=seed))
    timing = session.result().timing
    assert timing["frames"] == 3 and timing["feed_ms"]["p50"] > 0 and timing["capture_to_result_ms"] is None


def test_one_session_is_one_patient_and_refuses_a_second_one(bundle, tmp_path):
    """The API never merges two patients into one verdict: a frame of another patient or study
    group is refused with a clear error, and the session's journal and report stay intact."""
    with ExamSession(bundle, OracleScorer(), tmp_path / "s", dicom_results=False) as session:
        session.feed(Frame(screen(seed=1), 0, 0.0, group="P0001", patient_id="P0001", still=True))
        with pytest.raises(UsageError, match="another patient or study") as err:
            session.feed(Frame(screen(seed=2), 1, 0.0, group="P0002", patient_id="P0002", still=True))
        assert "P0002" not in str(err.value) and "P0001" not in str(err.value)  # no identifier in the message
        session.feed(Frame(screen(seed=3), 2, 0.0, group="P0001", patient_id="P0001", still=True))
    assert session.result().frames_seen == 2 and session.result().report.is_file()


def test_a_time_that_cannot_be_one_is_replaced_not_carried_into_the_report(bundle, tmp_path):
    with ExamSession(bundle, OracleScorer(), tmp_path / "s", dicom_results=False) as session:
        for i, t in enumerate([float("nan"), -3.0, float("inf"), 1e309]):
            result = session.feed(Frame(screen(seed=i), i, t))
            assert math.isfinite(result.timestamp_s) and result.timestamp_s >= 0
    assert session.result().report.is_file()
