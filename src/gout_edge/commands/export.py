"""``gout-edge export CHECKPOINT --out DIR``: checkpoint → checked ONNX → bundle (torch side)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._options import input_size as parse_input_size
from ._options import json_option, threads_option
from ._output import emit_json, stderr, stdout


def register(app: typer.Typer) -> None:
    @app.command("export", short_help="Export a checkpoint to a bundle (ONNX FP32 with CAM, INT8).")
    def export(
        checkpoint: Path = typer.Argument(
            ..., metavar="CHECKPOINT", help="Training checkpoint: .safetensors, or a torch state_dict (.pt/.pth)."
        ),
        out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Bundle directory to write (new or empty)."),
        blocks: Optional[int] = typer.Option(
            None, "--blocks", min=1, max=6, metavar="N", help="Residual stages; read from the checkpoint when left out."
        ),
        name: str = typer.Option("gout-resnet", metavar="NAME", help="Model name for the manifest."),
        version: str = typer.Option("0.0.0", metavar="VERSION", help="Model version for the manifest."),
        provenance: str = typer.Option("unknown", metavar="TEXT", help="Where the weights come from (data, training run)."),
        calib: Optional[Path] = typer.Option(
            None, "--calib", metavar="CSV",
            help="Index table (CSV) of labelled images for INT8 calibration and the fidelity check (default: "
            "synthetic phantoms).",
        ),
        int8: bool = typer.Option(True, "--int8/--no-int8", help="Also write INT8 models (ONNX Runtime QDQ, OpenVINO IR)."),
        accept_drop: bool = typer.Option(
            False, "--accept-drop", help="Keep INT8 models that fail the fidelity gate (recorded in the manifest)."
        ),
        threads: Optional[int] = threads_option("Inference threads while measuring (default: all cores)."),
        sign_key: Optional[Path] = typer.Option(
            None, "--sign-key", metavar="FILE", help="Ed25519 private key (from `gout-edge keygen`) to sign the manifest."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle in --out."),
        input_size: Optional[str] = typer.Option(
            None, "--input-size", metavar="HxW", help="Model input (default: the size the checkpoint was trained at)."
        ),
        json_out: bool = json_option(),
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
            input=parse_input_size(input_size),
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
            "parity": None if result.manifest.export is None else result.manifest.export.parity,
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
        engines = {} if q is None else {"onnxruntime": q.onnxruntime, "openvino": q.openvino}
        for engine, e in engines.items():
            if e:
                f = e["fidelity"]
                fp32 = "?" if q.fp32_latency_ms is None else f"{q.fp32_latency_ms:.1f}"
                stdout.print(
                    f"{engine} INT8 ({e.get('scheme', 'nncf')}): {e['latency_ms']:.1f} ms vs FP32 "
                    f"{fp32} ms; AUC {f['auc_fp32']:.4f} → {f['auc_int8']:.4f}, CAM r {f['cam_correlation_mean']:.4f}, "
                    f"patient decisions {'identical' if f['patient_decisions_identical'] else 'DIFFER'}"
                    + ("" if not f["failures"] else f" — [red]{'; '.join(f['failures'])}[/]")
                )
        if result.folded_rgb_stem:
            stdout.print("conv1 had 3 input channels; folded to 1 (exact for grey input)")
