"""Throughput of ``gout-edge shadow``: studies per minute and frames per second, the local engine
against Ray Data on this machine, on a generated phantom archive (docs/shadow.md).

    python benchmarks/shadow_throughput.py [--studies 40] [--seed 11] [--work DIR] [--json OUT]
                                           [--runs local:2x1,local:1x2,ray:2x1,ray:1x1]

The archive: ``--studies`` phantom DICOM studies (``write_phantoms``: 10 stills and a 12-frame cine
each, three pixel encodings) plus the damaged ones of ``tests/support/shadow_archive.py`` (a study
whose files are truncated, a file that is no DICOM, a truncated file in a good study). The old
bundle is the demo bundle with other thresholds: the same network, so both bundles cost the same.
Each run (``engine:WORKERSxTHREADS``) starts from an empty output folder and runs the command as
a user would (a new process; Ray starts its own local cluster), so the wall time includes
starting the workers and opening the bundles twice per worker. Every run must give the same
``studies.parquet`` and ``frames.parquet`` as the first one — a faster wrong answer fails.

Where the time goes is measured too: per study, reading + decoding against the two pipelines
(region, preprocessing, inference, scope guard, key frames), from the records' own timing, and
the bytes a study weighs — the figures behind the scaling arithmetic in docs/shadow.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the archive and the old bundle

from support.shadow_archive import make_archive, old_bundle  # noqa: E402


def cpu() -> dict[str, object]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), platform.processor())
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"model": model, "cpus": len(os.sched_getaffinity(0)), "isa": isa, "load_1min_before": load}


def run(engine: str, workers: int, threads: int, archive, old: Path, out: Path) -> dict[str, object]:
    cmd = [sys.executable, "-m", "gout_edge.cli", "shadow", "--archive", str(archive.archive), "--against", str(old),
           "--out", str(out), "--labels", str(archive.labels), "--engine", engine, "--workers", str(workers),
           "--threads", str(threads), "--no-report", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{engine} {workers}x{threads} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    doc = json.loads(proc.stdout)
    t = doc["timing"]
    return {"engine": engine, "workers": workers, "threads": threads, "wall_s": round(wall, 2),
            "scoring_s": t["seconds"], "studies": t["studies_scored"], "frames": t["frames_scored"],
            "studies_per_minute": t["studies_per_minute"], "frames_per_second": t["frames_per_second"],
            "studies_per_minute_end_to_end": round(60 * t["studies_scored"] / wall, 2),
            "first_result_s": t["first_result_s"],
            "steady_studies_per_minute": round(60 * (t["studies_scored"] - 1) / (t["seconds"] - t["first_result_s"]), 2),
            "worker_seconds": t["worker_seconds"], "megabytes": t["megabytes_read"], "out": str(out),
            "load_1min_after": round(os.getloadavg()[0], 2)}


def same_tables(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return all(pq.read_table(a / n).equals(pq.read_table(b / n)) for n in ("studies.parquet", "frames.parquet"))


def stage_breakdown(out: Path) -> dict[str, float]:
    """Per scored study: seconds reading + decoding, seconds in each pipeline, megabytes."""
    records = [json.loads(p.read_text()) for p in (out / "work" / "studies").glob("*.json")]
    scored = [r for r in records if r["status"] == "scored"]
    n = len(scored)
    return {
        "studies": n,
        "frames_per_study": round(sum(r["frames"] for r in scored) / n, 2),
        "read_decode_s": round(sum(r["timing"]["read_decode_s"] for r in scored) / n, 3),
        "pipeline_new_s": round(sum(r["timing"]["models_s"]["new"] for r in scored) / n, 3),
        "pipeline_old_s": round(sum(r["timing"]["models_s"]["old"] for r in scored) / n, 3),
        "cpu_s": round(sum(r["timing"]["cpu_s"] for r in scored) / n, 3),
        "read_decode_cpu_s": round(sum(r["timing"]["read_decode_cpu_s"] for r in scored) / n, 3),
        "pipeline_new_cpu_s": round(sum(r["timing"]["models_cpu_s"]["new"] for r in scored) / n, 3),
        "pipeline_old_cpu_s": round(sum(r["timing"]["models_cpu_s"]["old"] for r in scored) / n, 3),
        "megabytes": round(sum(r["bytes"] for r in scored) / n / 1e6, 2),
    }


def header_scan(archive) -> dict[str, float]:
    """The driver's scan for studies: ms per file with an empty header cache, and with a full one."""
    from gout_edge.shadow.archive import discover

    t0 = time.perf_counter()
    found, headers = discover(archive.archive)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    discover(archive.archive, headers)
    warm = time.perf_counter() - t0
    return {"files": len(headers), "ms_per_file": round(1e3 * cold / len(headers), 3),
            "ms_per_file_cached": round(1e3 * warm / len(headers), 3)}


def read_rate(archive) -> float:
    """MB/s reading the archive's bytes (page cache, after the runs): the floor under decoding."""
    files = [p for p in archive.archive.rglob("*.dcm")]
    t0 = time.perf_counter()
    total = sum(len(p.read_bytes()) for p in files)
    return round(total / 1e6 / (time.perf_counter() - t0), 1)


def merge_at_scale(out: Path, archive_dir: Path, n: int) -> dict[str, float]:
    """The driver's last step at ``n`` studies: the scored records replicated under new keys (with
    20 stations and 24 months), merged into the two tables, written, and the report's figures
    computed — the cost that does not shrink with more workers."""
    import dataclasses
    import resource

    from gout_edge.shadow.archive import discover, study_pseudonym
    from gout_edge.shadow.metrics import columns, compare, stratified
    from gout_edge.shadow.tables import frame_table, study_table, write_parquet
    from gout_edge.shadow.work import WorkFolder

    found, _ = discover(archive_dir, json.loads((out / "work" / "headers.json").read_text()))
    real = [(r, json.loads((out / "work" / "studies" / f"{r.key}.json").read_text())) for r in found.studies]
    refs, records = [], {}
    for i in range(n):
        ref, rec = real[i % len(real)]
        key = study_pseudonym("scale", str(i))
        refs.append(dataclasses.replace(ref, key=key, station=f"US-{i % 20:02d}",
                                        study_date=f"{2023 + (i // 12) % 2}{1 + i % 12:02d}15"))
        records[key] = {**rec, "key": key}
    t = {}
    sample = refs[: min(n, 5000)]  # the driver's per-study commit (atomic, fsynced) and the merge's read
    with tempfile.TemporaryDirectory() as tmp:
        work = WorkFolder(Path(tmp))
        work.studies.mkdir(parents=True)
        t0 = time.perf_counter()
        for r in sample:
            work.commit(records[r.key])
        t["commit_ms_per_study"] = 1e3 * (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        for r in sample:
            work.load(r.key)
        t["load_ms_per_study"] = 1e3 * (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    studies = study_table(refs, records, ("new", "old"))
    frames = frame_table(refs, records, ("new", "old"), found.root)
    t["tables_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_parquet(studies, Path(tmp) / "s.parquet")
        write_parquet(frames, Path(tmp) / "f.parquet")
        t["parquet_mb"] = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    t["parquet_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_cols, f_cols = columns(studies), columns(frames)
    compare(s_cols, f_cols)
    stratified(s_cols, f_cols)
    t["figures_s"] = time.perf_counter() - t0
    t["frames"] = frames.num_rows
    t["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"studies": n, **{k: round(v, 2) for k, v in t.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--runs", default="local:2x1,local:1x2,ray:2x1,ray:1x1")
    ap.add_argument("--work", type=Path, default=None, help="keep the archive and outputs here")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--scale", type=int, default=100_000, help="studies for the merge-at-scale measure (0: none)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = cpu()
    t0 = time.perf_counter()
    for stale in [work / "phantoms", *work.glob("out-*")]:  # a fresh archive and fresh outputs each time
        shutil.rmtree(stale)
    archive = make_archive(work / "phantoms", args.studies, seed=args.seed, retag=False)
    old = work / "old-bundle"
    if not old.exists():
        old_bundle(old)
    print(f"archive: {args.studies} phantom studies + 2 damaged, written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    results = []
    for i, spec in enumerate(args.runs.split(",")):
        engine, shape = spec.split(":")
        workers, threads = (int(x) for x in shape.split("x"))
        r = run(engine, workers, threads, archive, old, work / f"out-{i}-{engine}-{shape}")
        results.append(r)
        print(f"{engine:5s} {workers}x{threads}: {r['studies_per_minute']} studies/min, {r['frames_per_second']} frames/s "
              f"(scoring {r['scoring_s']} s, first result after {r['first_result_s']} s, then "
              f"{r['steady_studies_per_minute']} studies/min; end to end {r['wall_s']} s; load {r['load_1min_after']})",
              file=sys.stderr)
    first = Path(results[0]["out"])
    identical = all(same_tables(first, Path(r["out"])) for r in results[1:])
    report = {"machine": machine, "studies": args.studies, "seed": args.seed, "runs": results,
              "identical_tables": identical, "per_study": stage_breakdown(first), "read_mb_per_s_page_cache": read_rate(archive),
              "header_scan": header_scan(archive),
              "date": time.strftime("%Y-%m-%d")}
    if args.scale:
        report["merge_at_scale"] = merge_at_scale(first, archive.archive, args.scale)
        print(f"merge at {args.scale} studies: {report['merge_at_scale']}", file=sys.stderr)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
