"""``run_shadow``: a new bundle against the old over an archive, from the study list to the report.

1. open both bundles here (hashes, signature; the engine and precision resolved once, so every
   worker runs the same model the same way) and check that they run;
2. the work folder: take up a previous run of the same archive and bundles, or start one;
3. the studies of the archive (``archive.discover``; headers cached in the work folder);
4. the studies without a record, through the engine (``engines``); each record committed as it
   arrives (``work.WorkFolder.commit``);
5. the tables merged from every record (``tables``), the figures computed from the tables
   (``metrics``), the report (``report``) and ``summary.json``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge._io import atomic_write_json, sha256_file
from gout_edge._version import __version__
from gout_edge.edge_runtime.inference.backends import resolve
from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.inference.shipped import is_shipped_path
from gout_edge.errors import InputError, UsageError
from gout_edge.manifest import MANIFEST_NAME

from .archive import Archive, discover
from .engines import ENGINES, available_cpus, ray_cluster, run_local, run_ray
from .metrics import columns, compare, stratified
from .study import ModelSpec, failed_record, open_models
from .tables import Labels, frame_table, read_labels, study_table, write_parquet
from .work import WorkFolder

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_NAMES", "ShadowConfig", "ShadowResult", "run_shadow"]

log = logging.getLogger(__name__)

FORMAT = "gout-edge-shadow"
FORMAT_VERSION = 1
MODEL_NAMES = ("new", "old")
PRECISIONS = ("int8", "fp32")

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: ``phase`` is ``headers`` (files) or ``studies``."""


@dataclass(frozen=True)
class ShadowConfig:
    archive: Path
    against: str  # the old bundle's folder, or a precision (int8, fp32) of the new bundle
    out: Path
    bundle: Path | None = None  # the new bundle (None: the demo bundle)
    labels: Path | None = None
    engine: str = "local"
    address: str | None = None
    workers: int | None = None  # processes (local) or actors (ray); default: as many as the CPUs allow
    threads: int | None = None  # engine threads per worker; default: local, CPUs / workers; ray, 1
    backend: str = "auto"
    precision: str = "auto"  # the new bundle's
    public_key: Path | None = None
    level: float = 0.95
    report: bool = True


@dataclass(frozen=True)
class ShadowResult:
    config: ShadowConfig
    archive: Archive
    models: tuple[dict[str, Any], ...]
    engine: dict[str, Any]
    counts: dict[str, int]
    timing: dict[str, Any]
    comparison: dict[str, Any]
    strata: dict[str, list[dict[str, Any]]]
    labels: dict[str, Any] | None
    outputs: dict[str, Any]
    failed: tuple[dict[str, str], ...]
    written_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document, and ``summary.json`` in the output folder."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "gout_edge_version": __version__,
            "written_at": self.written_at,
            "not_for_clinical_use": True,
            "archive": self.archive.to_dict(),
            "models": list(self.models),
            "engine": self.engine,
            "studies": self.counts,
            "timing": self.timing,
            "labels": self.labels,
            "level": self.config.level,
            "comparison": self.comparison,
            "strata": self.strata,
            "failed_studies": list(self.failed),
            "outputs": self.outputs,
        }


# --------------------------------------------------------------------------------------------


def _check_options(c: ShadowConfig) -> None:
    if c.engine not in ENGINES:
        raise UsageError(f"--engine {c.engine!r} is not one of {', '.join(ENGINES)}")
    if c.address and c.engine != "ray":
        raise UsageError("--address joins a Ray cluster and needs --engine ray")
    for name, value in (("--workers", c.workers), ("--threads", c.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{name} {value} is below 1; give at least 1")
    out, archive = Path(c.out).expanduser().resolve(), Path(c.archive).expanduser().resolve()
    if not archive.exists():
        raise InputError(f"archive {archive.name!r} not found; give a folder of DICOM studies or an index table (CSV)")
    # A folder tree is walked for its studies: no output inside it. An index table names its files:
    # no output in its own folder (names could meet) nor in a folder its images are in.
    inside = (out == archive or archive in out.parents) if archive.is_dir() else out == archive.parent
    if inside:
        raise UsageError(f"--out {c.out} lies inside the archive; nothing is ever written in the archive: give a "
                         "folder outside it")


def _models(c: ShadowConfig) -> tuple[list[ModelSpec], list[Bundle]]:
    new = open_bundle(c.bundle, c.public_key)
    if c.against.lower() in PRECISIONS:
        old, old_precision = new, c.against.lower()
    else:
        path = Path(c.against).expanduser()
        if not path.exists():
            raise UsageError(f"--against {c.against!r} is neither a bundle folder nor a precision ({', '.join(PRECISIONS)})")
        old, old_precision = open_bundle(path, c.public_key), c.precision
    specs = []
    for name, bundle, precision in (("new", new, c.precision), ("old", old, old_precision)):
        backend, precision = resolve(bundle, c.backend, precision)
        specs.append(ModelSpec(name, str(bundle.root), backend, precision,
                               None if c.public_key is None else str(c.public_key)))
    return specs, [new, old]


def _identity(spec: ModelSpec, bundle: Bundle) -> dict[str, Any]:
    m = bundle.manifest
    return {
        "name": spec.name, "bundle": str(bundle.root), "identity": bundle.identity,
        "manifest_sha256": sha256_file(bundle.root / MANIFEST_NAME), "backend": spec.backend,
        "precision": spec.precision, "image_cutoff": m.decision.image_cutoff,
        "patient_threshold": m.decision.patient_threshold, "calibrated": m.decision.calibrated,
        "scope_guard": m.scope is not None, "demo": is_shipped_path(bundle.root),
    }


def _engine_plan(c: ShadowConfig, cpus: int) -> tuple[int, int]:
    """(workers, threads): by default every CPU busy with one engine thread each (local: the
    CPUs shared among ``--workers``; ray: one CPU per actor)."""
    if c.engine == "local":
        workers = c.workers or (cpus if c.threads is None else max(1, cpus // c.threads))
        threads = c.threads or max(1, cpus // workers)
    else:
        threads = c.threads or 1
        workers = c.workers or max(1, cpus // threads)
    return workers, threads


def run_shadow(c: ShadowConfig, progress: ProgressFn | None = None) -> ShadowResult:
    _check_options(c)
    specs, bundles = _models(c)
    identities = tuple(_identity(s, b) for s, b in zip(specs, bundles, strict=True))
    for m in open_models(specs, 1):  # both engines open here before any worker starts
        m.scorer.close()
    labels: Labels | None = read_labels(c.labels) if c.labels is not None else None
    out = Path(c.out).expanduser().resolve()
    work = WorkFolder(out)
    fingerprint = {"archive": str(Path(c.archive).expanduser().resolve()),
                   "models": [{k: i[k] for k in ("name", "bundle", "manifest_sha256", "backend", "precision")}
                              for i in identities]}

    archive, headers = discover(c.archive, work.headers(), None if progress is None else
                                (lambda d, t: progress("headers", d, t)))
    refs = archive.studies
    if archive.kind == "index" and any(out in (archive.root / f).resolve().parents for r in refs for f in r.files):
        raise UsageError(f"--out {c.out} holds images of the index table; nothing is ever written in the archive: "
                         "give a folder outside it")
    resumed_run = work.start(fingerprint)
    work.save_headers(headers)
    finished = work.finished(r.key for r in refs)
    todo = [r for r in refs if r.key not in finished]
    if finished:
        log.info("%d of %d studies already have results in the work folder; %d left", len(finished), len(refs), len(todo))

    done = len(finished)
    scored_now = {"studies": 0, "frames": 0, "failed": 0, "read_decode_s": 0.0, "pipeline_s": 0.0, "cpu_s": 0.0,
                  "bytes": 0}
    first_result: list[float] = []  # when the engine gave its first result: its start-up cost

    def on_result(record: dict[str, Any]) -> None:
        nonlocal done
        work.commit(record)
        done += 1
        if engine_started and not first_result:
            first_result.append(time.perf_counter())
        scored_now["studies"] += 1
        scored_now["frames"] += int(record.get("frames", 0))
        scored_now["bytes"] += int(record.get("bytes", 0))
        t = record.get("timing", {})
        scored_now["read_decode_s"] += float(t.get("read_decode_s", 0.0))
        scored_now["pipeline_s"] += float(sum(t.get("models_s", {}).values()))
        scored_now["cpu_s"] += float(t.get("cpu_s", 0.0))
        if record["status"] != "scored":
            scored_now["failed"] += 1
            kind = record.get("error_kind", "input")
            # a message about the files names them by base name; a library's own words stay in the table
            why = str(record.get("error", ""))[:200] if kind == "input" else f"{kind} error; see studies.parquet"
            log.warning("study %s: not scored (%s)", record["key"], why)
        if progress is not None:
            progress("studies", done, len(refs))

    if progress is not None:
        progress("studies", done, len(refs))
    unreadable = [r for r in todo if r.kind == "unreadable"]
    to_score = [r for r in todo if r.kind != "unreadable"]
    engine_started = False
    for r in unreadable:
        on_result(failed_record(r, r.error))
    t0 = time.perf_counter()
    engine_started = True
    cpus = available_cpus()
    workers, threads = _engine_plan(c, cpus)
    if c.engine == "local":
        if to_score:
            run_local(to_score, archive.root, specs, workers, threads, on_result)
    else:
        with ray_cluster(c.address) as cluster_cpus:
            cpus = cluster_cpus
            workers, threads = _engine_plan(c, cluster_cpus)
            if to_score:
                run_ray(to_score, archive.root, specs, workers, threads, on_result)
    wall = time.perf_counter() - t0

    records = {r.key: work.load(r.key) for r in refs}
    names = MODEL_NAMES
    studies = study_table(refs, records, names, labels)
    frames = frame_table(refs, records, names, archive.root, labels)
    paths = {"studies": write_parquet(studies, out / "studies.parquet"),
             "frames": write_parquet(frames, out / "frames.parquet")}
    s_cols, f_cols = columns(studies), columns(frames)
    comparison = compare(s_cols, f_cols, level=c.level)
    strata = stratified(s_cols, f_cols, level=c.level)
    failed = tuple({"study_key": r.key, "kind": r.kind, "error": str(records[r.key].get("error") or "")}
                   for r in refs if records[r.key]["status"] != "scored")
    n_scored = scored_now["studies"] - len(unreadable)
    timing = {
        "seconds": round(wall, 3),
        "studies_scored": n_scored,
        "frames_scored": scored_now["frames"],
        "studies_per_minute": round(60.0 * n_scored / wall, 2) if wall > 0 and n_scored else None,
        "frames_per_second": round(scored_now["frames"] / wall, 2) if wall > 0 and n_scored else None,
        "first_result_s": round(first_result[0] - t0, 3) if first_result else None,
        "worker_seconds": {"read_decode": round(scored_now["read_decode_s"], 3),
                           "pipelines": round(scored_now["pipeline_s"], 3), "cpu": round(scored_now["cpu_s"], 3)},
        "megabytes_read": round(scored_now["bytes"] / 1e6, 1),
    }
    engine = {"name": c.engine, "workers": workers, "threads_per_worker": threads, "cpus": cpus,
              "address": c.address if c.engine == "ray" else None}
    counts = {"total": len(refs), "resumed": len(finished), "scored_now": scored_now["studies"],
              "scored": int((s_cols["status"] == "scored").sum()), "failed": len(failed),
              "work_folder_taken_up": resumed_run}
    label_info = None if labels is None else {
        "path": str(labels.path), "sha256": labels.sha256,
        "studies_with_truth": int(sum(t in ("gout", "control") for t in s_cols["truth"])),
        "frames_with_image_label": int((~_isnan(f_cols["image_label"])).sum()),
    }
    outputs: dict[str, Any] = {"folder": str(out), "studies": str(paths["studies"]), "frames": str(paths["frames"]),
                               "summary": str(out / "summary.json"), "report_html": None, "report_pdf": None,
                               "figures": []}
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = ShadowResult(c, archive, identities, engine, counts, timing, comparison, strata, label_info, outputs,
                          failed, stamp)
    if c.report:
        from .report import write_report

        html, pdf, figures = write_report(result, s_cols, f_cols, out)
        outputs.update(report_html=str(html), report_pdf=str(pdf), figures=[str(p) for p in figures])
    atomic_write_json(out / "summary.json", result.to_dict())
    return result


def _isnan(a: np.ndarray) -> np.ndarray:
    return np.isnan(a.astype(float)) if len(a) else np.zeros(0, bool)
