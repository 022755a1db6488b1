"""Compact students (issue 21): a narrower network, distilled from a teacher bundle's soft
targets, exported at the size it was trained at, and measured against its teacher by
``evaluate --compare TEACHER --record`` (``evaluation.fidelity`` in the student's manifest)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from support.bundles import DECISION, SMALL
from support.cli import run_cli
from support.json_schemas import validate

from gout_edge._io import sha256_file
from gout_edge.calibration.calibrate import score_table
from gout_edge.calibration.evaluate import EvaluationConfig, cam_correlations, evaluate, scope_auroc
from gout_edge.calibration.index import read_index
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.errors import UsageError
from gout_edge.export.build import ExportConfig, export_bundle
from gout_edge.export.checkpoint import load_checkpoint
from gout_edge.export.model import GoutResNet, count_macs, stage_widths
from gout_edge.manifest import InputSpec, read_manifest, write_manifest
from gout_edge.training.train import TrainConfig, _distilled, train

STUDENT_INPUT = InputSpec(height=64, width=140)


def test_a_student_has_fewer_channels_in_every_stage_and_loads_back(tmp_path):
    assert stage_widths(3, 32) == (32, 64, 128) and stage_widths(3) == (64, 128, 256)
    torch.manual_seed(0)
    student = GoutResNet(3, width=32).eval()
    assert count_macs(student, 224, 490) < count_macs(GoutResNet(3), 320, 700) / 7
    torch.save(student.state_dict(), tmp_path / "s.pt")
    loaded = load_checkpoint(tmp_path / "s.pt")  # the width is read from conv1's shape
    assert loaded.model.widths == (32, 64, 128)
    x = torch.randn(1, 1, 64, 140)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), student(x))
    with pytest.raises(ValueError, match="width=20"):
        GoutResNet(3, width=20)


def test_the_distillation_loss():
    torch.manual_seed(0)
    config = TrainConfig(data=Path("x.csv"), out=Path("o"), distill_weight=1.0, temperature=4.0)
    logits = torch.randn(6, 2)
    hard = torch.tensor(0.7)
    same = (logits[:, 1] - logits[:, 0]).clone()  # the teacher agrees with the student exactly
    assert float(_distilled(hard, logits, same, config)) == pytest.approx(0.0, abs=1e-6)
    other = -same  # the teacher says the opposite: the KL term is positive
    assert float(_distilled(hard, logits, other, config)) > 0.01
    nothing = torch.full((6,), float("nan"))  # the teacher scored none of them: labels only
    assert float(_distilled(hard, logits, nothing, config)) == pytest.approx(0.7)
    half = dataclasses.replace(config, distill_weight=0.0)
    assert float(_distilled(hard, logits, other, half)) == pytest.approx(0.7)
    with pytest.raises(UsageError, match="--temperature 0.5"):
        TrainConfig(data=Path("x.csv"), out=Path("o"), temperature=0.5)


@pytest.fixture(scope="module")
def distilled(toy_csv, small_bundle, tmp_path_factory):
    """A width-16 student at 64 × 140 distilled (1 epoch) from the session's small bundle (96 × 224)."""
    teacher = small_bundle[0].bundle
    out = tmp_path_factory.mktemp("distill") / "student"
    config = TrainConfig(data=toy_csv, out=out, blocks=3, folds=0, epochs=1, batch_size=8, threads=1,
                         input_spec=STUDENT_INPUT, width=16, teacher=teacher)
    return config, train(config)


def test_soft_targets_are_the_teachers_scores_through_the_runtime(distilled, toy_csv, small_bundle):
    config, result = distilled
    with np.load(config.out / "teacher.npz", allow_pickle=False) as cached:
        logit = cached["logit"]
    scorer = Scorer(open_bundle(small_bundle[0].bundle), "onnxruntime", "fp32", 1)
    try:
        (scored,) = score_table(read_index(toy_csv), [scorer])
    finally:
        scorer.close()
    p = np.clip(scored.probabilities, 1e-6, 1 - 1e-6)  # every image, out of scope for this random teacher too
    assert len(np.unique(p.round(4))) > 10
    np.testing.assert_allclose(logit, np.log(p / (1 - p)), rtol=1e-4, atol=1e-4)
    with safe_open(str(result.final_checkpoint), "pt") as fh:
        meta = fh.metadata()
    assert meta["width"] == "16" and meta["input"] == "64x140"
    assert meta["teacher"] == sha256_file(small_bundle[0].bundle / "manifest.json")


def test_a_rerun_reuses_the_soft_targets_and_another_teacher_setting_is_refused(distilled):
    config, _ = distilled
    before = (config.out / "teacher.npz").stat().st_mtime_ns
    again = train(config)
    assert again.skipped_stages == ("final",) and (config.out / "teacher.npz").stat().st_mtime_ns == before
    with pytest.raises(UsageError, match="teacher"):
        train(dataclasses.replace(config, distill_weight=0.3))


def test_the_student_exports_at_its_trained_size_and_is_measured_against_its_teacher(distilled, small_bundle, toy_csv, tmp_path):
    _, result = distilled
    export = export_bundle(ExportConfig(result.final_checkpoint, tmp_path / "student", int8=False, calib=toy_csv, threads=1))
    m = export.manifest
    assert (m.input.height, m.input.width) == (64, 140) and m.model.widths == (16, 32, 64)
    student = tmp_path / "student"
    write_manifest(student, dataclasses.replace(m, decision=DECISION))
    teacher = tmp_path / "teacher"
    shutil.copytree(small_bundle[0].bundle, teacher)
    # the random teacher finds every toy image out of scope: without its guard, its CAMs are compared
    write_manifest(teacher, dataclasses.replace(read_manifest(teacher), decision=DECISION, scope=None))

    ev = evaluate(EvaluationConfig(student, toy_csv, compare=str(teacher), threads=1, record=True))
    fid = ev.fidelity
    assert fid is not None and fid.teacher["input"] == f"{SMALL.height}x{SMALL.width}"
    assert fid.auc.difference == pytest.approx(ev.models[0].image.auc.auc - ev.models[1].image.auc.auc)
    agree = sum(p.diagnosis is q.diagnosis for p, q in zip(ev.models[0].patient.patients, ev.models[1].patient.patients, strict=True))
    assert fid.verdicts_agree.k == agree and fid.verdicts_agree.n == len(ev.models[0].patient.patients)
    assert -1 <= fid.cam_correlation_median <= 1 and fid.cam_images > 0
    assert fid.scope_auroc == {"student": scope_auroc(m), "teacher": None} and 0.5 < fid.scope_auroc["student"] <= 1

    recorded = read_manifest(student).evaluation.fidelity
    assert recorded["teacher"]["manifest_sha256"] == sha256_file(teacher / "manifest.json")
    assert recorded["verdict_agreement"]["k"] == agree and recorded["data_sha256"] == ev.data_sha256
    code, out = run_cli("info", "--bundle", str(student))
    assert code == 0 and "distilled from" in out


def test_a_bundle_against_a_copy_of_itself_is_perfectly_faithful(scan_bundle_dir, toy_csv, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(scan_bundle_dir, copy)
    ev = evaluate(EvaluationConfig(scan_bundle_dir, toy_csv, compare=str(copy), threads=1, out=tmp_path / "report"))
    fid = ev.fidelity
    assert fid.auc.difference == 0 and fid.verdicts_agree.k == fid.verdicts_agree.n
    assert fid.cam_correlation_median == pytest.approx(1.0, abs=1e-5) and fid.cam_images > 0
    doc = validate("evaluate", (tmp_path / "report" / "evaluation.json").read_text())  # docs/schemas/evaluate.schema.json
    assert doc["fidelity"]["verdict_agreement"]["n"] == fid.verdicts_agree.n


def test_cam_correlation_upsamples_the_student_to_the_teachers_grid():
    rng = np.random.default_rng(0)
    coarse = rng.random((5, 11)).astype(np.float32)
    fine = cv2.resize(coarse, (22, 10), interpolation=cv2.INTER_LINEAR)
    r = cam_correlations([coarse, coarse, None], [fine, -fine, fine], np.array([True, True, True]))
    assert r.shape == (2,) and r[0] == pytest.approx(1.0, abs=1e-5) and r[1] == pytest.approx(-1.0, abs=1e-5)
