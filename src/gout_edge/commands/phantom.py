"""``gout-edge phantom --out DIR``: synthetic first-MTPJ ultrasound phantoms with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from ._output import emit_json, stdout

FORMATS = ("png", "dicom", "video")


def _parse_formats(text: str) -> tuple[str, ...]:
    from gout_edge.errors import UsageError

    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in FORMATS]
    if not names or unknown:
        shown = ", ".join(repr(n) for n in unknown) if unknown else repr(text)
        raise UsageError(
            f"--format {shown} is not a phantom form; expected a comma list of "
            f"{', '.join(FORMATS)}; fix: e.g. --format png,dicom"
        )
    return names


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom(
        out: Path = typer.Option(..., "--out", help="Output directory (created if missing)."),
        patients: int = typer.Option(20, "--patients", help="Number of phantom patients (about 55 % gout)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
        fmt: str = typer.Option("png", "--format", help="Comma list of forms: png, dicom, video."),
        sheet: bool = typer.Option(True, "--contact-sheet/--no-contact-sheet", help="Also write DIR/contact_sheet.png."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    ) -> None:
        """Write synthetic B-mode phantoms of the first MTP joint (PNG + index.csv, DICOM, screen video)."""
        from gout_edge.errors import UsageError

        if patients < 1:
            raise UsageError(
                f"--patients {patients} is too small; expected at least 1 phantom patient; "
                "fix: e.g. --patients 20"
            )
        formats = _parse_formats(fmt)

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from gout_edge.calibration.phantom import contact_sheet, write_phantoms

        with Progress(
            TextColumn("phantom"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("phantom", total=None)

            def _progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = write_phantoms(out, patients, seed=seed, formats=formats, progress=_progress)
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
        stdout.print(f"  index: {summary.index_csv}  ground truth: {summary.ground_truth}", soft_wrap=True)
        if sheet_path is not None:
            stdout.print(f"  contact sheet: {sheet_path}", soft_wrap=True)
