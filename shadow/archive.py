"""A hospital archive as a list of studies: a folder tree of DICOM files grouped by patient and
Study Instance UID, or an index table of images (``calibration.index`` format) whose patients are
the studies.

Nothing in the archive is ever written. Finding the studies reads each file's header once
(pydicom, ``stop_before_pixels``): the patient and study it belongs to, the tags the report
stratifies by (Manufacturer, Manufacturer's Model Name, Station Name, the month of Study Date) and
the accession number. Headers read before are taken from a cache kept in the work folder
(``headers.json``: each file's size and modification time with what its header said), so a rerun
over a grown archive reads only the new files.

A file whose header cannot be read cannot be put in a study: it becomes a study of its own, of
kind ``unreadable``, with the reason, so that it is a row of the results rather than silence.
Patient identifiers stay in ``StudyRef`` (for the tables in the output folder); logs name a study
by ``key``, a pseudonym (``study_pseudonym``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.sources import reason_of
from gout_edge.errors import InputError

__all__ = ["STRATA", "Archive", "StudyRef", "discover", "month_of", "study_pseudonym"]

log = logging.getLogger(__name__)

STRATA = ("manufacturer", "model", "station", "month")  # the report's strata, from the DICOM tags
UNKNOWN = "unknown"
DICOM_SUFFIXES = (".dcm", ".dicom", ".dcn")
_HEADER_TAGS = {  # StudyRef field ← DICOM keyword (first file of a study that states it)
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "station": "StationName",
    "accession": "AccessionNumber",
}
_DATE_TAGS = ("StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate")

ProgressFn = Callable[[int, int], None]


def study_pseudonym(*parts: str) -> str:
    """The key of a study in logs, file names and the report: 16 hex digits of SHA-256 of what
    only the archive holds — a study's Study Instance UID with its Patient ID; an index table's
    patient with the table's own SHA-256; an unreadable file's path with a digest of its bytes —
    so that a key cannot be traced back to a patient by hashing candidate IDs, and the same
    study has the same key in every run (the Parquet tables map keys to studies)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:16]


def _content_digest(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read(1 << 20)).hexdigest()
    except OSError:
        return ""


def month_of(date: str) -> str:
    """``YYYYMMDD`` → ``YYYY-MM``; anything else → ``unknown``."""
    d = (date or "").strip()
    if len(d) >= 6 and d[:6].isdigit() and 1 <= int(d[4:6]) <= 12:
        return f"{d[:4]}-{d[4:6]}"
    return UNKNOWN


@dataclass(frozen=True)
class StudyRef:
    """One study of the archive: what the scorer needs (``files``, relative to the archive's
    folder) and what the tables and strata say about it. ``kind``: ``dicom`` (a study of a DICOM
    tree), ``images`` (a patient of an index table) or ``unreadable`` (a file whose header could
    not be read; ``error`` says why). Patient fields: for the tables only, never logged."""

    key: str
    kind: str
    files: tuple[str, ...]
    patient_id: str = field(default="", repr=False)
    study_uid: str = field(default="", repr=False)
    accession: str = field(default="", repr=False)
    study_date: str = ""
    manufacturer: str = UNKNOWN
    model: str = UNKNOWN
    station: str = UNKNOWN
    error: str = ""

    @property
    def month(self) -> str:
        return month_of(self.study_date)

    def stratum(self, name: str) -> str:
        return self.month if name == "month" else getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = list(self.files)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyRef:
        return cls(**{**d, "files": tuple(d["files"])})


@dataclass(frozen=True)
class Archive:
    """The studies of an archive, in a fixed order (by first file), and what was left aside."""

    root: Path  # the folder file paths are relative to
    kind: str  # "dicom" (a folder tree) or "index" (an index table)
    source: Path  # what --archive named
    studies: tuple[StudyRef, ...]
    files: int  # files that belong to a study (or are unreadable studies themselves)
    not_dicom: int = 0  # files of a folder tree that are not DICOM (left out)
    not_images: int = 0  # DICOM objects without pixel data (DICOMDIR, reports; left out)
    headers_read: int = 0  # headers read now (the rest came from the cache)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.source), "kind": self.kind, "studies": len(self.studies), "files": self.files,
                "not_dicom": self.not_dicom, "not_images": self.not_images, "headers_read": self.headers_read}


# --------------------------------------------------------------------------------------------
# headers


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _text(ds: Any, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # a value pydicom parses only when read  # noqa: BLE001
        return ""
    return "" if value is None else str(value).strip()


def read_header(path: Path) -> dict[str, Any]:
    """What grouping and the strata need from one file's header: ``{"error": why}`` when it cannot
    be read, ``{"image": False}`` for a DICOM object without pixels (a DICOMDIR, a report)."""
    import pydicom
    from pydicom.uid import UID

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=path.suffix.lower() in DICOM_SUFFIXES)
        if "Rows" not in ds or "Columns" not in ds:
            meta = getattr(ds, "file_meta", None)
            sop = _text(ds, "SOPClassUID") or str(getattr(meta, "MediaStorageSOPClassUID", "") or "")
            name = UID(sop).name if sop else ""
            if "DirectoryRecordSequence" in ds or (name and name != sop and "Image" not in name):
                return {"image": False}
            return {"error": "damaged or truncated: it has no Rows and Columns (no image description)"}
        out = {"image": True, "patient_id": _text(ds, "PatientID"), "study_uid": _text(ds, "StudyInstanceUID")}
        out.update({k: _text(ds, kw) for k, kw in _HEADER_TAGS.items()})
        out["date"] = next((d for d in (_text(ds, t) for t in _DATE_TAGS) if d), "")
        return out
    except Exception as exc:  # noqa: BLE001 - one error boundary per file
        return {"error": f"its header cannot be read ({reason_of(exc, path)})"}


def _files_under(root: Path) -> list[Path]:
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / n for n in sorted(names) if not n.startswith("."))
    return out


def _headers(files: list[tuple[str, Path]], cache: dict[str, Any], progress: ProgressFn | None) -> tuple[dict[str, Any], int]:
    """Each file's header (from ``cache`` when its size and mtime are unchanged), by its name in the
    archive; the new cache."""
    out: dict[str, Any] = {}
    read = 0
    for i, (rel, path) in enumerate(files, 1):
        try:
            st = path.stat()
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        hit = cache.get(rel)
        if hit is not None and stamp is not None and hit.get("stamp") == stamp:
            out[rel] = hit
        else:
            out[rel] = {"stamp": stamp, **read_header(path)}
            read += 1
        if progress is not None and (i % 50 == 0 or i == len(files)):
            progress(i, len(files))
    return out, read


# --------------------------------------------------------------------------------------------
# the studies


def _unreadable(root: Path, rel: str, error: str) -> StudyRef:
    key = study_pseudonym("file", rel, _content_digest(root / rel))
    return StudyRef(key=key, kind="unreadable", files=(rel,), error=error)


def _first(headers: list[dict[str, Any]], name: str) -> str:
    return next((h[name] for h in headers if h.get(name)), "")


def _study(key: str, kind: str, files: list[str], headers: list[dict[str, Any]], patient_id: str, study_uid: str) -> StudyRef:
    return StudyRef(
        key=key, kind=kind, files=tuple(files), patient_id=patient_id, study_uid=study_uid,
        accession=_first(headers, "accession"), study_date=_first(headers, "date"),
        manufacturer=_first(headers, "manufacturer") or UNKNOWN, model=_first(headers, "model") or UNKNOWN,
        station=_first(headers, "station") or UNKNOWN,
    )


def _dicom_tree(root: Path, cache: dict[str, Any], progress: ProgressFn | None) -> tuple[Archive, dict[str, Any]]:
    paths = _files_under(root)
    dicom = [p for p in paths if _is_dicom(p)]
    headers, read = _headers([(p.relative_to(root).as_posix(), p) for p in dicom], cache, progress)
    groups: dict[tuple[str, str], list[str]] = {}
    studies: list[tuple[int, StudyRef]] = []  # (position of its first file, study)
    not_images = 0
    for pos, (rel, h) in enumerate(headers.items()):
        if "error" in h:
            studies.append((pos, _unreadable(root, rel, f"{Path(rel).name}: {h['error']}")))
        elif not h.get("image"):
            not_images += 1
        else:
            group = (h["patient_id"], h["study_uid"])
            if group not in groups:
                groups[group] = []
                studies.append((pos, StudyRef(key="", kind="dicom", files=())))  # placeholder, filled below
            groups[group].append(rel)
    order = iter(groups.items())
    out = []
    for _pos, ref in sorted(studies, key=lambda t: t[0]):
        if ref.kind == "dicom":
            (patient, uid), files = next(order)
            ref = _study(study_pseudonym("study", patient, uid), "dicom", files, [headers[f] for f in files], patient, uid)
        out.append(ref)
    archive = Archive(root, "dicom", root, tuple(out), sum(len(s.files) for s in out), len(paths) - len(dicom),
                      not_images, read)
    return archive, headers


def _index_table(path: Path, cache: dict[str, Any], progress: ProgressFn | None) -> tuple[Archive, dict[str, Any]]:
    from gout_edge.calibration.index import read_index

    table = read_index(path)
    root = table.root
    headers, read = _headers([(table.relative(r), r.image) for r in table.rows if _is_dicom(r.image)], cache, progress)
    studies = []
    for rec in table.patients():
        files = sorted(table.relative(table.rows[i]) for i in rec.rows)  # path order, as scan --images reads them
        found = [headers[f] for f in files if f in headers and "error" not in headers[f]]
        studies.append(_study(study_pseudonym("patient", table.sha256, rec.patient_id), "images", files, found, rec.patient_id,
                              _first(found, "study_uid")))
    return Archive(root, "index", path, tuple(studies), len(table)), headers


def discover(archive: Path | str, cache: dict[str, Any] | None = None,
             progress: ProgressFn | None = None) -> tuple[Archive, dict[str, Any]]:
    """The studies of ``archive`` (a folder tree of DICOM files, or an index table CSV) and the
    header cache to keep for the next run."""
    path = Path(archive).expanduser()
    if not path.exists():
        raise InputError(f"archive {path.name!r} not found; give a folder of DICOM studies or an index table (CSV)")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(f"archive {path.name} is a file but not an index table (.csv); give a folder of DICOM "
                             "studies or an index table")
        archive_, headers = _index_table(path.resolve(), cache or {}, progress)
    else:
        archive_, headers = _dicom_tree(path.resolve(), cache or {}, progress)
    if not archive_.studies:
        raise InputError(f"archive {path.name} holds no study: {archive_.not_dicom} file(s) that are not DICOM and "
                         f"{archive_.not_images} DICOM object(s) without an image; give a folder of ultrasound DICOM "
                         "studies or an index table")
    log.info("archive: %d studies in %d files (%d headers read, %d from the cache)", len(archive_.studies),
             archive_.files, archive_.headers_read, len(headers) - archive_.headers_read)
    return archive_, headers
