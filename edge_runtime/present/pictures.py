"""All of an exam's pictures at once, written when the verdict is known (docs/design.md §13): the
overlay PNGs, ``summary.png`` (``report.py``) and ``report.pdf`` (``printable.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gout_edge.edge_runtime.imaging.png import write_png
from gout_edge.edge_runtime.pipeline.results import PatientResult
from gout_edge.manifest import CamScale

from .printable import write_report_pdf
from .report import (
    PDF_NAME,
    ExamIdentity,
    ExcludedFrames,
    Tile,
    identity_line,
    overlay_name,
    render_overlay,
    render_summary,
)

__all__ = ["ExamPictures", "write_exam_pictures"]


@dataclass(frozen=True)
class ExamPictures:
    overlays: tuple[Path, ...] = ()
    summary: Path | None = None
    pdf: Path | None = None
    tiles: tuple[Tile, ...] = field(default=(), repr=False)


def write_exam_pictures(out_dir: Path, result: PatientResult, tiles: Sequence[Tile], *, scale: CamScale | None,
                        excluded: ExcludedFrames | None = None, identity: ExamIdentity | None = None,
                        summary_name: str = "summary.png", paper: str | None = None) -> ExamPictures:
    """The overlay PNGs (``overlay_NN_keyKKKK.png``, highest probability first, each carrying the
    patient and the exam), ``summary.png`` and ``report.pdf`` (vector; ``paper``: ``a4``, the
    default, or ``letter``) of an exam, each written atomically."""
    out_dir = Path(out_dir)
    overlays = []
    header = identity_line(identity or ExamIdentity(result.patient_id), result.session_id, result.started_at)
    for rank, tile in enumerate(tiles, 1):
        path = out_dir / overlay_name(rank, tile)
        write_png(path, render_overlay(tile, scale, cutoff=result.image_cutoff, header=header))
        overlays.append(path)
    options = {"scale": scale, "excluded": excluded, "identity": identity}
    summary = write_png(out_dir / summary_name, render_summary(result, tiles, **options))
    pdf = write_report_pdf(out_dir / PDF_NAME, result, tiles, paper=paper, **options)
    return ExamPictures(tuple(overlays), summary, pdf, tuple(tiles))
