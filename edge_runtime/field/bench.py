"""``gout-edge bench``: latency on this device against the bundle's budgets (docs/design.md §9).

The measured path is the bedside one (``ExamSession.feed``'s parts, in order): decode a 1080p
MJPG screen as a grabber delivers it (``ScreenDecoder``, as the V4L2 source does), locate the B-mode region (``RoiTracker``, cached), prepare
the model input (``FramePreparer``), infer with the CAM (``Scorer``), vote, append the journal
line (flush + fsync) — end to end, the frame's result with its CAM. Rendering the CAM overlay
for a live view is timed too, as its own stage outside that path: a headless cart never does it
per frame, a cart with a display adds it. Every engine × precision the
bundle and the device offer — and a reference scorer handed in by the caller (the command passes
torch eager FP32 on the same architecture when torch is installed) — runs on the same frames,
interleaved round-robin, so that noise from a shared machine hits them alike; figures are
reported as percentiles and as ratios to the reference.

The runtime measures what it is given: the frames (JPEG-encoded screens, as an MJPG grabber
delivers them), the reference scorer, and the same graph without the CAM for the CAM overhead
all come from the caller, so that this module imports neither the phantom generator nor torch
nor onnx.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import find_roi
from gout_edge.edge_runtime.inference.backends import REGISTRY, get_backend, model_role, precisions_offered, resolve
from gout_edge.edge_runtime.inference.device import DeviceInfo, device_info, int8_class
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.inference.timing import interleaved_ms
from gout_edge.edge_runtime.pipeline.stages import FrameScorer
from gout_edge.edge_runtime.pipeline.stream import FramePreparer, RoiTracker
from gout_edge.edge_runtime.pipeline.verdict import decide
from gout_edge.edge_runtime.present.overlay import overlay_cam
from gout_edge.edge_runtime.sources.video import ScreenDecoder
from gout_edge.errors import GoutEdgeError, UsageError
from gout_edge.manifest import Budgets, Role

__all__ = ["BenchConfig", "BenchResult", "BudgetCheck", "EngineResult", "LatencyStats", "cam_free_role", "engine_pairs",
           "machine_load", "run_bench", "time_left"]

STAGES = ("decode", "roi", "preprocess", "inference", "vote", "journal")  # the result path, end to end
DISPLAY_STAGE = "live_view_render"  # CAM overlay for a live view: timed, but outside the result path


@dataclass(frozen=True)
class BenchConfig:
    backends: tuple[str, ...] | None = None  # None: every backend the device has
    precisions: tuple[str, ...] | None = None  # None: every precision the bundle has
    frames: int = 100
    warmup: int = 10
    threads: int | None = None
    cold_start: bool = True  # also the streaming-memory probe (a fresh process on the bedside path)
    memory_frames: int = 300


@dataclass(frozen=True)
class LatencyStats:
    n: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def throughput_fps(self) -> float:
        return 1e3 / self.mean_ms if self.mean_ms > 0 else float("inf")

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        x = np.asarray(samples_ms, dtype=np.float64)
        p = np.percentile(x, [50, 90, 95, 99])
        return cls(int(x.size), float(x.mean()), *(float(v) for v in p), float(x.max()))

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "throughput_fps": self.throughput_fps}


@dataclass(frozen=True)
class EngineResult:
    name: str
    backend: str
    precision: str
    stages: dict[str, LatencyStats]
    end_to_end: LatencyStats
    speedup_vs_reference: float | None  # reference p50 / this p50, end to end
    samples_ms: tuple[float, ...] = field(default=(), repr=False)  # end to end, for plots

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "precision": self.precision,
                "stages": {k: v.to_dict() for k, v in self.stages.items()},
                "end_to_end": self.end_to_end.to_dict(), "speedup_vs_reference": self.speedup_vs_reference}


@dataclass(frozen=True)
class BudgetCheck:
    name: str
    measured: float | None
    budget: float
    unit: str
    passed: bool | None  # None: could not be measured here
    note: str = ""


@dataclass(frozen=True)
class BenchResult:
    bundle: str
    bundle_path: str
    device: DeviceInfo
    config: BenchConfig
    bedside_engine: str  # what `auto` picks (else the first engine measured): the budgets are checked against it
    engines: tuple[EngineResult, ...]
    roi_detection: LatencyStats  # an uncached region detection, for reference
    cam_overhead_fraction: float | None
    cold_start: dict[str, Any]
    memory: dict[str, float]
    budgets: tuple[BudgetCheck, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    scope_guard: LatencyStats | None = None  # the guard's distance on one frame's features (inside inference)
    load: dict[str, Any] = field(default_factory=dict)  # the machine's load when the run started (machine_load)

    @property
    def passed(self) -> bool:
        return all(b.passed is not False for b in self.budgets)

    @property
    def latency_missed(self) -> bool:
        """Whether the bedside engine missed an end-to-end latency budget (p50 or p99)."""
        return any(b.name.startswith("end_to_end_") and b.passed is False for b in self.budgets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle, "bundle_path": self.bundle_path, "device": asdict(self.device),
            "config": asdict(self.config), "bedside_engine": self.bedside_engine,
            "engines": [e.to_dict() for e in self.engines], "roi_detection": self.roi_detection.to_dict(),
            "cam_overhead_fraction": self.cam_overhead_fraction, "cold_start": self.cold_start,
            "memory": self.memory, "budgets": [asdict(b) for b in self.budgets], "passed": self.passed,
            "scope_guard": None if self.scope_guard is None else self.scope_guard.to_dict(),
            "notes": list(self.notes),
            "load": self.load,
        }


def _reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh, so that it covers streaming only (Linux; a no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc (0 where unavailable)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return 0.0, 0.0


def _probe(bundle: Bundle, backend: str, precision: str, cache_dir: str, frame_dir: Path, threads: int | None,
           frames: int) -> dict[str, float]:
    """A fresh process on the bedside path: seconds from process start to the first result
    (import, open with hash checks, compile, one frame), then resident memory over ``frames``."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import sys, json, cv2, numpy as np\n"
        "from gout_edge.edge_runtime.inference.loading import open_bundle\n"
        "from gout_edge.edge_runtime.inference.scoring import Scorer\n"
        "from gout_edge.edge_runtime.pipeline.stream import FramePreparer, RoiTracker\n"
        "from gout_edge.edge_runtime.field.bench import _reset_peak_rss, _rss_mb\n"
        f"s = Scorer(open_bundle({str(bundle.root)!r}), {backend!r}, {precision!r}, {threads!r}, {cache_dir!r})\n"
        "m = s.bundle.manifest\n"
        "s.session.run(np.zeros((1, 1, m.input.height, m.input.width), np.float32))\n"
        "print(json.dumps({'first_result_s': time.perf_counter() - t0}), flush=True)\n"
        f"frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted(__import__('pathlib').Path({str(frame_dir)!r}).glob('*.jpg'))]\n"
        "prep, track = FramePreparer(m.input, m.preprocess), RoiTracker(m.preprocess)\n"
        f"n = {frames}; after = 0.0\n"
        "for i in range(n):\n"
        "    img = frames[i % len(frames)]\n"
        "    s.score_prepared([prep(img, track.locate(img)[0])])\n"
        "    if i == min(n - 1, 20): after = _rss_mb()[0]; _reset_peak_rss()\n"
        "now, peak = _rss_mb()\n"
        "print(json.dumps({'rss_after_warmup_mb': after, 'rss_end_mb': now, 'peak_rss_mb': peak, 'frames': n}))\n"
    )
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    wall_first = time.perf_counter() - start
    rest, err = proc.communicate(timeout=1800)
    if proc.returncode != 0 or not first:
        raise RuntimeError((err.strip().splitlines() or ["the probe process failed"])[-1])
    out = {"process_start_to_first_result_s": wall_first, **json.loads(first), **json.loads(rest.strip().splitlines()[-1])}
    out["growth_mb"] = out["rss_end_mb"] - out["rss_after_warmup_mb"]
    return out


def engine_pairs(bundle: Bundle, config: BenchConfig) -> list[tuple[str, str]]:
    backends = config.backends or tuple(n for n in REGISTRY if get_backend(n).is_available())
    precisions = config.precisions or tuple(precisions_offered(bundle.manifest.roles()))
    out = []
    for b in backends:
        for p in precisions:
            try:
                resolve(bundle, b, p)
            except GoutEdgeError:  # this backend cannot run this precision of the bundle
                continue
            out.append((b, p))
    return out


def _scope_guard_ms(scorer: Scorer, sample: np.ndarray, repeats: int = 200) -> LatencyStats | None:
    """What the bundle's scope guard adds to a frame: its distance on one frame's pooled features,
    ``repeats`` times (the engine's time to make the features is part of inference)."""
    guard = scorer.guard
    features = None if guard is None else scorer.session.run(sample).features
    if features is None:
        return None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        guard.distance(features)
        times.append((time.perf_counter() - t0) * 1e3)
    return LatencyStats.of(times)


def _cam_overhead(bundle: Bundle, role: str, cam_free_model: bytes, sample: np.ndarray, threads: int | None) -> float:
    """Extra inference time of the CAM: the bundle's ONNX graph (``role``) against the same graph
    with a pooled head (``cam_free_model``), both on ONNX Runtime, interleaved."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    plain = ort.InferenceSession(cam_free_model, so, providers=["CPUExecutionProvider"])
    full = ort.InferenceSession(bundle.model_bytes(role), so, providers=["CPUExecutionProvider"])
    x = {"input": sample}
    calls = {"plain": lambda: plain.run(None, x), "full": lambda: full.run(None, x)}
    probe = interleaved_ms(calls, repeats=3, warmup=3)
    # about 1.5 s per graph: a compact model's few milliseconds need hundreds of runs for a 5 % difference
    repeats = int(np.clip(1500.0 / max(float(np.median(probe["full"])), 1e-3), 20, 400))
    times = interleaved_ms(calls, repeats=repeats, warmup=0)
    return float(np.median(times["full"]) / np.median(times["plain"]) - 1.0)

def cam_free_role(bundle: Bundle, precision: str) -> str:
    """The ONNX model file whose CAM-free twin the caller builds for the CAM overhead."""
    return model_role(bundle.manifest.roles(), "onnxruntime", precision) or Role.ONNX_FP32


def run_bench(
    bundle: Bundle,
    frames: Sequence[bytes],
    config: BenchConfig = BenchConfig(),
    *,
    reference: tuple[str, FrameScorer] | None = None,
    cam_free_model: Callable[[str], bytes | None] | None = None,
    notes: Sequence[str] = (),
    progress: Callable[..., None] | None = None,
) -> BenchResult:
    """Measure ``bundle`` on ``frames`` (JPEG-encoded screens). ``reference``: a (name, scorer) to
    compare with (speed-ups are its p50 over each engine's); ``cam_free_model(role)``: that ONNX
    file with a pooled head instead of the CAM (serialized), for the CAM overhead; ``notes``:
    what the caller could not provide, carried into the result. ``progress(done, total, note=…)``:
    called through the run; ``note`` names the step and the time left, estimated from the frames
    measured so far (``time_left``)."""
    if not frames:
        raise UsageError("bench needs at least one frame to measure")
    notes = list(notes)
    load = machine_load()  # before any engine runs: other work on the machine, not this run's own
    if load["busy"]:
        notes.append(f"the machine was busy when this run started (load average {load['load_average_1m']:.2f} over "
                     f"{load['cores']} cores): every figure is slower than this device can do")
    m = bundle.manifest
    pairs = engine_pairs(bundle, config)
    if not pairs:
        raise UsageError("none of the requested backends × precisions can run this bundle on this device")
    bedside = "{} {}".format(*resolve(bundle))
    if bedside not in {f"{b} {p}" for b, p in pairs}:  # --backends/--precision left the auto pick out
        notes.append(f"the budgets are checked against {'{} {}'.format(*pairs[0])}, the first engine measured; "
                     f"the bedside engine ({bedside}) was not among those requested")
        bedside = "{} {}".format(*pairs[0])
    scorers: dict[str, Any] = {f"{b} {p}": Scorer(bundle, b, p, config.threads) for b, p in pairs}
    if reference is not None:
        scorers[reference[0]] = reference[1]
    preparer = FramePreparer(m.input, m.preprocess)
    trackers = {name: RoiTracker(m.preprocess) for name in scorers}
    decode = ScreenDecoder()
    probabilities: dict[str, list[float]] = {name: [] for name in scorers}
    samples: dict[str, dict[str, list[float]]] = {
        name: {s: [] for s in (*STAGES, DISPLAY_STAGE, "end_to_end")} for name in scorers
    }
    roi_detect: list[float] = []
    rss_after_warmup = 0.0
    journal_dir = tempfile.mkdtemp(prefix="gout-edge-bench-")
    journal = open(os.path.join(journal_dir, "journal.jsonl"), "w", encoding="utf-8")
    total = config.warmup + config.frames
    names = list(scorers)
    steps = total + (2 if config.cold_start else 0) + 1  # the loop's frames, the two probes, the CAM overhead
    loop_start = time.perf_counter()

    def report(done: int, step: str, left_s: float) -> None:
        if progress is not None:
            progress(done, steps, note=step if done >= steps else f"{step} · {time_left(left_s)}")

    def after_loop_s(per_round_s: float) -> float:
        """The steps after the loop, estimated: the CAM overhead, and two fresh processes on the
        bedside engine (start ≈ 4 s each; the second streams ``memory_frames``)."""
        one = per_round_s / max(1, len(names))
        probes = (8.0 + config.memory_frames * one) if config.cold_start else 0.0
        return 2.0 + 26 * one + probes

    report(0, "warming up", float("nan"))
    try:
        for i in range(total):
            data = frames[i % len(frames)]
            order = names[i % len(names):] + names[: i % len(names)]  # rotate who goes first
            for name in order:
                t = [time.perf_counter()]
                decoded = decode(data)
                if decoded is None:
                    raise UsageError(f"bench frame {i % len(frames)} is not a JPEG that decodes")
                image, colour_sample = decoded
                t.append(time.perf_counter())
                roi, _ = trackers[name].locate(image)
                t.append(time.perf_counter())
                prepared = preparer(image, roi, colour_sample)
                t.append(time.perf_counter())
                score = scorers[name].score_prepared([prepared])[0]
                t.append(time.perf_counter())
                probabilities[name].append(score.probability)
                decide(probabilities[name][-200:], m.decision)
                t.append(time.perf_counter())
                journal.write(json.dumps({"frame": i, "p": score.probability}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
                t.append(time.perf_counter())
                r = prepared.roi
                overlay_cam(image[r.y0 : r.y1, r.x0 : r.x1], score.cam)  # what a live view shows
                render_ms = (time.perf_counter() - t[-1]) * 1e3
                if i >= config.warmup:
                    for k, stage in enumerate(STAGES):
                        samples[name][stage].append((t[k + 1] - t[k]) * 1e3)
                    samples[name][DISPLAY_STAGE].append(render_ms)
                    samples[name]["end_to_end"].append((t[-1] - t[0]) * 1e3)
            if i == config.warmup - 1 or (config.warmup == 0 and i == 0):
                rss_after_warmup = _rss_mb()[0]
            if i % 10 == 0:
                gray = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
                t0 = time.perf_counter()
                find_roi(gray, m.preprocess)
                roi_detect.append((time.perf_counter() - t0) * 1e3)
            per_round = (time.perf_counter() - loop_start) / (i + 1)
            report(i + 1, f"{len(names)} engines, interleaved", per_round * (total - i - 1) + after_loop_s(per_round))
    finally:
        journal.close()
        for f in Path(journal_dir).iterdir():
            f.unlink()
        os.rmdir(journal_dir)
    rss_end, rss_peak = _rss_mb()
    ref_p50 = None
    if reference is not None:
        ref_p50 = float(np.percentile(samples[reference[0]]["end_to_end"], 50))
    engines = []
    for name, scorer in scorers.items():
        e2e = LatencyStats.of(samples[name]["end_to_end"])
        engines.append(EngineResult(
            name, scorer.backend, scorer.precision, {s: LatencyStats.of(samples[name][s]) for s in (*STAGES, DISPLAY_STAGE)}, e2e,
            None if ref_p50 is None else ref_p50 / e2e.p50_ms, tuple(samples[name]["end_to_end"]),
        ))
    bedside_backend, bedside_precision = bedside.split(" ")
    first = decode(frames[0])
    if first is None:
        raise UsageError("bench frame 0 is not a JPEG that decodes")
    sample = preparer(first[0], trackers[bedside].locate(first[0])[0], first[1]).tensor[None]
    per_round = (time.perf_counter() - loop_start) / max(1, total)
    report(total, "CAM overhead", after_loop_s(per_round))
    role = cam_free_role(bundle, bedside_precision)
    plain_model = cam_free_model(role) if cam_free_model is not None else None
    cam_overhead = None if plain_model is None else _cam_overhead(bundle, role, plain_model, sample, config.threads)
    if cam_overhead is None:
        notes.append("CAM overhead not measured: it needs the CAM-free graph, built with onnx (pip install 'gout-edge[torch]')")
    scope = _scope_guard_ms(scorers[bedside], sample)
    if scope is None:
        notes.append("scope guard not measured: the bundle has none")
    cold: dict[str, Any] = {}
    memory: dict[str, float] = {"this_process_peak_rss_mb": rss_peak, "this_process_growth_mb": rss_end - rss_after_warmup}
    if config.cold_start:
        with tempfile.TemporaryDirectory(prefix="gout-edge-cache-") as cache:
            frame_dir = Path(cache) / "frames"
            frame_dir.mkdir()
            for k, data in enumerate(frames):
                (frame_dir / f"{k:03d}.jpg").write_bytes(data)
            one = per_round / max(1, len(names))
            report(total + 1, "cold start, fresh process", 8.0 + config.memory_frames * one)
            empty = _probe(bundle, bedside_backend, bedside_precision, cache, frame_dir, config.threads, 1)
            report(total + 2, f"memory, {config.memory_frames} frames in a fresh process", 4.0 + config.memory_frames * one)
            warm = _probe(bundle, bedside_backend, bedside_precision, cache, frame_dir, config.threads, config.memory_frames)
        cold = {"empty_cache_s": empty["process_start_to_first_result_s"],
                "cache_warm_s": warm["process_start_to_first_result_s"]}
        memory.update({k: warm[k] for k in ("rss_after_warmup_mb", "rss_end_mb", "peak_rss_mb", "growth_mb", "frames")})
    else:
        notes.append("cold start and streaming memory not measured (--no-cold-start)")
    result_engines = tuple(engines)
    bedside_result = next(e for e in result_engines if e.name == bedside)
    budgets = _check_budgets(m.budgets, bedside_result, cam_overhead, cold, memory, scope)
    device = device_info()
    notes.append(int8_class(device.features))
    report(steps, "done", 0.0)
    return BenchResult(bundle.identity, str(bundle.root), device, config, bedside, result_engines,
                       LatencyStats.of(roi_detect), cam_overhead, cold, memory, budgets, tuple(notes), scope, load)


def time_left(seconds: float) -> str:
    """``about 40 s left`` / ``about 2 min left`` (``estimating`` before anything is timed)."""
    if not math.isfinite(seconds):
        return "estimating the time left"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


def machine_load() -> dict[str, Any]:
    """The 1-minute load average against the logical cores (None where the OS has no load
    average): ``busy`` when other work holds at least half the cores, which slows every figure."""
    cores = os.cpu_count() or 1
    try:
        load = float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return {"load_average_1m": None, "cores": cores, "busy": False}
    return {"load_average_1m": round(load, 2), "cores": cores, "busy": load >= 0.5 * cores}


def _check_budgets(budgets: Budgets, bedside: EngineResult, cam_overhead: float | None,
                   cold: dict[str, Any], memory: dict[str, float],
                   scope: LatencyStats | None = None) -> tuple[BudgetCheck, ...]:
    def check(name: str, budget: float, measured: float | None, unit: str, higher_is_better: bool = False,
              note: str = "") -> BudgetCheck:
        if measured is None:
            return BudgetCheck(name, None, budget, unit, None, note or "not measured")
        ok = measured >= budget if higher_is_better else measured <= budget
        return BudgetCheck(name, float(measured), budget, unit, bool(ok), note)

    e2e = bedside.end_to_end
    pre = bedside.stages["preprocess"].p50_ms + bedside.stages["roi"].p50_ms
    b = budgets
    return (
        check("end_to_end_p50_ms", b.end_to_end_p50_ms, e2e.p50_ms, "ms", note=bedside.name),
        check("end_to_end_p99_ms", b.end_to_end_p99_ms, e2e.p99_ms, "ms", note=bedside.name),
        check("preprocess_1080p_p50_ms", b.preprocess_1080p_p50_ms, pre, "ms", note="ROI cached + crop/resize/standardize"),
        check("cam_overhead_fraction", b.cam_overhead_fraction, cam_overhead, "fraction"),
        check("scope_guard_p50_ms", b.scope_guard_p50_ms, None if scope is None else scope.p50_ms, "ms",
              note="distance on one frame's pooled features" if scope is not None else "the bundle has no scope guard"),
        check("cold_start_s", b.cold_start_s, cold.get("cache_warm_s"), "s", note="model cache warm"),
        check("resident_memory_mb", b.resident_memory_mb, memory.get("peak_rss_mb"), "MB",
              note=f"peak while streaming {memory.get('frames', 0):.0f} frames (after 20 warm-up), growth {memory.get('growth_mb', 0):+.1f} MB"),
        check("int8_speedup_vs_torch_fp32", b.int8_speedup_vs_torch_fp32,
              bedside.speedup_vs_reference if bedside.precision == "int8" else None, "×",
              higher_is_better=True, note="end to end p50, same run"),
    )
