"""``gout-edge scan``: bedside scan → per-patient result (live capture, video, images or DICOM).

Thin: parse the options, open the bundle, the source and the scorer, hand them to
``edge_runtime.exam.run_exam`` and render its ``ExamResult`` (a table, or ``--json``).
SIGINT and SIGTERM end the exam and still write the report (``run_exam(handle_signals=True)``).
Exit codes (docs/design.md §8): 0 done · 2 usage · 3 bad input · 4 bundle · 5 capture device missing
or lost (a lost device still gives its report and result first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._options import (
    Backend,
    Precision,
    backend_option,
    bundle_option,
    json_option,
    positive,
    precision_option,
    public_key_option,
    threads_option,
)
from ._output import emit_json, stdout


def _source_options(video: Optional[str], dicom: Optional[Path], images: Optional[Path], demo: bool) -> tuple[str, Any]:
    from gout_edge.edge_runtime.sources import video_kind
    from gout_edge.errors import UsageError

    chosen = [(k, v) for k, v in (("video", video), ("dicom", dicom), ("images", images), ("demo", demo or None)) if v is not None]
    if len(chosen) != 1:
        names = ", ".join(f"--{k}" for k, _ in chosen) or "none"
        raise UsageError(f"give exactly one input: --video SRC, --dicom PATH, --images DIR or --demo (got {names})")
    kind, target = chosen[0]
    if kind == "video":
        return video_kind(str(target)), str(target)
    if kind == "demo":
        return "phantom", None
    return kind, target


def register(app: typer.Typer) -> None:
    @app.command("scan", short_help="Scan a patient: frames, CAM, key frames, the paper's vote.")
    def scan(
        video: Optional[str] = typer.Option(
            None, "--video", metavar="SRC", help="Capture device (/dev/video0 or 0), video file, or stream URL."
        ),
        dicom: Optional[Path] = typer.Option(
            None, "--dicom", metavar="PATH",
            help="DICOM file, multi-frame cine, or study folder (grouped by patient and study).",
        ),
        images: Optional[Path] = typer.Option(
            None, "--images", metavar="DIR", help="Folder of PNG/JPEG/DICOM images (one patient per sub-folder)."
        ),
        demo: bool = typer.Option(False, "--demo", help="Scan a synthetic phantom recording (no patient data)."),
        patient: Optional[str] = typer.Option(
            None, "--patient", metavar="ID",
            help="Patient ID for the report (for DICOM/folders with IDs: scan only this patient). Never logged.",
        ),
        out: Path = typer.Option(
            Path("scans"), "--out", "-o", metavar="DIR", help="Folder for session folders (journal, report, overlays)."
        ),
        bundle: Optional[Path] = bundle_option(),
        backend: Backend = backend_option(),
        precision: Precision = precision_option(),
        threads: Optional[int] = threads_option(),
        max_frames: Optional[int] = typer.Option(
            None, "--max-frames", min=1, metavar="N", help="End the exam after this many frames."
        ),
        duration: Optional[float] = typer.Option(
            None, "--duration", callback=positive, metavar="SECONDS", help="End the exam after this many seconds (above 0)."
        ),
        display: Optional[bool] = typer.Option(
            None, "--display/--no-display",
            help="Live window with the CAM (default: when a display and an OpenCV GUI exist).",
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Refuse non-ultrasound DICOM and unreadable files in folders instead of warning."
        ),
        public_key: Optional[Path] = public_key_option(),
        json_out: bool = json_option("Print the result as one JSON document on stdout."),
    ) -> None:
        """Scan a patient: frames → region → CAM → key frames → the paper's vote, with a journal and a report."""
        from gout_edge.edge_runtime.bundle import open_bundle
        from gout_edge.edge_runtime.exam import run_exam
        from gout_edge.edge_runtime.live import open_view
        from gout_edge.edge_runtime.scoring import Scorer
        from gout_edge.edge_runtime.sources import open_source

        kind, target = _source_options(video, dicom, images, demo)
        view = open_view(False if json_out and display is None else display)
        opened = open_bundle(bundle, public_key)
        options: dict[str, Any] = {"patient": patient}
        if kind in ("dicom", "images"):
            options["strict"] = strict
        if kind == "phantom":  # the demo recording comes from the phantom generator, not the runtime
            from gout_edge.calibration.phantom.source import PhantomSource

            source: Any = PhantomSource(**options)
        else:
            source = open_source(kind, target, **options)
        try:
            scorer = Scorer(opened, backend=backend.value, precision=precision.value, threads=threads)
            try:
                result = run_exam(source, opened, scorer, out, patient=patient, max_frames=max_frames,
                                  duration_s=duration, on_frame=view, handle_signals=True)
            finally:
                view.close()
                scorer.close()
        finally:
            source.close()

        if json_out:
            emit_json(result.to_dict())
        else:
            _render(result)
        if result.capture_lost:
            from gout_edge.errors import CaptureError

            raise CaptureError(
                f"the exam ended early: {result.ended_by}; the result and report above use the frames "
                "gathered before the device was lost"
            )


def _render(result: Any) -> None:
    from rich.table import Table

    colours = {"gout": "red", "no gout": "green"}
    for p in result.patients:
        table = Table(title=f"session {p.session_id}", show_header=False)
        c = colours.get(p.diagnosis, "yellow")
        if p.patient_id:
            table.add_row("patient", p.patient_id)
        table.add_row("diagnosis", f"[bold {c}]{p.diagnosis}[/]  ({p.reason})")
        fraction = "n/a" if p.abnormal_fraction is None else f"{p.abnormal_fraction:.3f}"
        threshold = "not calibrated" if p.threshold is None else f"{p.threshold:.3f}"
        table.add_row("abnormal fraction", f"{fraction} (threshold {threshold}; {p.abnormal_key_frames} of {p.key_frames} key frames)")
        table.add_row("frames", f"{p.frames_seen} seen, {p.frames_scored} scored, {p.duplicates} repeats, {p.dropped} dropped, "
                      f"{p.blank_frames} blank, {p.colour_frames} colour")
        table.add_row("ended by", p.ended_by)
        table.add_row("report", str(p.report))
        table.add_row("journal", str(p.journal))
        stdout.print(table)
    stdout.print(f"bundle: {result.bundle['identity']} ({result.bundle.get('backend')}, {result.bundle.get('precision')})")
    stdout.print("[dim]Research software; not for clinical use.[/]")
