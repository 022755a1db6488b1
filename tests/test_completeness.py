"""Exam completeness: a verdict needs key frames that stand for the protocol — spread over time
for moving input, over the protocol's views where they are known — else indeterminate, saying
what is missing. No firm answer from two seconds of one view."""

from __future__ import annotations

import shutil

import pytest

from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.imaging.views import view_named
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import INDETERMINATE, Vote, missing_coverage
from gout_edge.edge_runtime.sources import open_source
from gout_edge.manifest import DecisionSpec
from gout_edge.phantom import write_phantoms
from gout_edge.phantom.source import PhantomSource

DECISION = DecisionSpec(patient_threshold=0.2, calibrated=True)


@pytest.fixture(scope="module")
def scorer(scan_bundle_dir):
    bundle = open_bundle(scan_bundle_dir)
    s = Scorer(bundle, threads=1)
    yield s
    s.close()


def test_views_are_read_from_file_names():
    assert view_named("IM03_medial.dcm") == "medial" and view_named("P0001/07_plantar.png") == "plantar"
    assert view_named("dorsal/frame2.png") == "dorsal"
    assert view_named("CINE.dcm#4") is None and view_named("frame 12") is None
    assert view_named("dorsal-medial.png") is None  # two views named: not known
    assert view_named("IM04_dorsal.dcm", also=["medial"]) is None  # name and tags disagree: not known
    assert view_named("IM04.dcm", also=["medial"]) == "medial" and view_named("IM04_medial.dcm", also=["medial"]) == "medial"


def _votes(times, stills, views):
    return [Vote(0.5, t, still, v) for t, still, v in zip(times, stills, views, strict=True)]


def test_coverage_rules():
    moving = [False] * 6
    short = missing_coverage(_votes([0, 0.4, 0.8, 1.2, 1.6, 2.0], moving, [None] * 6), DECISION)
    assert short is not None and "cover only 2.0 s" in short.text() and short.span_s == 2.0
    assert missing_coverage(_votes([0, 1, 2, 3, 4, 5], moving, [None] * 6), DECISION) is None
    stills = [True] * 6
    views = ["dorsal", "dorsal", "medial", "medial", "dorsal", "medial"]
    gap = missing_coverage(_votes([0] * 6, stills, views), DECISION)
    assert gap is not None and gap.missing == ("plantar",) and "plantar" in gap.text()
    assert missing_coverage(_votes([0] * 6, stills, [*views[:5], "plantar"]), DECISION) is None
    assert missing_coverage(_votes([0] * 6, stills, [None] * 6), DECISION) is None  # views unknown: not required


def test_two_seconds_of_video_give_no_firm_answer(scorer, tmp_path):
    source = PhantomSource(seed=0, patient_index=0, realtime=False, workdir=tmp_path / "demo")
    result = run_exam(source, scorer.bundle, scorer, tmp_path / "short", max_frames=24)  # 2 s at 12 frames/s
    (p,) = result.patients
    assert p.diagnosis == INDETERMINATE and "scan longer" in str(p.reason), p.reason
    source = PhantomSource(seed=0, patient_index=0, realtime=False, workdir=tmp_path / "demo2")
    (full,) = run_exam(source, scorer.bundle, scorer, tmp_path / "full").patients
    assert full.diagnosis != INDETERMINATE, full.reason


def test_stills_missing_a_view_are_indeterminate_and_say_which(scorer, tmp_path):
    write_phantoms(tmp_path / "data", 1, seed=2, formats=("png",))
    (folder,) = (tmp_path / "data" / "images").iterdir()
    partial = tmp_path / "partial"
    partial.mkdir()
    for png in folder.glob("*.png"):
        if "plantar" not in png.name:
            shutil.copy(png, partial / png.name)
    (p,) = run_exam(open_source("images", partial), scorer.bundle, scorer, tmp_path / "scans").patients
    assert p.diagnosis == INDETERMINATE and "plantar view" in str(p.reason), p.reason
    (whole,) = run_exam(open_source("images", folder), scorer.bundle, scorer, tmp_path / "scans2").patients
    assert whole.diagnosis != INDETERMINATE, whole.reason


def test_stills_give_the_same_probability_through_scan_and_evaluate(scorer, tmp_path):
    """Each still gets its own region: scanning a folder and scoring each file alone (what
    ``evaluate`` does) agree on every image to 1e-6."""
    from gout_edge.edge_runtime.sources.images import load_image

    write_phantoms(tmp_path / "data", 2, seed=5, formats=("png",))
    root = tmp_path / "data" / "images"
    result = run_exam(open_source("images", root), scorer.bundle, scorer, tmp_path / "scans")
    scanned = {k.origin: k.probability for p in result.patients for k in p.key_frame_list}
    assert len(scanned) >= 15
    for origin, p in scanned.items():
        alone = scorer.score([load_image(root / origin)])[0].probability
        assert abs(alone - p) <= 1e-6, (origin, alone, p)


@pytest.mark.slow
def test_evaluate_says_what_the_cart_says_for_every_patient(demo, tmp_path):
    """The model owner's ``evaluate`` and the cart's ``scan --images`` give every patient of a phantom
    set the same verdict and reason — including a patient whose plantar view is missing, whom
    ``evaluate`` used to call "gout" while the cart said indeterminate (issue 20). Demo bundle
    (trained, calibrated, with its scope guard), so the verdicts are real ones."""
    import csv

    from gout_edge.calibration.evaluate import EvaluationConfig, evaluate
    from gout_edge.edge_runtime.inference.loading import default_bundle_path

    write_phantoms(tmp_path / "data", 4, seed=2, formats=("png",))
    images = tmp_path / "data" / "images"
    first = sorted(images.iterdir())[0]
    for png in first.glob("*plantar*.png"):
        png.unlink()
    index = tmp_path / "data" / "index.csv"
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if (index.parent / r["image"]).is_file()]
    assert len(kept) < len(rows)
    with index.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)

    bundle, scorer = demo  # the session's demo bundle and its two-thread scorer; evaluate on two threads too
    cart = {p.patient_id: p for p in run_exam(open_source("images", images), bundle, scorer, tmp_path / "scans").patients}
    owner = {p.patient_id: p for p in evaluate(EvaluationConfig(default_bundle_path(), index, threads=2,
                                                                 out=tmp_path / "evaluation")).model.patient.patients}
    assert set(cart) == set(owner) and len(cart) == 4
    for pid, p in cart.items():
        assert (owner[pid].diagnosis, owner[pid].reason) == (p.diagnosis, p.reason), pid
        assert owner[pid].key_frames == p.key_frames and owner[pid].abnormal_key_frames == p.abnormal_key_frames
    missing = cart[first.name]
    assert missing.diagnosis == INDETERMINATE and missing.reason.missing == ("plantar",), missing.reason
    assert any(p.diagnosis != INDETERMINATE for p in cart.values())  # real verdicts, not only refusals
