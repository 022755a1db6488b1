"""``gout-edge export CHECKPOINT --out DIR``: checkpoint → checked ONNX → bundle (torch side)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._output import emit_json, stderr, stdout


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        checkpoint: Path = typer.Argument(..., help="Training checkpoint: .safetensors, or a torch state_dict (.pt/.pth)."),
        out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write (new or empty)."),
        blocks: Optional[int] = typer.Option(None, "--blocks", help="Residual stages; read from the checkpoint when left out."),
        name: str = typer.Option("gout-resnet", help="Model name recorded in the manifest."),
        version: str = typer.Option("0.0.0", help="Model version recorded in the manifest."),
        provenance: str = typer.Option("unknown", help="Where the weights come from (data, training run)."),
        calib: Optional[Path] = typer.Option(
            None, "--calib", help="Index table (CSV) of labelled images for INT8 calibration and the fidelity check; default: synthetic phantoms."
        ),
        int8: bool = typer.Option(True, "--int8/--no-int8", help="Also write INT8 models (ONNX Runtime QDQ, OpenVINO IR)."),
        accept_drop: bool = typer.Option(False, "--accept-drop", help="Keep INT8 models that fail the fidelity gate (recorded in the manifest)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads while measuring (default: all cores)."),
        sign_key: Optional[Path] = typer.Option(None, "--sign-key", help="Ed25519 private key (from `gout-edge keygen`) to sign the manifest."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle in --out."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    ) -> None:
        """Export a checkpoint to a bundle: ONNX FP32 with the in-graph CAM, parity-checked against torch."""
        try:
            from gout_edge.export.build import ExportConfig, export_bundle
        except ModuleNotFoundError as exc:
            from gout_edge.errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"export needs the model owner's extra ({exc.name} is missing): pip install 'gout-edge[torch]'"
            ) from None
        config = ExportConfig(
            checkpoint, out, blocks, name=name, version=version, provenance=provenance, overwrite=overwrite,
            int8=int8, calib=calib, accept_drop=accept_drop, threads=threads, sign_key=sign_key,
        )
        with stderr.status("export") as status:
            result = export_bundle(config, progress=lambda msg: status.update(f"export: {msg}…"))
        p = result.parity
        summary = {
            "bundle": str(result.bundle),
            "blocks": result.manifest.model.blocks,
            "parameters": result.manifest.model.parameters,
            "macs_per_frame": result.manifest.model.macs_per_frame,
            "folded_rgb_stem": result.folded_rgb_stem,
            "parity": result.manifest.export["parity"],
            "files": [f.path for f in result.manifest.files],
            "quantization": result.manifest.quantization,
        }
        if json_out:
            emit_json(summary)
            return
        stdout.print(f"bundle written to [bold]{result.bundle}[/] ({summary['blocks']} stages, {summary['parameters']:,} parameters)")
        stdout.print(
            f"parity vs torch on {p.inputs} inputs: logits {p.logits_max_abs_diff:.2e}, CAM {p.cam_max_abs_diff:.2e}, "
            f"identity cam.mean+bias−logits {p.identity_max_abs_diff:.2e} (tolerance {p.tolerance:g}) — ok"
        )
        q = result.manifest.quantization
        for engine in ("onnxruntime", "openvino"):
            if engine in q:
                f = q[engine]["fidelity"]
                stdout.print(
                    f"{engine} INT8 ({q[engine].get('scheme', 'nncf')}): {q[engine]['latency_ms']:.1f} ms vs FP32 "
                    f"{q['fp32_latency_ms']:.1f} ms; AUC {f['auc_fp32']:.4f} → {f['auc_int8']:.4f}, CAM r {f['cam_correlation_mean']:.4f}, "
                    f"patient decisions {'identical' if f['patient_decisions_identical'] else 'DIFFER'}"
                    + ("" if not f["failures"] else f" — [red]{'; '.join(f['failures'])}[/]")
                )
        if result.folded_rgb_stem:
            stdout.print("conv1 had 3 input channels; folded to 1 (exact for grey input)")
