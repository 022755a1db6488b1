"""The weaker cart, measured on this one: each engine in a fresh process with oneDNN capped to an
instruction set (``ONEDNN_MAX_CPU_ISA``), beside the same engine uncapped.

The budgets are written for 2-core x86 carts without AVX-512 VNNI; a development machine with
VNNI runs INT8 far faster. oneDNN reads ``ONEDNN_MAX_CPU_ISA`` once, at load, so every run is a
fresh process (``python -m gout_edge.edge_runtime.field.bench_isa``, the worker below) on the bedside
path of ``run_bench`` — decode, region, preprocess, inference with the CAM, vote, journal — over
the same JPEG frames, handed over in a folder. OpenVINO's CPU plugin is built on oneDNN and
honours the cap; ONNX Runtime's CPU provider runs its own MLAS kernels, so the cap leaves it as
it is — the report says so from the measurement (capped / native p50), and an engine that
crashes under a cap (OpenVINO segfaults under ``AVX2`` on some versions) is reported with its
signal, never taken down with it. A cap at or above what this CPU has (``device.cpu_isa``: ``AVX2`` on
a machine without AVX-512 or VNNI) cannot slow anything: such runs are marked ``cap_above_cpu``,
so that "not affected" is never read as "this engine ignores the cap". Runs are sequential
processes, not interleaved: read the ratios with the spread of the native runs in mind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.inference.device import ISA_CHOICES
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.errors import UsageError

from .bench import BenchConfig, run_bench

__all__ = ["ISA_CHOICES", "IsaRun", "run_isa_bench"]

NOT_AFFECTED_WITHIN = 0.10  # |capped / native − 1| below this: the cap does not affect the engine


@dataclass(frozen=True)
class IsaRun:
    """One engine in one fresh process, capped to ``isa`` (``native``: no cap)."""

    isa: str
    engine: str
    status: str  # ok | crashed | failed
    detail: str = ""
    end_to_end_p50_ms: float | None = None
    end_to_end_p99_ms: float | None = None
    inference_p50_ms: float | None = None
    vs_native: float | None = None  # capped p50 / native p50, end to end
    cap_above_cpu: bool = False  # this CPU has nothing above the cap: the run is a native one

    @property
    def affected(self) -> bool | None:
        """Whether the cap changed this engine's speed (None: not measured; False for a cap at or
        above the CPU's own ISA, whatever the noise)."""
        if self.vs_native is None or self.isa == "native":
            return None
        if self.cap_above_cpu:
            return False
        return abs(self.vs_native - 1.0) >= NOT_AFFECTED_WITHIN

    def to_dict(self) -> dict[str, Any]:
        return {"isa": self.isa, "engine": self.engine, "status": self.status, "detail": self.detail,
                "end_to_end_p50_ms": self.end_to_end_p50_ms, "end_to_end_p99_ms": self.end_to_end_p99_ms,
                "inference_p50_ms": self.inference_p50_ms, "vs_native": self.vs_native, "affected": self.affected,
                "cap_above_cpu": self.cap_above_cpu}


def _worker_command(bundle: Path, frame_dir: Path, backend: str, precision: str, frames: int, warmup: int,
                    threads: int | None) -> list[str]:
    return [sys.executable, "-m", "gout_edge.edge_runtime.field.bench_isa", str(bundle), str(frame_dir), backend, precision,
            str(frames), str(warmup), str(threads or 0)]


def _run_one(command: list[str], isa: str, engine: str, timeout_s: float) -> IsaRun:
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return IsaRun(isa, engine, "failed", f"no result within {timeout_s:g} s")
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return IsaRun(isa, engine, "crashed", f"the engine's process died with {name} under this cap")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return IsaRun(isa, engine, "failed", last[:300])
    doc = json.loads(lines[-1])
    return IsaRun(isa, engine, "ok", "", doc["p50"], doc["p99"], doc["inference_p50"])


def run_isa_bench(
    bundle: Path,
    frames: Sequence[bytes],
    engines: Sequence[tuple[str, str]],
    isas: Sequence[str],
    *,
    measured_frames: int = 100,
    warmup: int = 10,
    threads: int | None = None,
    timeout_s: float = 900.0,
    cpu: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[IsaRun, ...]:
    """Every (backend, precision) of ``engines`` natively and under each cap of ``isas``, each in
    a fresh process on ``frames`` (JPEG screens). ``cpu``: this CPU's ISA (``cpu_isa``), to mark
    the caps at or above it."""
    unknown = [i for i in isas if i not in ISA_CHOICES]
    if unknown:
        raise UsageError(f"--isa {', '.join(unknown)} is not a oneDNN ISA name; choose from {', '.join(ISA_CHOICES)}")
    runs: list[IsaRun] = []
    plan = [(isa, b, p) for isa in ("native", *isas) for b, p in engines]
    with tempfile.TemporaryDirectory(prefix="gout-edge-isa-") as tmp:
        frame_dir = Path(tmp)
        for k, data in enumerate(frames):
            (frame_dir / f"{k:03d}.jpg").write_bytes(data)
        native: dict[str, float] = {}
        for done, (isa, backend, precision) in enumerate(plan, 1):
            engine = f"{backend} {precision}"
            run = _run_one(_worker_command(bundle, frame_dir, backend, precision, measured_frames, warmup, threads),
                           isa, engine, timeout_s)
            if isa != "native" and cpu is not None and ISA_CHOICES.index(isa) >= ISA_CHOICES.index(cpu):
                run = replace(run, cap_above_cpu=True)
            if isa == "native" and run.end_to_end_p50_ms:
                native[engine] = run.end_to_end_p50_ms
            elif run.end_to_end_p50_ms and engine in native:
                run = replace(run, vs_native=run.end_to_end_p50_ms / native[engine])
            runs.append(run)
            if progress is not None:
                progress(done, len(plan))
    return tuple(runs)


def _worker(argv: Sequence[str]) -> None:
    """One engine on the bedside path (``run_bench``) over the JPEGs of a folder; one JSON line."""
    bundle_dir, frame_dir, backend, precision, frames, warmup, threads = argv
    data = [p.read_bytes() for p in sorted(Path(frame_dir).glob("*.jpg"))]
    config = BenchConfig((backend,), (precision,), int(frames), int(warmup), int(threads) or None, cold_start=False)
    result = run_bench(open_bundle(bundle_dir), data, config)
    (engine,) = result.engines
    print(json.dumps({"p50": engine.end_to_end.p50_ms, "p99": engine.end_to_end.p99_ms,
                      "inference_p50": engine.stages["inference"].p50_ms}), flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1:])
