"""``gout-edge bench``: prove the latency budgets on this device."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._options import announce_default_bundle, bundle_option, json_option, public_key_option, threads_option
from ._output import ProgressBar, comma_list, emit_json, stderr, stdout


def register(app: typer.Typer) -> None:
    @app.command("bench", short_help="Latency, cold start and memory against the bundle's budgets.")
    def bench(
        bundle: Optional[Path] = bundle_option(),
        backends: Optional[str] = typer.Option(
            None, "--backends", metavar="LIST", help="Comma list of onnxruntime, openvino (default: all installed)."
        ),
        precision: Optional[str] = typer.Option(
            None, "--precision", metavar="LIST", help="Comma list of fp32, int8 (default: all in the bundle)."
        ),
        frames: int = typer.Option(
            40, "--frames", min=1, metavar="N",
            help="Frames measured per engine, after the warmup ones (40: a check of about a minute on 2 cores; "
                 "--frames 200 --warmup 20 for figures you report).",
        ),
        warmup: int = typer.Option(5, "--warmup", min=0, metavar="N", help="Frames per engine excluded from the figures."),
        threads: Optional[int] = threads_option(),
        torch_reference: bool = typer.Option(
            True, "--torch/--no-torch", help="Include torch eager FP32 as the reference, when installed."
        ),
        cold_start: bool = typer.Option(
            True, "--cold-start/--no-cold-start", help="Measure cold start and streaming memory in fresh processes."
        ),
        memory_frames: int = typer.Option(
            100, "--memory-frames", min=1, metavar="N", help="Frames streamed by the memory probe (a fresh process)."
        ),
        public_key: Optional[Path] = public_key_option(),
        plot: Optional[Path] = typer.Option(
            None, "--plot", metavar="FILE",
            help="Write the latency distribution per engine (PNG, or SVG for .svg; needs matplotlib).",
        ),
        isa: Optional[str] = typer.Option(
            None, "--isa", metavar="LIST",
            help="Comma list of oneDNN ISA caps (e.g. AVX512_CORE,AVX2): each engine in fresh "
            "processes, capped and native, for a cart without this machine's instructions.",
        ),
        json_out: bool = json_option(),
    ) -> None:
        """Latency per stage and end to end for every engine side by side (interleaved), cold start,
        memory, and the bundle's budgets checked. With --isa: each engine in fresh processes with
        oneDNN capped to each instruction set, beside the same engine uncapped.

        With no options it takes about a minute on a 2-core cart and says on stderr how long it has
        left; it warns when other work keeps the machine busy (the figures are then slower than
        the device can do). Exit 0: every budget is met; 1: one is missed (with --isa: by the
        bedside engine under a cap, or it crashed)."""
        from gout_edge.edge_runtime.field.bench import BenchConfig, run_bench
        from gout_edge.edge_runtime.inference.backends import PRECISIONS, REGISTRY
        from gout_edge.edge_runtime.inference.loading import open_bundle
        from gout_edge.phantom.video import mjpg_screens

        config = BenchConfig(comma_list(backends, "--backends", tuple(REGISTRY)), comma_list(precision, "--precision", PRECISIONS),
                             frames, warmup, threads, cold_start, memory_frames)
        default = announce_default_bundle(bundle, json_out)
        opened = open_bundle(bundle, public_key)
        if isa is not None:
            from gout_edge.edge_runtime.field.bench_isa import ISA_CHOICES

            caps = tuple(c.upper() for c in comma_list(isa, "--isa", tuple(c.lower() for c in ISA_CHOICES)) or ())
            if not _isa_bench(opened, config, caps, json_out, default):
                raise typer.Exit(1)
            return
        reference, cam_free, notes = _owner_side_parts(opened, threads, torch_reference)
        _warn_if_busy()
        with ProgressBar("bench", note=True, eta=False) as bar:
            result = run_bench(opened, mjpg_screens(), config, reference=reference, cam_free_model=cam_free, notes=notes,
                               progress=bar.update)
        if plot is not None:
            from gout_edge.calibration.plots import bench_latency_plot
            from gout_edge.errors import UsageError

            try:
                bench_latency_plot(result, plot)
            except UsageError as exc:  # matplotlib is on the owner's side ([torch] extra), not on a cart
                stderr.print(f"note: no latency plot written: {exc}", markup=False, highlight=False, soft_wrap=True)
        hint = None
        if result.latency_missed:  # where this CPU stands (VNNI), and which shipped bundle meets the budget here
            from gout_edge.edge_runtime.field.latency import latency_hint

            hint = latency_hint(opened.root, result.device.features, threads=threads)
        if json_out:
            doc = result.to_dict()
            doc.update(default_bundle=default, latency_hint=None if hint is None else hint.to_dict())
            emit_json(doc)
        else:
            render(result)
            if hint is not None:
                stderr.print(f"latency budget missed: {hint.text('bench')}", markup=False, highlight=False, soft_wrap=True)
        if not result.passed:
            raise typer.Exit(1)


def _warn_if_busy() -> None:
    """One line on stderr when other work holds the machine: its load average against its cores."""
    from gout_edge.edge_runtime.field.bench import machine_load

    load = machine_load()
    if load["busy"]:
        stderr.print(f"warning: this machine is busy: load average {load['load_average_1m']:.2f} over the last minute "
                     f"on {load['cores']} cores; the figures will be slower than this device can do — run bench when "
                     "nothing else runs", markup=False, highlight=False, soft_wrap=True)


def _isa_bench(bundle, config, caps: tuple[str, ...], json_out: bool, default: dict | None = None) -> bool:
    """``--isa``: run, render, and say whether the bedside engine met the budgets under every cap."""
    from gout_edge.edge_runtime.field.bench import engine_pairs
    from gout_edge.edge_runtime.field.bench_isa import run_isa_bench
    from gout_edge.edge_runtime.inference.backends import resolve
    from gout_edge.edge_runtime.inference.device import cpu_isa, device_info
    from gout_edge.phantom.video import mjpg_screens

    cpu = cpu_isa(device_info().features)
    with ProgressBar("fresh processes") as bar:
        runs = run_isa_bench(bundle.root, mjpg_screens(), engine_pairs(bundle, config), caps,
                             measured_frames=config.frames, warmup=config.warmup, threads=config.threads,
                             cpu=cpu, progress=bar.update)
    bedside = "{} {}".format(*resolve(bundle))
    b = bundle.manifest.budgets
    checks = []
    for run in runs:
        if run.engine != bedside or run.isa == "native":
            continue
        ok = (run.status == "ok" and run.end_to_end_p50_ms <= b.end_to_end_p50_ms
              and run.end_to_end_p99_ms <= b.end_to_end_p99_ms)
        checks.append({"isa": run.isa, "engine": bedside, "passed": ok, "budget_p50_ms": b.end_to_end_p50_ms,
                       "budget_p99_ms": b.end_to_end_p99_ms})
    passed = all(c["passed"] for c in checks)
    if json_out:
        emit_json({"bedside_engine": bedside, "cpu_isa": cpu, "runs": [r.to_dict() for r in runs], "budgets": checks,
                   "passed": passed, "default_bundle": default})
        return passed
    from rich.table import Table

    table = Table(title=f"end to end per frame under oneDNN caps (fresh process per row), ms; budgets p50 "
                        f"{b.end_to_end_p50_ms:g} / p99 {b.end_to_end_p99_ms:g}")
    for col in ("cap", "engine", "p50", "p99", "infer", "× native", "note"):
        table.add_column(col, justify="left" if col in ("cap", "engine", "note") else "right")
    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"

    for r in runs:
        note = r.detail if r.status != "ok" else (
            f"no effect: this CPU has no more than {cpu}" if r.cap_above_cpu else
            "" if r.affected is None else "changed by the cap" if r.affected else "not affected by the cap")
        mark = " ◀" if r.engine == bedside else ""
        table.add_row(r.isa, r.engine + mark, fmt(r.end_to_end_p50_ms), fmt(r.end_to_end_p99_ms),
                      fmt(r.inference_p50_ms), "—" if r.vs_native is None else f"{r.vs_native:.2f}", note)
    stdout.print(table)
    for c in checks:
        verdict = "[green]pass[/]" if c["passed"] else "[red]FAIL[/]"
        stdout.print(f"{c['isa']}: bedside engine {c['engine']} against the end-to-end budgets: {verdict}")
    stdout.print("[dim]Sequential fresh processes, not interleaved: compare with the spread of the native rows.[/]")
    return passed


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
            return cam_free_model(bundle.model_bytes(role), bundle.manifest.outputs.logits)
    except ImportError:
        pass
    return reference, cam_free, notes


def _amount(value: float, unit: str) -> str:
    """A budget figure, short enough for an 80-column table (fractions as percentages)."""
    if unit == "fraction":
        return f"{100 * value:.3g} %"
    return f"{value:.3g} {unit}"


def render(result) -> None:
    """Three tables that fit 80 columns: end to end per engine, stages (engines as columns), budgets."""
    from rich.table import Table

    d = result.device
    stdout.print(f"[bold]{result.bundle}[/] on {d.cpu_model} ({d.logical_cores} cores; {', '.join(d.features) or 'no SIMD flags'})")
    table = Table(title="end to end per frame, ms", caption="decode → ROI → preprocess → inference with CAM → vote → "
                  "journal; ◀ the bedside engine")
    for col in ("engine", "p50", "p90", "p95", "p99", "max", "fps", "× torch"):
        table.add_column(col, justify="right" if col != "engine" else "left", no_wrap=True)
    for e in result.engines:
        s = e.end_to_end
        mark = " ◀" if e.name == result.bedside_engine else ""
        ratio = "" if e.speedup_vs_reference is None else f"{e.speedup_vs_reference:.2f}"
        table.add_row(e.name + mark, *(f"{v:.1f}" for v in (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms)),
                      f"{s.throughput_fps:.1f}", ratio)
    stdout.print(table)
    stages = Table(title="stages, p50 ms")
    stages.add_column("stage", max_width=10)  # "live view render" wraps: 5 engines fit 80 columns
    for e in result.engines:
        header = "\n".join(e.name.rsplit(" ", 1))
        stages.add_column(header, justify="right", no_wrap=True, min_width=max(map(len, header.split("\n"))))
    for n in result.engines[0].stages:
        stages.add_row(n.replace("_", " "), *(f"{e.stages[n].p50_ms:.2f}" for e in result.engines))
    stdout.print(stages)
    budgets = Table(title="budgets")
    for col in ("budget", "measured", "limit", "result"):
        budgets.add_column(col, no_wrap=True)
    budgets.add_column("note")
    for b in result.budgets:
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]n/a[/]"}[b.passed]
        measured = "—" if b.measured is None else _amount(b.measured, b.unit)
        budgets.add_row(b.name, measured, _amount(b.budget, b.unit), verdict, b.note)
    stdout.print(budgets)
    for note in result.notes:
        stdout.print(f"note: {note}")
