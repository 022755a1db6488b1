"""What the report says, computed from the two tables (never from the models): the verdict change
table, agreement and Cohen's kappa of verdicts and of images, the exact McNemar test of the
discordant gout / no-gout verdicts, the scope refusal rate of each bundle, and, with labels, each
bundle's image AUC (paired DeLong test) and patient accuracy, sensitivity and specificity (Wilson
intervals) — overall and within each stratum (manufacturer, model, station, month).

Definitions (docs/shadow.md):

- **verdict categories**: ``gout``, ``no gout`` and ``indeterminate (<reason code>)``; the change
  table counts studies scored by both bundles, old (rows) × new (columns).
- **verdict agreement / kappa**: over the three diagnoses (gout, no gout, indeterminate).
- **McNemar**: among studies both bundles decided, ``b`` = gout → no gout, ``c`` = no gout → gout;
  the exact binomial test (``calibration.stats.mcnemar(b, c, exact=True)``).
- **image agreement / kappa**: the abnormal call (probability > the bundle's image cut-off) on
  the frames both bundles let vote, each distinct frame once (repeats left out).
- **scope refusal**: frames the scope guard refused of those it judged (the cart's exam rule's
  count, colour frames included), and studies whose verdict is ``indeterminate (out_of_scope)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gout_edge.calibration.stats import auc_delong, confusion, delong_test, mcnemar, mcnemar_paired, proportion

from .archive import STRATA

__all__ = ["Columns", "category", "cohen_kappa", "columns", "compare", "stratified"]

Columns = dict[str, np.ndarray]


def columns(table) -> Columns:
    """A pyarrow table as numpy columns: numbers as float64 with NaN for null, the rest as objects."""
    import pyarrow as pa

    out: Columns = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            out[name] = col.cast(pa.float64()).to_numpy()  # null → NaN
        elif pa.types.is_boolean(col.type) and col.null_count == 0:
            out[name] = col.to_numpy()
        else:
            out[name] = np.array(col.to_pylist(), dtype=object)
    return out


def category(diagnosis: Any, reason_code: Any) -> str:
    if diagnosis == "indeterminate":
        return f"indeterminate ({reason_code})"
    return str(diagnosis)


def _category_order(cats: set[str]) -> list[str]:
    head = [c for c in ("gout", "no gout") if c in cats]
    return head + sorted(c for c in cats if c not in head)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters' categories: (p_o − p_e) / (1 − p_e); NaN when undefined (no
    items, or both raters put every item in one and the same category)."""
    a, b = list(a), list(b)
    n = len(a)
    if n == 0 or n != len(b):
        return math.nan
    cats = sorted(set(a) | set(b), key=str)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    if p_e >= 1.0:
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def _pdict(k: int, n: int, level: float) -> dict[str, Any]:
    return proportion(int(k), int(n), level).to_dict()


def _scope(s: Columns, m: str, scored: np.ndarray, level: float) -> dict[str, Any]:
    judged = int(np.nansum(s[f"{m}_scope_judged"][scored]))
    refused = int(np.nansum(s[f"{m}_scope_refused"][scored]))
    studies_refused = int((s[f"{m}_reason_code"][scored] == "out_of_scope").sum())
    return {"frames_judged": judged, "frames_refused": refused, "frame_rate": _pdict(refused, judged, level),
            "studies_refused": _pdict(studies_refused, int(scored.sum()), level)}


def _labelled(s: Columns, f: Columns, new: str, old: str, scored: np.ndarray, level: float) -> dict[str, Any]:
    truth = s["truth"]
    known = scored & np.array([t in ("gout", "control") for t in truth])
    y = np.array([t == "gout" for t in truth])
    patient: dict[str, Any] = {}
    decided_both = known.copy()
    for m in (new, old):
        diag = s[f"{m}_diagnosis"]
        decided = known & np.isin(diag, ["gout", "no gout"])
        decided_both &= decided
        c = confusion(y[decided].astype(int), (diag[decided] == "gout").astype(int))
        props = c.proportions(level)
        correct = int((decided & ((diag == "gout") == y)).sum())
        patient[m] = {
            "labelled": int(known.sum()), "decided": int(decided.sum()), "indeterminate": int((known & ~decided).sum()),
            "confusion": {"tp": c.tp, "fn": c.fn, "tn": c.tn, "fp": c.fp},
            **{k: v.to_dict() for k, v in props.items()},
            "accuracy_all": _pdict(correct, int(known.sum()), level),
        }
    both = decided_both
    paired = mcnemar_paired(y[both].astype(int), (s[f"{new}_diagnosis"][both] == "gout").astype(int),
                            (s[f"{old}_diagnosis"][both] == "gout").astype(int), exact=True) if both.any() else mcnemar(0, 0)
    patient["mcnemar_correct"] = {**paired.to_dict(), "studies": int(both.sum()),
                                  "b_means": "only the new bundle right", "c_means": "only the old bundle right"}

    label = f["image_label"]
    pn, po = f[f"{new}_probability"], f[f"{old}_probability"]
    sel = (~np.isnan(label)) & ~np.isnan(pn) & ~np.isnan(po) & ~_dup(f, new) & ~_dup(f, old)
    yl = label[sel].astype(int)
    image: dict[str, Any] = {"images": int(sel.sum()), "positives": int(yl.sum()), "negatives": int((yl == 0).sum())}
    if sel.any():
        image[new] = auc_delong(yl, pn[sel], level).to_dict()
        image[old] = auc_delong(yl, po[sel], level).to_dict()
        test = delong_test(yl, pn[sel], po[sel], level)
        image["delong"] = {**test.to_dict(), "a": new, "b": old}
    else:
        image[new] = image[old] = image["delong"] = None
    return {"patients": patient, "images": image}


def _dup(f: Columns, m: str) -> np.ndarray:
    return f[f"{m}_duplicate"].astype(bool)


def compare(s: Columns, f: Columns, new: str = "new", old: str = "old", level: float = 0.95) -> dict[str, Any]:
    """The report's figures over the studies ``s`` and their frames ``f``."""
    n = len(s["study_key"])
    scored = s["status"] == "scored"
    k = int(scored.sum())
    old_cat = [category(d, r) for d, r in zip(s[f"{old}_diagnosis"][scored], s[f"{old}_reason_code"][scored], strict=True)]
    new_cat = [category(d, r) for d, r in zip(s[f"{new}_diagnosis"][scored], s[f"{new}_reason_code"][scored], strict=True)]
    cats = _category_order(set(old_cat) | set(new_cat))
    table = [[sum(1 for a, b in zip(old_cat, new_cat, strict=True) if a == r and b == c) for c in cats] for r in cats]
    d_old, d_new = s[f"{old}_diagnosis"][scored], s[f"{new}_diagnosis"][scored]
    same = int((d_old == d_new).sum())
    b = int(((d_old == "gout") & (d_new == "no gout")).sum())
    c = int(((d_old == "no gout") & (d_new == "gout")).sum())
    decided_both = int((np.isin(d_old, ["gout", "no gout"]) & np.isin(d_new, ["gout", "no gout"])).sum())
    test = mcnemar(b, c, exact=True)

    usable = ~_dup(f, new) & ~_dup(f, old) & ~np.isnan(f[f"{new}_probability"]) & ~np.isnan(f[f"{old}_probability"])
    an, ao = f[f"{new}_abnormal"][usable].astype(bool), f[f"{old}_abnormal"][usable].astype(bool)
    diff = np.abs(f[f"{new}_probability"][usable] - f[f"{old}_probability"][usable])
    out: dict[str, Any] = {
        "studies": n, "scored": k, "failed": n - k,
        "verdicts": {
            "categories": cats, "old_by_new": table, "agreement": _pdict(same, k, level),
            "kappa": cohen_kappa(list(d_old), list(d_new)),
            "changed": k - same,
        },
        "discordant": {
            "decided_by_both": decided_both, "gout_to_no_gout": b, "no_gout_to_gout": c,
            "mcnemar": {**test.to_dict(), "b_means": "old gout, new no gout", "c_means": "old no gout, new gout"},
        },
        "images": {
            "compared": int(usable.sum()), "agreement": _pdict(int((an == ao).sum()), int(usable.sum()), level),
            "kappa": cohen_kappa(list(ao), list(an)),
            "abnormal": {new: int(an.sum()), old: int(ao.sum())},
            "probability_abs_difference": {"mean": float(diff.mean()) if diff.size else math.nan,
                                           "max": float(diff.max()) if diff.size else math.nan},
        },
        "scope": {m: _scope(s, m, scored, level) for m in (new, old)},
        "indeterminate": {m: _pdict(int((s[f"{m}_diagnosis"][scored] == "indeterminate").sum()), k, level)
                          for m in (new, old)},
        "labels": _labelled(s, f, new, old, scored, level) if "truth" in s else None,
    }
    return out


def _subset(cols: Columns, mask: np.ndarray) -> Columns:
    return {k: v[mask] for k, v in cols.items()}


def stratified(s: Columns, f: Columns, new: str = "new", old: str = "old", level: float = 0.95) -> dict[str, list[dict[str, Any]]]:
    """``compare`` within each value of each stratum, largest strata first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in STRATA:
        values = s[name]
        of_study = dict(zip(s["study_key"], values, strict=True))
        frame_values = np.array([of_study.get(key) for key in f["study_key"]], dtype=object)
        names, counts = np.unique(values.astype(str), return_counts=True) if len(values) else ([], [])
        order = sorted(zip(names, counts, strict=True), key=lambda t: (-t[1], t[0]))
        out[name] = [{"value": str(v), **compare(_subset(s, values == v), _subset(f, frame_values == v), new, old, level)}
                     for v, _ in order]
    return out
