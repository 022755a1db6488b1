"""Report figures (calibration.plots): each draws on small synthetic data into a valid PNG or SVG."""

from __future__ import annotations

import builtins
import xml.etree.ElementTree as ET
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from gout_edge.calibration import plots
from gout_edge.calibration.stats import Confusion
from gout_edge.errors import UsageError

needs_matplotlib = pytest.mark.skipif(
    __import__("importlib").util.find_spec("matplotlib") is None,
    reason="the figures need matplotlib (the [torch] extra)",
)


def _png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[2] == 3
    return img.shape[1], img.shape[0]


def _not_blank(path) -> None:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert (img < 250).mean() > 0.01  # something was drawn on the white page


def _bench_result(rng):
    def engine(name, p50):
        s = np.sort(p50 * np.exp(rng.normal(0, 0.08, 60)))
        return NS(name=name, samples_ms=tuple(s),
                  end_to_end=NS(p50_ms=float(np.median(s)), p99_ms=float(np.quantile(s, 0.99))))

    return NS(engines=[engine("torch eager fp32", 165.0), engine("openvino int8", 18.0), engine("onnxruntime int8", 21.0)],
              budgets=[NS(name="end_to_end_p50_ms", budget=40.0), NS(name="end_to_end_p99_ms", budget=60.0),
                       NS(name="resident_memory_mb", budget=300.0)],
              device=NS(cpu_model="Test CPU", logical_cores=2, features=("AVX2", "FMA")), bedside_engine="openvino int8")


@needs_matplotlib
def test_roc_plot_png_with_auc_in_the_legend(tmp_path):
    fpr = np.array([0, 0.1, 0.2, 0.5, 1.0])
    tpr = np.array([0, 0.6, 0.8, 0.95, 1.0])
    png = plots.roc_plot(tmp_path / "roc.png", [
        plots.RocSeries("fp32", fpr, tpr, 0.9, (0.85, 0.95), operating_point=(0.2, 0.8)),
        ("int8", fpr, np.minimum(tpr + 0.02, 1)),
    ])
    w, h = _png_size(png)
    assert 600 <= w <= 2000 and abs(w - h) < 0.05 * w  # square axes, square figure
    _not_blank(png)
    svg = plots.roc_plot(tmp_path / "roc.svg", [("int8", fpr, tpr)])
    text = svg.read_text()
    ET.fromstring(text.encode())
    assert "AUC 0.850" in text  # computed by trapezoids when not given


@needs_matplotlib
def test_confusion_plot_keeps_the_evaluate_call_signature(tmp_path):
    panels = [("images: model", Confusion(tp=40, fn=10, tn=45, fp=5)),
              ("patients: model", Confusion(tp=9, fn=1, tn=8, fp=2), ("control", "gout")),
              ("empty", Confusion(0, 0, 0, 0))]
    w, h = _png_size(plots.confusion_plot(tmp_path / "confusion.png", panels))
    assert w > h and 800 <= w <= 3000
    _not_blank(tmp_path / "confusion.png")


@needs_matplotlib
def test_threshold_plot_gives_every_fold_its_own_panel(tmp_path):
    grid = np.linspace(0, 1, 51)
    curve = np.clip(0.9 - np.abs(grid - 0.4), 0.5, 1)
    folds = [(f"fold {k}", grid, np.roll(curve, k), 0.4 + 0.02 * k) for k in range(1, 6)]
    png = plots.threshold_plot(tmp_path / "s1.png", ("all patients", grid, curve, 0.4), folds, notes=["mean 0.46"])
    w, h = _png_size(png)
    assert 1000 <= w <= 3000 and 600 <= h <= 2500
    svg = plots.threshold_plot(tmp_path / "s1.svg", ("all patients", grid, curve, 0.4), folds)
    root = ET.fromstring(svg.read_bytes())
    # one axes for all patients and one per fold
    assert sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id", "").startswith("axes_")) == 6
    # without folds: a single panel
    _png_size(plots.threshold_plot(tmp_path / "s1-alone.png", ("all patients", grid, curve, 0.4)))


@needs_matplotlib
def test_latency_cdf_plot_log_axis_plain_ticks_and_separate_budgets(tmp_path):
    rng = np.random.default_rng(0)
    curves = [("int8", 18 * np.exp(rng.normal(0, 0.1, 100))), ("torch fp32", 165 * np.exp(rng.normal(0, 0.05, 100)))]
    svg = plots.latency_cdf_plot(tmp_path / "lat.svg", curves, {"p50": 40.0, "p99": 60.0}, "latency")
    text = svg.read_text()
    ET.fromstring(text.encode())
    assert "p50 budget: 40 ms" in text and "p99 budget: 60 ms" in text
    labels = {t.text for t in ET.fromstring(text.encode()).iter("{http://www.w3.org/2000/svg}text")}
    assert {"10", "20", "50", "100"} <= labels
    ms_ticks = [t for t in labels if t and t.replace(".", "", 1).isdigit() and float(t) >= 2]
    assert ms_ticks and all("." not in t for t in ms_ticks)  # 20, not 20.0 (y ticks are fractions)
    w, h = _png_size(plots.latency_cdf_plot(tmp_path / "lat.png", curves, {"p50": 40.0}, "latency"))
    assert w > h >= 500
    _not_blank(tmp_path / "lat.png")


def test_log_axis_ticks_are_plain_and_cover_the_range():
    lo, hi, ticks = plots._log_axis(12.0, 260.0)
    assert (lo, hi) == (10.0, 300.0) and ticks[0] == lo and ticks[-1] == hi
    assert all(t == int(t) for t in ticks) and 185.0 not in ticks
    assert len(plots._log_axis(20.0, 190.0)[2]) >= 6  # a narrow range gets finer steps


@needs_matplotlib
def test_bench_latency_plot_from_a_bench_result(tmp_path):
    result = _bench_result(np.random.default_rng(1))
    text = plots.bench_latency_plot(result, tmp_path / "bench.svg").read_text()
    assert "Test CPU, 2 cores, no VNNI" in text and "openvino int8 (bedside)" in text and "memory" not in text
    # engines are listed fastest first
    assert text.index("openvino int8") < text.index("onnxruntime int8") < text.index("torch eager fp32")
    _png_size(plots.bench_latency_plot(result, tmp_path / "bench.png"))


def test_a_missing_matplotlib_is_a_usage_error_with_the_install_hint(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("blocked in this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(UsageError, match=r'pip install "gout-edge\[torch\]"'):
        plots.roc_plot(tmp_path / "roc.png", [("x", [0, 1], [0, 1])])
    with pytest.raises(UsageError, match="matplotlib"):
        plots.bench_latency_plot(_bench_result(np.random.default_rng(2)), tmp_path / "bench.png")
    assert not list(tmp_path.iterdir())
