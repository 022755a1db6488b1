"""`gout-edge bench`: the figures it reports and the budget verdict (not the speed of this machine)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import cv2
import pytest

from gout_edge.cli import main
from gout_edge.edge_runtime.field.bench import DISPLAY_STAGE, STAGES, BenchConfig, run_bench
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.manifest import read_manifest, write_manifest
from gout_edge.phantom.video import mjpg_screens


@pytest.fixture()
def bundle_with_budgets(small_bundle, tmp_path):
    def make(**budgets):
        copy = tmp_path / "bundle"
        shutil.copytree(small_bundle[0].bundle, copy, dirs_exist_ok=True)
        m = read_manifest(copy)
        write_manifest(copy, dataclasses.replace(m, budgets=dataclasses.replace(m.budgets, **budgets)))
        return copy
    return make


def test_bench_frames_are_distinct_1080p_jpeg_screens():
    frames = mjpg_screens(count=4)
    images = [cv2.imdecode(__import__("numpy").frombuffer(f, "uint8"), cv2.IMREAD_COLOR) for f in frames]
    assert all(i.shape == (1080, 1920, 3) for i in images)
    assert len({f for f in frames}) == 4


def test_run_bench_reports_every_stage_engine_and_the_torch_reference(bundle_with_budgets):
    from gout_edge.export.onnx import cam_free_model
    from gout_edge.export.torch_reference import NAME, TorchEagerScorer

    bundle = open_bundle(bundle_with_budgets())
    result = run_bench(bundle, mjpg_screens(count=4), BenchConfig(frames=4, warmup=1, threads=1, cold_start=False),
                       reference=(NAME, TorchEagerScorer(bundle, 1)), cam_free_model=lambda role: cam_free_model(bundle.model_bytes(role)))
    names = {e.name for e in result.engines}
    assert {"onnxruntime fp32", "openvino fp32", "torch eager fp32"} <= names
    for e in result.engines:
        assert set(e.stages) == {*STAGES, DISPLAY_STAGE} and e.end_to_end.n == 4
        parts = sum(e.stages[s].p50_ms for s in STAGES)
        assert e.end_to_end.p50_ms == pytest.approx(parts, rel=0.5)  # the stages make up the whole
        assert e.end_to_end.p50_ms <= e.end_to_end.p99_ms <= e.end_to_end.max_ms
    torch_ref = next(e for e in result.engines if e.name == "torch eager fp32")
    assert torch_ref.speedup_vs_reference == pytest.approx(1.0)
    assert result.cam_overhead_fraction is not None  # onnx is installed with the dev extra
    assert result.bedside_engine == "onnxruntime fp32"  # FP32-only bundle: the auto rule


@pytest.mark.slow
def test_budgets_decide_the_exit_code_and_the_json_is_complete(bundle_with_budgets, tmp_path, capsys):
    generous = bundle_with_budgets(end_to_end_p50_ms=1e9, end_to_end_p99_ms=1e9, preprocess_1080p_p50_ms=1e9,
                                   cam_overhead_fraction=1e9, cold_start_s=1e9, resident_memory_mb=1e9,
                                   int8_speedup_vs_torch_fp32=1e-9)
    args = ["bench", "--bundle", str(generous), "--frames", "3", "--warmup", "1", "--threads", "1",
            "--memory-frames", "5", "--json", "--plot", str(tmp_path / "latency.png")]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is True and doc["device"]["logical_cores"] >= 1
    assert {"empty_cache_s", "cache_warm_s"} <= set(doc["cold_start"])
    assert doc["memory"]["frames"] == 5 and doc["memory"]["peak_rss_mb"] > 0
    assert cv2.imread(str(tmp_path / "latency.png")) is not None
    strict = bundle_with_budgets(end_to_end_p50_ms=1e-6)
    assert main(["bench", "--bundle", str(strict), "--frames", "2", "--warmup", "0", "--no-cold-start", "--no-torch"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "end_to_end_p5" in out  # the table may truncate the name


def test_the_latency_plot_can_be_svg(bundle_with_budgets, tmp_path):
    pytest.importorskip("matplotlib", reason="the latency plot needs matplotlib (the [torch] extra)")
    from gout_edge.calibration.plots import bench_latency_plot

    result = run_bench(open_bundle(bundle_with_budgets(end_to_end_p50_ms=40.0, end_to_end_p99_ms=60.0)),
                       mjpg_screens(count=3), BenchConfig(frames=3, warmup=0, threads=1, cold_start=False))
    text = bench_latency_plot(result, tmp_path / "latency.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "p50 budget: 40 ms" in text and "p99 budget: 60 ms" in text
    assert all(e.name in text for e in result.engines)


def test_bench_without_a_reference_or_cam_free_graph_says_so(bundle_with_budgets):
    result = run_bench(open_bundle(bundle_with_budgets()), mjpg_screens(count=2),
                       BenchConfig(frames=2, warmup=0, threads=1, cold_start=False), notes=("no torch here",))
    assert all(e.speedup_vs_reference is None for e in result.engines)
    assert result.cam_overhead_fraction is None
    assert "no torch here" in result.notes and any("CAM overhead not measured" in n for n in result.notes)


def test_budgets_fall_back_to_the_first_engine_when_the_bedside_one_is_left_out(bundle_with_budgets):
    bundle = open_bundle(bundle_with_budgets())
    result = run_bench(bundle, mjpg_screens(count=2),
                       BenchConfig(backends=("openvino",), precisions=("fp32",), frames=2, warmup=0, threads=1,
                                   cold_start=False))
    assert result.bedside_engine == "openvino fp32" and [e.name for e in result.engines] == ["openvino fp32"]
    assert any("bedside engine (onnxruntime fp32)" in n for n in result.notes)


def test_isa_caps_run_each_engine_in_fresh_processes_and_report_the_bedside_budget(bundle_with_budgets, capsys):
    generous = bundle_with_budgets(end_to_end_p50_ms=1e9, end_to_end_p99_ms=1e9)
    args = ["bench", "--bundle", str(generous), "--backends", "onnxruntime", "--precision", "fp32", "--frames", "2",
            "--warmup", "0", "--threads", "1", "--isa", "avx2", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["isa"], r["engine"], r["status"]) for r in doc["runs"]] == [
        ("native", "onnxruntime fp32", "ok"), ("AVX2", "onnxruntime fp32", "ok")]
    assert doc["runs"][1]["vs_native"] > 0 and doc["budgets"] == [
        {"isa": "AVX2", "engine": "onnxruntime fp32", "passed": True, "budget_p50_ms": 1e9, "budget_p99_ms": 1e9}]
    # every x86 CPU this runs on has AVX2 at least, so the cap AVX2 can slow it only if it has more
    assert doc["cpu_isa"] is not None and doc["runs"][1]["cap_above_cpu"] == (doc["cpu_isa"] == "AVX2")
    assert main(["bench", "--bundle", str(generous), "--isa", "avx9000"]) == 2


def test_a_crashing_engine_under_a_cap_is_reported_not_fatal(monkeypatch):
    import signal

    from gout_edge.edge_runtime.field import bench_isa

    run = bench_isa._run_one([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})"],
                             "AVX2", "openvino int8", timeout_s=30)
    assert run.status == "crashed" and "SIGSEGV" in run.detail and run.affected is None


@pytest.mark.parametrize(("features", "isa"), [
    ((), None),
    (("FMA",), None),
    (("AVX2", "FMA"), "AVX2"),  # the budgets' reference cart; this project's Zen 3 hosts
    (("AVX2", "FMA", "AVX-VNNI"), "AVX2_VNNI"),
    (("AVX2", "FMA", "AVX-512F"), "AVX512_CORE"),
    (("AVX2", "FMA", "AVX-512F", "AVX-512 VNNI"), "AVX512_CORE_VNNI"),  # Zen 4
    (("AVX2", "FMA", "AVX-512F", "AVX-512 VNNI", "AVX-512 BF16", "AMX"), "AVX512_CORE_AMX"),
])
def test_the_cpu_isa_is_the_highest_onednn_level_its_features_make_up(features, isa):
    from gout_edge.edge_runtime.inference.device import cpu_isa, has_vnni, int8_class

    assert cpu_isa(features) == isa
    assert has_vnni(features) == any("VNNI" in f for f in features)
    sentence = int8_class(features)
    assert ("reference cart class" in sentence) == (isa == "AVX2")
    assert ("--isa AVX2" in sentence) == (isa not in (None, "AVX2"))


def test_bench_says_where_this_cpu_stands_against_the_reference_cart(bundle_with_budgets):
    from gout_edge.edge_runtime.inference.device import int8_class

    bundle = open_bundle(bundle_with_budgets())
    result = run_bench(bundle, mjpg_screens(count=1),
                       BenchConfig(backends=("onnxruntime",), precisions=("fp32",), frames=1, warmup=0, threads=1,
                                   cold_start=False))
    assert int8_class(result.device.features) in result.notes
