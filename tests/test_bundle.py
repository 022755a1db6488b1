"""The bundle contract: manifest validation, hash checks, tamper detection (exit 4)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.bundles import SMALL

from gout_edge.edge_runtime.inference.backends import SessionOptions, available_backends, get_backend, open_session
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.errors import BundleError, BundleTamperedError, UsageError
from gout_edge.manifest import FORMAT_VERSION, Budgets, Manifest, read_manifest, write_manifest


@pytest.fixture()
def bundle_copy(small_bundle, tmp_path):
    result, _ = small_bundle
    dst = tmp_path / "copy"
    shutil.copytree(result.bundle, dst)
    return dst


def test_manifest_round_trips_through_json(small_bundle):
    result, _ = small_bundle
    again = Manifest.from_dict(json.loads(json.dumps(result.manifest.to_dict())))
    assert again == result.manifest
    assert again.decision.calibrated is False and again.decision.patient_threshold is None
    assert again.file("onnx-fp32").sha256 == result.manifest.files[0].sha256
    assert again.model.parameters > 0 and again.model.macs_per_frame > 0


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.pop("model"), r"manifest\.model is missing"),
        (lambda d: d["model"].update(blocks="3"), r"manifest\.model\.blocks must be int"),
        (lambda d: d["decision"].update(surprise=1), r"manifest\.decision has unknown field"),
        (lambda d: d.update(format_version=99), "format_version is 99"),
        (lambda d: d["files"][0].pop("sha256"), r"manifest\.files\[0\]\.sha256 is missing"),
    ],
)
def test_invalid_manifest_names_the_field(bundle_copy, edit, match):
    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=match):
        open_bundle(bundle_copy)


def test_intact_bundle_opens_and_scores_a_batch(bundle_copy):
    bundle = open_bundle(bundle_copy)
    assert "onnxruntime" in available_backends()
    session = open_session(bundle, "onnxruntime", SessionOptions(threads=1))
    batch = np.random.default_rng(0).standard_normal((3, 1, SMALL.height, SMALL.width)).astype(np.float32)
    pred = session.run(batch)
    assert pred.probability.shape == (3,) and np.all((pred.probability >= 0) & (pred.probability <= 1))
    assert pred.cam.shape == (3, bundle.manifest.outputs.cam_height, bundle.manifest.outputs.cam_width)
    # The probability is the softmax of the logits for the abnormal class.
    z = pred.logits - pred.logits.max(axis=1, keepdims=True)
    expected = np.exp(z[:, 1]) / np.exp(z).sum(axis=1)
    np.testing.assert_allclose(pred.probability, expected, rtol=1e-5)


def test_a_flipped_byte_is_caught_and_the_file_named(bundle_copy):
    model = bundle_copy / "model.fp32.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleTamperedError, match=r"model\.fp32\.onnx \(onnx-fp32\) has been modified"):
        open_bundle(bundle_copy)


def test_a_missing_file_is_caught(bundle_copy):
    (bundle_copy / "model.fp32.onnx").unlink()
    with pytest.raises(BundleTamperedError, match="missing"):
        open_bundle(bundle_copy)


def test_paths_outside_the_bundle_are_refused(bundle_copy):
    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    data["files"][0]["path"] = "../elsewhere.onnx"
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="leaves the bundle"):
        open_bundle(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="manifest.json"):
        open_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        open_bundle(tmp_path / "nowhere")


def test_unknown_backend_and_missing_precision_are_explained(bundle_copy):
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        get_backend("tensorrt")
    with pytest.raises(BundleError, match="onnx-int8"):
        open_session(open_bundle(bundle_copy), "onnxruntime", SessionOptions(precision="int8"))


def test_openvino_fp32_matches_onnxruntime_fp32(bundle_copy, tmp_path):
    bundle = open_bundle(bundle_copy)
    batch = np.random.default_rng(2).standard_normal((2, 1, SMALL.height, SMALL.width)).astype(np.float32)
    ref = open_session(bundle, "onnxruntime").run(batch)
    ov = open_session(bundle, "openvino", SessionOptions(threads=1, cache_dir=str(tmp_path / "cache"))).run(batch)
    np.testing.assert_allclose(ov.probability, ref.probability, atol=1e-5)
    np.testing.assert_allclose(ov.cam, ref.cam, atol=1e-4)
    assert any((tmp_path / "cache").iterdir())  # the compiled model was cached


# --------------------------------------------------------------------------------------------
# format versions: version 1 is upgraded on reading, version 2 is written. The version-1 sample is
# the manifest of demo bundle 1.0.0 as it shipped until the 1.1.0 rebuild (a frozen format, so a
# frozen file); regenerate with: git show 709164c:src/gout_edge/demo/bundle/manifest.json


V1_MANIFEST = Path(__file__).parent / "data" / "manifest-v1.json"


def _demo_json() -> tuple[Path, dict]:
    """The paper's demo bundle's manifest (pinned: the cases below name its values)."""
    from gout_edge.edge_runtime.inference.shipped import Shipped, shipped_folder

    path = shipped_folder(Shipped.PAPER) / "manifest.json"
    return path, json.loads(path.read_text(encoding="utf-8"))


def _v1_json(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "v1" / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(V1_MANIFEST.read_bytes())
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_a_version_1_manifest_opens_and_reads_the_same_figures(tmp_path):
    path, raw = _v1_json(tmp_path)
    assert raw["format_version"] == 1
    before = path.read_bytes()
    m = read_manifest(path.parent)
    assert path.read_bytes() == before  # read, never rewritten: a signature over these bytes still holds
    assert dataclasses.asdict(m.budgets) == {**dataclasses.asdict(Budgets()), **raw["budgets"]}  # new budgets: defaults
    assert (m.input.height, m.input.width, m.input.channels) == (raw["input"]["height"], raw["input"]["width"], 1)
    assert m.preprocess.roi_threshold == raw["preprocess"]["roi_threshold"]
    assert m.decision.patient_threshold == raw["decision"]["patient_threshold"] and m.decision.calibrated
    assert m.export.opset == raw["export"]["opset"] and m.export.versions["torch"] == raw["export"]["torch"]
    assert dataclasses.asdict(m.export.parity) == {"features_max_abs_diff": None, **raw["export"]["parity"]}
    assert m.quantization.fp32_latency_ms == raw["quantization"]["fp32_latency_ms"]
    assert m.quantization.onnxruntime == raw["quantization"]["onnxruntime"] and m.quantization.passed
    assert dataclasses.asdict(m.quantization.gate) == raw["quantization"]["gate"]
    assert m.evaluation.held_out == raw["evaluation"]["held_out"]
    ref, raw_ref = m.reference, raw["reference"]
    assert [dataclasses.asdict(i) for i in ref.inputs] == raw_ref["inputs"]
    assert {p.name: {r: list(v) for r, v in p.probabilities.items()} for p in ref.patients} == {
        p["name"]: p["probabilities"] for p in raw_ref["patients"]}
    assert ref.expected_decisions == raw_ref["expected_decisions"]
    assert dataclasses.asdict(ref.decided_with) == raw_ref["decided_with"]
    assert {k: dataclasses.asdict(v) for k, v in ref.engines.items()} == raw_ref["engines"]
    assert ref.tolerances.int8.probability_abs == raw_ref["tolerances"]["int8"]["probability_abs"]
    assert ref.tolerances.roi_max_abs_px == raw_ref["tolerances"]["roi_max_abs_px"]
    assert ref.size_bytes == raw_ref["size_bytes"] and ref.source == raw_ref["source"]
    assert [dataclasses.asdict(f) for f in m.files] == raw["files"]


def test_v2_round_trip_and_writing_always_writes_version_2(tmp_path):
    m = Manifest.from_dict(_v1_json(tmp_path)[1])
    plain = m.to_dict()
    assert plain["format_version"] == FORMAT_VERSION == 2
    assert "rule" not in plain["decision"] and "normalization" not in plain["input"]
    assert {"roi_method", "resize"}.isdisjoint(plain["preprocess"])
    assert {"format_version", "purpose"}.isdisjoint(plain["reference"]) and "flags" not in plain["reference"]["tolerances"]
    assert Manifest.from_dict(plain) == m
    assert Manifest.from_dict(json.loads(json.dumps(plain))) == m
    write_manifest(tmp_path, m)
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 2
    assert read_manifest(tmp_path) == m


def test_a_signed_version_1_manifest_still_verifies(tmp_path):
    from gout_edge.signing import generate_keypair, sign_manifest, verify_manifest_signature

    path, _ = _v1_json(tmp_path)
    key, pub = generate_keypair(tmp_path / "owner")
    sign_manifest(path.parent, key)  # over the version-1 bytes
    verify_manifest_signature(path.parent, pub)  # reading upgraded it in memory only
    assert read_manifest(path.parent).decision.calibrated and json.loads(path.read_text())["format_version"] == 1


@pytest.mark.parametrize("version", [0, 3, 99, "2", 2.0, True, None])
def test_an_unknown_format_version_is_refused(version):
    data = _demo_json()[1]
    data["format_version"] = version
    with pytest.raises(BundleError, match=r"format_version is .*; this gout-edge reads 1 and 2"):
        Manifest.from_dict(data)


# --------------------------------------------------------------------------------------------
# range checks when reading (signed or not) and before writing


def _set(path, value):
    def edit(d):
        *parents, last = path
        for key in parents:
            d = d[key]
        d[last] = value
    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set(("input", "height"), 8), r"manifest\.input\.height is 8; allowed: 16…4096"),
        (_set(("input", "width"), 5000), r"manifest\.input\.width is 5000"),
        (_set(("input", "channels"), 3), r"manifest\.input\.channels is 3; allowed: 1"),
        (_set(("outputs", "cam_width"), 43), r"manifest\.outputs\.cam_width is 43; allowed: 44"),
        (_set(("decision", "image_cutoff"), 1.5), r"manifest\.decision\.image_cutoff is 1\.5; allowed: \[0, 1\]"),
        (_set(("decision", "image_cutoff"), float("nan")), r"manifest\.decision\.image_cutoff is nan"),
        (_set(("decision", "image_cutoff"), "0.5"), r"manifest\.decision\.image_cutoff must be a number"),
        (_set(("decision", "patient_threshold"), -0.1), r"manifest\.decision\.patient_threshold is -0\.1"),
        (_set(("decision", "min_key_frames"), 0), r"manifest\.decision\.min_key_frames is 0; allowed: ≥ 1"),
        (_set(("budgets", "end_to_end_p50_ms"), 0), r"manifest\.budgets\.end_to_end_p50_ms is 0\.0; allowed: .*> 0"),
        (_set(("budgets", "cold_start_s"), -1), r"manifest\.budgets\.cold_start_s is -1\.0"),
        (_set(("files", 0, "size"), -1), r"manifest\.files\[0\]\.size is -1; allowed: ≥ 0"),
        (_set(("files", 0, "sha256"), "abc"), r"manifest\.files\[0\]\.sha256 is 'abc'; allowed: 64 lower-case hex"),
        (_set(("files", 0, "path"), "/etc/passwd"), r"manifest\.files\[0\]\.path is '/etc/passwd'.*leaves the bundle"),
        (_set(("files", 0, "path"), "a/../../x"), r"manifest\.files\[0\]\.path is 'a/\.\./\.\./x'"),
        (_set(("reference", "tolerances", "int8", "probability_abs"), 2),
         r"manifest\.reference\.tolerances\.int8\.probability_abs is 2\.0; allowed: \[0, 1\]"),
        (_set(("reference", "inputs", 3, "label"), 2), r"manifest\.reference\.inputs\[3\]\.label is 2"),
        (_set(("reference", "patients", 0, "inputs", 0), "nope"), r"manifest\.reference\.patients\[0\]\.inputs is \['nope'\]"),
        (_set(("reference", "engines", "onnx-int8", "precision"), "int4"),
         r"manifest\.reference\.engines\['onnx-int8'\]\.precision is 'int4'"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(edit, match):
    data = Manifest.from_dict(_demo_json()[1]).to_dict()
    edit(data)
    with pytest.raises(BundleError, match=match):
        Manifest.from_dict(json.loads(json.dumps(data)))


def test_range_checks_hold_for_a_signed_bundle_and_before_writing(bundle_copy, tmp_path):
    from gout_edge.signing import generate_keypair, sign_manifest

    m = read_manifest(bundle_copy)
    before = (bundle_copy / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match=r"manifest\.budgets\.end_to_end_p99_ms is 0\.0"):
        write_manifest(bundle_copy, dataclasses.replace(m, budgets=dataclasses.replace(m.budgets, end_to_end_p99_ms=0.0)))
    assert (bundle_copy / "manifest.json").read_bytes() == before
    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    data["decision"]["min_key_frames"] = 0
    path.write_text(json.dumps(data))
    key, pub = generate_keypair(tmp_path / "owner")
    sign_manifest(bundle_copy, key)  # a valid signature does not make a value valid
    with pytest.raises(BundleError, match=r"manifest\.decision\.min_key_frames is 0"):
        open_bundle(bundle_copy, public_key=pub)


def test_a_deeply_nested_or_huge_manifest_is_a_bundle_error(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="nested too deeply"):
        read_manifest(tmp_path)
    path.write_text('{"format_version": 2, "evaluation": {"held_out": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001 + "}")
    with pytest.raises(BundleError, match="nested too deeply"):
        read_manifest(tmp_path)
    monkeypatch.setattr("gout_edge.manifest.MAX_MANIFEST_BYTES", 1024)
    path.write_text(json.dumps({"format_version": 2, "padding": "x" * 2048}))
    with pytest.raises(BundleError, match="larger than"):
        read_manifest(tmp_path)
