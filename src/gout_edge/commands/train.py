"""``gout-edge train``: the paper's training protocol on an index table (needs torch)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from gout_edge.errors import BackendUnavailableError

from ._options import input_size as parse_input_size
from ._options import json_option, positive, seed_option, threads_option
from ._output import ProgressBar, emit_json, stdout


def register(app: typer.Typer) -> None:
    @app.command("train", short_help="Train the paper's model with patient-wise cross-validation.")
    def train_command(
        data: Path = typer.Option(..., "--data", metavar="CSV", help="Index table (CSV) of labelled images."),
        out: Path = typer.Option(..., "--out", metavar="DIR", help="Output folder; rerun to resume."),
        blocks: int = typer.Option(3, "--blocks", min=1, max=6, metavar="N", help="Residual stages (paper: 2, 3, 4, 6)."),
        folds: int = typer.Option(
            5, "--folds", min=0, metavar="K", help="Cross-validation folds by patient; 0 trains only the final model."
        ),
        epochs: int = typer.Option(30, "--epochs", min=1, metavar="N", help="Epochs per model."),
        batch_size: int = typer.Option(16, "--batch-size", min=1, metavar="N", help="Images per step."),
        lr: float = typer.Option(
            1e-3, "--lr", callback=positive, metavar="RATE", help="Peak AdamW learning rate, above 0 (one-cycle schedule)."
        ),
        init: Path | None = typer.Option(
            None, "--init", metavar="FILE", help="Start from these weights (.safetensors/.pt), e.g. to fine-tune."
        ),
        input_size: str | None = typer.Option(
            None, "--input-size", metavar="HxW",
            help="Model input for this run (default 320x700); train faster at a lower size, then fine-tune at "
            "full size with --init.",
        ),
        seed: int = seed_option("Seeds folds, initialization and augmentation."),
        threads: int | None = threads_option("torch CPU threads (default: torch's)."),
        final: bool = typer.Option(
            True, "--final/--no-final", help="Also train a final model on all patients."
        ),
        max_images: int | None = typer.Option(
            None, "--max-images", min=1, metavar="N", help="Use whole patients up to this many images (smoke runs)."
        ),
        device: str = typer.Option("cpu", "--device", metavar="DEVICE", help="torch device: cpu or cuda."),
        width: int = typer.Option(
            64, "--width", min=16, max=64, metavar="N",
            help="Channels of the stem and first stage, doubling per stage (paper: 64; a compact student: 32).",
        ),
        teacher: Path | None = typer.Option(
            None, "--teacher", metavar="BUNDLE",
            help="Distil from this bundle: its FP32 model's soft targets join the labels (a compact student).",
        ),
        distill_weight: float = typer.Option(
            0.7, "--distill-weight", min=0.0, max=1.0, metavar="ALPHA", help="With --teacher: the soft targets' share of the loss, 0…1."
        ),
        temperature: float = typer.Option(
            4.0, "--temperature", min=1.0, max=100.0, metavar="T", help="With --teacher: distillation temperature, 1 or more."
        ),
        json_out: bool = json_option(),
    ) -> None:
        """The paper's protocol: patient folds stratified by diagnosis, translation augmentation,
        per-fold AUC / accuracy / sensitivity / specificity, then a final model on all patients.

        With --teacher BUNDLE, a compact student (e.g. --width 32 --input-size 160x350) learns from
        the teacher's FP32 soft targets too (knowledge distillation); export it, then record its
        fidelity with `gout-edge evaluate --bundle STUDENT --compare TEACHER --record`.

        Writes OUT/fold*/model.safetensors, OUT/final/model.safetensors and OUT/summary.json."""
        try:
            import torch  # noqa: F401
        except ImportError:
            raise BackendUnavailableError(
                'training needs torch, which is not installed here: pip install "gout-edge[torch]"'
            ) from None
        from gout_edge.manifest import InputSpec
        from gout_edge.training.train import TrainConfig, train

        spec = parse_input_size(input_size) or InputSpec()
        config = TrainConfig(
            data=data, out=out, blocks=blocks, folds=folds, epochs=epochs, batch_size=batch_size,
            lr=lr, seed=seed, threads=threads, final=final, max_images=max_images, device=device,
            input_spec=spec, init=init, width=width, teacher=teacher, distill_weight=distill_weight,
            temperature=temperature,
        )
        with ProgressBar("train", note=True, transient=False) as bar:
            result = train(config, progress=_train_progress(bar))
        if json_out:
            emit_json(result)
        else:
            _render(result)


def _train_progress(bar: ProgressBar):
    """``train``'s progress callback onto the shared bar: one row per stage, the loss as its note."""

    def update(stage: str, epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        label = {"preprocess": "preprocessing", "teacher": "teacher soft targets"}.get(stage, f"training {stage}")
        note = "" if math.isnan(loss) else f"epoch {epoch}/{epochs} loss {loss:.3f}"
        bar.update((epoch - 1) * steps + step, epochs * steps, task=label, note=note)

    return update


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _render(result: Any) -> None:
    from rich.table import Table

    if result.folds:
        table = Table(title=f"cross-validation: {result.images} images, {result.patients} patients")
        for col in ("fold", "train img", "test img", "test pts", "AUC", "acc", "sens", "spec"):
            table.add_column(col, justify="right")
        for f in result.folds:
            table.add_row(
                str(f.fold), str(f.train_images), str(f.test_images), str(f.test_patients),
                _fmt(f.auc), _fmt(f.accuracy), _fmt(f.sensitivity), _fmt(f.specificity),
            )
        names = ("auc", "accuracy", "sensitivity", "specificity")
        table.add_section()
        table.add_row("mean", "", "", "", *(_fmt(result.mean[n]) for n in names))
        table.add_row("sd", "", "", "", *(_fmt(result.sd[n]) for n in names))
        stdout.print(table)
        stdout.print(f"pooled out-of-fold AUC: {_fmt(result.pooled_auc)}")
    if result.final_checkpoint is not None:
        stdout.print(f"final model: {result.final_checkpoint}", soft_wrap=True)
    stdout.print(f"summary: {result.summary}", soft_wrap=True)
