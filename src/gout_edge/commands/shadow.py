"""``gout-edge shadow --archive PATH --against OLD --out DIR``: a new bundle against the old over a
hospital archive, locally or on a Ray cluster (the library is ``gout_edge.shadow``; docs/shadow.md)."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ._options import (
    Backend,
    Precision,
    backend_option,
    bundle_option,
    json_option,
    precision_option,
    public_key_option,
)
from ._output import emit_json, stderr, stdout


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def _rate(n: float, seconds: float) -> str:
    return "–" if seconds <= 0 or n <= 0 else f"{60.0 * n / seconds:.1f}"


def _left(remaining: int, n: int, seconds: float) -> str:
    if n <= 0 or seconds <= 0:
        return "–"
    left = int(remaining * seconds / n)
    h, rest = divmod(left, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class StudyProgress:
    """Progress on stderr: headers read, then studies, with studies per minute (of those scored in
    this run; taken-up ones do not count) and the time left at that rate."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=stderr,
                                  transient=True)
        self._tasks: dict[str, Any] = {}
        self._first: dict[str, tuple[int, float]] = {}

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        first = self._first.setdefault(phase, (done, now))
        n, seconds = done - first[0], now - first[1]
        note = ""
        if phase == "studies":
            note = f"{_rate(n, seconds)} studies/min, {_left(total - done, n, seconds)} left"
        if phase not in self._tasks:
            label = "reading headers" if phase == "headers" else "scoring studies"
            self._tasks[phase] = self._progress.add_task(label, total=total, note=note)
        self._progress.update(self._tasks[phase], completed=done, total=total, note=note)


def register(app: typer.Typer) -> None:
    @app.command("shadow", short_help="Compare a new bundle with the old over an archive (local or Ray).")
    def shadow_command(
        archive: Path = typer.Option(
            ..., "--archive", metavar="PATH",
            help="A folder tree of DICOM studies (grouped by patient and Study Instance UID) or an index table "
                 "(CSV: patient_id,image,image_label,diagnosis,view). Nothing in it is ever written.",
        ),
        bundle: Optional[Path] = bundle_option("The new bundle (default: the shipped bundle for this CPU)."),
        against: str = typer.Option(
            ..., "--against", metavar="DIR|PRECISION",
            help="The old bundle, or a precision (int8, fp32) of the new one.",
        ),
        out: Path = typer.Option(
            ..., "--out", metavar="DIR",
            help="Output folder: studies.parquet, frames.parquet, report.html, report.pdf, summary.json and work/ "
                 "(one record per finished study; a rerun with the same --out resumes).",
        ),
        labels: Optional[Path] = typer.Option(
            None, "--labels", metavar="CSV",
            help="Index table with the truth (patient diagnosis by Patient ID, image labels by file): image AUC "
                 "(paired DeLong) and patient accuracy, sensitivity, specificity (Wilson CIs).",
        ),
        engine: Engine = typer.Option(
            Engine.local, "--engine", case_sensitive=False,
            help="local: a process pool on this machine. ray: Ray Data actors on a Ray cluster "
                 "(pip install 'gout-edge[cluster]').",
        ),
        address: Optional[str] = typer.Option(
            None, "--address", metavar="ADDRESS",
            help="With --engine ray: join this Ray cluster (e.g. ray://head:10001 or auto); without it a local "
                 "one starts.",
        ),
        workers: Optional[int] = typer.Option(
            None, "--workers", min=1, metavar="N", show_default=False,
            help="Worker processes (local) or actors (ray), each opening both bundles once (default: one per CPU).",
        ),
        threads: Optional[int] = typer.Option(
            None, "--threads", min=1, metavar="N", show_default=False,
            help="Engine threads per worker, and the CPUs each Ray actor asks for (default: local, CPUs / "
                 "workers; ray, 1).",
        ),
        backend: Backend = backend_option("Inference engine of both bundles: auto, onnxruntime or openvino."),
        precision: Precision = precision_option("The new bundle's precision: auto, int8 or fp32."),
        public_key: Optional[Path] = public_key_option("Require both bundles signed by this public key."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write report.html, report.pdf and figures/."),
        json_out: bool = json_option("Print the summary (summary.json) as one JSON document on stdout."),
    ) -> None:
        """Score every study of an archive with two bundles through the cart's pipeline and verdict
        rule, and say how the verdicts change: the change table (old × new, indeterminate by reason),
        agreement and Cohen's kappa of verdicts and images, the exact McNemar test of the discordant
        verdicts, each bundle's scope refusal rate, all by manufacturer, model, station and month.

        A damaged study is a row with its reason, never the end of the run. Each finished study is
        committed to DIR/work/ at once: after a crash, the same command skips finished studies and
        ends with the same tables. Patient identifiers stay in the Parquet tables in DIR; logs name
        studies by a pseudonymous key. Research software: not for clinical use."""
        from gout_edge.shadow import ShadowConfig, run_shadow

        config = ShadowConfig(
            archive=archive, against=against, out=out, bundle=bundle, labels=labels, engine=engine.value,
            address=address, workers=workers, threads=threads, backend=backend.value, precision=precision.value,
            public_key=public_key, report=report,
        )
        with StudyProgress() as progress:
            result = run_shadow(config, progress=progress)
        if json_out:
            emit_json(result.to_dict())
        else:
            render(result.to_dict())


def render(doc: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from gout_edge.shadow.report import summary_lines

    c = doc["comparison"]
    table = Table(title="Verdicts: old bundle (rows) × new bundle (columns)")
    table.add_column("old \\ new")
    for cat in c["verdicts"]["categories"]:
        table.add_column(escape(cat), justify="right")
    for cat, counts in zip(c["verdicts"]["categories"], c["verdicts"]["old_by_new"], strict=True):
        table.add_row(escape(cat), *map(str, counts))
    stdout.print(table)
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    for k, v in summary_lines(doc):
        summary.add_row(escape(k), escape(v))
    stdout.print(summary)
    t, s = doc["timing"], doc["studies"]
    stdout.print(f"{s['scored_now']} studies scored now, {s['resumed']} taken up from the work folder; "
                 f"{t['studies_per_minute'] or '–'} studies/min, {t['frames_per_second'] or '–'} frames/s "
                 f"({doc['engine']['name']}, {doc['engine']['workers']} workers × {doc['engine']['threads_per_worker']} threads)")
    o = doc["outputs"]
    stdout.print(escape(f"tables: {o['studies']}, {o['frames']}"))
    if o["report_html"]:
        stdout.print(escape(f"report: {o['report_html']}, {o['report_pdf']}"))
    stdout.print("[bold red]not for clinical use[/]: research software; models trained on synthetic phantoms")
