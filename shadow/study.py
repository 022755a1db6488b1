"""One study scored by both bundles through the cart's pipeline and verdict rule — the per-study
function that both engines (a local process pool, Ray Data actors) run.

The frames come from the cart's DICOM source (``StudySource``: ``DicomSource`` over the files of
one study, so decoding, regions, views, order, the skipped-file rule are the cart's) or, for an
index table, from ``sources.images.frames_of_file`` in path order, as ``evaluate`` runs a patient
(``calibration.calibrate.exam_tallies``). Each frame is decoded once and fed to one
``pipeline.stages.compose`` pipeline per bundle; each pipeline's ``Tally.decide`` is the verdict
the cart would have given. No picture, journal or report is made.

``score_study`` never raises for a study: whatever goes wrong becomes a record with ``status``
``failed`` and the reason, so one damaged study is one row, never the end of the night's job.
Warnings logged while a study is read (a damaged file skipped, a header value treated as absent)
travel in the record, not to the terminal.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.stages import FrameOutcome, Pipeline, Tally, compose
from gout_edge.edge_runtime.sources import reason_of
from gout_edge.edge_runtime.sources.dicom import DicomSource, read_dicom_file
from gout_edge.edge_runtime.sources.images import frames_of_file
from gout_edge.errors import GoutEdgeError, InputError

from .archive import StudyRef

__all__ = ["FRAME_FIELDS", "MODEL_FIELDS", "Model", "ModelSpec", "Models", "StudySource", "failed_record",
           "open_models", "quiet_worker", "score_study"]

log = logging.getLogger(__name__)

# Per-frame fields of each model (the frames table prefixes them with the model's name).
FRAME_FIELDS = ("duplicate", "scored", "probability", "abnormal", "scope_distance", "scope_refused", "exclusion", "key")
# Per-study fields of each model (the studies table prefixes them with the model's name).
MODEL_FIELDS = ("diagnosis", "reason_code", "reason", "abnormal_fraction", "abnormal_key_frames", "key_frames",
                "threshold", "frames_scored", "duplicates", "blank_frames", "colour_frames", "out_of_scope_frames",
                "scope_judged", "scope_refused", "not_key_frames")
SOURCE_FIELDS = ("frame_index", "file", "frame_number", "view", "still", "timestamp_s")


@dataclass(frozen=True)
class ModelSpec:
    """One bundle as a worker opens it: engine and precision already resolved on the driver, so
    that every worker, on every node, runs the same model the same way."""

    name: str  # "new" or "old"
    bundle: str
    backend: str
    precision: str
    public_key: str | None = None


@dataclass
class Model:
    name: str
    bundle: Bundle
    scorer: Scorer


Models = Sequence[Model]


def open_models(specs: Sequence[ModelSpec], threads: int | None) -> list[Model]:
    """Each bundle opened once (hashes and signature checked) with an engine session of ``threads``
    threads (ONNX Runtime's intra-op pool, OpenVINO's ``INFERENCE_NUM_THREADS``)."""
    out = []
    for s in specs:
        bundle = open_bundle(s.bundle, s.public_key)
        out.append(Model(s.name, bundle, Scorer(bundle, s.backend, s.precision, threads=threads)))
    return out


def quiet_worker() -> None:
    """A worker process prints nothing: its warnings travel in the study records. pydicom reads
    as the CLI has it read (invalid values ignored, never quoted in a warning)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    logging.getLogger("gout_edge").setLevel(logging.INFO)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    try:
        from pydicom import config

        config.settings.reading_validation_mode = config.IGNORE
    except ImportError:  # pragma: no cover - pydicom is a dependency
        pass


class StudySource(DicomSource):
    """The cart's DICOM source over the files of one study of an archive (paths under ``root``, so
    frames name their files relative to the archive). Only the folder walk differs from
    ``DicomSource``: the files are given, not found; everything else — headers, the checks, the
    order, decoding, a damaged file skipped with its reason — is the cart's."""

    def __init__(self, root: Path, files: Sequence[Path]) -> None:
        self._given = [Path(f) for f in files]
        super().__init__(root, strict=False)

    def _scan(self) -> list:  # DicomSource._scan over the given files instead of a folder walk
        files = []
        for path in self._given:
            try:
                file = read_dicom_file(path, strict_image=False)
            except InputError as exc:
                self.skip(path.name, _without_name(str(exc), path.name))
                continue
            if file is not None:
                files.append(file)
        self._scanned = len(self._given)
        if not files:
            if self.skipped:
                raise self.nothing_read(len(self._given), "DICOM file(s)")
            raise InputError("the study holds no DICOM image")
        return files


def _without_name(message: str, name: str) -> str:
    for prefix in (f"DICOM file {name}: ", f"DICOM file {name} ", f"{name}: ", f"{name} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


class _Collect(logging.Handler):
    """The warnings logged while one study is read."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage()[:300])
        except Exception:  # noqa: BLE001 - a message that cannot be formatted is left out
            pass


def _index_frames(ref: StudyRef, root: Path, skipped: list[dict[str, str]]):
    """A patient of an index table, as ``exam_tallies`` runs it: files in path order, each file's
    frames numbered within the study; a file that cannot be read is skipped with its reason."""
    n = 0
    for rel in ref.files:
        path = root / rel
        try:
            for frame in frames_of_file(path, rel):
                yield dataclasses.replace(frame, index=n, group=ref.key, patient_id=ref.patient_id or None)
                n += 1
        except InputError as exc:
            skipped.append({"file": path.name, "reason": _without_name(str(exc), path.name)})
    if n == 0:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise InputError(f"none of the {len(ref.files)} image file(s) of the study could be read ({shown})")


def _frame_row(o: FrameOutcome) -> dict[str, Any]:
    return {"duplicate": o.duplicate, "scored": o.scored, "probability": o.probability, "abnormal": o.abnormal,
            "scope_distance": o.scope_distance, "scope_refused": o.scope_refused,
            "exclusion": None if o.exclusion is None else o.exclusion.value, "key": o.key}


def _decision(tally: Tally, model: Model) -> dict[str, Any]:
    d = tally.decide(model.bundle.manifest)
    return {
        "diagnosis": d.diagnosis.value, "reason_code": d.reason.code.value, "reason": d.reason.text(),
        "abnormal_fraction": d.abnormal_fraction, "abnormal_key_frames": d.abnormal_frames, "key_frames": d.key_frames,
        "threshold": d.threshold, "frames_scored": tally.frames_scored, "duplicates": tally.duplicates,
        "blank_frames": tally.blank_frames, "colour_frames": tally.colour_frames,
        "out_of_scope_frames": tally.out_of_scope_frames, "scope_judged": tally.scope_judged,
        "scope_refused": tally.scope_refused, "not_key_frames": tally.not_key_frames,
    }


def failed_record(ref: StudyRef, error: str, seconds: float = 0.0, warnings_: Sequence[str] = (),
                  skipped: Sequence[dict[str, str]] = (), read_bytes: int = 0, error_kind: str = "input") -> dict[str, Any]:
    """A study that gave no result. ``error_kind``: ``input`` (the files: the message names them by
    base name and may be logged), ``internal`` (a bug: a library's message, kept out of the log) or
    ``worker`` (the process died)."""
    return {"key": ref.key, "status": "failed", "error": error, "error_kind": error_kind, "frames": 0, "skipped": list(skipped),
            "warnings": list(warnings_), "models": {}, "frame_rows": {},
            "timing": {"seconds": round(seconds, 4), "read_decode_s": 0.0, "models_s": {}}, "bytes": read_bytes}


def _bytes(root: Path, ref: StudyRef) -> int:
    total = 0
    for f in ref.files:
        try:
            total += (root / f).stat().st_size
        except OSError:
            pass
    return total


def score_study(ref: StudyRef, root: Path | str, models: Models) -> dict[str, Any]:
    """Both bundles' per-frame outcomes and verdicts for one study (a JSON-ready record)."""
    root = Path(root)
    t0, c0 = time.perf_counter(), time.process_time()
    collect = _Collect()
    logger = logging.getLogger("gout_edge")
    logger.addHandler(collect)
    skipped: list[dict[str, str]] = []
    size = _bytes(root, ref)
    try:
        if ref.kind == "unreadable":
            return failed_record(ref, ref.error, read_bytes=size)
        pipelines: list[tuple[Model, Pipeline, Tally]] = [(m, compose(m.bundle.manifest, m.scorer), Tally()) for m in models]
        rows: dict[str, list[Any]] = {k: [] for k in SOURCE_FIELDS}
        for m in models:
            rows.update({f"{m.name}_{k}": [] for k in FRAME_FIELDS})
        spent = {m.name: 0.0 for m in models}  # wall seconds in each pipeline
        spent_cpu = {m.name: 0.0 for m in models}  # CPU seconds of this process (engine threads too)
        if ref.kind == "dicom":
            source = StudySource(root, [root / f for f in ref.files])
            frames = iter(source)
        else:
            source = None
            frames = _index_frames(ref, root, skipped)
        for frame in frames:
            rows["frame_index"].append(frame.index)
            rows["file"].append(frame.file)
            rows["frame_number"].append(frame.frame_number)
            rows["view"].append(frame.view)
            rows["still"].append(frame.still)
            rows["timestamp_s"].append(round(float(frame.timestamp_s), 6))
            for m, pipeline, tally in pipelines:
                t, c = time.perf_counter(), time.process_time()
                outcome = pipeline(frame)
                tally.add(outcome)
                for k, v in _frame_row(outcome).items():
                    rows[f"{m.name}_{k}"].append(v)
                spent[m.name] += time.perf_counter() - t
                spent_cpu[m.name] += time.process_time() - c
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        if source is not None:
            skipped.extend(s.to_dict() for s in source.skipped)
        return {
            "key": ref.key, "status": "scored", "error": None, "frames": len(rows["frame_index"]),
            "skipped": skipped, "warnings": collect.messages,
            "models": {m.name: _decision(tally, m) for m, _, tally in pipelines},
            "frame_rows": rows,
            "timing": {"seconds": round(total, 4),
                       "read_decode_s": round(total - sum(spent.values()), 4),  # headers, reading, decoding
                       "models_s": {k: round(v, 4) for k, v in spent.items()},
                       "cpu_s": round(total_cpu, 4),
                       "read_decode_cpu_s": round(total_cpu - sum(spent_cpu.values()), 4),
                       "models_cpu_s": {k: round(v, 4) for k, v in spent_cpu.items()}},
            "bytes": size,
        }
    except GoutEdgeError as exc:
        return failed_record(ref, str(exc), time.perf_counter() - t0, collect.messages, skipped, size)
    except Exception as exc:  # noqa: BLE001 - a study is a row, never the end of the job
        return failed_record(ref, f"internal error while reading the study ({type(exc).__name__}: {reason_of(exc)})",
                             time.perf_counter() - t0, collect.messages, skipped, size, error_kind="internal")
    finally:
        logger.removeHandler(collect)
