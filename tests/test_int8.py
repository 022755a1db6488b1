"""INT8 export: ONNX Runtime QDQ candidates and OpenVINO NNCF, the fidelity gate, the manifest."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from support.bundles import SMALL

from gout_edge.calibration.dataset import load_cache
from gout_edge.calibration.index import read_index
from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session
from gout_edge.edge_runtime.inference.cam_scale import cam_correlation
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.errors import CheckFailedError
from gout_edge.export.build import ExportConfig, export_bundle
from gout_edge.export.fidelity import FidelityGate, measure_fidelity
from gout_edge.export.model import GoutResNet


def test_int8_models_are_written_hashed_and_described(int8_bundle):
    m = int8_bundle.manifest
    assert {"onnx-fp32", "onnx-int8", "openvino-int8", "openvino-int8-bin"} <= set(m.roles())
    q = m.quantization
    calib = q.calibration
    assert calib["calibration_patients"] + calib["fidelity_patients"] == 8  # disjoint halves of 8 patients
    assert calib["calibration_images"] > 0 and calib["fidelity_images"] > 0
    schemes = [c["scheme"] for c in q.onnxruntime["candidates"]]
    assert q.onnxruntime["scheme"] in schemes and len(schemes) == 2
    assert "fastest" in q.onnxruntime["chosen_because"]
    for engine in (q.onnxruntime, q.openvino):
        f = engine["fidelity"]
        assert f["images"] == calib["fidelity_images"]
        assert 0 <= f["probability_mean_abs_diff"] <= f["probability_max_abs_diff"] <= 1
        assert f["cam_correlation_mean"] > 0.9
    assert not any(p.name.startswith("model.int8.candidate") for p in int8_bundle.bundle.iterdir())


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runtime_runs_each_int8_model_close_to_fp32(toy_csv, int8_bundle, backend):
    bundle = open_bundle(int8_bundle.bundle)
    table = read_index(toy_csv)
    x = load_cache(table.subset(range(0, 48, 4)), SMALL).images[:, None].astype(np.float32)
    ref = open_session(bundle, "onnxruntime", SessionOptions()).run(x)
    pred = open_session(bundle, backend, SessionOptions(precision="int8", threads=1)).run(x)
    assert np.abs(pred.probability - ref.probability).max() < 0.05
    assert cam_correlation(ref.cam, pred.cam).min() > 0.9


@pytest.mark.slow
def test_a_failed_gate_exits_1_and_keeps_only_fp32(toy_csv, tmp_path):
    torch.manual_seed(0)
    torch.save(GoutResNet(2).state_dict(), tmp_path / "m.pt")
    impossible = FidelityGate(max_auc_drop=0.005, min_cam_correlation=1.5)
    config = ExportConfig(tmp_path / "m.pt", tmp_path / "strict", input=SMALL, calib=toy_csv, gate=impossible, threads=1)
    with pytest.raises(CheckFailedError, match="mean CAM correlation .* < 1.5"):
        export_bundle(config)
    bundle = open_bundle(tmp_path / "strict")  # still a valid bundle: FP32 only, with the record
    assert set(bundle.manifest.roles()) - {"reference"} == {"onnx-fp32", "scope-guard"}
    assert bundle.manifest.quantization.passed is False
    assert bundle.manifest.quantization.accepted_by_user is False
    assert not (tmp_path / "strict" / "model.int8.onnx").exists()


def test_fidelity_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1, 0, 1])
    patients = np.array(["a", "a", "a", "b", "b", "b"])
    p32 = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])
    p8 = np.array([0.1, 0.75, 0.9, 0.8, 0.3, 0.7])  # one image flips across the 0.5 cut-off
    cams = np.random.default_rng(0).standard_normal((6, 4, 4))
    report = measure_fidelity(labels, patients, p32, p8, cams, cams * 2 + 1)
    assert report.auc_fp32 == 1.0 and report.auc_int8 == pytest.approx(8 / 9)
    assert report.probability_max_abs_diff == pytest.approx(0.55)
    assert report.image_decision_agreement == pytest.approx(5 / 6)
    assert report.patient_fraction_max_abs_diff == pytest.approx(1 / 3)
    assert report.patient_decisions_identical is False
    assert report.cam_correlation_min == pytest.approx(1.0)
    assert report.failures == ("image AUC drop 0.1111 > 0.005",)


@pytest.mark.slow
def test_a_deliberately_damaged_quantization_fails_the_gate(tmp_path):
    """The demo model quantized from a calibration set 50× too dim (activation ranges far too
    narrow: everything saturates) must fail the gate that its proper quantization passes."""
    from gout_edge.edge_runtime.imaging.preprocess import prepare
    from gout_edge.export.quantize import quantize_onnxruntime
    from gout_edge.phantom import generate_cohort, render_image

    demo = open_bundle()
    m = demo.manifest
    cohort = generate_cohort(8, seed=77)
    specs = [s for p in cohort for s in p.images]
    frames = np.stack([prepare(render_image(s).bmode, m.input, m.preprocess).tensor for s in specs])
    labels = np.array([s.image_label for s in specs])
    patients = np.array([p.patient_id for p in cohort for _ in p.images])
    calib, held = frames[::3], frames
    fp32 = open_session(demo, "onnxruntime", SessionOptions("fp32")).run(held)

    def gate_failures(calibration):
        path = tmp_path / "q.onnx"
        quantize_onnxruntime(demo.path("onnx-fp32"), path, calibration)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits, cam = session.run(["logits", "cam"], {"input": held})
        z = np.exp(logits - logits.max(1, keepdims=True))
        prob = z[:, 1] / z.sum(1)
        return measure_fidelity(labels, patients, fp32.probability, prob, fp32.cam, cam[:, 1]).failures

    assert gate_failures(calib) == ()
    assert gate_failures(calib * 0.02)
