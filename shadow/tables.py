"""The hospital's tables, merged from the per-study records: ``studies.parquet`` (one row per study,
both bundles' verdicts side by side) and ``frames.parquet`` (one row per frame read, both bundles'
outcomes side by side), written with pyarrow with a fixed schema, rows in the archive's order, so
that two runs that scored the same studies give the same tables whatever the engine or the order
in which studies finished.

Columns of each bundle carry its name as a prefix (``new_diagnosis``, ``old_probability``). The
tables hold patient identifiers (patient ID, Study Instance UID, accession number, file paths):
they stay in the output folder; nothing of them is logged.

With labels (an index table, ``calibration.index`` format: ``patient_id,image,image_label,diagnosis,view``),
a study's ``truth`` is its patient's diagnosis (by Patient ID) and a frame's ``image_label`` is
its file's label (by path; frames of multi-frame files have none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write

from .archive import StudyRef
from .study import FRAME_FIELDS, MODEL_FIELDS

__all__ = ["Labels", "frame_table", "read_labels", "study_table", "write_parquet"]


def _pa():
    try:
        import pyarrow as pa
    except ImportError:
        from gout_edge.errors import UsageError

        raise UsageError("gout-edge shadow writes Parquet tables with pyarrow: pip install 'gout-edge[shadow]'") from None
    return pa


@dataclass(frozen=True)
class Labels:
    """The truth from an index table: each patient's diagnosis, each image file's label."""

    path: Path
    sha256: str
    diagnosis: Mapping[str, str]  # patient ID → "gout" | "control"
    image: Mapping[str, int]  # resolved file path → 1 (lesion visible) | 0

    def truth(self, ref: StudyRef) -> str | None:
        return self.diagnosis.get(ref.patient_id) if ref.patient_id else None

    def image_label(self, root: Path, file: str, still: bool) -> int | None:
        if not still or not file:
            return None
        return self.image.get(str((root / file).resolve()))


def read_labels(path: Path | str) -> Labels:
    from gout_edge.calibration.index import read_index

    table = read_index(path, check_files=False)
    return Labels(
        table.path, table.sha256,
        {r.patient_id: r.diagnosis for r in table.rows},
        {str(r.image.resolve()): r.image_label for r in table.rows},
    )


_MODEL_TYPES = {
    "diagnosis": "string", "reason_code": "string", "reason": "string", "abnormal_fraction": "float64",
    "abnormal_key_frames": "int32", "key_frames": "int32", "threshold": "float64",
}
_FRAME_TYPES = {"duplicate": "bool", "scored": "bool", "probability": "float64", "abnormal": "bool",
                "scope_distance": "float64", "scope_refused": "bool", "exclusion": "string", "key": "bool"}


def _type(pa, name: str):
    return pa.bool_() if name == "bool" else getattr(pa, name)()


def study_schema(names: Sequence[str], labelled: bool):
    pa = _pa()
    fields = [
        ("study_key", "string"), ("kind", "string"), ("status", "string"), ("error", "string"), ("error_kind", "string"),
        ("patient_id", "string"), ("study_uid", "string"), ("accession", "string"), ("study_date", "string"),
        ("month", "string"), ("manufacturer", "string"), ("model", "string"), ("station", "string"),
        ("files", "int32"), ("frames", "int32"), ("bytes", "int64"), ("skipped_files", "int32"),
        ("skipped", "string"), ("warnings", "int32"),
    ]
    if labelled:
        fields.append(("truth", "string"))
    for m in names:
        fields += [(f"{m}_{k}", _MODEL_TYPES.get(k, "int32")) for k in MODEL_FIELDS]
    fields.append(("changed", "bool"))
    return pa.schema([(n, _type(pa, t)) for n, t in fields])


def frame_schema(names: Sequence[str], labelled: bool):
    pa = _pa()
    fields = [("study_key", "string"), ("frame_index", "int32"), ("file", "string"), ("frame_number", "int32"),
              ("view", "string"), ("still", "bool"), ("timestamp_s", "float64")]
    if labelled:
        fields.append(("image_label", "int8"))
    for m in names:
        fields += [(f"{m}_{k}", _FRAME_TYPES[k]) for k in FRAME_FIELDS]
    return pa.schema([(n, _type(pa, t)) for n, t in fields])


def study_table(refs: Sequence[StudyRef], records: Mapping[str, dict[str, Any]], names: Sequence[str],
                labels: Labels | None = None):
    """One row per study of ``refs`` (in that order) from its record."""
    pa = _pa()
    schema = study_schema(names, labels is not None)
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for ref in refs:
        rec = records[ref.key]
        row: dict[str, Any] = {
            "study_key": ref.key, "kind": ref.kind, "status": rec["status"], "error": rec.get("error"),
            "error_kind": rec.get("error_kind") if rec["status"] != "scored" else None,
            "patient_id": ref.patient_id, "study_uid": ref.study_uid, "accession": ref.accession,
            "study_date": ref.study_date, "month": ref.month, "manufacturer": ref.manufacturer, "model": ref.model,
            "station": ref.station, "files": len(ref.files), "frames": rec.get("frames", 0), "bytes": rec.get("bytes", 0),
            "skipped_files": len(rec.get("skipped", ())), "skipped": json.dumps(rec.get("skipped", []), ensure_ascii=False),
            "warnings": len(rec.get("warnings", ())),
        }
        if labels is not None:
            row["truth"] = labels.truth(ref)
        models = rec.get("models", {})
        for m in names:
            d = models.get(m, {})
            for k in MODEL_FIELDS:
                row[f"{m}_{k}"] = d.get(k)
        diagnoses = [models.get(m, {}).get("diagnosis") for m in names]
        row["changed"] = None if None in diagnoses else len(set(diagnoses)) > 1
        for k in cols:
            cols[k].append(row[k])
    return pa.table(cols, schema=schema)


def frame_table(refs: Sequence[StudyRef], records: Mapping[str, dict[str, Any]], names: Sequence[str], root: Path,
                labels: Labels | None = None):
    """One row per frame read of every study of ``refs`` (in that order)."""
    pa = _pa()
    schema = frame_schema(names, labels is not None)
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for ref in refs:
        rows = records[ref.key].get("frame_rows") or {}
        n = len(rows.get("frame_index", ()))
        if not n:
            continue
        cols["study_key"].extend([ref.key] * n)
        for k in ("frame_index", "file", "frame_number", "view", "still", "timestamp_s"):
            cols[k].extend(rows[k])
        if labels is not None:
            cols["image_label"].extend(labels.image_label(root, f, s) for f, s in zip(rows["file"], rows["still"], strict=True))
        for m in names:
            for k in FRAME_FIELDS:
                cols[f"{m}_{k}"].extend(rows[f"{m}_{k}"])
    return pa.table(cols, schema=schema)


def write_parquet(table, path: Path) -> Path:
    """``table`` to ``path`` atomically (zstd; statistics for readers that filter)."""
    import pyarrow.parquet as pq

    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
