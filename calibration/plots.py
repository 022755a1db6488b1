"""Report figures drawn with matplotlib (the owner-side ``[torch]`` extra, not the cart's base install).

* ``roc_plot`` — ROC curves (one per model or engine) with the chance diagonal and the AUC in the legend;
* ``confusion_plot`` — 2 × 2 confusion matrices side by side (counts and share of each true class);
* ``threshold_plot`` — the paper's Figure S1: a metric against the patient threshold, all patients on
  top and one small panel per cross-validation fold, each with its chosen threshold marked;
* ``latency_cdf_plot`` — empirical CDF of latency per engine on a log-scaled axis, with budget lines;
  ``bench_latency_plot`` draws it from a ``gout-edge bench`` result.

Every function writes PNG, or SVG when the path ends in ``.svg``, atomically (temporary file +
rename), and returns the path. matplotlib is imported lazily, with the non-interactive Agg canvas
and no pyplot state: importing this module needs numpy only, and a missing matplotlib is reported
as a ``UsageError`` with the install command when a figure is asked for.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.errors import UsageError

__all__ = ["RocSeries", "bench_latency_plot", "confusion_plot", "latency_cdf_plot", "roc_plot", "threshold_plot"]

INSTALL_HINT = 'pip install "gout-edge[torch]"'
# Okabe–Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
LINESTYLES = ("-", (0, (6, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (3, 1, 1, 1, 1, 1)))
FOLD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#999933", "#882255", "#44AA99")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STYLE = {
    "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "Liberation Sans"],
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
    "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
    "axes.spines.right": False, "svg.fonttype": "none", "svg.hashsalt": "gout-edge",
}


@dataclass(frozen=True)
class RocSeries:
    """One ROC curve. ``auc`` defaults to the trapezoid area under the points; ``ci`` is shown when given."""

    label: str
    fpr: Any
    tpr: Any
    auc: float | None = None
    ci: tuple[float, float] | None = None
    level: float = 0.95
    operating_point: tuple[float, float] | None = None  # (fpr, tpr) at the decision cut-off
    operating_label: str = ""


# ---------------------------------------------------------------------------------------------- plumbing


def _matplotlib(hint: str = INSTALL_HINT):
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(f"drawing figures needs matplotlib, on the model owner's side: {hint}") from None
    return matplotlib, Figure, FigureCanvasAgg


@contextmanager
def figure(figsize: tuple[float, float], style: dict[str, Any] | None = None, hint: str = INSTALL_HINT):
    """A fresh Agg figure inside ``style`` (default: this module's; no pyplot, nothing left behind);
    without matplotlib a ``UsageError`` that says ``hint``. The one figure helper of the owner's
    and the hospital's reports (``shadow.report`` draws with it too)."""
    matplotlib, Figure, FigureCanvasAgg = _matplotlib(hint)
    with matplotlib.rc_context(STYLE if style is None else style):
        fig = Figure(figsize=figsize, dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def save_figure(fig, path: Path, dpi: int = 150) -> Path:
    """``fig`` as PNG or SVG (by suffix), atomically."""
    path = Path(path)
    fmt = "svg" if path.suffix.lower() == ".svg" else "png"
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


# ---------------------------------------------------------------------------------------------- ROC


def roc_plot(path: Path, curves: Sequence[RocSeries | tuple], *, title: str = "ROC curve") -> Path:
    """ROC curves on square 0–1 axes, with the chance diagonal; each legend entry carries the AUC.

    ``curves`` holds ``RocSeries`` or plain ``(label, fpr, tpr)`` tuples."""
    series = [c if isinstance(c, RocSeries) else RocSeries(*c) for c in curves]
    with figure((6.4, 6.4)) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls=(0, (4, 3)), label="chance (AUC 0.5)")
        for k, s in enumerate(series):
            fpr, tpr = _finite(s.fpr, s.tpr)
            auc = s.auc
            if auc is None and fpr.size > 1:
                order = np.lexsort((tpr, fpr))
                fx, ty = fpr[order], tpr[order]
                auc = float(np.sum(np.diff(fx) * (ty[1:] + ty[:-1]) / 2))  # trapezoids
            label = s.label if auc is None or math.isnan(auc) else f"{s.label}: AUC {auc:.3f}"
            if s.ci is not None and not any(math.isnan(v) for v in s.ci):
                label += f" ({100 * s.level:.0f}% CI {s.ci[0]:.3f}–{s.ci[1]:.3f})"
            colour = COLOURS[k % len(COLOURS)]
            # later curves thinner and on top, so a curve that follows another closely still shows
            ax.plot(fpr, tpr, color=colour, lw=max(1.4, 3.4 - 0.9 * k), ls=LINESTYLES[k % len(LINESTYLES)],
                    label=label, zorder=3 + k)
            if s.operating_point is not None and all(math.isfinite(v) for v in s.operating_point):
                fp, tp = s.operating_point
                name = s.operating_label or f"{s.label}: operating point"
                ax.plot(fp, tp, ls="none", marker=MARKERS[k % len(MARKERS)], ms=9 - k, mfc="white", mec=colour,
                        mew=2, zorder=20 + k,
                        label=f"{name}\n  sensitivity {100 * tp:.1f}%, specificity {100 * (1 - fp):.1f}%")
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title=title,
               xlabel="1 − specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)")
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(True, color="#e6e6e6", lw=0.8)
        ax.legend(loc="lower right", frameon=True, framealpha=0.95)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- confusion


def confusion_plot(path: Path, panels: Sequence[tuple], class_names: tuple[str, str] = ("normal", "abnormal")) -> Path:
    """2 × 2 matrices (rows: truth, columns: prediction), one panel per ``(title, counts)`` or
    ``(title, counts, (negative name, positive name))``; ``counts`` has ``tn``, ``fp``, ``fn``, ``tp``.
    Cells show the count and its share of the true class (the row: specificity and sensitivity on
    the diagonal); the shade follows that share, blue where the decision is right, red where wrong."""
    n = max(1, len(panels))
    cols = 2 if n == 4 else min(n, 3)
    rows = math.ceil(n / cols)
    with figure((3.6 * cols + 0.4, 3.5 * rows + 0.2)) as fig:
        fig.get_layout_engine().set(h_pad=0.15, w_pad=0.1)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        right, wrong = np.array([0.0, 0.447, 0.698]), np.array([0.835, 0.369, 0.0])  # Okabe–Ito blue, vermillion
        for ax, panel in zip(axes, panels, strict=False):
            title, c = panel[0], panel[1]
            names = panel[2] if len(panel) > 2 else class_names
            counts = np.array([[c.tn, c.fp], [c.fn, c.tp]], dtype=np.int64)
            row_tot = counts.sum(axis=1, keepdims=True)
            share = np.divide(counts, row_tot, out=np.zeros(counts.shape, float), where=row_tot > 0)
            img = np.ones((2, 2, 3))
            for i in range(2):
                for j in range(2):
                    hue = right if i == j else wrong
                    img[i, j] = 1 - (0.1 + 0.5 * share[i, j]) * (1 - hue)
            ax.imshow(img, interpolation="nearest")
            for i in range(2):
                for j in range(2):
                    ax.text(j, i - 0.08, str(counts[i, j]), ha="center", va="center", fontsize=17, fontweight="bold")
                    what = ("specificity", "sensitivity")[i] if i == j else f"of {names[i]}"
                    pct = "–" if row_tot[i, 0] == 0 else (f"{what} {100 * share[i, j]:.1f}%" if i == j
                                                          else f"{100 * share[i, j]:.1f}% {what}")
                    ax.text(j, i + 0.22, pct, ha="center", va="center", fontsize=9, color="#333333")
            ax.set_xticks([0, 1], names)
            ax.set_yticks([0, 1], names, rotation=90, va="center")
            ax.xaxis.set_ticks_position("top")
            ax.xaxis.set_label_position("top")
            ax.set_xlabel("predicted")
            ax.set_ylabel("truth")
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("#888888")
            ax.axhline(0.5, color="#888888", lw=1)
            ax.axvline(0.5, color="#888888", lw=1)
            ax.set_title(f"{title} (n = {int(counts.sum())})", fontsize=10.5, fontweight="bold")
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- Figure S1


def threshold_plot(
    path: Path,
    overall: tuple[str, Any, Any, float],
    folds: Sequence[tuple[str, Any, Any, float]] = (),
    *,
    title: str = "Patient accuracy against the threshold",
    x_label: str = "threshold on the abnormal-image fraction",
    y_label: str = "patient accuracy",
    notes: Sequence[str] = (),
    step: bool = True,
) -> Path:
    """A metric against the threshold: ``overall`` = ``(label, thresholds, values, chosen)`` drawn
    large, then one small panel per fold (same tuple), each with the overall curve in grey for
    comparison and its own chosen threshold marked — so no fold hides behind another."""
    cols = min(len(folds), 5)
    fold_rows = math.ceil(len(folds) / cols) if folds else 0
    drawstyle = "steps-post" if step else "default"
    with figure((11.0, 4.6 + 2.6 * fold_rows)) as fig:
        if folds:
            sub_top, sub_folds = fig.subfigures(2, 1, height_ratios=[4.3, 2.6 * fold_rows])
        else:
            sub_top, sub_folds = fig, None
        label, x, y, chosen = overall
        x, y = _finite(x, y)
        ax = sub_top.add_subplot()
        for k, (_, fx, fy, _) in enumerate(folds):
            fx, fy = _finite(fx, fy)
            ax.plot(fx, fy, drawstyle=drawstyle, color=FOLD_COLOURS[k % len(FOLD_COLOURS)], lw=1, alpha=0.45)
        ax.plot(x, y, drawstyle=drawstyle, color="#000000", lw=2.6, label=label)
        ax.axvline(chosen, color="#D55E00", lw=1.6, ls=(0, (5, 3)), label=f"chosen threshold {chosen:.2f}")
        if folds:
            ax.plot([], [], color="#888888", lw=1, alpha=0.6, label="each fold's training patients (panels below)")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title, xlabel=x_label, ylabel=y_label)
        ax.set_xticks(np.linspace(0, 1, 11))
        ax.grid(True, color="#e6e6e6", lw=0.8)
        handles, labels = ax.get_legend_handles_labels()
        for note in notes:
            handles.append(ax.plot([], [], ls="none")[0])
            labels.append(note)
        ax.legend(handles, labels, loc="lower left", framealpha=0.95)
        if sub_folds is not None:
            axes = np.atleast_1d(sub_folds.subplots(fold_rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
            for a in axes[len(folds):]:
                a.set_axis_off()
            for k, (a, (flabel, fx, fy, fchosen)) in enumerate(zip(axes, folds, strict=False)):
                colour = FOLD_COLOURS[k % len(FOLD_COLOURS)]
                fx, fy = _finite(fx, fy)
                a.plot(x, y, drawstyle=drawstyle, color="#bbbbbb", lw=1.4)
                a.plot(fx, fy, drawstyle=drawstyle, color=colour, lw=2)
                a.axvline(fchosen, color="#D55E00", lw=1.3, ls=(0, (5, 3)))
                a.set_title(flabel, fontsize=9.5)
                a.set(xlim=(0, 1), ylim=(0, 1.02))
                a.set_xticks([0, 0.5, 1])
                a.set_yticks([0, 0.5, 1])
                a.grid(True, color="#eeeeee", lw=0.6)
                a.text(fchosen + 0.03, 0.05, f"t = {fchosen:.2f}", color="#D55E00", fontsize=8.5)
            sub_folds.supxlabel("threshold (grey: all patients)", fontsize=9)
            sub_folds.supylabel(y_label, fontsize=9)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- latency


def _log_axis(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Limits and plain, readable ticks for a log axis covering ``lo``–``hi``: 1-2-5 steps on a wide
    range, 1-2-3-5 or finer on a narrow one, the limits rounded out to ticks so both ends are labelled."""
    decades = math.log10(hi / lo)
    sets = ((1, 2, 5),) if decades > 2.2 else ((1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 8))
    for mantissas in sets:
        candidates = sorted(float(f"{m * 10.0 ** e:.6g}") for e in range(math.floor(math.log10(lo)) - 1,
                                                                         math.ceil(math.log10(hi)) + 1)
                            for m in mantissas)
        a = max(t for t in candidates if t <= lo * (1 + 1e-9))
        b = min(t for t in candidates if t >= hi * (1 - 1e-9))
        ticks = [t for t in candidates if a <= t <= b]
        if len(ticks) >= 6:
            break
    return a, b, ticks


def latency_cdf_plot(path: Path, curves: Sequence[tuple[str, Sequence[float]]], budgets: Mapping[str, float],
                     title: str) -> Path:
    """Empirical CDF of latency per engine (``(label, samples_ms)``) on a log-scaled ms axis, with a
    line per budget (``{"p50": 40.0, "p99": 60.0}``, ms), each in its own colour and dash and named
    in the legend (outside the axes, so no label covers a curve or another label)."""
    data = [(label, np.sort(np.asarray(s, dtype=np.float64)[np.isfinite(np.asarray(s, dtype=np.float64))]))
            for label, s in curves]
    data = [(label, s[s > 0]) for label, s in data]
    values = [v for _, s in data for v in (s[0], s[-1]) if s.size] + [float(b) for b in budgets.values() if b > 0]
    lo, hi = (min(values), max(values)) if values else (1.0, 100.0)
    lo, hi, ticks = _log_axis(lo / 1.1, hi * 1.1)
    budget_styles = (("#333333", (0, (6, 3))), ("#C0392B", (0, (2, 2))), ("#7B3294", (0, (8, 2, 2, 2))))
    with figure((10.0, 6.0)) as fig:
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        ax = fig.add_subplot()
        for k, (name, value) in enumerate(budgets.items()):
            colour, dash = budget_styles[k % len(budget_styles)]
            ax.axvline(value, color=colour, ls=dash, lw=1.6, label=f"{name} budget: {value:g} ms", zorder=2)
        for k, (label, s) in enumerate(data):
            if not s.size:
                continue
            frac = np.arange(1, s.size + 1) / s.size
            x = np.r_[s[0], s]
            y = np.r_[0.0, frac]
            ax.plot(x, y, drawstyle="steps-post", color=COLOURS[k % len(COLOURS)], lw=2.2,
                    ls=LINESTYLES[(k // len(COLOURS)) % len(LINESTYLES)], label=label, zorder=3)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(np.linspace(0, 1, 11))
        ax.grid(True, which="major", color="#e3e3e3", lw=0.8)
        ax.grid(True, which="minor", axis="x", color="#f2f2f2", lw=0.6)
        ax.set(title=title, xlabel="latency per frame, ms (log scale)", ylabel="fraction of frames at or below")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        return save_figure(fig, path)


def bench_latency_plot(result: Any, path: Path) -> Path:
    """The end-to-end latency CDF of a ``gout-edge bench`` result (``edge_runtime.field.bench.BenchResult``),
    engines fastest first, with the bundle's p50/p99 end-to-end budgets."""
    budgets = {}
    for b in result.budgets:
        if b.name in ("end_to_end_p50_ms", "end_to_end_p99_ms") and 0 < b.budget < 1e4:  # 1e9: "no budget"
            budgets[b.name.split("_")[-2]] = float(b.budget)
    bedside = getattr(result, "bedside_engine", None)
    engines = sorted(result.engines, key=lambda e: e.end_to_end.p50_ms)
    curves = []
    for e in engines:
        p99 = getattr(e.end_to_end, "p99_ms", None)
        label = f"{e.name}{' (bedside)' if e.name == bedside else ''}\np50 {e.end_to_end.p50_ms:.0f} ms" + \
            ("" if p99 is None else f", p99 {p99:.0f} ms")
        curves.append((label, e.samples_ms))
    from gout_edge.edge_runtime.inference.device import has_vnni

    d = result.device
    title = (f"End-to-end latency per frame: {d.cpu_model}, {d.logical_cores} cores, "
             f"{'INT8 with VNNI' if has_vnni(d.features) else 'no VNNI'}")
    return latency_cdf_plot(path, curves, budgets, title)
