"""The shadow report for the hospital: ``report.html`` (one self-contained page, figures inline) and
``report.pdf`` (A4 pages for printing), with the figures as PNG under ``figures/``.

Everything in it is drawn from the result's figures (``metrics``) and the tables' columns; it
names studies only by their pseudonymous key, never by a patient identifier (those stay in the
Parquet tables). matplotlib draws on the Agg canvas without pyplot state.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge._io import atomic_write, atomic_write_text
from gout_edge.calibration.plots import figure, save_figure

from .archive import STRATA
from .metrics import Columns

__all__ = ["kappa_words", "write_report"]

NEW_COLOUR, OLD_COLOUR = "#0072B2", "#E69F00"  # Okabe–Ito: readable with colour-vision deficiencies
STYLE = {
    "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Liberation Sans"],
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
}
A4 = (8.27, 11.69)
MAX_VALUES = 12  # stratum values drawn per panel (largest first); the tables list every one
DISCLAIMER = ("Research software, not for clinical use: a shadow comparison of two models on archived studies; "
              "no result here was shown to a clinician.")


def _figure(figsize: tuple[float, float]):
    return figure(figsize, STYLE, hint="pip install 'gout-edge[shadow]'")


def _png(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=130)


def kappa_words(kappa: float | None) -> str:
    """Landis & Koch's words for a kappa."""
    if kappa is None or not math.isfinite(kappa):
        return "undefined (one category only)"
    if kappa < 0:
        return "poor"
    for bound, words in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if kappa <= bound:
            return words
    return "almost perfect"


def _pct(p: dict[str, Any] | None, ci: bool = True) -> str:
    if not p or not p.get("n"):
        return "– (0/0)"
    text = f"{100 * p['estimate']:.1f}% ({p['k']}/{p['n']})"
    return text + (f" [{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]" if ci else "")


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _p(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _label(category: str) -> str:
    if category.startswith("indeterminate ("):
        return "indeterminate:\n" + category[len("indeterminate ("):-1].replace("_", " ")
    return category


# --------------------------------------------------------------------------------------------
# figures


def change_figure(comparison: dict[str, Any], path: Path) -> Path:
    v = comparison["verdicts"]
    cats, table = v["categories"], np.array(v["old_by_new"], dtype=float).reshape(len(v["categories"]), -1)
    n = max(len(cats), 1)
    with _figure((1.6 + 1.25 * n, 1.3 + 0.95 * n)) as fig:
        ax = fig.add_subplot()
        total = table.sum()
        shade = np.log1p(table) if table.size else np.zeros((1, 1))
        top = max(float(shade.max()) * 1.25, 1e-9)
        ax.imshow(shade, cmap="Blues", vmin=0, vmax=top)
        for i in range(len(cats)):
            for j in range(len(cats)):
                k = int(table[i, j])
                share = f"\n{100 * k / total:.0f}%" if total else ""
                ax.text(j, i, f"{k}{share}", ha="center", va="center", fontsize=9,
                        fontweight="bold" if i == j else "normal", color="white" if shade[i, j] > 0.55 * top else "black")
        ax.set_xticks(range(len(cats)), [_label(c) for c in cats])
        ax.set_yticks(range(len(cats)), [_label(c) for c in cats])
        ax.set_xlabel("new bundle")
        ax.set_ylabel("old bundle")
        ax.spines[:].set_visible(False)
        ax.set_title(f"Verdicts of {int(total)} studies: old (rows) × new (columns)\n"
                     f"agreement {_pct(v['agreement'], ci=False)}, kappa {_num(v['kappa'], 2)}")
        return _png(fig, path)


def _row_label(item: dict[str, Any]) -> str:
    """A stratum's name and how many of its studies were scored by both bundles."""
    name = textwrap.shorten(str(item["value"]), 28, placeholder="…")
    n, total = item["scored"], item["studies"]
    return f"{name} (n={n})" if n == total else f"{name} (n={n} of {total} read)"


def _values(strata: dict[str, list[dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return strata.get(name, [])[:MAX_VALUES]


def agreement_figure(comparison: dict[str, Any], strata: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    rows = [len(_values(strata, s)) + 1 for s in STRATA]
    with _figure((7.6, 1.4 + 0.28 * sum(rows) + 0.5 * len(STRATA))) as fig:
        axes = fig.subplots(len(STRATA), 1, gridspec_kw={"height_ratios": rows})
        for ax, name in zip(np.atleast_1d(axes), STRATA, strict=True):
            items = [{"value": "all studies", **comparison}, *_values(strata, name)]
            labels, est, lo, hi, kap = [], [], [], [], []
            for it in items:
                a = it["verdicts"]["agreement"]
                labels.append(_row_label(it))
                e = a["estimate"] if a["n"] else math.nan
                est.append(100 * e)
                lo.append(100 * (e - a["ci_low"]) if a["n"] else 0)
                hi.append(100 * (a["ci_high"] - e) if a["n"] else 0)
                kap.append(it["verdicts"]["kappa"])
            y = np.arange(len(items))[::-1]
            ax.barh(y, np.nan_to_num(est), xerr=[lo, hi], color=["#888888" if i == 0 else "#56B4E9" for i in range(len(items))],
                    error_kw={"elinewidth": 1, "capsize": 2})
            for yy, k in zip(y, kap, strict=True):
                ax.text(101, yy, f"κ {_num(k, 2)}", va="center", fontsize=7.5)
            ax.set_yticks(y, labels)
            ax.set_xlim(0, 112)
            ax.set_xticks([0, 20, 40, 60, 80, 100])
            more = len(strata.get(name, [])) - len(items) + 1
            ax.set_title(f"by {name}" + (f" (the {MAX_VALUES} largest; {more} more in the tables)" if more > 0 else ""),
                         loc="left")
        np.atleast_1d(axes)[-1].set_xlabel("verdict agreement, % of studies scored by both (95% Wilson CI); κ: Cohen's kappa")
        fig.suptitle("Do the bundles agree? Verdict agreement within each stratum", fontsize=10)
        return _png(fig, path)


def scope_figure(comparison: dict[str, Any], strata: dict[str, list[dict[str, Any]]], path: Path,
                 names: Sequence[str] = ("new", "old")) -> Path:
    rows = [len(_values(strata, s)) + 1 for s in STRATA]
    with _figure((7.6, 1.6 + 0.42 * sum(rows) + 0.5 * len(STRATA))) as fig:
        axes = fig.subplots(len(STRATA), 1, gridspec_kw={"height_ratios": rows})
        for ax, name in zip(np.atleast_1d(axes), STRATA, strict=True):
            items = [{"value": "all studies", **comparison}, *_values(strata, name)]
            y = np.arange(len(items))[::-1] * 1.0
            for offset, m, colour in ((0.2, names[0], NEW_COLOUR), (-0.2, names[1], OLD_COLOUR)):
                rates = [it["scope"][m]["frame_rate"] for it in items]
                est = np.array([100 * r["estimate"] if r["n"] else 0.0 for r in rates])
                err = [[100 * (r["estimate"] - r["ci_low"]) if r["n"] else 0 for r in rates],
                       [100 * (r["ci_high"] - r["estimate"]) if r["n"] else 0 for r in rates]]
                ax.barh(y + offset, est, height=0.38, xerr=err, color=colour, label=f"{m} bundle",
                        error_kw={"elinewidth": 1, "capsize": 2})
                for yy, e, hi, r in zip(y + offset, est, err[1], rates, strict=True):
                    ax.text(e + hi + 1, yy, f"{e:.1f}% ({r['k']}/{r['n']})", va="center", fontsize=7)
            ax.set_yticks(y, [_row_label(it) for it in items])
            ax.set_xlim(0, 100)
            ax.set_title(f"by {name}", loc="left")
        first = np.atleast_1d(axes)[0]
        first.legend(loc="lower right", frameon=False)
        np.atleast_1d(axes)[-1].set_xlabel("frames the scope guard refused, % of those it judged (95% Wilson CI)")
        fig.suptitle("Scope refusal rate of each bundle", fontsize=10)
        return _png(fig, path)


def probability_figure(f: Columns, comparison: dict[str, Any], cutoffs: dict[str, float], path: Path,
                       names: Sequence[str] = ("new", "old")) -> Path:
    new, old = names
    keep = (~f[f"{new}_duplicate"].astype(bool) & ~f[f"{old}_duplicate"].astype(bool)
            & np.isfinite(f[f"{new}_probability"]) & np.isfinite(f[f"{old}_probability"]))
    x, y = f[f"{old}_probability"][keep], f[f"{new}_probability"][keep]
    agree = (x > cutoffs[old]) == (y > cutoffs[new])
    im = comparison["images"]
    with _figure((5.6, 5.2)) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        ax.axvline(cutoffs[old], color=OLD_COLOUR, lw=0.8, ls="--")
        ax.axhline(cutoffs[new], color=NEW_COLOUR, lw=0.8, ls="--")
        ax.scatter(x[agree], y[agree], s=9, alpha=0.5, color="#555555", label=f"same call ({int(agree.sum())})",
                   linewidths=0)
        ax.scatter(x[~agree], y[~agree], s=16, alpha=0.9, color="#D55E00", marker="D",
                   label=f"different call ({int((~agree).sum())})", linewidths=0)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel(f"old bundle: probability (cut-off {cutoffs[old]:g}, dashed)")
        ax.set_ylabel(f"new bundle: probability (cut-off {cutoffs[new]:g}, dashed)")
        ax.legend(loc="upper left", frameon=False)
        ax.set_title(f"{im['compared']} images both bundles let vote: agreement "
                     f"{_pct(im['agreement'], ci=False)}, kappa {_num(im['kappa'], 2)}")
        return _png(fig, path)


def roc_figure(f: Columns, labels: dict[str, Any], path: Path, names: Sequence[str] = ("new", "old")) -> Path:
    from gout_edge.calibration.stats import roc_curve

    new, old = names
    sel = (np.isfinite(f["image_label"]) & np.isfinite(f[f"{new}_probability"]) & np.isfinite(f[f"{old}_probability"])
           & ~f[f"{new}_duplicate"].astype(bool) & ~f[f"{old}_duplicate"].astype(bool))
    y = f["image_label"][sel].astype(int)
    img = labels["images"]
    with _figure((5.2, 5.0)) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        for m, colour, ls in ((new, NEW_COLOUR, "-"), (old, OLD_COLOUR, "--")):
            if img.get(m) is None:
                continue
            roc = roc_curve(y, f[f"{m}_probability"][sel])
            a = img[m]
            ax.plot(roc.fpr, roc.tpr, color=colour, ls=ls, lw=1.6,
                    label=f"{m}: AUC {_num(a['auc'])} [{_num(a['ci_low'])}, {_num(a['ci_high'])}]")
        d = img.get("delong") or {}
        ax.set_xlabel("1 − specificity (images)")
        ax.set_ylabel("sensitivity (images)")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", frameon=False)
        ax.set_title(f"Labelled images ({img['positives']} with a lesion, {img['negatives']} without)\n"
                     f"paired DeLong test: p = {_p(d.get('p_value'))}")
        return _png(fig, path)


# --------------------------------------------------------------------------------------------
# words and tables


def summary_lines(doc: dict[str, Any]) -> list[tuple[str, str]]:
    c = doc["comparison"]
    v, d, im = c["verdicts"], c["discordant"], c["images"]
    models = {m["name"]: m for m in doc["models"]}
    out = [
        ("archive", f"{doc['archive']['studies']} studies in {doc['archive']['files']} files "
                    f"({doc['studies']['scored']} scored, {doc['studies']['failed']} could not be read)"),
    ]
    for name in ("new", "old"):
        m = models[name]
        out.append((f"{name} bundle", f"{m['identity']}, {m['backend']} {m['precision']}, threshold "
                                      f"{_num(m['patient_threshold'], 2)}, manifest {m['manifest_sha256'][:12]}"))
    out += [
        ("verdicts that changed", f"{v['changed']} of {c['scored']} studies; agreement {_pct(v['agreement'])}"),
        ("Cohen's kappa (verdicts)", f"{_num(v['kappa'])} — {kappa_words(v['kappa'])}"),
        ("gout ↔ no gout (McNemar)", f"{d['gout_to_no_gout']} gout → no gout, {d['no_gout_to_gout']} no gout → gout, of "
                                     f"{d['decided_by_both']} decided by both; exact p = {_p(d['mcnemar']['p_value'])}"),
        ("images (abnormal call)", f"agreement {_pct(im['agreement'])}; kappa {_num(im['kappa'])} — {kappa_words(im['kappa'])}"),
    ]
    for name in ("new", "old"):
        s = c["scope"][name]
        out.append((f"scope refusal, {name}", f"frames {_pct(s['frame_rate'])}; studies out of scope "
                                              f"{_pct(s['studies_refused'], ci=False)}"))
    for name in ("new", "old"):
        out.append((f"indeterminate, {name}", _pct(c["indeterminate"][name])))
    lab = c.get("labels")
    if lab:
        for name in ("new", "old"):
            p = lab["patients"][name]
            out.append((f"patients, {name}", f"accuracy {_pct(p['accuracy'])}, sensitivity {_pct(p['sensitivity'])}, "
                                             f"specificity {_pct(p['specificity'])} ({p['indeterminate']} indeterminate)"))
        img = lab["images"]
        for name in ("new", "old"):
            a = img.get(name)
            if a:
                out.append((f"image AUC, {name}", f"{_num(a['auc'])} [{_num(a['ci_low'])}, {_num(a['ci_high'])}] "
                                                  f"on {img['images']} labelled images"))
        if img.get("delong"):
            out.append(("DeLong (new − old)", f"{_num(img['delong']['difference'])}, p = {_p(img['delong']['p_value'])}"))
    return out


def strata_rows(strata: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list[list[str]]]]:
    header = ["value", "studies", "scored", "changed", "agreement", "κ verdicts", "g→n / n→g", "McNemar p", "κ images",
              "refused new", "refused old"]
    out = []
    for name in STRATA:
        rows = [header]
        for it in strata.get(name, []):
            v, d = it["verdicts"], it["discordant"]
            rows.append([textwrap.shorten(str(it["value"]), 24, placeholder="…"), str(it["studies"]), str(it["scored"]),
                         str(v["changed"]), _pct(v["agreement"], ci=False),
                         _num(v["kappa"], 2), f"{d['gout_to_no_gout']} / {d['no_gout_to_gout']}",
                         _p(d["mcnemar"]["p_value"]), _num(it["images"]["kappa"], 2),
                         _pct(it["scope"]["new"]["frame_rate"], ci=False), _pct(it["scope"]["old"]["frame_rate"], ci=False)])
        out.append((name, rows))
    return out


def _html_table(rows: list[list[str]], first_col_header: bool = False) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) if any(rows[0]) else ""
    body = "".join("<tr>" + "".join(
        (f"<th>{html.escape(c)}</th>" if (j == 0 and first_col_header) else f"<td>{html.escape(c)}</td>")
        for j, c in enumerate(r)) + "</tr>" for r in rows[1:])
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


CSS = """body{font-family:'DejaVu Sans',Arial,sans-serif;max-width:1000px;margin:2em auto;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
thead th{background:#eef}.warn{background:#fee;border:1px solid #c66;padding:.5em}
figure{margin:1em 0}img{max-width:100%}.small{font-size:.85em;color:#555}"""


def _change_table(comparison: dict[str, Any]) -> list[list[str]]:
    v = comparison["verdicts"]
    cats = v["categories"]
    rows = [["old \\ new", *cats, "total"]]
    for cat, counts in zip(cats, v["old_by_new"], strict=True):
        rows.append([cat, *map(str, counts), str(sum(counts))])
    rows.append(["total", *(str(sum(r[j] for r in v["old_by_new"])) for j in range(len(cats))), str(comparison["scored"])])
    return rows


def write_html(doc: dict[str, Any], figures: dict[str, Path], path: Path) -> Path:
    c = doc["comparison"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gout-edge shadow report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>Shadow evaluation: a new bundle against the old over an archive</h1>",
             f"<p class='warn'>{html.escape(DISCLAIMER)}</p>",
             f"<p class='small'>written {html.escape(doc['written_at'])} by gout-edge {html.escape(doc['gout_edge_version'])}; "
             f"engine {html.escape(doc['engine']['name'])} ({doc['engine']['workers']} workers × "
             f"{doc['engine']['threads_per_worker']} threads). Studies are named by a pseudonymous key; patient "
             "identifiers are only in studies.parquet and frames.parquet beside this report.</p>",
             "<h2>Summary</h2>", _html_table([["", ""], *[[k, v] for k, v in summary_lines(doc)]], True),
             "<h2>How verdicts changed</h2>", _html_table(_change_table(c), True), _img(figures["changes"], "verdict changes"),
             "<h2>Images</h2>", _img(figures["probabilities"], "probabilities of both bundles")]
    if "roc" in figures:
        parts += ["<h2>Against the labels</h2>", _img(figures["roc"], "ROC of both bundles")]
    parts += ["<h2>By stratum</h2>", _img(figures["agreement"], "agreement by stratum"),
              _img(figures["scope"], "scope refusal by stratum")]
    for name, rows in strata_rows(doc["strata"]):
        parts += [f"<h3>by {html.escape(name)}</h3>", _html_table(rows, True)]
    failed = doc["failed_studies"]
    parts.append(f"<h2>Studies that could not be read ({len(failed)})</h2>")
    if failed:
        parts.append(_html_table([["study key", "kind", "why"], *[[f["study_key"], f["kind"], f["error"]] for f in failed[:500]]]))
        if len(failed) > 500:
            parts.append(f"<p>… and {len(failed) - 500} more: see studies.parquet (status failed).</p>")
    parts.append("<h2>Definitions</h2><p class='small'>Verdict agreement and kappa: over gout, no gout and "
                 "indeterminate, studies scored by both bundles. McNemar: exact binomial test of gout → no gout against "
                 "no gout → gout among studies both bundles decided. Image agreement and kappa: the abnormal call "
                 "(probability above the bundle's cut-off) on distinct frames both bundles let vote. Scope refusal: frames "
                 "the scope guard refused of those it judged. Intervals: 95% Wilson (proportions), DeLong (AUC).</p>")
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))


def _text_page(pdf, title: str, blocks: list[tuple[str, list[list[str]]]], note: str = "") -> None:
    with _figure(A4) as fig:
        fig.set_layout_engine(None)
        y = 0.96
        fig.text(0.06, y, title, fontsize=13, fontweight="bold", va="top")
        y -= 0.035
        if note:
            for line in textwrap.wrap(note, 105):
                fig.text(0.06, y, line, fontsize=8, color="#a00", va="top")
                y -= 0.016
        for heading, rows in blocks:
            y -= 0.01
            fig.text(0.06, y, heading, fontsize=10, fontweight="bold", va="top")
            y -= 0.022
            widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
            for i, r in enumerate(rows):
                if not any(r):
                    continue  # a table without a header row
                line = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                indent = " " * (widths[0] + 2)
                for chunk in textwrap.wrap(line, 118, subsequent_indent=indent, replace_whitespace=False) or [""]:
                    fig.text(0.06, y, chunk, fontsize=6.8, family="monospace", va="top",
                             fontweight="bold" if i == 0 and len(rows) > 1 else "normal")
                    y -= 0.0145
                if y < 0.04:
                    break
        pdf.savefig(fig)


def _figure_page(pdf, path: Path, title: str) -> None:
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    with _figure(A4) as fig:
        fig.set_layout_engine(None)
        fig.text(0.06, 0.965, title, fontsize=12, fontweight="bold", va="top")
        h, w = image.shape[:2]
        box_w, box_h = 0.88, 0.86
        scale = min(box_w * A4[0] / w, box_h * A4[1] / h)
        fw, fh = w * scale / A4[0], h * scale / A4[1]
        ax = fig.add_axes((0.06 + (box_w - fw) / 2, 0.93 - fh, fw, fh))
        ax.imshow(image)
        ax.axis("off")
        pdf.savefig(fig)


def write_pdf(doc: dict[str, Any], figures: dict[str, Path], path: Path) -> Path:
    from matplotlib.backends.backend_pdf import PdfPages

    def write(tmp: Path) -> None:
        with PdfPages(tmp, metadata={"Title": "gout-edge shadow report", "Creator": "gout-edge", "CreationDate": None}) as pdf:
            summary = [["", ""], *[[k, v] for k, v in summary_lines(doc)]]
            _text_page(pdf, "Shadow evaluation: new bundle against old",
                       [("Summary", summary), ("How verdicts changed (old rows × new columns)", _change_table(doc["comparison"]))],
                       DISCLAIMER)
            _figure_page(pdf, figures["changes"], "How verdicts changed")
            _figure_page(pdf, figures["probabilities"], "Images: probabilities of both bundles")
            if "roc" in figures:
                _figure_page(pdf, figures["roc"], "Against the labels: image ROC")
            _figure_page(pdf, figures["agreement"], "Agreement by stratum")
            _figure_page(pdf, figures["scope"], "Scope refusal by stratum")
            _text_page(pdf, "By stratum", [(f"by {n}", rows) for n, rows in strata_rows(doc["strata"])])
            failed = doc["failed_studies"]
            if failed:
                _text_page(pdf, f"Studies that could not be read ({len(failed)})",
                           [("", [["study key", "kind", "why"], *[[f["study_key"], f["kind"], f["error"][:300]]
                                                                    for f in failed[:60]]])])

    return atomic_write(path, write)


def write_report(result: Any, s: Columns, f: Columns, out: Path) -> tuple[Path, Path, list[Path]]:
    """Figures, ``report.html`` and ``report.pdf`` in ``out``."""
    doc = result.to_dict()
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    cutoffs = {m["name"]: m["image_cutoff"] for m in doc["models"]}
    figures = {
        "changes": change_figure(doc["comparison"], folder / "verdict_changes.png"),
        "probabilities": probability_figure(f, doc["comparison"], cutoffs, folder / "image_probabilities.png"),
        "agreement": agreement_figure(doc["comparison"], doc["strata"], folder / "agreement_by_stratum.png"),
        "scope": scope_figure(doc["comparison"], doc["strata"], folder / "scope_refusal.png"),
    }
    if doc["comparison"].get("labels") and doc["comparison"]["labels"]["images"].get("images"):
        figures["roc"] = roc_figure(f, doc["comparison"]["labels"], folder / "roc.png")
    html_path = write_html(doc, figures, out / "report.html")
    pdf_path = write_pdf(doc, figures, out / "report.pdf")
    return html_path, pdf_path, list(figures.values())
