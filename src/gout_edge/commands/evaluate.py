"""``gout-edge evaluate --bundle DIR --data INDEX.csv``: the paper's tables for a bundle on labelled
data (docs/design.md §10; the library is ``gout_edge.calibration.evaluate``)."""

from __future__ import annotations

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
    threads_option,
)
from ._output import ProgressBar, emit_json, percent, stdout


def register(app: typer.Typer) -> None:
    @app.command("evaluate", short_help="The paper's tables for a bundle on labelled held-out data.")
    def evaluate_command(
        data: Path = typer.Option(
            ..., "--data", metavar="CSV", help="Index table (CSV) of labelled images, held out from training."
        ),
        bundle: Optional[Path] = bundle_option(),
        backend: Backend = backend_option(),
        precision: Precision = precision_option(),
        compare: Optional[str] = typer.Option(
            None, "--compare", metavar="DIR|PRECISION",
            help="A second bundle, or a precision (fp32, int8) of this bundle: DeLong and McNemar tests (Table I); "
            "another bundle is taken as this one's teacher (fidelity: AUC difference, verdict agreement, CAM correlation).",
        ),
        threads: Optional[int] = threads_option(),
        public_key: Optional[Path] = public_key_option("Require bundles signed by this public key."),
        out: Optional[Path] = typer.Option(
            None, "--out", metavar="DIR",
            help="Report folder (default: a new one, see above).",
        ),
        record: bool = typer.Option(
            False, "--record",
            help="Write the held-out summary into the bundle's manifest (evaluation.held_out; with --compare TEACHER "
            "also evaluation.fidelity).",
        ),
        sign_key: Optional[Path] = typer.Option(
            None, "--sign-key", metavar="FILE", help="Ed25519 private key to re-sign the manifest after --record."
        ),
        json_out: bool = json_option(),
    ) -> None:
        """Image-level accuracy, sensitivity, specificity (Wilson 95% CIs) and AUC (DeLong 95% CI);
        patient-level figures with the bundle's threshold; with --compare, DeLong's test of the
        AUCs and McNemar's test of paired decisions, and against another bundle (a distilled
        student's teacher) the student's fidelity to it.

        Writes evaluation.json, roc.png and confusion.png to --out, by default
        ./gout-edge-reports/evaluation-<bundle name>-<UTC time>/ in the working folder."""
        from gout_edge.calibration.evaluate import EvaluationConfig, evaluate

        if record and is_installed_bundle(bundle):
            raise demo_bundle_refusal("evaluate", "--record writes the held-out summary", bundle)
        config = EvaluationConfig(
            bundle, data, backend.value, precision.value, compare, threads, out, public_key, record=record,
            sign_key=sign_key,
        )
        with ProgressBar("scoring images") as bar:
            result = evaluate(config, progress=bar.update)
        if json_out:
            emit_json(result.to_dict())
        else:
            render(result)


def _p(test: Any) -> str:
    if test is None or test.p_value is None or test.p_value != test.p_value:
        return "–"
    return "<.001" if test.p_value < 0.001 else f"{test.p_value:.3f}".lstrip("0")


METRICS = (("ACC", "accuracy"), ("SEN", "sensitivity"), ("SPE", "specificity"))


def render(result: Any) -> None:
    """Table I's figures with metrics as rows (a narrow terminal keeps each cell on one line)."""
    from rich.markup import escape
    from rich.table import Table

    cmp = result.comparison
    image = Table(title=f"Image level: {len(result.rows)} images", caption="% (n/N) [95% CI]")
    image.add_column("metric")
    for m in result.models:
        image.add_column(escape(m.name), justify="right", no_wrap=True)
    if cmp is not None:
        image.add_column("p", justify="right")
    for short, metric in METRICS:
        cells = [percent(m.image.confusion.proportions(result.level)[metric]) for m in result.models]
        image.add_row(f"{short} %", *cells, *([_p(cmp.image[metric])] if cmp is not None else []))
    image.add_row("AUC", *(str(m.image.auc) for m in result.models),
                  *([_p(cmp.auc)] if cmp is not None else []))
    stdout.print(image)

    patient = Table(title="Patient level: what the cart would say (its pipeline and verdict rule)", caption="% (n/N) [95% CI]")
    patient.add_column("metric")
    for m in result.models:
        patient.add_column(escape(m.name), justify="right", no_wrap=True)
    with_p = cmp is not None and cmp.patient is not None
    if cmp is not None:
        patient.add_column("p", justify="right")
    extra = [""] if cmp is not None else []
    patient.add_row("threshold", *("not calibrated" if not m.patient.calibrated else f"{m.patient.threshold:.2f}"
                                   for m in result.models), *extra)
    patient.add_row("decided", *(f"{len(m.patient.decided)}/{len(m.patient.patients)}" for m in result.models), *extra)
    for short, metric in METRICS:
        cells = []
        for m in result.models:
            c = m.patient.confusion
            cells.append("indeterminate" if not m.patient.calibrated else
                         "–" if c is None else percent(c.proportions(result.level)[metric]))
        patient.add_row(f"{short} % (decided)", *cells,
                        *([_p(cmp.patient[metric]) if with_p else "–"] if cmp is not None else []))
    patient.add_row("ACC % (all patients)", *(percent(m.patient.accuracy_all) for m in result.models), *extra)
    stdout.print(patient)

    for m in result.models:
        if not m.patient.calibrated:
            stdout.print(f"[yellow]{escape(m.name)}: the patient threshold is not calibrated (run `gout-edge calibrate`); "
                         "image-level figures only, every patient indeterminate[/]")
        elif m.patient.indeterminate:
            reasons = ", ".join(f"{n} {code.replace('_', ' ')}" for code, n in m.patient.indeterminate_by_reason.items())
            stdout.print(f"[yellow]{escape(m.name)}: {m.patient.indeterminate} of {len(m.patient.patients)} patient(s) "
                         f"indeterminate, as the cart would say ({reasons})[/]")
        if m.image.unusable:
            stdout.print(f"{escape(m.name)}: {m.image.unusable} blank, colour or out-of-scope image(s) counted at image level, left out of the vote")
    if cmp is not None:
        stdout.print(
            f"p: {escape(cmp.other)} against {escape(cmp.reference)}; DeLong's test for the AUC "
            f"(difference {-cmp.auc.difference + 0.0:+.3f}), McNemar's test for paired decisions"
            + ("" if cmp.patient is None else f" ({cmp.patients_compared} patients decided by both)")
        )
    if result.fidelity is not None:
        f = result.fidelity
        stdout.print(
            f"as a student of {escape(f.teacher['name'])} {escape(f.teacher['version'])}: AUC difference "
            f"{f.auc.difference:+.3f} [{f.auc.ci_low:+.3f}, {f.auc.ci_high:+.3f}] (paired DeLong), same patient "
            f"verdict for {percent(f.verdicts_agree)}, CAM correlation median {f.cam_correlation_median:.3f} "
            f"(5th percentile {f.cam_correlation_p05:.3f}, {f.cam_images} images)")
    stdout.print("CIs: Wilson score (proportions), DeLong (AUC)")
    stdout.print(escape(f"report: {result.out}/evaluation.json; figures: {', '.join(str(p) for p in result.figures)}"))
    if result.not_for_clinical_use:
        stdout.print("[bold red]not for clinical use[/]: a model trained on synthetic phantoms")
