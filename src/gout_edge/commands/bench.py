"""``gout-edge bench``: prove the latency budgets on this device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._output import ProgressBar, comma_list, emit_json, stderr, stdout


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        bundle: Optional[Path] = typer.Option(None, "--bundle", help="Bundle directory (default: the demo bundle)."),
        backends: Optional[str] = typer.Option(None, "--backends", help="Comma list, e.g. onnxruntime,openvino (default: all installed)."),
        precision: Optional[str] = typer.Option(None, "--precision", help="Comma list: fp32,int8 (default: all in the bundle)."),
        frames: int = typer.Option(100, "--frames", min=1, help="Measured frames per engine (after the warm-up)."),
        warmup: int = typer.Option(10, "--warmup", min=0, help="Frames per engine excluded from the figures."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (default: the engine's)."),
        torch_reference: bool = typer.Option(True, "--torch/--no-torch", help="Include torch eager FP32 as the reference, when installed."),
        cold_start: bool = typer.Option(True, "--cold-start/--no-cold-start", help="Measure cold start and streaming memory in fresh processes."),
        memory_frames: int = typer.Option(300, "--memory-frames", min=1, help="Frames streamed by the memory probe."),
        public_key: Optional[Path] = typer.Option(None, "--public-key", help="Require a signature by this Ed25519 public key."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write the latency distribution per engine (PNG, or SVG for .svg; needs matplotlib)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    ) -> None:
        """Latency per stage and end to end for every engine side by side (interleaved), cold start,
        memory, and the bundle's budgets checked: exit 1 when one is missed."""
        from gout_edge.calibration.phantom.video import mjpg_screens
        from gout_edge.edge_runtime.backends import PRECISIONS, REGISTRY
        from gout_edge.edge_runtime.bench import BenchConfig, run_bench
        from gout_edge.edge_runtime.bundle import open_bundle

        opened = open_bundle(bundle, public_key)
        config = BenchConfig(comma_list(backends, "--backends", tuple(REGISTRY)), comma_list(precision, "--precision", PRECISIONS),
                             frames, warmup, threads, cold_start, memory_frames)
        reference, cam_free, notes = _owner_side_parts(opened, threads, torch_reference)
        with ProgressBar("bench") as bar:
            result = run_bench(opened, mjpg_screens(), config, reference=reference, cam_free_model=cam_free, notes=notes,
                               progress=bar.update)
        if plot is not None:
            from gout_edge.calibration.plots import bench_latency_plot
            from gout_edge.errors import UsageError

            try:
                bench_latency_plot(result, plot)
            except UsageError as exc:  # matplotlib is on the owner's side ([torch] extra), not on a cart
                stderr.print(f"note: no latency plot written: {exc}", markup=False, highlight=False, soft_wrap=True)
        if json_out:
            emit_json(result.to_dict())
        else:
            render(result)
        if not result.passed:
            raise typer.Exit(1)


def _owner_side_parts(bundle, threads, torch_reference: bool):
    """What the runtime cannot make itself and the model owner's install can: torch eager FP32 as
    the reference, and the CAM-free graph for the CAM overhead (each left out, with a note, where
    torch or onnx is missing — as on a cart)."""
    notes: list[str] = []
    reference = cam_free = None
    if torch_reference:
        try:
            from gout_edge.export.torch_reference import NAME, TorchEagerScorer

            reference = (NAME, TorchEagerScorer(bundle, threads))
        except ImportError:
            notes.append("torch is not installed: no torch eager FP32 reference (pip install 'gout-edge[torch]')")
    try:
        from gout_edge.export.onnx import cam_free_model

        def cam_free(role: str) -> bytes | None:
            return cam_free_model(bundle.path(role), bundle.manifest.outputs.logits)
    except ImportError:
        pass
    return reference, cam_free, notes


def render(result) -> None:
    from rich.table import Table

    d = result.device
    stdout.print(f"[bold]{result.bundle}[/] on {d.cpu_model} ({d.logical_cores} cores; {', '.join(d.features) or 'no SIMD flags'})")
    table = Table(title="end to end per frame (decode → ROI → preprocess → inference with CAM → vote → journal), ms")
    for col in ("engine", "p50", "p90", "p95", "p99", "max", "fps", "× torch"):
        table.add_column(col, justify="right" if col != "engine" else "left")
    for e in result.engines:
        s = e.end_to_end
        mark = " ◀ bedside" if e.name == result.bedside_engine else ""
        ratio = "" if e.speedup_vs_reference is None else f"{e.speedup_vs_reference:.2f}"
        table.add_row(e.name + mark, *(f"{v:.1f}" for v in (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms)),
                      f"{s.throughput_fps:.1f}", ratio)
    stdout.print(table)
    stages = Table(title="stages, p50 ms")
    stages.add_column("engine")
    names = list(result.engines[0].stages)
    for n in names:
        stages.add_column(n, justify="right")
    for e in result.engines:
        stages.add_row(e.name, *(f"{e.stages[n].p50_ms:.2f}" for n in names))
    stdout.print(stages)
    budgets = Table(title="budgets")
    for col in ("budget", "measured", "limit", "result", "note"):
        budgets.add_column(col)
    for b in result.budgets:
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[b.passed]
        measured = "—" if b.measured is None else f"{b.measured:.3g} {b.unit}"
        budgets.add_row(b.name, measured, f"{b.budget:g} {b.unit}", verdict, b.note)
    stdout.print(budgets)
    for note in result.notes:
        stdout.print(f"note: {note}")
