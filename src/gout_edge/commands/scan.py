"""``gout-edge scan``: bedside scan → per-patient result (live capture, video, images or DICOM).

Thin: parse the options, open the bundle, the source and the scorer, hand them to
``edge_runtime.exam.driver.run_exam`` and render its ``ExamResult`` (a table, or ``--json``: one shape
whatever the number of patients, ``ExamResult.to_dict``, published as docs/schemas/scan.schema.json).
SIGINT and SIGTERM end the exam and still write the report (``run_exam(handle_signals=True)``).
Exit codes (docs/design.md §8): 0 done · 2 usage · 3 bad input · 4 bundle · 5 capture device missing
or lost (a lost device still gives its report and result first), or the ``--send-to`` PACS could
not be reached or refused an object (after the result is shown).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ._options import (
    Backend,
    Precision,
    announce_default_bundle,
    backend_option,
    bundle_option,
    json_option,
    positive,
    precision_option,
    public_key_option,
    threads_option,
)
from ._output import emit_json, stderr, stdout


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
            help="Live view with the CAM (default: when there is a screen; else a progress line).",
        ),
        live_view: LiveKind = typer.Option(
            LiveKind.auto, "--live-view",
            help="auto: the page in the cart's browser where there is a display, else a progress line on stderr; "
                 "web: the page, served even without a display (the address is printed); window: an OpenCV window "
                 "(needs an OpenCV GUI build).",
        ),
        live_port: int = typer.Option(
            8765, "--live-port", min=0, max=65535, metavar="PORT",
            help="Port of the live page on 127.0.0.1 (0: any free port; the address is printed).",
        ),
        live_hold: float = typer.Option(
            10.0, "--live-hold", min=0.0, max=3600.0, metavar="SECONDS",
            help="After the exam, keep the live page up this long for a browser that has not shown the verdict yet.",
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Refuse non-ultrasound DICOM and unreadable files in folders instead of warning."
        ),
        paper: Optional[str] = typer.Option(
            None, "--paper", metavar="SIZE", envvar="GOUT_EDGE_PAPER", show_envvar=True,
            help="Paper size of report.pdf: a4 (the default) or letter.",
        ),
        public_key: Optional[Path] = public_key_option(),
        send_to: Optional[str] = typer.Option(
            None, "--send-to", metavar="HOST:PORT:AET", help="Send the DICOM results (SR, SC) to this PACS."
        ),
        json_out: bool = json_option("Print the result as one JSON document on stdout."),
    ) -> None:
        """Scan a patient: frames → region → CAM → key frames → the paper's vote, with a journal and a report."""
        from gout_edge.edge_runtime.exam.driver import Stop, run_exam
        from gout_edge.edge_runtime.inference.loading import open_bundle
        from gout_edge.edge_runtime.inference.scoring import Scorer
        from gout_edge.edge_runtime.live.views import open_view
        from gout_edge.edge_runtime.present.printable import paper_name
        from gout_edge.edge_runtime.sources import open_source

        kind, target = _source_options(video, dicom, images, demo)
        paper = paper_name(paper or "a4")  # a wrong size is a usage error before the exam
        if send_to is not None:  # a typo is caught before the exam, not after it
            from gout_edge.edge_runtime.network import parse_peer

            parse_peer(send_to, "--send-to")
        default = announce_default_bundle(bundle, json_out)  # on stderr: stdout holds the result alone
        opened = open_bundle(bundle, public_key)
        options: dict[str, Any] = {"patient": patient}
        if kind in ("dicom", "images"):
            options["strict"] = strict
        if kind == "phantom":  # the demo recording comes from the phantom generator, not the runtime
            from gout_edge.phantom.source import PhantomSource

            source: Any = PhantomSource(**options)
        else:
            source = open_source(kind, target, **options)
        truth = getattr(source, "diagnosis", None) if kind == "phantom" else None  # the phantom's true diagnosis
        stop = Stop()  # ended by SIGINT/SIGTERM or the live view's End button
        quiet = json_out and display is None and live_view is LiveKind.auto
        try:
            from ._options import out_folder

            out = out_folder(out)  # a file there, or a place that cannot be written: refused before the exam
            view = open_view(False if quiet else display, kind=live_view.value, port=live_port, hold_s=live_hold, stop=stop)
            try:
                scorer = Scorer(opened, backend=backend.value, precision=precision.value, threads=threads)
                try:
                    result = run_exam(source, opened, scorer, out, patient=patient, max_frames=max_frames,
                                      duration_s=duration, on_frame=view, before_close=view.flush, handle_signals=True, stop=stop,
                                      paper=paper)
                finally:
                    scorer.close()
            finally:
                hold = getattr(view, "hold_s", 0.0) if getattr(view, "url", None) else 0.0
                if hold > 0:  # the page waits for the browser: say so, rather than seem to hang
                    stderr.print(f"live view: the page stays up to {hold:g} s after the exam, until the browser has "
                                 "shown the verdict (--live-hold SECONDS to change)", markup=False, highlight=False,
                                 soft_wrap=True)
                view.close()
        finally:
            source.close()

        doc = result.to_dict()
        doc["default_bundle"] = default
        send_error = None
        if send_to is not None:  # docs/design.md §12: the SR and SC objects of every patient of the exam
            from gout_edge.edge_runtime.network.scu import push

            files = [p for patient_result in result.patients for p in patient_result.dicom]
            if files:
                doc["sent"], send_error = push(files, send_to)
            else:
                doc["sent"], send_error = {"objects": 0, "stored": 0}, "no DICOM results were written; nothing sent"
        if truth is not None:
            doc["phantom_diagnosis"] = "no gout" if truth == "control" else truth
        if json_out:
            emit_json(doc)
        else:
            _render(result, doc.get("phantom_diagnosis"))
            if doc["sent"] is not None:
                stdout.print(f"sent to {send_to}: {doc['sent']['stored']} of {doc['sent']['objects']} DICOM object(s) stored")
        if send_error is not None and not result.capture_lost:
            from gout_edge.edge_runtime.network import PeerUnavailableError

            raise PeerUnavailableError(f"--send-to: {send_error}")
        if result.capture_lost:
            from gout_edge.errors import CaptureError

            raise CaptureError(
                f"the exam ended early: {result.ended_by}; the result and report above use the frames "
                "gathered before the device was lost"
            )


class LiveKind(str, Enum):
    """``--live-view``: which live view ``--display`` opens (``edge_runtime.live.views.LIVE_KINDS``)."""

    auto = "auto"
    web = "web"
    window = "window"


def _render(result: Any, truth: str | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from gout_edge.edge_runtime.present.report import why_line

    colours = {"gout": "red", "no gout": "green"}
    for p in result.patients:
        table = Table(title=f"session {p.session_id}", show_header=False)
        c = colours.get(p.diagnosis, "yellow")
        if p.patient_id:
            table.add_row("patient", escape(p.patient_id))
        verdict = f"[bold {c}]{p.diagnosis}[/]"
        if truth is not None:
            verdict += f"   (the phantom's true diagnosis: [bold]{truth}[/])"
        table.add_row("diagnosis", verdict)
        table.add_row("why", escape(why_line(p)))
        fraction = "n/a" if p.abnormal_fraction is None else f"{p.abnormal_fraction:.3f}"
        threshold = "not calibrated" if p.threshold is None else f"{p.threshold:.3f}"
        table.add_row("abnormal fraction", f"{fraction} (threshold {threshold}; {p.abnormal_key_frames} of {p.key_frames} key frames)")
        table.add_row("frames", f"{p.frames_seen} seen, {p.frames_scored} scored, {p.duplicates} repeats, {p.dropped} dropped, "
                      f"{p.blank_frames} blank, {p.colour_frames} colour, {p.out_of_scope_frames} out of scope")
        table.add_row("ended by", escape(p.ended_by))
        if p.skipped_files:
            shown = "; ".join(str(f) for f in p.skipped_files[:5]) + (" …" if len(p.skipped_files) > 5 else "")
            table.add_row("skipped", escape(f"{len(p.skipped_files)} file(s): {shown}"))
        stdout.print(table)
        for name, path in (("summary", p.summary), ("printable", getattr(p, "pdf", None)), ("report", p.report),
                           ("journal", p.journal)):  # whole paths, never folded, so that they can be copied
            stdout.print(f"{name:10s} {escape(str(path))}", soft_wrap=True, highlight=False)
    stdout.print(f"bundle: {result.bundle.identity} ({result.bundle.backend}, {result.bundle.precision})")
    stdout.print("[dim]Research software; not for clinical use.[/]")
