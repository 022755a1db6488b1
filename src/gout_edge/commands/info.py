"""``gout-edge info [BUNDLE]``: what a bundle holds and what this device offers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._output import emit_json, stdout


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        bundle: Optional[Path] = typer.Argument(None, help="Bundle directory (default: the demo bundle shipped with gout-edge)."),
        public_key: Optional[Path] = typer.Option(None, "--public-key", help="Require a signature by this Ed25519 public key."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    ) -> None:
        """Show what a bundle holds (model, files, decision, budgets) and what this device offers."""
        from rich.table import Table

        from gout_edge.edge_runtime.bundle import default_bundle_path, open_bundle
        from gout_edge.edge_runtime.device import device_info

        device = device_info()
        opened = None
        if bundle is not None or default_bundle_path().exists():
            opened = open_bundle(bundle, public_key)
        if json_out:
            emit_json(
                {
                    "bundle": None if opened is None else {"path": str(opened.root), "manifest": opened.manifest.to_dict()},
                    "device": device,
                }
            )
            return
        if opened is None:
            stdout.print("[yellow]no bundle given and no demo bundle installed[/]")
        else:
            m = opened.manifest
            table = Table(title=f"bundle {opened.root}", show_header=False)
            table.add_row("model", f"{m.model.name} {m.model.version} — {m.model.architecture}")
            table.add_row("parameters / MACs", f"{m.model.parameters:,} / {m.model.macs_per_frame / 1e9:.2f} GMAC per frame")
            table.add_row("input", f"{m.input.channels}×{m.input.height}×{m.input.width} {m.input.dtype}, {m.input.normalization}")
            table.add_row("outputs", f"{m.outputs.logits}, {m.outputs.cam} (stride {m.outputs.cam_stride})")
            threshold = "not calibrated" if m.decision.patient_threshold is None else f"{m.decision.patient_threshold:.3f}"
            table.add_row("decision", f"image cut-off {m.decision.image_cutoff}, patient threshold {threshold}")
            held_out = m.evaluation.get("held_out")
            if held_out:
                auc, acc = held_out["image_auc"], held_out["patient"]["accuracy"]
                patient = "" if not acc else f", patient accuracy {acc['estimate']:.1%} ({acc['k']}/{acc['n']})"
                table.add_row("held-out figures", f"image AUC {auc['auc']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}] on "
                              f"{held_out['images']} images{patient} ({held_out['backend']} {held_out['precision']})")
            for engine in ("onnxruntime", "openvino"):
                q = m.quantization.get(engine)
                if q:
                    f = q["fidelity"]
                    table.add_row(f"INT8 ({engine})", f"{q.get('scheme', 'NNCF')}: AUC {f['auc_fp32']:.4f} → {f['auc_int8']:.4f}, "
                                  f"CAM r {f['cam_correlation_mean']:.4f}, {q['latency_ms']:.1f} ms at export")
            table.add_row("provenance", m.model.provenance)
            table.add_row("intended use", m.model.intended_use)
            for entry in m.files:
                table.add_row(f"file ({entry.role})", f"{entry.path} ({entry.size / 1e6:.1f} MB, sha256 {entry.sha256[:12]}… ok)")
            stdout.print(table)
        dev = Table(title="this device", show_header=False)
        dev.add_row("CPU", f"{device.cpu_model} ({device.machine})")
        dev.add_row("cores", f"{device.logical_cores} logical, {device.physical_cores or '?'} physical")
        dev.add_row("features", ", ".join(device.features) or "none detected")
        dev.add_row("backends", ", ".join(device.backends) or "none")
        dev.add_row("versions", ", ".join(f"{k} {v}" for k, v in device.versions.items()))
        stdout.print(dev)
