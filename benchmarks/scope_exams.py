"""Exam-level figures of the scope guard (docs/design.md §14): what the cart answers, whole exams
at a time, on in-scope phantoms of a seed the model never saw and on the out-of-scope set.

    python benchmarks/scope_exams.py [--bundle DIR] [--patients 10] [--seed 9]
                                     [--oos-seed 0] [--per-category 2] [--backend B --precision P]
                                     [--work DIR] [--json OUT]

In scope: every phantom patient is examined three ways — its stills (``images``), its DICOM
study (stills and a cine) and its video — and each exam's verdict is compared with the
phantom's diagnosis: right, wrong, or refused (indeterminate). Out of scope: every exam of
``gout-edge phantom --out-of-scope`` (stills, DICOM, clips of other anatomy, Doppler, near misses,
non-ultrasound) must end indeterminate *with the scope reason*. Frame level: the AUROC of the
guard's distance, in-scope key candidates vs out-of-scope frames. Targets (the issue's): ≥ 90 %
of in-scope exams right, ≤ 5 % refused; ≥ 95 % of out-of-scope exams refused for scope.
Synthetic data throughout; the model is trained on phantoms: not for clinical use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from gout_edge.calibration.stats import auc
from gout_edge.edge_runtime.exam.driver import run_exam
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import INDETERMINATE, ReasonCode
from gout_edge.edge_runtime.sources import open_source
from gout_edge.phantom import write_out_of_scope, write_phantoms


def _exam(bundle, scorer, kind: str, target: Path, out: Path) -> dict:
    result = run_exam(open_source(kind, target), bundle, scorer, out, overlays=0)
    p = result.patients[0]
    return {"diagnosis": p.diagnosis, "reason": str(p.reason), "scope": p.reason.code is ReasonCode.OUT_OF_SCOPE,
            "judged": p.scope_judged, "out_of_scope": p.scope_refused, "key_frames": p.key_frames}


def _distances(scorer, files: list[Path]) -> list[float]:
    from gout_edge.edge_runtime.sources.images import load_image

    out = []
    for f in files:
        (s,) = scorer.score([load_image(f)])
        if not s.blank and s.scope_distance is not None:
            out.append(s.scope_distance)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=None, help="bundle directory (default: the demo bundle)")
    ap.add_argument("--patients", type=int, default=10)
    ap.add_argument("--seed", type=int, default=9, help="in-scope phantom seed (the demo model saw 1, 2, 3)")
    ap.add_argument("--oos-seed", type=int, default=0, help="out-of-scope set seed (export compares on 11)")
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--backend", default="auto", help="engine, as for gout-edge scan (default: auto)")
    ap.add_argument("--precision", default="auto", help="precision, as for gout-edge scan (default: auto)")
    ap.add_argument("--work", type=Path, default=None, help="keep the generated data and sessions here")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    bundle = open_bundle(args.bundle)
    if bundle.manifest.scope is None:
        print("this bundle has no scope guard; re-export it", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="gout-edge-scope-"))
    scorer = Scorer(bundle, args.backend, args.precision)
    started = time.perf_counter()

    print(f"in scope: {args.patients} phantom patients, seed {args.seed} (png, dicom, video) …", file=sys.stderr)
    inside = work / "in"
    if not (inside / "ground_truth.json").is_file():
        write_phantoms(inside, args.patients, seed=args.seed, formats=("png", "dicom", "video"))
    truth = json.loads((inside / "ground_truth.json").read_text())
    in_rows = []
    for pt in truth["patients"]:
        want = "gout" if pt["diagnosis"] == "gout" else "no gout"
        pid = pt["patient_id"]
        for form, kind, target in (("images", "images", inside / "images" / pid),
                                   ("dicom", "dicom", inside / "dicom" / pid),
                                   ("video", "video", inside / pt["video"]["path"])):
            r = _exam(bundle, scorer, kind, target, work / "sessions" / "in" / f"{pid}-{form}")
            r.update(patient=pid, form=form, truth=want,
                     outcome="refused" if r["diagnosis"] == INDETERMINATE else "right" if r["diagnosis"] == want else "wrong")
            in_rows.append(r)
            print(f"  {pid} {form:6s} truth {want:7s} → {r['diagnosis']:13s} ({r['reason'][:70]})", file=sys.stderr)

    print(f"out of scope: seed {args.oos_seed}, {args.per_category} per kind …", file=sys.stderr)
    oos_root = work / "oos"
    if not (oos_root / "out_of_scope" / "index.json").is_file():
        write_out_of_scope(oos_root, seed=args.oos_seed, per_category=args.per_category, formats=("png", "dicom", "video"))
    index = json.loads((oos_root / "out_of_scope" / "index.json").read_text())
    oos_rows = []
    for exam in index["exams"]:
        files = [oos_root / "out_of_scope" / f for f in exam["files"]]
        kind = {"images": "images", "dicom": "dicom", "video": "video"}[exam["form"]]
        target = files[0]
        if len(files) > 1:  # the stills (or DICOM files) of one kind: one folder, one exam
            target = work / "exams" / exam["exam"].replace("/", "_")
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy(f, target / f.name)
        r = _exam(bundle, scorer, kind, target, work / "sessions" / "oos" / exam["exam"].replace("/", "_"))
        r.update(exam=exam["exam"], category=exam["category"], form=exam["form"])
        oos_rows.append(r)
        print(f"  {exam['exam']:40s} → {r['diagnosis']:13s} scope={r['scope']} ({r['out_of_scope']}/{r['judged']})",
              file=sys.stderr)

    d_in = _distances(scorer, sorted((inside / "images").rglob("*.png")))
    d_out = _distances(scorer, [oos_root / "out_of_scope" / f["path"] for f in index["files"] if f["form"] == "png"])
    scorer.close()
    frame_auroc = auc(np.r_[np.zeros(len(d_in)), np.ones(len(d_out))], np.r_[d_in, d_out])
    threshold = bundle.manifest.scope.threshold

    outcomes = Counter(r["outcome"] for r in in_rows)
    by_form = {form: Counter(r["outcome"] for r in in_rows if r["form"] == form) for form in ("images", "dicom", "video")}
    scope_refused = sum(r["scope"] for r in oos_rows)
    by_category = {c: f"{sum(r['scope'] for r in oos_rows if r['category'] == c)}/"
                      f"{sum(r['category'] == c for r in oos_rows)}" for c in sorted({r["category"] for r in oos_rows})}
    figures = {
        "bundle": bundle.identity, "engine": f"{scorer.backend} {scorer.precision}", "guard": {"method": bundle.manifest.scope.method, "k": bundle.manifest.scope.k,
                                             "threshold": threshold},
        "in_scope": {"seed": args.seed, "patients": args.patients, "exams": len(in_rows),
                     "right": outcomes["right"] / len(in_rows), "refused": outcomes["refused"] / len(in_rows),
                     "wrong": outcomes["wrong"] / len(in_rows), "by_form": {k: dict(v) for k, v in by_form.items()}},
        "out_of_scope": {"seed": args.oos_seed, "exams": len(oos_rows), "refused_for_scope": scope_refused / len(oos_rows),
                         "by_category": by_category,
                         "not_refused": [r["exam"] + f" → {r['diagnosis']}" for r in oos_rows if not r["scope"]]},
        "frames": {"in_scope_stills": len(d_in), "out_of_scope_screens": len(d_out), "auroc": frame_auroc,
                   "false_refusal": float(np.mean(np.asarray(d_in) > threshold)),
                   "refusal": float(np.mean(np.asarray(d_out) > threshold))},
        "seconds": round(time.perf_counter() - started, 1),
        "rows": {"in_scope": in_rows, "out_of_scope": oos_rows},
    }
    i, o, f = figures["in_scope"], figures["out_of_scope"], figures["frames"]
    print(f"engine: {figures['engine']}")
    print(f"in scope ({i['exams']} exams): right {i['right']:.1%}, refused {i['refused']:.1%}, wrong {i['wrong']:.1%}; "
          f"by form {i['by_form']}")
    print(f"out of scope ({o['exams']} exams): refused for scope {o['refused_for_scope']:.1%}; by category {by_category}")
    print(f"frames: AUROC {f['auroc']:.3f}; false refusal {f['false_refusal']:.1%} of {f['in_scope_stills']} in-scope stills; "
          f"refusal {f['refusal']:.1%} of {f['out_of_scope_screens']} out-of-scope screens")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
