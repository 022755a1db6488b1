"""``gout-edge calibrate --bundle DIR --data INDEX.csv``: the paper's patient threshold, written
into the bundle (docs/design.md §10; the library is ``gout_edge.calibration.calibrate``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer

from ._options import (
    Backend,
    Precision,
    backend_option,
    bundle_option,
    demo_bundle_refusal,
    is_installed_bundle,
    json_option,
    precision_option,
    public_key_option,
    seed_option,
    threads_option,
)
from ._output import ProgressBar, emit_json, percent, short_percent, stdout


def register(app: typer.Typer) -> None:
    @app.command("calibrate", short_help="Fit the patient threshold and write it into a bundle.")
    def calibrate_command(
        data: Path = typer.Option(
            ..., "--data", metavar="CSV", help="Index table (CSV) of labelled images of training patients."
        ),
        bundle: Optional[Path] = bundle_option(
            "Bundle directory whose manifest receives the threshold (the demo bundle is refused: copy it first)."
        ),
        folds: int = typer.Option(
            5, "--folds", min=0, metavar="K", help="Patient-wise cross-validation folds (paper: 5); 0 skips it."
        ),
        seed: int = seed_option("Seeds the assignment of patients to folds."),
        backend: Backend = backend_option(),
        precision: Precision = precision_option("auto, int8 or fp32: the precision the cart runs."),
        threads: Optional[int] = threads_option(),
        sign_key: Optional[Path] = typer.Option(
            None, "--sign-key", metavar="FILE",
            help="Ed25519 private key to re-sign the changed manifest; without it an old signature is removed.",
        ),
        public_key: Optional[Path] = public_key_option("Require the bundle to be signed by this public key."),
        out: Optional[Path] = typer.Option(
            None, "--out", metavar="DIR",
            help="Report folder (default: a new one, see above).",
        ),
        json_out: bool = json_option(),
    ) -> None:
        """The paper's diagnostic model: per patient the fraction of abnormal images; the threshold
        (0 to 1 in steps of 0.02) with the best patient accuracy; patient-wise k-fold
        cross-validation (Table III); the all-patient threshold written into the bundle's manifest.

        Writes calibration.json and threshold-accuracy.png (Figure S1) to --out, by default
        ./gout-edge-reports/calibration-<bundle name>-<UTC time>/ in the working folder. The demo
        bundle is refused: copy it and pass the copy with --bundle."""
        from gout_edge.calibration.calibrate import CalibrationConfig, calibrate

        if is_installed_bundle(bundle):
            raise demo_bundle_refusal("calibrate", "calibrate writes the threshold", bundle)
        config = CalibrationConfig(bundle, data, folds, seed, backend.value, precision.value, threads, sign_key, out,
                                   public_key)
        with ProgressBar("scoring images") as bar:
            result = calibrate(config, progress=bar.update)
        if json_out:
            emit_json(result.to_dict())
        else:
            render(result)


def mean_sd_text(mean: float, sd: float, scale: float = 100.0, digits: int = 1) -> str:
    if math.isnan(mean):
        return "–"
    return f"{scale * mean:.{digits}f}" + ("" if math.isnan(sd) else f" ± {scale * sd:.{digits}f}")


def render(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    cal = result.calibration
    if cal.cv is not None:
        table = Table(title=f"Diagnostic model, {len(cal.cv.folds)}-fold patient cross-validation (Table III)")
        table.add_column("fold")
        for name in ("ACC", "SEN", "SPE"):
            table.add_column(f"{name} % (n/N)", justify="right", no_wrap=True)
        table.add_column("threshold", justify="right")
        for f in cal.cv.folds:
            table.add_row(f"fold {f.fold}", *(short_percent(getattr(f, m)) for m in ("accuracy", "sensitivity", "specificity")),
                          f"{f.threshold:.2f}")
        table.add_section()
        table.add_row("mean ± sd", *(mean_sd_text(*cal.cv.mean_sd(m)) for m in ("accuracy", "sensitivity", "specificity")),
                      mean_sd_text(*cal.cv.mean_sd("threshold"), scale=1.0, digits=3))
        stdout.print(table)
        pooled = cal.cv.pooled.proportions()
        stdout.print("out-of-fold decisions pooled over folds (Wilson 95% CI): "
                     + "; ".join(f"{n} {percent(pooled[m])}" for n, m in (("ACC", "accuracy"), ("SEN", "sensitivity"), ("SPE", "specificity"))))
    o = cal.overall
    stdout.print(
        f"threshold over all {o.patients} patients: [bold]{o.threshold:.2f}[/] (patient accuracy "
        f"{100 * o.accuracy:.1f}%; best accuracy on {o.tied_best} grid threshold(s), chosen as the middle "
        f"of the plateau {o.plateau[0]:.2f}–{o.plateau[1]:.2f})"
    )
    stdout.print(
        f"{result.images} images ({result.images_voting} voting) scored with {result.backend} {result.precision}, "
        f"image cut-off {result.image_cutoff}"
    )
    if result.patients_excluded:
        stdout.print(f"[yellow]{result.patients_excluded} patient(s) without a usable image were left out[/]")
    if result.patients_below_min_key_frames:
        stdout.print(f"[yellow]{result.patients_below_min_key_frames} patient(s) have fewer usable images than the "
                     "bundle's minimum key frames; the cart would call them indeterminate[/]")
    signature = "re-signed" if result.signed else ("old signature removed (pass --sign-key to re-sign)"
                                                   if result.signature_removed else "unsigned")
    stdout.print(escape(f"written to {result.bundle}/manifest.json ({signature})"))
    stdout.print(escape(f"report: {result.out}/calibration.json; figure: {', '.join(str(p) for p in result.figures)}"))
    if result.not_for_clinical_use:
        stdout.print("[bold red]not for clinical use[/]: this model was trained on synthetic phantoms")
