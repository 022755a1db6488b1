"""`gout-edge calibrate` and `gout-edge evaluate` end to end on the toy data set and a small
FP32 bundle (random weights: these tests check plumbing and consistency, not accuracy)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from gout_edge.calibration.index import read_index
from gout_edge.calibration.stats import auc
from gout_edge.calibration.threshold import GRID, fit_threshold
from gout_edge.cli import main
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.errors import BundleTamperedError
from gout_edge.manifest import read_manifest, write_manifest
from gout_edge.signing import SIGNATURE_NAME, generate_keypair, sign_manifest


@pytest.fixture
def bundle(small_bundle, tmp_path, monkeypatch):
    """A private copy of the session's small bundle (calibrate rewrites its manifest), without its
    scope guard: the random-weight model finds every toy image out of scope (tests/test_scope.py
    covers the guard)."""
    monkeypatch.delenv("GOUT_EDGE_PUBLIC_KEY", raising=False)
    result, _ = small_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(result.bundle, copy)
    write_manifest(copy, dataclasses.replace(result.manifest, scope=None))
    monkeypatch.chdir(tmp_path)  # default reports go to ./gout-edge-reports
    return copy


def _report(bundle, kind):
    """The one default report folder of ``kind`` (calibration, evaluation) for ``bundle``."""
    (folder,) = (bundle.parent / "gout-edge-reports").glob(f"{kind}-{bundle.name}-*")
    return folder


def _run_json(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _cart_fractions(bundle, table, tmp_path):
    """Each patient's abnormal fraction and key frames as the cart gives them: its images copied
    into a folder of its own and scanned (``run_exam`` over the images source)."""
    from gout_edge.edge_runtime.exam.driver import run_exam
    from gout_edge.edge_runtime.inference.scoring import Scorer
    from gout_edge.edge_runtime.sources import open_source

    opened = open_bundle(bundle)
    scorer = Scorer(opened, threads=1)
    out = {}
    try:
        for rec in table.patients():
            folder = tmp_path / "cart" / rec.patient_id
            folder.mkdir(parents=True)
            for i in rec.rows:
                shutil.copy(table.rows[i].image, folder / table.rows[i].image.name)
            (p,) = run_exam(open_source("images", folder), opened, scorer, tmp_path / "cart-scans" / rec.patient_id).patients
            out[rec.patient_id] = (p.abnormal_fraction, p.key_frames)
    finally:
        scorer.close()
    return out


def _set_decision(bundle, **changes):
    m = read_manifest(bundle)
    write_manifest(bundle, dataclasses.replace(m, decision=dataclasses.replace(m.decision, **changes)))


def test_evaluate_calibrate_evaluate_round_trip(bundle, toy_csv, capsys, tmp_path):
    files_before = {p.name for p in bundle.iterdir()}
    labels = read_index(toy_csv).labels

    # 1. an uncalibrated bundle: image-level figures, every patient indeterminate
    doc = _run_json(capsys, "evaluate", "--bundle", str(bundle), "--data", str(toy_csv), "--json")
    (model,) = doc["models"]
    assert doc["comparison"] is None and len(doc["images"]) == 48
    assert doc["not_for_clinical_use"] is False  # provenance "unknown"
    probs = np.array([img["probability"] for img in doc["images"]])
    assert [img["label"] for img in doc["images"]] == labels.tolist()
    image = model["image_level"]
    assert image["auc"]["auc"] == pytest.approx(auc(labels, probs), abs=1e-12)
    for metric in ("accuracy", "sensitivity", "specificity"):
        p = image[metric]
        assert p["ci_low"] <= p["estimate"] <= p["ci_high"] and p["n"] > 0
    assert image["accuracy"]["n"] == 48 and image["sensitivity"]["n"] == int(labels.sum())
    patient = model["patient_level"]
    assert patient["calibrated"] is False and patient["decided"] == 0 and patient["accuracy"] is None
    assert {p["decision"] for p in patient["patients"]} == {"indeterminate"} and len(patient["patients"]) == 8
    report = _report(bundle, "evaluation")
    for name in ("roc.png", "confusion.png", "evaluation.json"):
        assert (report / name).is_file()
    assert cv2.imread(str(report / "roc.png")).shape[2] == 3

    # 2. a random model sits near one probability: move the image cut-off to the median so
    #    that patients differ in their abnormal fraction
    cutoff = float(np.median(probs))
    _set_decision(bundle, image_cutoff=cutoff)
    doc = _run_json(capsys, "calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--folds", "4", "--json")
    table = read_index(toy_csv)
    cart = _cart_fractions(bundle, table, tmp_path)  # what scan --images makes of each patient's folder
    assert len(set(cart.values())) > 1, "the test needs patients that differ"
    fractions = np.array([p["fraction"] for p in doc["patients"]])
    assert fractions == pytest.approx([cart[rec.patient_id][0] for rec in table.patients()], abs=1e-12)
    assert [p["label"] for p in doc["patients"]] == [rec.label for rec in table.patients()]
    assert [p["images"] for p in doc["patients"]] == [cart[rec.patient_id][1] for rec in table.patients()]
    threshold = doc["threshold"]
    assert threshold in GRID.tolist()
    assert threshold == fit_threshold(fractions, [p["label"] for p in doc["patients"]]).threshold
    cv = doc["cross_validation"]
    assert cv["k"] == 4 and len(cv["folds"]) == 4 and sum(f["test_patients"] for f in cv["folds"]) == 8
    assert all(f["threshold"] in GRID.tolist() for f in cv["folds"])

    opened = open_bundle(bundle)  # hashes still fine
    d = opened.manifest.decision
    assert d.patient_threshold == threshold and d.calibrated and d.image_cutoff == cutoff
    assert table.sha256[:16] in d.source and "8 patients" in d.source and "\n" not in d.source
    assert opened.manifest.evaluation.threshold_calibration["threshold"] == threshold
    assert {p.name for p in bundle.iterdir()} == files_before  # the report stays outside
    figure = _report(bundle, "calibration") / "threshold-accuracy.png"
    assert cv2.imread(str(figure)) is not None and (figure.parent / "calibration.json").is_file()

    # 3. evaluate now uses the threshold, through the runtime's vote
    doc = _run_json(capsys, "evaluate", "--bundle", str(bundle), "--data", str(toy_csv), "--json")
    patient = doc["models"][0]["patient_level"]
    assert patient["calibrated"] and patient["threshold"] == threshold and patient["decided"] == 8
    decisions = [p["decision"] for p in patient["patients"]]
    assert decisions == ["gout" if f > threshold else "no gout" for f in fractions]
    assert patient["accuracy"]["n"] == 8


def test_calibrate_re_signs_with_a_key(bundle, toy_csv, tmp_path, capsys):
    key, pub = generate_keypair(tmp_path / "owner")
    sign_manifest(bundle, key)
    old_sig = (bundle / SIGNATURE_NAME).read_bytes()
    _run_json(capsys, "calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--folds", "2",
              "--sign-key", str(key), "--json")
    assert (bundle / SIGNATURE_NAME).read_bytes() != old_sig
    opened = open_bundle(bundle, public_key=pub)  # the new manifest verifies
    assert opened.manifest.decision.calibrated
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # no scratch left behind


def test_calibrate_without_a_key_removes_the_stale_signature(bundle, toy_csv, tmp_path, capsys, caplog):
    key, pub = generate_keypair(tmp_path / "owner")
    sign_manifest(bundle, key)
    with caplog.at_level(logging.WARNING):
        doc = _run_json(capsys, "calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--folds", "0", "--json")
    assert doc["signature_removed"] is True and doc["cross_validation"] is None
    assert not (bundle / SIGNATURE_NAME).exists()
    assert any(SIGNATURE_NAME in r.getMessage() for r in caplog.records)
    open_bundle(bundle)  # fine on a device without a key
    with pytest.raises(BundleTamperedError):
        open_bundle(bundle, public_key=pub)  # a device that requires signatures refuses it


def test_an_unusable_key_changes_nothing(bundle, toy_csv, tmp_path, capsys):
    key, _ = generate_keypair(tmp_path / "owner")
    sign_manifest(bundle, key)
    manifest, sig = (bundle / "manifest.json").read_bytes(), (bundle / SIGNATURE_NAME).read_bytes()
    bad = tmp_path / "not-a-key.key"
    bad.write_text("nonsense")
    code = main(["calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--folds", "2", "--sign-key", str(bad)])
    assert code == 3 and "Traceback" not in capsys.readouterr().err
    assert (bundle / "manifest.json").read_bytes() == manifest and (bundle / SIGNATURE_NAME).read_bytes() == sig


def test_evaluate_compare_table_and_not_for_clinical_use(bundle, toy_csv, capsys):
    m = read_manifest(bundle)
    write_manifest(bundle, dataclasses.replace(m, model=dataclasses.replace(m.model, provenance="trained on synthetic phantoms")))
    # same bundle at fp32 (its only precision): identical scores, so every test gives p = 1
    assert main(["evaluate", "--bundle", str(bundle), "--data", str(toy_csv), "--compare", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "not for clinical use" in out and "AUC" in out and "SEN %" in out and "not calibrated" in out

    doc = json.loads((_report(bundle, "evaluation") / "evaluation.json").read_text())
    cmp = doc["comparison"]
    assert len(doc["models"]) == 2 and cmp["auc_delong"]["p_value"] == 1.0
    assert set(cmp["image_mcnemar"]) == {"accuracy", "sensitivity", "specificity"}
    assert all(t["b"] == t["c"] == 0 and t["p_value"] == 1.0 for t in cmp["image_mcnemar"].values())
    assert cmp["patient_mcnemar"] is None  # not calibrated
    assert all(img["probability_compare"] == img["probability"] for img in doc["images"])
    assert doc["not_for_clinical_use"] is True


def test_usage_errors_exit_2(bundle, toy_csv, capsys):
    assert main(["evaluate", "--bundle", str(bundle), "--data", str(toy_csv), "--compare", str(bundle.parent / "nope")]) == 2
    assert main(["calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--out", str(bundle / "report")]) == 2
    assert not (bundle / "report").exists()
    assert "--compare" in capsys.readouterr().err


def test_evaluate_record_writes_the_held_out_summary_into_a_signed_manifest(bundle, toy_csv, tmp_path, capsys):
    key, pub = generate_keypair(tmp_path / "owner")
    doc = _run_json(capsys, "evaluate", "--bundle", str(bundle), "--data", str(toy_csv), "--record",
                    "--sign-key", str(key), "--json")
    held_out = open_bundle(bundle, public_key=pub).manifest.evaluation.held_out
    model = doc["models"][0]
    assert held_out["image_auc"]["auc"] == pytest.approx(model["image_level"]["auc"]["auc"])
    assert held_out["images"] == 48 and held_out["patients"] == 8
    assert held_out["data_sha256"] == read_index(toy_csv).sha256


def test_a_calibrated_bundle_still_verifies(bundle, toy_csv, tmp_path, capsys):
    """calibrate refreshes the reference patients' expected decisions for its new threshold."""
    _set_decision(bundle, image_cutoff=0.45)
    _run_json(capsys, "calibrate", "--bundle", str(bundle), "--data", str(toy_csv), "--folds", "2", "--json")
    assert main(["verify", str(bundle), "--latency-frames", "0", "--out", str(tmp_path / "record.json")]) == 0
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["bundle"]["manifest_sha256"]
