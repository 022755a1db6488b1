"""The paper's training protocol at toy scale: folds, checkpoints, summary, resume, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from safetensors import safe_open
from safetensors.torch import load_file
from support.json_schemas import validate
from support.toy_data import IMAGES_PER_PATIENT, PATIENTS
from typer.testing import CliRunner

from gout_edge.calibration.dataset import load_cache
from gout_edge.calibration.index import read_index
from gout_edge.errors import BackendUnavailableError, DataError, UsageError
from gout_edge.export.model import GoutResNet
from gout_edge.manifest import InputSpec
from gout_edge.training.train import TrainConfig, train, translate

TOY_INPUT = InputSpec(height=64, width=140)


def toy_config(data: Path, out: Path, **overrides) -> TrainConfig:
    # one thread: toy batches are too small to share, and a second thread only waits on a busy machine
    settings = dict(
        blocks=2, folds=2, epochs=2, batch_size=8, lr=3e-3, seed=0, threads=1,
        input_spec=TOY_INPUT,
    )
    settings.update(overrides)
    return TrainConfig(data=data, out=out, **settings)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def toy_run(toy_csv, tmp_path_factory):
    """One uninterrupted run: 2 folds and a final model, 2 epochs each."""
    calls: list[tuple] = []
    out = tmp_path_factory.mktemp("run") / "out"
    result = train(toy_config(toy_csv, out), progress=lambda *a: calls.append(a))
    return result, calls


# ---------------------------------------------------------------------------- pieces


def test_translate_shifts_and_fills_with_zero():
    batch = np.arange(2 * 5 * 7, dtype=np.float16).reshape(2, 5, 7) + 1

    class Fixed:
        def __init__(self, values):
            self.values = iter(values)

        def integers(self, lo, hi, n):
            return np.array(next(self.values))

    out = translate(batch, Fixed([[1, -2], [-2, 0]]), 2, 3)  # dy of each image, then dx
    assert out.dtype == np.float32
    assert np.array_equal(out[0, 1:, :5], batch[0, :-1, 2:])  # down 1, left 2
    assert (out[0, 0] == 0).all() and (out[0, :, 5:] == 0).all()
    assert np.array_equal(out[1, :3], batch[1, 2:])  # up 2
    assert (out[1, 3:] == 0).all()
    plain = translate(batch, np.random.default_rng(0), 0, 0)
    assert np.array_equal(plain, batch.astype(np.float32))


def test_config_rejects_bad_settings(tmp_path):
    for bad in (dict(folds=1), dict(folds=-2), dict(folds=0, final=False), dict(blocks=7),
                dict(epochs=0), dict(lr=0.0), dict(translate_fraction=0.6)):
        with pytest.raises(UsageError):
            TrainConfig(data=tmp_path / "i.csv", out=tmp_path / "o", **bad)


def test_cache_is_prepare_output_in_float16(toy_csv):
    from gout_edge.edge_runtime.imaging.preprocess import prepare
    from gout_edge.edge_runtime.sources.images import load_image

    table = read_index(toy_csv)
    cache = load_cache(table, TOY_INPUT)
    assert cache.images.shape == (PATIENTS * IMAGES_PER_PATIENT, 64, 140)
    assert cache.images.dtype == np.float16
    expected = prepare(load_image(table.rows[5].image), TOY_INPUT).tensor[0]
    assert np.allclose(cache.images[5], expected, atol=2e-2)
    assert not cache.blank.any() and not cache.colour.any()


def test_unreadable_images_are_reported_together_by_line(toy_csv, tmp_path):
    bad = tmp_path / "copy"
    bad.mkdir()
    lines = toy_csv.read_text().splitlines()
    (bad / "img").mkdir()
    for line in lines[1:]:
        name = line.split(",")[1]
        (bad / name).write_bytes((toy_csv.parent / name).read_bytes())
    (bad / "img/p0_1.png").write_bytes(b"broken")
    (bad / "img/p2_4.png").write_bytes(b"broken")
    (bad / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_cache(read_index(bad / "index.csv"), TOY_INPUT)
    text = str(info.value)
    assert "2 image(s)" in text and "line 3:" in text and "line 18:" in text


# ---------------------------------------------------------------------------- a run


def test_toy_run_writes_checkpoints_metrics_and_summary(toy_run, toy_csv):
    result, calls = toy_run
    out = result.out
    assert [f.fold for f in result.folds] == [1, 2]
    assert result.images == 48 and result.patients == 8
    for stage in ("fold1", "fold2", "final"):
        assert (out / stage / "metrics.json").is_file()
        assert not (out / stage / "state.pt").exists()
        ckpt = out / stage / "model.safetensors"
        model = GoutResNet(2)
        model.load_state_dict(load_file(str(ckpt)), strict=True)
        with safe_open(str(ckpt), "pt") as fh:
            meta = fh.metadata()
        assert meta["arch"] == "gout-resnet" and meta["blocks"] == "2"
        assert meta["seed"] == "0" and meta["epoch"] == "2" and meta["stage"] == stage
    assert result.final_checkpoint == out / "final" / "model.safetensors"

    summary = json.loads(result.summary.read_text())
    assert summary["data"]["images"] == 48 and summary["data"]["gout_patients"] == 4
    folds = [set(f["test_patient_ids"]) for f in summary["folds"]]
    assert not (folds[0] & folds[1]) and folds[0] | folds[1] == {f"P{p:03d}" for p in range(8)}
    for f in summary["folds"]:  # stratified: 2 gout + 2 control per fold
        assert sum(p["diagnosis"] == "gout" for p in f["patients"]) == 2
        assert all(0.0 <= p["abnormal_fraction"] <= 1.0 for p in f["patients"])
        assert f["auc"] is None or 0.0 <= f["auc"] <= 1.0
    oof = summary["oof_predictions"]
    assert len(oof) == 48 and len({p["line"] for p in oof}) == 48
    table = read_index(toy_csv)
    labels = {r.line: (r.patient_id, r.image_label) for r in table.rows}
    for p in oof:
        assert (p["patient_id"], p["label"]) == labels[p["line"]]
        assert p["patient_id"] in folds[p["fold"] - 1]
        assert 0.0 <= p["score"] <= 1.0
    assert set(summary["mean"]) == {"auc", "accuracy", "sensitivity", "specificity"}

    stages = {c[0] for c in calls}
    assert stages == {"preprocess", "fold1", "fold2", "final"}
    last_final = [c for c in calls if c[0] == "final"][-1]
    assert last_final[1:5] == (2, 2, 6, 6) and math.isfinite(last_final[5])


def test_rerun_skips_complete_stages(toy_run, toy_csv):
    result, _ = toy_run
    before = {s: (result.out / s / "model.safetensors").read_bytes() for s in ("fold1", "final")}
    calls: list[tuple] = []
    again = train(toy_config(toy_csv, result.out), progress=lambda *a: calls.append(a))
    assert again.skipped_stages == ("fold1", "fold2", "final")
    assert calls == []  # nothing trained, nothing even preprocessed
    assert again.folds == result.folds
    for stage, data in before.items():
        assert (result.out / stage / "model.safetensors").read_bytes() == data


def test_other_settings_in_the_same_out_are_refused(toy_run, toy_csv):
    result, _ = toy_run
    with pytest.raises(UsageError, match="epochs"):
        train(toy_config(toy_csv, result.out, epochs=3))


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_weights(toy_run, toy_csv, tmp_path):
    reference, _ = toy_run
    out = tmp_path / "out"

    def kill_in_fold2_epoch2(stage, epoch, epochs, step, steps, loss):
        if stage == "fold2" and epoch == 2 and step == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(toy_config(toy_csv, out), progress=kill_in_fold2_epoch2)
    state_path = out / "fold2" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    assert state["epoch"] == 1 and state["stage"] == "fold2"
    assert {"model", "optimizer", "scheduler", "torch_rng"} <= state.keys()
    assert not (out / "fold2" / "metrics.json").exists()

    resumed = train(toy_config(toy_csv, out))
    assert resumed.skipped_stages == ("fold1",)
    assert resumed.resumed_stages == ("fold2",)
    for stage in ("fold1", "fold2", "final"):
        assert _same_weights(out / stage / "model.safetensors",
                             reference.out / stage / "model.safetensors"), stage
    assert resumed.folds[1].auc == reference.folds[1].auc or (
        math.isnan(resumed.folds[1].auc) and math.isnan(reference.folds[1].auc)
    )


def test_final_only_and_max_images(toy_csv, tmp_path):
    result = train(toy_config(toy_csv, tmp_path / "o", folds=0, epochs=1, max_images=20))
    assert result.folds == () and result.final_checkpoint.is_file()
    summary = json.loads(result.summary.read_text())
    assert summary["data"]["images"] == 18  # whole patients of 6 images, at most 20
    assert summary["data"]["gout_patients"] == 2 or summary["data"]["control_patients"] == 2
    assert summary["oof_predictions"] == [] and summary["final"]["sha256"]


# ---------------------------------------------------------------------------- CLI


def _cli_app() -> typer.Typer:
    try:
        from gout_edge.cli import app

        return app
    except ImportError:  # other command modules are still being written
        from gout_edge.commands.train import register

        app = typer.Typer()

        @app.callback()
        def _root() -> None:
            pass

        register(app)
        return app


@pytest.fixture
def small_cli():
    """The CLI; it trains at the paper's 320 × 700 unless told ``--input-size`` (the tests' is TOY_INPUT)."""
    return _cli_app()


def test_cli_trains_and_prints_json(small_cli, toy_csv, tmp_path):
    out = tmp_path / "cli"
    args = ["train", "--data", str(toy_csv), "--out", str(out), "--blocks", "2", "--folds", "2",
            "--epochs", "1", "--batch-size", "8", "--threads", "1",
            "--input-size", f"{TOY_INPUT.height}x{TOY_INPUT.width}", "--json"]
    result = CliRunner().invoke(small_cli, args)
    assert result.exit_code == 0, result.output
    doc = validate("train", result.stdout)  # docs/schemas/train.schema.json
    assert [f["fold"] for f in doc["folds"]] == [1, 2]
    assert doc["final_checkpoint"] == str(out / "final" / "model.safetensors")
    assert set(doc["mean"]) == {"auc", "accuracy", "sensitivity", "specificity"}

    table = CliRunner().invoke(small_cli, args[:-1])  # rerun: all stages skipped, table shown
    assert table.exit_code == 0, table.output
    assert "mean" in table.stdout and "pooled out-of-fold AUC" in table.stdout
    assert str(out / "summary.json") in table.stdout


def test_cli_without_torch_names_the_extra(small_cli, toy_csv, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(
        small_cli, ["train", "--data", str(toy_csv), "--out", str(tmp_path / "x")]
    )
    assert isinstance(result.exception, BackendUnavailableError)
    assert 'pip install "gout-edge[torch]"' in str(result.exception)
    assert result.exception.exit_code == 5


def test_dataclasses_render_as_json(toy_run):
    result, _ = toy_run
    doc = result.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["out"] == str(result.out)
    assert dataclasses.is_dataclass(result.folds[0])


def test_fine_tuning_at_another_input_size_starts_from_the_given_weights(toy_run, toy_csv, tmp_path):
    """Progressive resizing: a run at a lower input size, then --init at the full size."""
    result, _ = toy_run
    low = result.final_checkpoint
    fine = dict(folds=0, epochs=1, lr=1e-9, input_spec=InputSpec(height=96, width=210), max_images=12)  # 2 patients
    tuned = train(toy_config(toy_csv, tmp_path / "tuned", init=low, **fine))
    start, end = _weights(low), _weights(tuned.final_checkpoint)
    # a vanishing learning rate: the weights barely move from the initial checkpoint …
    assert max(float((start[k].float() - end[k].float()).abs().max()) for k in start if "weight" in k and "bn" not in k) < 1e-4
    fresh = train(toy_config(toy_csv, tmp_path / "fresh", **fine))
    # … whereas a run without --init starts elsewhere
    assert not _same_weights(fresh.final_checkpoint, low)
