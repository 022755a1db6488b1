"""`gout-edge bench`: the figures it reports and the budget verdict (not the speed of this machine)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import pytest

from gout_edge.bundle import read_manifest, write_manifest
from gout_edge.cli import main
from gout_edge.edge_runtime.bench import DISPLAY_STAGE, STAGES, BenchConfig, bench_frames, run_bench
from gout_edge.edge_runtime.bundle import open_bundle


@pytest.fixture()
def bundle_with_budgets(small_bundle, tmp_path):
    def make(**budgets):
        copy = tmp_path / "bundle"
        shutil.copytree(small_bundle[0].bundle, copy, dirs_exist_ok=True)
        m = read_manifest(copy)
        write_manifest(copy, dataclasses.replace(m, budgets={**m.budgets, **budgets}))
        return copy
    return make


def test_bench_frames_are_distinct_1080p_jpeg_screens():
    frames = bench_frames(count=4)
    images = [cv2.imdecode(__import__("numpy").frombuffer(f, "uint8"), cv2.IMREAD_COLOR) for f in frames]
    assert all(i.shape == (1080, 1920, 3) for i in images)
    assert len({f for f in frames}) == 4


def test_run_bench_reports_every_stage_engine_and_the_torch_reference(bundle_with_budgets):
    bundle = open_bundle(bundle_with_budgets())
    result = run_bench(bundle, BenchConfig(frames=4, warmup=1, threads=1, cold_start=False))
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


def test_budgets_decide_the_exit_code_and_the_json_is_complete(bundle_with_budgets, tmp_path, capsys):
    generous = bundle_with_budgets(end_to_end_p50_ms=1e9, end_to_end_p99_ms=1e9, preprocess_1080p_p50_ms=1e9,
                                   cam_overhead_fraction=1e9, cold_start_s=1e9, resident_memory_mb=1e9,
                                   int8_speedup_vs_torch_fp32=0.0)
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
    from gout_edge.edge_runtime.bench import latency_plot

    result = run_bench(open_bundle(bundle_with_budgets()), BenchConfig(frames=3, warmup=0, threads=1, cold_start=False, torch_reference=False))
    text = latency_plot(result, tmp_path / "latency.svg").read_text()
    assert text.startswith("<svg") and text.count("<polyline") == len(result.engines) and "budget p50" in text
