"""What an exam gives: the result of each fed frame, the journalled key frames, the per-patient
answer with its evidence (``report.json``) and the result of a whole run over a source."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.inference.loading import Bundle

from .verdict import Diagnosis, Reason

__all__ = ["REPORT_FORMAT", "SCAN_FORMAT", "SCAN_FORMAT_VERSION", "BundleIdentity", "ExamResult", "FrameResult", "KeyFrame", "PatientResult", "bundle_identity"]

REPORT_FORMAT = 1

# ``scan --json`` (``ExamResult.to_dict``): one shape whatever the number of patients, published as
# docs/schemas/scan.schema.json (docs/design.md §10). Version 1 put one patient's answer at the top
# level and only a ``patients`` list for several; version 2 always has the list.
SCAN_FORMAT = "gout-edge-scan"
SCAN_FORMAT_VERSION = 2



def _roi_list(roi: Roi) -> list[int]:
    return [roi.x0, roi.y0, roi.x1, roi.y1]


@dataclass(frozen=True)
class FrameResult:
    """What one fed frame gave. ``probability`` is None for frames that do not vote (blank, colour,
    out of scope)."""

    index: int
    timestamp_s: float
    probability: float | None
    abnormal: bool | None
    usable: bool
    blank: bool
    colour: bool
    duplicate: bool
    key_frame: bool
    key_index: int | None  # position among the key frames (0-based) when this is one
    key_frames: int  # key frames so far
    abnormal_key_frames: int
    roi: Roi
    roi_detected: bool  # the region was (re-)detected on this frame
    latency_ms: float  # feed() from entry to return, journal write included
    cam: np.ndarray | None = field(default=None, repr=False)  # abnormal-class CAM on the input grid
    capture_to_result_ms: float | None = None  # from leaving the source to this result (None: not captured)
    out_of_scope: bool = False  # the scope guard refused the frame (and it is neither blank nor colour)
    scope_distance: float | None = None  # None: not judged (blank, repeat) or no guard

    @property
    def abnormal_fraction(self) -> float | None:
        return self.abnormal_key_frames / self.key_frames if self.key_frames else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "timestamp_s": round(self.timestamp_s, 4),
            "probability": None if self.probability is None else round(self.probability, 6),
            "abnormal": self.abnormal, "usable": self.usable, "blank": self.blank, "colour": self.colour,
            "out_of_scope": self.out_of_scope,
            "scope_distance": None if self.scope_distance is None else round(self.scope_distance, 4),
            "duplicate": self.duplicate, "key_frame": self.key_frame, "key_index": self.key_index,
            "key_frames": self.key_frames, "abnormal_fraction": self.abnormal_fraction,
            "roi": _roi_list(self.roi), "latency_ms": round(self.latency_ms, 3),
            "capture_to_result_ms": None if self.capture_to_result_ms is None else round(self.capture_to_result_ms, 3),
        }


@dataclass(frozen=True)
class KeyFrame:
    """One key frame as journalled: its place in the vote and where it came from."""

    key_index: int
    frame_index: int
    timestamp_s: float
    probability: float
    abnormal: bool
    roi: Roi
    origin: str
    capture_to_result_ms: float | None = None  # from leaving the source to this record, before its fsync
    still: bool = False  # a stored still image, not a frame of a moving exam
    view: str | None = None  # the protocol view its file or tags name (Frame.view)
    file: str = ""  # the file it came from (Frame.file; "" for video and capture)
    frame_number: int | None = None  # its frame in a multi-frame file, from 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "key_frame", "key_index": self.key_index, "frame_index": self.frame_index,
            "timestamp_s": round(self.timestamp_s, 4), "probability": round(self.probability, 6),
            "abnormal": self.abnormal, "roi": _roi_list(self.roi), "origin": self.origin, "still": self.still,
            "view": self.view,
            "capture_to_result_ms": None if self.capture_to_result_ms is None else round(self.capture_to_result_ms, 3),
        }


@dataclass(frozen=True)
class PatientResult:
    """The per-patient answer and the evidence behind it (``to_dict`` is what report.json holds)."""

    session_id: str
    patient_id: str | None
    diagnosis: Diagnosis  # "gout", "no gout" or "indeterminate" (a str Enum)
    reason: Reason  # a code with its numbers; str(reason) is the sentence
    abnormal_fraction: float | None
    abnormal_key_frames: int
    key_frames: int
    min_key_frames: int
    threshold: float | None
    image_cutoff: float
    threshold_source: str
    frames_seen: int
    frames_scored: int
    duplicates: int
    blank_frames: int
    colour_frames: int
    dropped: int
    ended_by: str
    complete: bool  # False when the exam ended on a lost device, an error or input cut short
    started_at: str
    ended_at: str | None
    session_dir: Path
    journal: Path
    report: Path | None
    summary: Path | None
    overlays: tuple[Path, ...]
    bundle: BundleIdentity
    key_frame_list: tuple[KeyFrame, ...] = ()
    timing: dict[str, Any] = field(default_factory=dict)  # latency as the exam ran it: see ExamSession.timing
    dicom: tuple[Path, ...] = ()  # SR and SC objects written by close() (docs/design.md §12)
    skipped_files: tuple[Any, ...] = ()  # input files left out (``sources.SkippedFile``: name and reason)
    pdf: Path | None = None  # the one-page printable report beside summary.png (docs/design.md §13)
    out_of_scope_frames: int = 0  # left out as out of scope (neither blank nor colour)
    scope_judged: int = 0  # frames the scope guard judged (0: no guard)
    scope_refused: int = 0  # of those, out of scope (colour frames included): the exam rule's count
    not_key_frames: int = 0  # usable frames scored but not key frames (probe moving, low contrast, like a recent one)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "session_id": self.session_id,
            "patient_id": self.patient_id,
            "diagnosis": self.diagnosis.value,
            "reason": self.reason.text(),
            "reason_code": self.reason.code.value,
            "abnormal_fraction": self.abnormal_fraction,
            "abnormal_key_frames": self.abnormal_key_frames,
            "key_frames": self.key_frames,
            "min_key_frames": self.min_key_frames,
            "threshold": self.threshold,
            "image_cutoff": self.image_cutoff,
            "threshold_source": self.threshold_source,
            "rule": ("abnormal fraction of key frames > threshold → gout; mostly out-of-scope frames, too few key "
                     "frames or views → indeterminate"),
            "frames_seen": self.frames_seen,
            "frames_scored": self.frames_scored,
            "duplicates": self.duplicates,
            "blank_frames": self.blank_frames,
            "colour_frames": self.colour_frames,
            "out_of_scope_frames": self.out_of_scope_frames,
            "not_key_frames": self.not_key_frames,
            "scope": {"judged": self.scope_judged, "out_of_scope": self.scope_refused},
            "dropped": self.dropped,
            "ended_by": self.ended_by,
            "complete": self.complete,
            "skipped_files": skipped_list(self.skipped_files),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "session_dir": str(self.session_dir),
            "journal": str(self.journal),
            "report": None if self.report is None else str(self.report),
            "summary": None if self.summary is None else str(self.summary),
            "pdf": None if self.pdf is None else str(self.pdf),
            "overlays": [str(p) for p in self.overlays],
            "dicom": [str(p) for p in self.dicom],
            "bundle": self.bundle.to_dict(),
            "key_frame_list": [k.to_dict() for k in self.key_frame_list],
            "timing": self.timing,
            "intended_use": self.bundle.intended_use,
        }


@dataclass(frozen=True)
class ExamResult:
    """What ``run_exam`` gave: one result per patient/study group, and the run's own counts."""

    patients: tuple[PatientResult, ...]
    frames_seen: int
    frames_captured: int
    dropped: int
    ended_by: str
    capture_lost: bool
    source: str
    live: bool
    bundle: BundleIdentity
    skipped_files: tuple[Any, ...] = ()  # ``sources.SkippedFile``: base name and reason

    def to_dict(self) -> dict[str, Any]:
        """The ``scan --json`` document: the exam's facts at the top level and one entry per patient in
        ``patients`` (even for one), with the same keys whatever their number. ``sent`` and
        ``phantom_diagnosis`` are filled in by the command (``--send-to``, ``--demo``)."""
        return {
            "format": SCAN_FORMAT, "format_version": SCAN_FORMAT_VERSION,
            "frames_seen": self.frames_seen, "frames_captured": self.frames_captured, "dropped": self.dropped,
            "ended_by": self.ended_by, "capture_lost": self.capture_lost,
            "complete": all(p.complete for p in self.patients),
            "source": {"kind": self.source, "live": self.live, "skipped_files": skipped_list(self.skipped_files)},
            "bundle": self.bundle.to_dict(),
            "sent": None,
            "phantom_diagnosis": None,
            "patients": [_patient_summary(p) for p in self.patients],
        }


def skipped_list(items: Any) -> list[dict[str, str]]:
    """Skipped files as ``{"file": base name, "reason": why}`` records."""
    return [s.to_dict() if hasattr(s, "to_dict") else {"file": str(s), "reason": ""} for s in items]


def _patient_summary(p: PatientResult) -> dict[str, Any]:
    """One patient in ``scan --json``: its ``report.json`` with the same names, less the key-frame list
    (in the report and the journal) and what the document states once at its top (format, bundle)."""
    d = p.to_dict()
    for key in ("format", "bundle", "key_frame_list"):
        d.pop(key)
    return d


@dataclass(frozen=True)
class BundleIdentity:
    """Which model gave a result: the bundle, its model and the engine that ran it (the journal's
    ``bundle``, the report's and ``--json``'s ``bundle``, the SR's algorithm identification)."""

    identity: str
    name: str
    version: str
    blocks: int
    checkpoint_sha256: str
    path: str
    intended_use: str
    provenance: str
    backend: str | None = None
    precision: str | None = None

    @classmethod
    def of(cls, bundle: Bundle, scorer: Any = None) -> BundleIdentity:
        m = bundle.manifest
        return cls(bundle.identity, m.model.name, m.model.version, m.model.blocks, m.model.checkpoint_sha256,
                   str(bundle.root), m.model.intended_use, m.model.provenance,
                   None if scorer is None else scorer.backend, None if scorer is None else scorer.precision)

    @property
    def not_for_clinical_use(self) -> bool:
        """The bundle says it was trained on phantoms or is not for clinical use."""
        text = f"{self.intended_use} {self.provenance}".lower()
        return "phantom" in text or "not for clinical use" in text

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.backend is None and self.precision is None:  # as before: no engine keys without a scorer
            del out["backend"], out["precision"]
        return out


def bundle_identity(bundle: Bundle, scorer: Any = None) -> BundleIdentity:
    return BundleIdentity.of(bundle, scorer)
