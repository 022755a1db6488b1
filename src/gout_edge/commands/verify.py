"""``gout-edge verify [--bundle DIR]``: field verification of a bundle on this device, with a record."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from ._options import (
    LegacyBundleCommand,
    announce_default_bundle,
    bundle_argument,
    bundle_option,
    json_option,
    pick_bundle,
    public_key_option,
    threads_option,
)
from ._output import comma_list, emit_json, stderr, stdout

_WHY = {
    "integrity": "The bundle's signature could not be checked (--require-signature): give the owner's public key "
    "with --public-key, GOUT_EDGE_PUBLIC_KEY or trusted.pub, and use a signed bundle.",
    "reference": "This device does not reproduce the bundle's reference outputs within tolerance (engine, "
    "library or CPU differences): do not use it for patients until resolved.",
    "decisions": "Reference patient decisions differ from the expected ones: the threshold or decision settings "
    "changed after they were set (rerun `gout-edge calibrate`, or restore the bundle from its source).",
    "latency": "Inference is slower than the bundle's latency budgets on this device (check that nothing else "
    "loads the CPU and that --threads, if given, is not below the cores: the engines use every core unless told "
    "otherwise; `gout-edge bench` shows the stages).",
}


def _default_record_path() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"gout-edge-verification-{stamp}.json")


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items() if v not in ([], ""))
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value)
    return str(value)


def _render(record) -> None:
    from rich.table import Table

    title = f"verification of {record.bundle.get('identity') or record.bundle.get('path')}"
    table = Table(title=title)
    for column in ("check", "measured", "tolerance", "result"):
        table.add_column(column, overflow="fold")
    for c in record.checks:  # a check that did not run says so: never PASS
        result = "[yellow]not checked[/]" if c.skipped else ("[green]PASS[/]" if c.passed else "[red]FAIL[/]")
        measured = _short(c.measured) + (f"\n[dim]{c.detail}[/]" if c.detail and not c.passed else "")
        table.add_row(c.name, measured, _short(c.tolerance), result)
    stdout.print(table)
    d = record.device
    stdout.print(
        f"device {d['cpu_model']} ({d['machine']}, {', '.join(d['cpu_features']) or 'no SIMD features detected'}), "
        f"manifest sha256 {str(record.bundle.get('manifest_sha256'))[:16]}…"
    )
    colour = "green" if record.passed else "red"
    skipped = [c.name for c in record.checks if c.skipped]
    ran = len(record.checks) - len(skipped)
    line = f"[{colour}]{record.status.upper()}[/]: {ran - len(record.failures)} of {ran} checks passed"
    if skipped:
        line += f"; not checked: {', '.join(skipped)}"
    stdout.print(line)


def register(app: typer.Typer) -> None:
    @app.command("verify", cls=LegacyBundleCommand, short_help="Verify a bundle on this device; write a JSON record.")
    def verify(
        bundle: Optional[Path] = bundle_option(),
        public_key: Optional[Path] = public_key_option(
            "Require a signature by this Ed25519 public key (default: the device's configured key)."
        ),
        json_out: bool = json_option("Print the record as one JSON document on stdout."),
        out: Optional[Path] = typer.Option(
            None, "--out", "-o", metavar="FILE",
            help="Record file (default: ./gout-edge-verification-<UTC time>.json).",
        ),
        backends: Optional[str] = typer.Option(
            None, "--backends", metavar="LIST", help="Comma list of onnxruntime, openvino (default: all installed)."
        ),
        precision: Optional[str] = typer.Option(
            None, "--precision", metavar="LIST", help="Comma list of fp32, int8 (default: all in the bundle)."
        ),
        threads: Optional[int] = threads_option(),
        latency_frames: int = typer.Option(
            20, "--latency-frames", min=0, metavar="N", help="Frames timed for the latency check (0 skips it)."
        ),
        require_signature: bool = typer.Option(
            False, "--require-signature",
            help="Fail when the signature cannot be checked (no public key on this device); without it an "
                 "unchecked signature is reported as not checked.",
        ),
        old_bundle: Optional[Path] = bundle_argument(),
    ) -> None:
        """Verify a bundle on this device: hashes, signature, reference outputs on every backend and
        precision, reference patient decisions, latency.

        Writes a JSON record, also when the bundle is refused. Exit 0: all checks pass; 1: a check
        failed; 4: the bundle is invalid or tampered with."""
        from gout_edge._io import atomic_write_json
        from gout_edge.edge_runtime.field.verify import refused_record, verify_bundle
        from gout_edge.edge_runtime.inference.backends import PRECISIONS, REGISTRY
        from gout_edge.errors import BundleError, CheckFailedError

        bundle = pick_bundle(bundle, old_bundle, "verify")
        chosen_backends = comma_list(backends, "--backends", tuple(REGISTRY))
        chosen_precisions = comma_list(precision, "--precision", PRECISIONS)
        path = out if out is not None else _default_record_path()
        announce_default_bundle(bundle, json_out)  # the record holds it as default_bundle
        options = {"backends": None if chosen_backends is None else list(chosen_backends),
                   "precisions": None if chosen_precisions is None else list(chosen_precisions),
                   "latency_frames": latency_frames, "threads": threads, "require_signature": require_signature}

        def write(record) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, record.to_dict())

        try:
            record = verify_bundle(bundle, public_key, options["backends"], options["precisions"], latency_frames, threads,
                                   require_signature)
        except BundleError as exc:
            record = refused_record(bundle, exc, public_key, options)
            write(record)
            if json_out:
                emit_json(record.to_dict())  # the record as written (docs/schemas/verify.schema.json)
            stderr.print(f"verification record (refused) written to {path}")
            raise
        write(record)
        if json_out:
            emit_json(record.to_dict())
            stderr.print(f"verification record written to {path}")
        else:
            _render(record)
            stdout.print(f"record written to {path}")
        if not record.passed:
            names = ", ".join(c.name for c in record.failures)
            groups = {c.group for c in record.failures}
            why = [text for group, text in _WHY.items() if group in groups]
            if "latency" in groups:  # where this CPU stands (VNNI), and which shipped bundle meets the budget here
                from gout_edge.edge_runtime.field.latency import latency_hint

                why.append(latency_hint(record.bundle["path"], record.device["cpu_features"], threads=threads).text("verify"))
            raise CheckFailedError(
                f"{len(record.failures)} of {len(record.checks)} verification checks failed ({names}); "
                f"see {path}. {' '.join(why)}"
            )
