"""DICOM results of an exam (docs/design.md §12): the structured report and the secondary captures
every session writes — filed in the source's patient and study (DICOM input) or a new study for the
patient named (video), coded verdicts, references to the key images — checked by reading them back
and with the real validators: dicom3tools' ``dciodvfy`` and DCMTK's ``dsrdump``."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from dicom_tools import require
from support.fakes import OracleScorer
from support.screens import still

from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.exam.session import ExamSession
from gout_edge.edge_runtime.pipeline.results import BundleIdentity
from gout_edge.edge_runtime.present.dicom_results import (
    GOUT,
    PRESENCE,
    result_files,
    write_dicom_results,
)
from gout_edge.edge_runtime.sources import open_source

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _exam(source, demo, out: Path, **kw):
    bundle, scorer = demo
    try:
        return run_exam(source, bundle, scorer, out, **kw)
    finally:
        source.close()


@pytest.fixture(scope="module")
def dicom_exam(demo, phantom_dir, tmp_path_factory):
    return _exam(open_source("dicom", phantom_dir / "dicom" / "P0001"), demo, tmp_path_factory.mktemp("dicom-exam")).patients[0]


@pytest.fixture(scope="module")
def video_exam(demo, phantom_dir, tmp_path_factory):
    video = next(p for p in (phantom_dir / "video").iterdir() if p.stem == "P0002" and p.suffix in (".mp4", ".avi"))
    out = tmp_path_factory.mktemp("video-exam")
    return _exam(open_source("video", str(video), patient="VID-0042"), demo, out, patient="VID-0042", max_frames=24).patients[0]


def _sources(folder: Path) -> dict[str, pydicom.Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm")))}


def _objects(result) -> tuple[pydicom.Dataset, list[pydicom.Dataset]]:
    datasets = [pydicom.dcmread(p) for p in result.dicom]
    sr = [d for d in datasets if d.SOPClassUID == COMPREHENSIVE_SR]
    assert len(sr) == 1
    return sr[0], [d for d in datasets if d.SOPClassUID == SECONDARY_CAPTURE]


def _items(seq):
    for item in seq:
        yield item
        yield from _items(item.get("ContentSequence", []))


def _image_refs(sr) -> list[tuple[str, int | None]]:
    out = []
    for item in _items(sr.ContentSequence):
        if item.ValueType == "IMAGE":
            ref = item.ReferencedSOPSequence[0]
            frames = ref.get("ReferencedFrameNumber")
            out.append((str(ref.ReferencedSOPInstanceUID), None if frames is None else int(frames)))
    return out


def _verdict(sr) -> str:
    (item,) = [i for i in _items(sr.ContentSequence) if i.ValueType == "CODE"
               and i.ConceptNameCodeSequence[0].CodeValue == GOUT[0]]
    return str(item.ConceptCodeSequence[0].CodeValue)


def _num(sr, meaning: str) -> float | None:
    for item in _items(sr.ContentSequence):
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeMeaning == meaning:
            return float(item.MeasuredValueSequence[0].NumericValue)
    return None


def test_a_dicom_exam_files_its_sr_and_sc_in_the_source_patient_and_study(dicom_exam, phantom_dir):
    sources = _sources(phantom_dir / "dicom" / "P0001")
    first = next(iter(sources.values()))
    report = json.loads(dicom_exam.report.read_text())
    assert report["dicom"] == [str(p) for p in dicom_exam.dicom] and all(p.is_file() for p in dicom_exam.dicom)
    assert all(p.parent == dicom_exam.session_dir / "dicom" for p in dicom_exam.dicom)
    sr, captures = _objects(dicom_exam)
    assert len(captures) == 1 + len(dicom_exam.overlays)  # the summary and each CAM overlay
    for ds in (sr, *captures):
        assert ds.PatientID == "P0001" and str(ds.PatientName) == str(first.PatientName)
        assert ds.StudyInstanceUID == first.StudyInstanceUID and ds.AccessionNumber == first.AccessionNumber
        assert ds.SeriesInstanceUID not in {s.SeriesInstanceUID for s in sources.values()}  # new series …
        assert ds.SOPInstanceUID not in sources  # … and new instances
    assert sr.SeriesInstanceUID != captures[0].SeriesInstanceUID and len({c.SeriesInstanceUID for c in captures}) == 1
    assert sr.Modality == "SR" and {c.Modality for c in captures} == {"OT"}
    # the SR references each key frame's source image (and frame of the cine) by SOP Instance UID
    refs = _image_refs(sr)
    source_refs = {r for r in refs if r[0] in sources}
    key_origins = {k.origin for k in dicom_exam.key_frame_list}
    assert len(source_refs) == len(key_origins) == dicom_exam.key_frames
    assert any(frame is not None for _, frame in source_refs)  # cine key frames name their frame
    captured = {str(c.SOPInstanceUID) for c in captures}
    assert {r[0] for r in refs} - set(sources) == captured  # and the image library lists the captures
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert {r[0] for r in source_refs} | captured <= evidence
    overlays = [c for c in captures if "SourceImageSequence" in c]
    assert len(overlays) == len(dicom_exam.overlays)
    assert all(c.SourceImageSequence[0].ReferencedSOPInstanceUID in sources for c in overlays)
    assert all("NOT FOR CLINICAL USE" in c.SeriesDescription for c in captures)
    # the summary draws the patient and exam identity on the picture; CAM overlays carry labels only
    summary = [c for c in captures if "SourceImageSequence" not in c]
    assert len(summary) == 1 and summary[0].BurnedInAnnotation == "YES"
    assert all(c.BurnedInAnnotation == "NO" for c in overlays)
    assert _verdict(sr) == PRESENCE[dicom_exam.diagnosis][0]
    assert _num(sr, "Abnormal fraction of key frames") == pytest.approx(dicom_exam.abnormal_fraction)
    assert _num(sr, "Threshold Value") == pytest.approx(dicom_exam.threshold)
    assert _num(sr, "Key frames") == dicom_exam.key_frames


def test_a_video_exam_gets_a_new_study_for_the_patient_named(video_exam, dicom_exam, phantom_dir):
    sr, captures = _objects(video_exam)
    sources = _sources(phantom_dir / "dicom" / "P0002")
    for ds in (sr, *captures):
        assert ds.PatientID == "VID-0042" and ds.StudyInstanceUID == sr.StudyInstanceUID
        assert ds.StudyDate and ds.StudyID
    assert sr.StudyInstanceUID not in {s.StudyInstanceUID for s in sources.values()}
    assert sr.StudyInstanceUID != pydicom.dcmread(dicom_exam.dicom[0]).StudyInstanceUID
    assert {r[0] for r in _image_refs(sr)} == {str(c.SOPInstanceUID) for c in captures}  # the key images: the captures
    assert not any("SourceImageSequence" in c for c in captures)


def test_dciodvfy_reports_no_error_on_the_sr_and_sc_of_a_dicom_and_a_video_exam(dicom_exam, video_exam):
    dciodvfy = require("dciodvfy")["dciodvfy"]
    for result in (dicom_exam, video_exam):
        for path in result.dicom:
            out = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
            text = out.stdout + out.stderr
            errors = [line for line in text.splitlines() if line.startswith("Error")]
            assert not errors, f"{path.name}:\n{text}"
            assert ("ComprehensiveSR" if path.name == "SR.dcm" else "SCImage") in text


def test_dsrdump_shows_verdict_fraction_threshold_algorithm_and_references(dicom_exam, phantom_dir):
    dsrdump = require("dsrdump")["dsrdump"]
    sr = next(p for p in dicom_exam.dicom if p.name == "SR.dcm")
    out = subprocess.run([dsrdump, "+Pl", "+Pu", str(sr)], capture_output=True, text=True, timeout=60, errors="replace")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    meaning = PRESENCE[dicom_exam.diagnosis][2]
    assert f'CODE:(,,"Gout")=({PRESENCE[dicom_exam.diagnosis][0]},SCT,"{meaning}")' in text
    fraction = re.search(r'"Abnormal fraction of key frames"\)="([\d.]+)"', text)
    assert fraction and float(fraction.group(1)) == pytest.approx(dicom_exam.abnormal_fraction, abs=1e-6)
    threshold = dicom_exam.threshold  # the default bundle's calibrated threshold
    assert f'"Threshold Value")="{threshold:g}"' in text and "Source of the patient threshold" in text
    b = dicom_exam.bundle
    assert f'"Algorithm Name")="{b.name}"' in text and f'"Algorithm Version")="{b.version}"' in text
    assert b.checkpoint_sha256 in text and "NOT FOR CLINICAL USE" in text
    referenced = {u for u, _ in _image_refs(pydicom.dcmread(sr))}
    assert all(uid in text for uid in referenced)  # +Pu prints each referenced SOP Instance UID


@pytest.mark.parametrize(("probability", "diagnosis"), [(0.9, "gout"), (0.1, "no gout"), (None, "indeterminate")])
def test_each_verdict_is_coded_with_snomed(demo, tmp_path, probability, diagnosis):
    bundle, _ = demo
    oracle = OracleScorer()
    oracle.next = 0.9 if probability is None else probability
    session = ExamSession(bundle, oracle, tmp_path / "s", patient="ORACLE-1")
    for i in range(2 if probability is None else 6):  # 2 key frames: fewer than the bundle's 5 → indeterminate
        session.feed(still(i))
    result = session.close()
    assert result.diagnosis == diagnosis
    sr, captures = _objects(result)
    assert _verdict(sr) == PRESENCE[diagnosis][0]
    assert sr.PatientID == "ORACLE-1" and sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert captures and all(c.PatientID == "ORACLE-1" for c in captures)


def test_an_uncalibrated_threshold_is_left_out_not_invented(demo, tmp_path):
    bundle, _ = demo
    oracle = OracleScorer()
    session = ExamSession(bundle, oracle, tmp_path / "s")
    for i in range(6):
        session.feed(still(i))
    draft = dataclasses.replace(session.close(), threshold=None, diagnosis="indeterminate",
                                reason="the bundle's patient threshold is not calibrated")
    written = write_dicom_results(draft, out_dir=tmp_path / "again")
    sr = pydicom.dcmread(written.sr)
    assert _num(sr, "Threshold Value") is None and _num(sr, "Abnormal fraction of key frames") is not None
    assert _verdict(sr) == PRESENCE["indeterminate"][0]


def test_a_failing_dicom_writer_leaves_the_report_and_logs_no_patient(demo, tmp_path, monkeypatch, caplog):
    import gout_edge.edge_runtime.present.dicom_results as dicom_results

    def broken(*args, **kwargs):
        raise RuntimeError("PHANTOM^SECRET")

    monkeypatch.setattr(dicom_results, "write_dicom_results", broken)
    bundle, _ = demo
    session = ExamSession(bundle, OracleScorer(), tmp_path / "s", patient="SECRET-ID")
    session.feed(still(0))
    with caplog.at_level(logging.WARNING):
        result = session.close()
    assert result.dicom == () and result.report.is_file() and json.loads(result.report.read_text())["dicom"] == []
    assert "DICOM results not written" in caplog.text and "SECRET" not in caplog.text


def test_dicom_results_can_be_turned_off(demo, tmp_path):
    bundle, _ = demo
    session = ExamSession(bundle, OracleScorer(), tmp_path / "s", dicom_results=False)
    session.feed(still(0))
    assert session.close().dicom == () and not (tmp_path / "s" / "dicom").exists()


def test_not_for_clinical_use_follows_the_bundles_provenance():
    def identity(use, provenance):
        return BundleIdentity("id", "m", "1", 3, "0" * 64, "/b", use, provenance)

    assert identity("x", "synthetic phantoms (seed 1)").not_for_clinical_use
    assert identity("Research software; not for clinical use.", "").not_for_clinical_use
    assert not identity("Cleared for triage", "hospital cohort 2025").not_for_clinical_use


def test_result_files_finds_a_sessions_objects_sr_first(dicom_exam, tmp_path):
    session = dicom_exam.session_dir
    files = result_files(session)
    assert files[0].name == "SR.dcm" and set(files) == set(dicom_exam.dicom)
    assert result_files(session.parent) == files  # a scans folder holding this one session
    assert result_files(files[1]) == [files[1]] and result_files(tmp_path) == []
