"""The bundle contract: manifest validation, hash checks, tamper detection (exit 4)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import SMALL

from gout_edge.bundle import Manifest, read_manifest
from gout_edge.edge_runtime.backends import SessionOptions, available_backends, get_backend, open_session
from gout_edge.edge_runtime.bundle import open_bundle
from gout_edge.errors import BundleError, BundleTamperedError, UsageError


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
