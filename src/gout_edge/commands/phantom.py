"""``gout-edge phantom --out DIR``: synthetic first-MTPJ ultrasound phantoms with ground truth;
``--out-of-scope``: the out-of-scope test set instead (other anatomy, Doppler, near misses, non-ultrasound)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._options import json_option, seed_option
from ._output import ProgressBar, comma_list, emit_json, stdout

FORMATS = ("png", "dicom", "video")


def register(app: typer.Typer) -> None:
    @app.command("phantom", short_help="Write synthetic first-MTP-joint ultrasound phantoms.")
    def phantom(
        out: Path = typer.Option(..., "--out", metavar="DIR", help="Output directory (created if missing)."),
        patients: int = typer.Option(
            20, "--patients", metavar="N", help="Number of phantom patients, at least 1 (about 55 % gout)."
        ),
        seed: int = seed_option("Random seed; the same seed gives identical files."),
        fmt: str = typer.Option("png", "--format", metavar="LIST", help="Comma list of forms: png, dicom, video."),
        sheet: bool = typer.Option(True, "--contact-sheet/--no-contact-sheet", help="Also write DIR/contact_sheet.png."),
        out_of_scope: bool = typer.Option(
            False, "--out-of-scope",
            help="Write the out-of-scope test set to DIR/out_of_scope instead of phantom patients: other anatomy, "
                 "Doppler, near misses, non-ultrasound images (DICOM and video for the ultrasound ones).",
        ),
        per_category: int | None = typer.Option(
            None, "--per-category", min=1, metavar="N", show_default=False,
            help="With --out-of-scope: variants of every kind (default 3).",
        ),
        json_out: bool = json_option(),
    ) -> None:
        """Write synthetic B-mode phantoms of the first MTP joint (PNG + index.csv, DICOM, screen video);
        with --out-of-scope, the out-of-scope test set instead."""
        from gout_edge.errors import UsageError

        if patients < 1:
            raise UsageError(
                f"--patients {patients} is too small; expected at least 1 phantom patient; "
                "fix: e.g. --patients 20"
            )
        formats = comma_list(fmt, "--format", FORMATS)
        if formats is None:
            raise UsageError(f"--format {fmt!r} is empty; expected a comma list of {', '.join(FORMATS)}")
        if per_category is not None and not out_of_scope:
            raise UsageError(f"--per-category {per_category} needs --out-of-scope; fix: add --out-of-scope, "
                             "or use --patients N for phantom patients")
        if out_of_scope:
            _write_out_of_scope(out, seed, per_category or 3, formats, sheet, json_out)
            return

        from gout_edge.phantom import contact_sheet, write_phantoms

        with ProgressBar("phantom") as bar:
            bar.update(0, None)
            summary = write_phantoms(out, patients, seed=seed, formats=formats, progress=bar.update)
        sheet_path = contact_sheet(out / "contact_sheet.png", seed=seed) if sheet else None

        if json_out:
            doc = summary.to_dict()
            doc["contact_sheet"] = None if sheet_path is None else str(sheet_path)
            emit_json(doc)
            return
        stdout.print(
            f"{summary.n_patients} phantom patients ({summary.n_gout} gout, {summary.n_controls} control), "
            f"{summary.n_images} images, {summary.n_lesion_images} with a lesion ({summary.n_subtle_images} subtle)",
            soft_wrap=True,
        )
        for form, count in summary.files.items():
            stdout.print(f"  {form}: {count} files", soft_wrap=True)
        if summary.index_csv is not None:  # none for video alone: the recordings carry their truth beside them
            stdout.print(f"  index: {summary.index_csv}", soft_wrap=True)
        if summary.ground_truth is not None:
            stdout.print(f"  ground truth: {summary.ground_truth}", soft_wrap=True)
        if sheet_path is not None:
            stdout.print(f"  contact sheet: {sheet_path}", soft_wrap=True)


def _write_out_of_scope(out: Path, seed: int, per_category: int, formats: tuple[str, ...], sheet: bool,
                        json_out: bool) -> None:
    from gout_edge.phantom import out_of_scope_sheet, write_out_of_scope

    with ProgressBar("out of scope") as bar:
        bar.update(0, None)
        summary = write_out_of_scope(out, seed=seed, per_category=per_category, formats=formats, progress=bar.update)
    sheet_path = out_of_scope_sheet(summary.out_dir / "contact_sheet.png", seed=seed) if sheet else None

    if json_out:
        doc = summary.to_dict()
        doc["contact_sheet"] = None if sheet_path is None else str(sheet_path)
        emit_json(doc)
        return
    counts = ", ".join(f"{n} {category.replace('_', ' ')}" for category, n in summary.by_category.items())
    stdout.print(f"{summary.n_images} out-of-scope images ({counts}), {summary.n_exams} exams", soft_wrap=True)
    for form, count in summary.files.items():
        stdout.print(f"  {form}: {count} files", soft_wrap=True)
    stdout.print(f"  index: {summary.index}", soft_wrap=True)
    if sheet_path is not None:
        stdout.print(f"  contact sheet: {sheet_path}", soft_wrap=True)
