"""``gout-edge train``: the paper's training protocol on an index table (needs torch)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from gout_edge.errors import BackendUnavailableError

from ._output import emit_json, stderr, stdout


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        data: Path = typer.Option(..., "--data", help="Index table (CSV) of labelled images."),
        out: Path = typer.Option(..., "--out", help="Output folder; rerun to resume."),
        blocks: int = typer.Option(3, "--blocks", help="Residual stages (paper: 2, 3, 4, 6)."),
        folds: int = typer.Option(
            5, "--folds", help="Cross-validation folds by patient; 0 trains only the final model."
        ),
        epochs: int = typer.Option(30, "--epochs", help="Epochs per model."),
        batch_size: int = typer.Option(16, "--batch-size", help="Images per step."),
        lr: float = typer.Option(1e-3, "--lr", help="Peak AdamW learning rate (one-cycle schedule)."),
        init: Path | None = typer.Option(None, "--init", help="Start from these weights (.safetensors/.pt), e.g. to fine-tune."),
        input_size: str | None = typer.Option(
            None, "--input-size", help="HxW model input for this run (default 320x700); a lower size trains faster, then fine-tune at full size with --init."
        ),
        seed: int = typer.Option(0, "--seed", help="Seeds folds, initialization and augmentation."),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
        final: bool = typer.Option(
            True, "--final/--no-final", help="Also train a final model on all patients."
        ),
        max_images: int | None = typer.Option(
            None, "--max-images", help="Use whole patients up to this many images (smoke runs)."
        ),
        device: str = typer.Option("cpu", "--device", help="torch device: cpu or cuda."),
        json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """The paper's protocol: patient folds stratified by diagnosis, translation augmentation,
        per-fold AUC / accuracy / sensitivity / specificity, then a final model on all patients.
        Writes OUT/fold*/model.safetensors, OUT/final/model.safetensors and OUT/summary.json."""
        try:
            import torch  # noqa: F401
        except ImportError:
            raise BackendUnavailableError(
                'training needs torch, which is not installed here: pip install "gout-edge[torch]"'
            ) from None
        from gout_edge.bundle import InputSpec
        from gout_edge.export.train import TrainConfig, train
        from gout_edge.errors import UsageError

        spec = InputSpec()
        if input_size:
            try:
                height, width = (int(v) for v in input_size.lower().split("x"))
            except ValueError:
                raise UsageError(f"--input-size {input_size!r} is not HxW (e.g. 160x350)") from None
            spec = InputSpec(height=height, width=width)
        config = TrainConfig(
            data=data, out=out, blocks=blocks, folds=folds, epochs=epochs, batch_size=batch_size,
            lr=lr, seed=seed, threads=threads, final=final, max_images=max_images, device=device,
            input_spec=spec, init=init,
        )
        with _ProgressBar() as bar:
            result = train(config, progress=bar.update)
        if json_out:
            emit_json(result)
        else:
            _render(result)


class _ProgressBar:
    """A rich progress bar on stderr: one task per stage (preprocessing, each fold, final)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=stderr, transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, stage: str, epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        total = epochs * steps
        done = (epoch - 1) * steps + step
        if stage not in self._tasks:
            label = "preprocessing" if stage == "preprocess" else f"training {stage}"
            self._tasks[stage] = self._progress.add_task(label, total=total, loss="")
        text = "" if math.isnan(loss) else f"epoch {epoch}/{epochs} loss {loss:.3f}"
        self._progress.update(self._tasks[stage], total=total, completed=done, loss=text)


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
