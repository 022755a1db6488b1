"""`gout-edge verify`: integrity (every kind of tampering caught and named), the reference outputs
within tolerance, the reference patients' decisions against the current threshold, the record."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest

from gout_edge.cli import main
from gout_edge.edge_runtime.field.reference_inputs import refresh_expected_decisions
from gout_edge.edge_runtime.field.verify import _compare, verify_bundle
from gout_edge.edge_runtime.pipeline.verdict import decide
from gout_edge.errors import BundleError
from gout_edge.export.build import file_entry
from gout_edge.manifest import DecisionSpec, ReferenceInput, ReferenceSet, ToleranceSet, read_manifest, write_manifest
from gout_edge.reference_format import EXPECTED_NAME, ReferenceOutputs, write_npz
from gout_edge.signing import generate_keypair, sign_manifest

FAST = ["--backends", "onnxruntime", "--latency-frames", "0"]


# No trusted key from the environment or the home directory of whoever runs the tests.
pytestmark = pytest.mark.usefixtures("no_device_key")


@pytest.fixture
def bundle(small_bundle, tmp_path):
    """A private copy of the session's small bundle (unsigned, FP32, with its reference set)."""
    result, _ = small_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(result.bundle, copy)
    return copy


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    _, pub = generate_keypair(root / "owner")
    _, other = generate_keypair(root / "other")
    return root / "owner.key", pub, other


def _verify(args, tmp_path, capsys):
    record = tmp_path / "record.json"
    code = main(["verify", *map(str, args), "--out", str(record)])
    captured = capsys.readouterr()
    return code, (json.loads(record.read_text()) if record.exists() else None), captured.err + captured.out


def _edit_manifest(path, edit):
    data = json.loads((path / "manifest.json").read_text())
    edit(data)
    (path / "manifest.json").write_text(json.dumps(data, indent=2))


def _rewrite_expected(path, edit):
    """Change the stored expected outputs, keep the manifest consistent and re-hash the file."""
    with np.load(path / EXPECTED_NAME, allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    edit(arrays)
    write_npz(path / EXPECTED_NAME, arrays)
    m = read_manifest(path)
    index = {item.id: i for i, item in enumerate(m.reference.inputs)}
    patients = tuple(
        dataclasses.replace(pt, probabilities={
            role: tuple(float(arrays[f"{role}.probability"][index[i]]) for i in pt.inputs) for role in pt.probabilities
        })
        for pt in m.reference.patients
    )
    ref = dataclasses.replace(m.reference, patients=patients)
    files = tuple(file_entry(path, e.path, e.role) if e.path == EXPECTED_NAME else e for e in m.files)
    write_manifest(path, dataclasses.replace(m, files=files, reference=ref))


# --------------------------------------------------------------------------------------------
# a clean bundle


def test_verify_passes_and_writes_a_complete_record(bundle, tmp_path, capsys):
    # wall-clock budgets are for the reference cart; this shared test machine gets generous ones
    _edit_manifest(bundle, lambda d: d["budgets"].update(end_to_end_p50_ms=1e4, end_to_end_p99_ms=1e4))
    code, record, out = _verify([bundle, "--latency-frames", "3"], tmp_path, capsys)
    assert code == 0, out
    assert record["format"] == "gout-edge-verification" and record["status"] == "passed"
    assert record["created_utc"].endswith("Z")
    device = record["device"]
    assert len(device["node_sha256"]) == 16 and isinstance(device["cpu_features"], list)
    assert {"python", "numpy", "onnxruntime", "gout_edge"} <= set(device["versions"])
    manifest_sha = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert record["bundle"]["manifest_sha256"] == manifest_sha
    assert record["bundle"]["model"]["blocks"] == 3 and "identity" in record["bundle"]
    names = [c["name"] for c in record["checks"]]
    for expected in ("files", "signature", "onnxruntime/fp32: probabilities", "onnxruntime/fp32: CAM correlation",
                     "onnxruntime/fp32: ROI and frame flags", "onnxruntime/fp32: patient decisions",
                     "openvino/fp32: probabilities"):
        assert expected in names
    assert any(n.startswith("latency end to end p50") for n in names)
    assert any(n.startswith("latency end to end p99") for n in names)
    for check in record["checks"]:
        assert {"name", "group", "passed", "measured", "tolerance", "detail", "skipped"} <= set(check)
        assert check["passed"], check
    assert record["summary"]["failed"] == 0
    assert "PASS" in out and "record written to" in out


def test_json_output_and_default_record_name(bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(bundle), "--json", *FAST, "--precision", "fp32"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (written,) = tmp_path.glob("gout-edge-verification-*.json")
    assert json.loads(written.read_text())["checks"] == doc["checks"]
    assert {r["backend"] for r in doc["options"]["runs"]} == {"onnxruntime"}


def test_missing_demo_bundle_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("gout_edge.edge_runtime.inference.loading.default_bundle_path", lambda: tmp_path / "nowhere")
    with pytest.raises(BundleError, match="demo bundle is not installed"):
        verify_bundle(None)


# --------------------------------------------------------------------------------------------
# tampering: exit 4, naming what changed


@pytest.mark.parametrize("target", ["model.fp32.onnx", EXPECTED_NAME, "reference/inputs.npz", "dicom"])
def test_a_flipped_byte_in_any_file_is_refused_naming_it(bundle, tmp_path, capsys, target):
    if target == "dicom":
        target = next(e.path for e in read_manifest(bundle).files if e.path.endswith(".dcm"))
    data = bytearray((bundle / target).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / target).write_bytes(bytes(data))
    code, record, out = _verify([bundle, *FAST], tmp_path, capsys)
    assert code == 4
    assert target in out and "modified" in out
    assert record["status"] == "refused" and target in record["error"]


def test_a_removed_file_is_refused_naming_it(bundle, tmp_path, capsys):
    (bundle / EXPECTED_NAME).unlink()
    code, _, out = _verify([bundle, *FAST], tmp_path, capsys)
    assert code == 4 and EXPECTED_NAME in out and "missing" in out


def test_signed_bundle_edits_wrong_key_and_missing_signature(bundle, keys, tmp_path, capsys):
    key, pub, other = keys
    sign_manifest(bundle, key)
    code, record, out = _verify([bundle, "--public-key", pub, *FAST], tmp_path, capsys)
    assert code == 0, out
    assert record["bundle"]["signature_checked"] and record["bundle"]["public_key_sha256"]
    code, _, out = _verify([bundle, "--public-key", other, *FAST], tmp_path, capsys)
    assert code == 4 and "signature" in out
    for edit in (
        lambda d: d["decision"].update(patient_threshold=0.9),
        lambda d: d["model"].update(version="9.9.9"),
        lambda d: d["reference"]["tolerances"]["fp32"].update(probability_abs=1.0),
    ):
        copy = tmp_path / f"edited{id(edit)}"
        shutil.copytree(bundle, copy)
        _edit_manifest(copy, edit)
        code, _, out = _verify([copy, "--public-key", pub, *FAST], tmp_path, capsys)
        assert code == 4 and "signature" in out
    (bundle / "manifest.sig").unlink()
    code, _, out = _verify([bundle, "--public-key", pub, *FAST], tmp_path, capsys)
    assert code == 4 and "not signed" in out


def test_a_bundle_without_a_reference_set_is_invalid(bundle, tmp_path, capsys):
    _edit_manifest(bundle, lambda d: d.pop("reference"))
    code, _, out = _verify([bundle, *FAST], tmp_path, capsys)
    assert code == 4 and "no reference set" in out


# --------------------------------------------------------------------------------------------
# the threshold of an unsigned bundle


def _calibrate(path, threshold):
    """What `gout-edge calibrate` does to the reference: set a threshold, refresh the decisions.
    The image cut-off moves to the reference's median probability so that patients differ."""
    m = read_manifest(path)
    probs = np.concatenate([pt.probabilities["onnx-fp32"] for pt in m.reference.patients])
    decision = dataclasses.replace(m.decision, image_cutoff=float(np.median(probs)), patient_threshold=threshold,
                                   calibrated=True)
    m = refresh_expected_decisions(dataclasses.replace(m, decision=decision))
    write_manifest(path, m)
    return m


def test_a_threshold_edit_that_changes_a_reference_decision_fails(bundle, tmp_path, capsys):
    m = _calibrate(bundle, 0.5)
    want = m.reference.expected_decisions["onnx-fp32"]
    assert set(want.values()) <= {"gout", "no gout"} and len(set(want.values())) == 2
    assert _verify([bundle, *FAST], tmp_path, capsys)[0] == 0

    def decisions(t):
        return {pt.name: decide(pt.probabilities["onnx-fp32"], m.decision, t).diagnosis
                for pt in m.reference.patients}

    grid = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    harmless = next(t for t in grid if t != 0.5 and decisions(t) == want)
    harmful = next(t for t in grid if decisions(t) != want)
    _edit_manifest(bundle, lambda d: d["decision"].update(patient_threshold=float(harmless)))
    assert _verify([bundle, *FAST], tmp_path, capsys)[0] == 0

    _edit_manifest(bundle, lambda d: d["decision"].update(patient_threshold=float(harmful)))
    code, record, out = _verify([bundle, *FAST], tmp_path, capsys)
    assert code == 1
    failed = record["summary"]["failed_checks"]
    assert "reference patients (onnx-fp32): decisions with the current threshold" in failed
    assert "onnxruntime/fp32: patient decisions" in failed
    assert "threshold" in out and "checks failed" in out


# --------------------------------------------------------------------------------------------
# the comparison, isolated: expected outputs perturbed within and beyond tolerance


@pytest.mark.parametrize(
    ("edit", "passes", "check"),
    [
        (lambda a: a.__setitem__("onnx-fp32.probability", a["onnx-fp32.probability"] + np.float32(4e-5)), True, None),
        (lambda a: a.__setitem__("onnx-fp32.probability", a["onnx-fp32.probability"] + np.float32(5e-3)), False,
         "onnxruntime/fp32: probabilities"),
        (lambda a: a["onnx-fp32.cam"].__setitem__(0, np.random.default_rng(0).integers(0, 256, a["onnx-fp32.cam"][0].shape)),
         False, "onnxruntime/fp32: CAM correlation"),
        (lambda a: a["roi"].__setitem__(3, a["roi"][3] + 1), True, None),
        (lambda a: a["roi"].__setitem__(3, a["roi"][3] + 5), False, "onnxruntime/fp32: ROI and frame flags"),
        (lambda a: a["colour"].__setitem__(0, ~a["colour"][0]), False, "onnxruntime/fp32: ROI and frame flags"),
    ],
    ids=["probability-within", "probability-beyond", "cam", "roi-within", "roi-beyond", "colour-flag"],
)
def test_expected_outputs_perturbed(bundle, tmp_path, capsys, edit, passes, check):
    _rewrite_expected(bundle, edit)
    code, record, out = _verify([bundle, *FAST], tmp_path, capsys)
    assert code == (0 if passes else 1), out
    if check:
        assert check in record["summary"]["failed_checks"]


def test_image_decisions_may_differ_only_near_the_cutoff():
    ref = ReferenceSet(tuple(ReferenceInput(f"r{i}", "reference/inputs.npz", "screen-grey", key=f"r{i}") for i in range(3)),
                       EXPECTED_NAME)
    cam = np.random.default_rng(0).standard_normal((3, 4, 4)).astype(np.float32)
    zeros = np.zeros((3, 4), np.int32)
    flags = np.zeros(3, bool)

    def run(expected_p, measured_p):
        exp = ReferenceOutputs(np.array(expected_p, np.float32), cam, zeros, flags, flags)
        got = ReferenceOutputs(np.array(measured_p, np.float32), cam, zeros, flags, flags)
        tol = ToleranceSet(probability_abs=0.05, image_decision_band=0.05, cam_correlation_min=0.95)
        checks = _compare("x", ref, exp, got, tol, 2, DecisionSpec(), None)
        return {c.name: c for c in checks}["x: image decisions"]

    assert run([0.1, 0.49, 0.9], [0.1, 0.52, 0.9]).passed  # 0.49 is within the band around 0.5
    flipped = run([0.1, 0.40, 0.9], [0.1, 0.52, 0.9])
    assert not flipped.passed and flipped.measured["inputs"] == ["r1"]


# --------------------------------------------------------------------------------------------
# latency against the bundle's budgets


def test_latency_is_checked_against_the_budgets(bundle, tmp_path, capsys):
    _edit_manifest(bundle, lambda d: d["budgets"].update(end_to_end_p50_ms=1e6, end_to_end_p99_ms=1e-6))
    code, record, out = _verify([bundle, "--backends", "onnxruntime", "--latency-frames", "3"], tmp_path, capsys)
    assert code == 1
    # the error says where this CPU stands against the reference cart the budgets are written for
    assert "reference cart" in " ".join(out.split())
    assert "VNNI" in out  # what decides INT8 speed, named
    latency = {c["name"]: c for c in record["checks"] if c["group"] == "latency"}
    p50 = next(c for n, c in latency.items() if "p50" in n)
    p99 = next(c for n, c in latency.items() if "p99" in n)
    assert p50["passed"] and p50["tolerance"] == {"max_ms": 1e6} and p50["measured"]["ms"] > 0
    assert not p99["passed"] and record["summary"]["failed_checks"] == [p99["name"]]
