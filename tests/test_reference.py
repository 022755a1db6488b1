"""The reference set written into every bundle at export (issue 7): what it holds, how it is
chosen, its compact and hashed files, and the INT8 models' expected outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom

from gout_edge._io import sha256_file
from gout_edge.edge_runtime.field.reference_inputs import load_reference_frames, refresh_expected_decisions
from gout_edge.edge_runtime.field.verify import verify_bundle
from gout_edge.edge_runtime.inference.loading import load_expected, open_bundle
from gout_edge.export.reference_writer import SIZE_BUDGET_BYTES, select_reference
from gout_edge.reference_format import EXPECTED_NAME, INPUTS_NAME, write_npz


def test_every_bundle_carries_a_hashed_compact_reference_set(small_bundle):
    result, _ = small_bundle
    root, m = result.bundle, result.manifest
    ref = m.reference
    labelled = [i for i in ref.inputs if i.label is not None]
    assert len(labelled) >= 24
    assert {i.label for i in labelled} == {0, 1}
    reasons = {i.selected_as for i in ref.inputs}
    assert {"lowest probability", "highest probability", "borderline: nearest the image cut-off"} <= reasons
    assert {"no-signal screen", "colour-doppler screen"} <= reasons
    kinds = [i.kind for i in ref.inputs]
    assert kinds.count("dicom-monochrome2") >= 2 and kinds.count("dicom-rgb") >= 1
    assert sum(k.startswith("screen") for k in kinds) >= 12

    listed = {e.path: e for e in m.files if e.role == "reference"}
    on_disk = {p.relative_to(root).as_posix() for p in (root / "reference").iterdir()}
    assert on_disk == set(listed) and {INPUTS_NAME, EXPECTED_NAME} <= on_disk
    assert all(sha256_file(root / p) == e.sha256 for p, e in listed.items())
    assert sum(e.size for e in listed.values()) == ref.size_bytes <= SIZE_BUDGET_BYTES

    with np.load(root / INPUTS_NAME, allow_pickle=False) as z:
        assert all(z[k].dtype == np.uint8 for k in z.files)
    for rel in (p for p in listed if p.endswith(".dcm")):
        ds = pydicom.dcmread(root / rel)
        assert ds.Modality == "US" and ds.PatientID == "REFERENCE" and ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        assert len(ds.SequenceOfUltrasoundRegions) == 1

    bundle = open_bundle(root)
    frames = load_reference_frames(bundle)
    expected, n = load_expected(bundle)
    assert n == len(frames) == len(ref.inputs) and set(expected) == {"onnx-fp32"} == set(ref.engines)
    fp32 = expected["onnx-fp32"]
    assert fp32.cam.shape == (n, m.outputs.cam_height, m.outputs.cam_width)
    for item, frame, roi in zip(ref.inputs, frames, fp32.roi, strict=True):
        if item.kind.startswith("screen"):  # a whole scanner screen: the B-mode region is found inside it
            h, w = frame.image.shape[:2]
            assert roi[2] - roi[0] < w and roi[3] - roi[1] < h
    doppler = next(k for k, i in enumerate(ref.inputs) if i.kind == "colour-doppler screen")
    oos_doppler = [k for k, i in enumerate(ref.inputs) if i.selected_as.startswith("out of scope: doppler")]
    assert fp32.colour[doppler] and fp32.colour.sum() == 1 + sum(fp32.colour[oos_doppler])
    oos = [k for k, i in enumerate(ref.inputs) if i.kind == "out-of-scope screen"]
    assert fp32.scope is not None and all(fp32.scope[oos] > m.scope.threshold)  # the guard refuses them

    names = [pt.name for pt in ref.patients]
    assert names == ["R1", "R2", "R3"]
    borderline = {i.id for i in ref.inputs if i.selected_as.startswith("borderline")}
    for pt in ref.patients:
        assert len(pt.inputs) >= m.decision.min_key_frames and not borderline & set(pt.inputs)
    assert ref.expected_decisions == {"onnx-fp32": {n: "indeterminate" for n in names}}  # not calibrated yet
    assert ref.tolerances.fp32.probability_abs <= 1e-4 and ref.tolerances.int8.probability_abs <= 0.05


def test_selection_spans_probabilities_both_classes_and_the_cutoff():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 60)
    labels = (rng.uniform(0, 1, 60) < 0.4).astype(int)
    picked = select_reference(p, labels, cutoff=0.5)
    idx = [i for i, _ in picked]
    assert len(idx) == len(set(idx)) == 24
    assert int(np.argmin(p)) in idx and int(np.argmax(p)) in idx
    assert set(np.argsort(np.abs(p - 0.5))[:6].tolist()) <= set(idx)
    assert 8 <= labels[idx].sum() <= 16
    assert [p[i] for i in idx] == sorted(p[i] for i in idx)
    assert len(select_reference(p[:10], labels[:10], 0.5)) == 10  # a small pool: everything


def test_refresh_expected_decisions_follows_the_threshold(small_bundle):
    m = small_bundle[0].manifest
    probs = np.concatenate([pt.probabilities["onnx-fp32"] for pt in m.reference.patients])
    decision = dataclasses.replace(m.decision, image_cutoff=float(np.median(probs)), patient_threshold=0.5)
    refreshed = refresh_expected_decisions(dataclasses.replace(m, decision=decision))
    got = refreshed.reference.expected_decisions["onnx-fp32"]
    assert got["R1"] == "no gout" and got["R3"] == "gout"  # lowest and highest thirds
    assert refreshed.reference.decided_with.patient_threshold == 0.5
    assert m.reference.expected_decisions["onnx-fp32"]["R1"] == "indeterminate"  # the original is untouched
    bare = dataclasses.replace(m, reference=None)
    assert refresh_expected_decisions(bare) is bare


def test_npz_writing_is_reproducible(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.uint8).reshape(3, 4), "b": np.ones(3, np.float32)}
    write_npz(tmp_path / "x.npz", arrays)
    write_npz(tmp_path / "y.npz", arrays)
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], arrays["a"])


def test_int8_models_have_expected_outputs_and_verify_on_every_backend(int8_bundle, no_device_key):
    m = int8_bundle.manifest
    ref = m.reference
    assert set(ref.engines) == {"onnx-fp32", "onnx-int8", "openvino-int8"}
    assert "index table index.csv" in ref.source and "de-identified" in ref.source
    bundle = open_bundle(int8_bundle.bundle)
    expected, _ = load_expected(bundle)
    diff = np.abs(expected["onnx-int8"].probability - expected["onnx-fp32"].probability)
    assert diff.max() < ref.tolerances.int8.probability_abs
    frames = load_reference_frames(bundle)
    for item, frame in zip(ref.inputs, frames, strict=True):  # the toy overlay text (top-left) is blacked out
        if item.kind.startswith("screen"):
            assert not frame.image[:12, :60].any()

    record = verify_bundle(int8_bundle.bundle, latency_frames=0, threads=1)
    assert record.passed, [c for c in record.failures]
    runs = {(r["backend"], r["precision"]): r["model_file"] for r in record.options["runs"]}
    assert runs == {("onnxruntime", "fp32"): "onnx-fp32", ("onnxruntime", "int8"): "onnx-int8",
                    ("openvino", "fp32"): "onnx-fp32", ("openvino", "int8"): "openvino-int8"}
    names = {c.name for c in record.checks}
    assert {"openvino/int8: probabilities", "onnxruntime/int8: patient decisions",
            "reference patients (openvino-int8): decisions with the current threshold"} <= names
