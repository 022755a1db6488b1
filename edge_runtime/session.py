"""An exam session fed frame by frame: the Python API integrators embed (DESIGN.md §7, §10).

    from gout_edge.edge_runtime.bundle import open_bundle
    from gout_edge.edge_runtime.scoring import Scorer
    from gout_edge.edge_runtime.session import ExamSession
    from gout_edge.edge_runtime.sources import Frame

    bundle = open_bundle("bundle/")
    scorer = Scorer(bundle)
    with ExamSession(bundle, scorer, "scans/exam-0001", patient="123") as session:
        for i, image in enumerate(images):               # uint8 grey or BGR screens
            result = session.feed(Frame(image, i, t))     # FrameResult: probability, key_frame, …
        patient = session.close()                         # PatientResult; report written

Nothing is lost: every key frame's result is appended to ``journal.jsonl`` (one JSON object a
line, flushed and fsynced) before ``feed`` returns it, so a crash or power cut keeps every key
frame that was shown. ``close`` writes PNG overlays (the CAM over the region) of the most
abnormal key frames, ``summary.png`` and ``report.json``, each atomically (temporary file,
fsync, rename). Patient IDs go into the journal and report, never into log lines: logs name
the session ID.

``run_exam`` drives sessions from a frame source — one session per patient/study group — with
the capture thread, a stop event (signals, the live view's keys), frame and time limits.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from gout_edge._io import atomic_write_bytes, atomic_write_text
from gout_edge.errors import GoutEdgeError, UsageError

from .bundle import Bundle
from .cam import overlay_cam
from .preprocess import PreparedFrame, Roi
from .scoring import FrameScore
from .sources._base import Frame, FrameSource
from .stream import FramePreparer, FrameStream, KeyFrameSelector, RoiTracker, StreamSpec, contrast
from .vote import decide

__all__ = [
    "JOURNAL_NAME",
    "REPORT_NAME",
    "SUMMARY_NAME",
    "ExamResult",
    "ExamSession",
    "FrameResult",
    "KeyFrame",
    "PatientResult",
    "Stop",
    "run_exam",
]

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
REPORT_NAME = "report.json"
SUMMARY_NAME = "summary.png"
REPORT_FORMAT = 1


class FrameScorer(Protocol):
    """What a session needs from ``scoring.Scorer`` (a fake with these members works in tests)."""

    backend: str
    precision: str

    def score_prepared(self, frames: list[PreparedFrame]) -> list[FrameScore]: ...


@dataclass(frozen=True)
class FrameResult:
    """What one fed frame gave. ``probability`` is None for frames not scored (blank, colour)."""

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

    @property
    def abnormal_fraction(self) -> float | None:
        return self.abnormal_key_frames / self.key_frames if self.key_frames else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "timestamp_s": round(self.timestamp_s, 4),
            "probability": None if self.probability is None else round(self.probability, 6),
            "abnormal": self.abnormal, "usable": self.usable, "blank": self.blank, "colour": self.colour,
            "duplicate": self.duplicate, "key_frame": self.key_frame, "key_index": self.key_index,
            "key_frames": self.key_frames, "abnormal_fraction": self.abnormal_fraction,
            "roi": _roi_list(self.roi), "latency_ms": round(self.latency_ms, 3),
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "key_frame", "key_index": self.key_index, "frame_index": self.frame_index,
            "timestamp_s": round(self.timestamp_s, 4), "probability": round(self.probability, 6),
            "abnormal": self.abnormal, "roi": _roi_list(self.roi), "origin": self.origin,
        }


@dataclass(frozen=True)
class PatientResult:
    """The per-patient answer and the evidence behind it (``to_dict`` is what report.json holds)."""

    session_id: str
    patient_id: str | None
    diagnosis: str  # "gout", "no gout" or "indeterminate"
    reason: str
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
    complete: bool  # False when the exam ended on a lost device or an error
    started_at: str
    ended_at: str | None
    session_dir: Path
    journal: Path
    report: Path | None
    summary: Path | None
    overlays: tuple[Path, ...]
    bundle: dict[str, Any]
    key_frame_list: tuple[KeyFrame, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "session_id": self.session_id,
            "patient_id": self.patient_id,
            "diagnosis": self.diagnosis,
            "reason": self.reason,
            "abnormal_fraction": self.abnormal_fraction,
            "abnormal_key_frames": self.abnormal_key_frames,
            "key_frames": self.key_frames,
            "min_key_frames": self.min_key_frames,
            "threshold": self.threshold,
            "image_cutoff": self.image_cutoff,
            "threshold_source": self.threshold_source,
            "rule": "abnormal fraction of key frames > threshold → gout; too few key frames → indeterminate",
            "frames_seen": self.frames_seen,
            "frames_scored": self.frames_scored,
            "duplicates": self.duplicates,
            "blank_frames": self.blank_frames,
            "colour_frames": self.colour_frames,
            "dropped": self.dropped,
            "ended_by": self.ended_by,
            "complete": self.complete,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "session_dir": str(self.session_dir),
            "journal": str(self.journal),
            "report": None if self.report is None else str(self.report),
            "summary": None if self.summary is None else str(self.summary),
            "overlays": [str(p) for p in self.overlays],
            "bundle": self.bundle,
            "key_frame_list": [k.to_dict() for k in self.key_frame_list],
            "intended_use": self.bundle.get("intended_use", ""),
        }


def bundle_identity(bundle: Bundle, scorer: Any = None) -> dict[str, Any]:
    m = bundle.manifest
    out: dict[str, Any] = {
        "identity": bundle.identity,
        "name": m.model.name,
        "version": m.model.version,
        "blocks": m.model.blocks,
        "checkpoint_sha256": m.model.checkpoint_sha256,
        "path": str(bundle.root),
        "intended_use": m.model.intended_use,
    }
    if scorer is not None:
        out["backend"] = getattr(scorer, "backend", None)
        out["precision"] = getattr(scorer, "precision", None)
    return out


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _roi_list(roi: Roi) -> list[int]:
    return [roi.x0, roi.y0, roi.x1, roi.y1]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise OSError(f"could not encode {path.name} as PNG")
    atomic_write_bytes(path, buf.tobytes())


class ExamSession:
    """One patient's exam: ``feed`` frames, read ``result``, ``close`` to write the report.

    ``out_dir`` is the session's own folder (created). ``patient`` goes into the journal and the
    report only. ``overlays``: how many of the most abnormal key frames get a CAM overlay PNG.
    Not thread-safe: feed it from one thread.
    """

    def __init__(
        self,
        bundle: Bundle,
        scorer: FrameScorer,
        out_dir: str | Path,
        patient: str | None = None,
        *,
        stream: StreamSpec = StreamSpec(),
        overlays: int = 6,
        session_id: str | None = None,
        source: str = "",
    ) -> None:
        m = bundle.manifest
        self.bundle = bundle
        self.scorer = scorer
        self.patient = patient
        self.session_id = session_id or new_session_id()
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.decision = m.decision
        self.identity = bundle_identity(bundle, scorer)
        self._prepare = FramePreparer(m.input, m.preprocess)
        self._tracker = RoiTracker(m.preprocess, stream)
        self._keys = KeyFrameSelector(stream)
        self._n_overlays = overlays
        self._top: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # min-heap (p, key, crop, cam)
        self.key_frames: list[KeyFrame] = []
        self._probabilities: list[float] = []
        self._abnormal = 0
        self._last: tuple[float | None, bool | None, bool, bool, bool, np.ndarray | None] | None = None
        self.frames_seen = 0
        self.frames_scored = 0
        self.duplicates = 0
        self.blank_frames = 0
        self.colour_frames = 0
        self.dropped = 0  # set by the driver that owns the capture (FrameStream.dropped)
        self.started_at = _now()
        self._result: PatientResult | None = None
        self.journal_path = self.dir / JOURNAL_NAME
        try:
            self._journal = open(self.journal_path, "x", encoding="utf-8")
        except FileExistsError:
            raise UsageError(
                f"{self.dir} already holds a session journal; give each exam session its own folder"
            ) from None
        self._append({
            "type": "session", "format": REPORT_FORMAT, "session_id": self.session_id,
            "patient_id": patient, "started_at": self.started_at, "source": source,
            "bundle": self.identity,
            "decision": {"image_cutoff": self.decision.image_cutoff, "patient_threshold": self.decision.patient_threshold,
                         "min_key_frames": self.decision.min_key_frames, "calibrated": self.decision.calibrated},
        })
        _fsync_dir(self.dir)
        log.info("session %s: started (%s %s) in %s", self.session_id, self.identity.get("backend"),
                 self.identity.get("precision"), self.dir)

    # -- feeding
    def feed(self, frame: Frame) -> FrameResult:
        """Score one frame (unless it repeats the last one); a key frame is journalled before this returns."""
        if self._result is not None:
            raise UsageError(f"session {self.session_id} is closed; start a new ExamSession")
        t0 = time.perf_counter()
        self.frames_seen += 1
        image = frame.image
        roi, detected = self._tracker.locate(image, frame.roi)
        prepared = self._prepare(image, roi)
        roi = prepared.roi
        thumb = self._keys.thumbnail(prepared.tensor)
        duplicate, motion = self._keys.observe(thumb)
        key_index = None
        if duplicate and self._last is not None:
            self.duplicates += 1
            probability, abnormal, usable, blank, colour, cam = self._last
        else:
            blank, colour, usable = prepared.blank, prepared.colour, prepared.usable
            probability = abnormal = cam = None
            if usable:
                score = self.scorer.score_prepared([prepared])[0]
                self.frames_scored += 1
                probability, abnormal, cam = score.probability, score.abnormal, score.cam
            else:
                self.blank_frames += blank
                self.colour_frames += colour and not blank
            self._last = (probability, abnormal, usable, blank, colour, cam)
            if usable and self._keys.is_key(thumb, usable, contrast(image, roi), frame.still, motion):
                assert probability is not None and cam is not None
                key_index = self._add_key(frame, roi, probability, bool(abnormal), cam)
        return FrameResult(
            index=frame.index, timestamp_s=frame.timestamp_s, probability=probability, abnormal=abnormal,
            usable=bool(usable), blank=bool(blank), colour=bool(colour), duplicate=duplicate,
            key_frame=key_index is not None, key_index=key_index, key_frames=len(self.key_frames),
            abnormal_key_frames=self._abnormal, roi=roi, roi_detected=detected,
            latency_ms=(time.perf_counter() - t0) * 1e3, cam=cam,
        )

    def _add_key(self, frame: Frame, roi: Roi, probability: float, abnormal: bool, cam: np.ndarray) -> int:
        k = len(self.key_frames)
        record = KeyFrame(k, frame.index, frame.timestamp_s, probability, abnormal, roi, frame.origin)
        self._append(record.to_dict())  # durable before anyone sees it
        self.key_frames.append(record)
        self._probabilities.append(probability)
        self._abnormal += abnormal
        if self._n_overlays > 0 and (len(self._top) < self._n_overlays or probability > self._top[0][0]):
            crop = frame.image[roi.y0 : roi.y1, roi.x0 : roi.x1].copy()
            item = (probability, -k, crop, np.array(cam, copy=True))
            if len(self._top) < self._n_overlays:
                heapq.heappush(self._top, item)
            else:
                heapq.heapreplace(self._top, item)
        return k

    def _append(self, record: dict[str, Any]) -> None:
        self._journal.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    # -- results
    def result(self) -> PatientResult:
        """The patient result so far (the final one, with report paths, once closed)."""
        if self._result is not None:
            return self._result
        return self._build(ended_by="in progress", complete=True, ended_at=None)

    def _build(self, ended_by: str, complete: bool, ended_at: str | None, report: Path | None = None,
               summary: Path | None = None, overlays: tuple[Path, ...] = ()) -> PatientResult:
        d = decide(self._probabilities, self.decision)
        return PatientResult(
            session_id=self.session_id, patient_id=self.patient, diagnosis=d.diagnosis, reason=d.reason,
            abnormal_fraction=d.abnormal_fraction, abnormal_key_frames=d.abnormal_frames, key_frames=d.key_frames,
            min_key_frames=self.decision.min_key_frames, threshold=d.threshold, image_cutoff=self.decision.image_cutoff,
            threshold_source=self.decision.source, frames_seen=self.frames_seen, frames_scored=self.frames_scored,
            duplicates=self.duplicates, blank_frames=self.blank_frames, colour_frames=self.colour_frames,
            dropped=self.dropped, ended_by=ended_by, complete=complete, started_at=self.started_at, ended_at=ended_at,
            session_dir=self.dir, journal=self.journal_path, report=report, summary=summary, overlays=overlays,
            bundle=self.identity, key_frame_list=tuple(self.key_frames),
        )

    def close(self, ended_by: str = "end of input", complete: bool = True) -> PatientResult:
        """Write overlays, summary and report (atomically) and end the journal; idempotent."""
        if self._result is not None:
            return self._result
        ended_at = _now()
        ranked = sorted(self._top, key=lambda t: (-t[0], -t[1]))
        overlays = []
        for rank, (p, neg_k, crop, cam) in enumerate(ranked, 1):
            path = self.dir / f"overlay_{rank:02d}_key{-neg_k:04d}.png"
            write_png(path, _label(overlay_cam(_fit(crop), cam), f"key frame {-neg_k}  p={p:.2f}"))
            overlays.append(path)
        draft = self._build(ended_by, complete, ended_at)
        summary = self.dir / SUMMARY_NAME
        write_png(summary, render_summary(draft, [(-k, p, overlay_cam(_fit(c, 400), cam)) for p, k, c, cam in ranked]))
        report = self.dir / REPORT_NAME
        result = self._build(ended_by, complete, ended_at, report, summary, tuple(overlays))
        atomic_write_text(report, json.dumps(result.to_dict(), indent=2) + "\n")
        self._append({"type": "end", "ended_at": ended_at, "ended_by": ended_by, "diagnosis": result.diagnosis,
                      "key_frames": result.key_frames, "abnormal_fraction": result.abnormal_fraction,
                      "report": REPORT_NAME})
        self._journal.close()
        _fsync_dir(self.dir)
        self._result = result
        fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.3f}"
        log.info("session %s: %s (abnormal fraction %s over %d key frames; %d frames seen, %d scored, %d dropped); "
                 "ended by %s; report %s", self.session_id, result.diagnosis, fraction, result.key_frames,
                 result.frames_seen, result.frames_scored, result.dropped, ended_by, report)
        return result

    def __enter__(self) -> ExamSession:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.close(ended_by=f"error: {type(exc).__name__}", complete=False)


# -- rendering --------------------------------------------------------------------------------

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ASCII = str.maketrans({"≤": "<=", "≥": ">=", "→": "->", "–": "-", "—": "-", "…": "...", "·": "|", "×": "x"})
OVERLAY_MAX_WIDTH = 1024  # overlay PNGs are scaled down to this width at most


def ascii_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def _fit(image: np.ndarray, max_width: int = OVERLAY_MAX_WIDTH) -> np.ndarray:
    if image.shape[1] <= max_width:
        return image
    h = max(1, round(image.shape[0] * max_width / image.shape[1]))
    return cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    text = ascii_text(text)
    out = image.copy()
    scale = max(0.5, image.shape[1] / 1400)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h + 5), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_summary(result: PatientResult, tiles: list[tuple[int, float, np.ndarray]], width: int = 1200) -> np.ndarray:
    """One image: the verdict, the most abnormal key frames with their CAM, and every key frame's probability."""
    colour = {"gout": (40, 40, 220), "no gout": (60, 170, 60)}.get(result.diagnosis, (0, 170, 230))
    fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.2f}"
    threshold = "not calibrated" if result.threshold is None else f"{result.threshold:.2f}"
    header = np.full((130, width, 3), 24, np.uint8)
    cv2.putText(header, result.diagnosis.upper(), (16, 52), _FONT, 1.5, colour, 3, cv2.LINE_AA)
    lines = (
        f"abnormal fraction {fraction} (threshold {threshold}) over {result.key_frames} key frames "
        f"({result.abnormal_key_frames} abnormal); {result.reason}",
        f"session {result.session_id} | frames seen {result.frames_seen}, scored {result.frames_scored}, "
        f"dropped {result.dropped} | ended by {result.ended_by}",
        f"{result.bundle.get('identity', '')} | research software, not for clinical use",
    )
    for i, line in enumerate(lines):
        cv2.putText(header, ascii_text(line)[:150], (16, 80 + 18 * i), _FONT, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    cols = 3
    tile_w = width // cols
    rows = []
    for r in range(0, len(tiles), cols):
        cells = []
        for key, p, img in tiles[r : r + cols]:
            h = max(1, round(img.shape[0] * tile_w / img.shape[1]))
            cells.append(_label(cv2.resize(img, (tile_w, h), interpolation=cv2.INTER_AREA), f"key {key}  p={p:.2f}"))
        tile_h = max(c.shape[0] for c in cells)
        row = np.zeros((tile_h, width, 3), np.uint8)
        for i, c in enumerate(cells):
            row[: c.shape[0], i * tile_w : i * tile_w + c.shape[1]] = c
        rows.append(row)
    chart = _probability_chart(result, width)
    return np.vstack([header, *rows, chart])


def _probability_chart(result: PatientResult, width: int, height: int = 120) -> np.ndarray:
    chart = np.full((height, width, 3), 16, np.uint8)
    top, bottom, left, right = 10, height - 20, 40, width - 10

    def y(p: float) -> int:
        return int(round(bottom - p * (bottom - top)))

    cv2.line(chart, (left, y(result.image_cutoff)), (right, y(result.image_cutoff)), (0, 170, 230), 1)
    cv2.putText(chart, "p", (8, top + 10), _FONT, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(chart, "key frames", (left, height - 4), _FONT, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    probs = [k.probability for k in result.key_frame_list]
    n = len(probs)
    for i, p in enumerate(probs):
        x = left + int((i + 0.5) * (right - left) / max(n, 1))
        c = (40, 40, 220) if p > result.image_cutoff else (60, 170, 60)
        cv2.line(chart, (x, bottom), (x, y(p)), c, max(1, min(8, (right - left) // max(n, 1) - 1)))
    return chart


# -- driving sessions from a source -----------------------------------------------------------


class Stop(threading.Event):
    """A stop request with its reason (a signal handler, the live view's q key, a caller)."""

    reason: str = "stopped"

    def request(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
        self.set()


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
    bundle: dict[str, Any]
    skipped_files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if len(self.patients) == 1:  # the common case: the patient's answer at the top level
            p = self.patients[0]
            out.update({
                "patient_id": p.patient_id, "diagnosis": p.diagnosis, "reason": p.reason,
                "abnormal_fraction": p.abnormal_fraction, "threshold": p.threshold,
                "key_frames": p.key_frames, "abnormal_key_frames": p.abnormal_key_frames,
                "scored": p.frames_scored, "journal": str(p.journal),
                "report": None if p.report is None else str(p.report),
            })
        out.update({
            "frames_seen": self.frames_seen, "frames_captured": self.frames_captured, "dropped": self.dropped,
            "ended_by": self.ended_by, "capture_lost": self.capture_lost,
            "source": {"kind": self.source, "live": self.live, "skipped_files": list(self.skipped_files)},
            "bundle": self.bundle,
            "patients": [_patient_summary(p) for p in self.patients],
        })
        return out


def _patient_summary(p: PatientResult) -> dict[str, Any]:
    d = p.to_dict()
    d.pop("key_frame_list")
    d["scored"] = d.pop("frames_scored")
    return d


def run_exam(
    source: FrameSource,
    bundle: Bundle,
    scorer: FrameScorer,
    out_dir: str | Path,
    *,
    patient: str | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
    stop: Stop | None = None,
    latest_wins: bool | None = None,
    on_frame: Callable[[Frame, FrameResult, ExamSession], bool | None] | None = None,
    stream: StreamSpec = StreamSpec(),
    overlays: int = 6,
) -> ExamResult:
    """Feed ``source`` through sessions under ``out_dir`` (one folder per patient/study group).

    Ends at the end of the source, after ``max_frames`` frames or ``duration_s`` seconds, when
    ``stop`` is set, when ``on_frame`` returns False, or when a live device is lost (after its
    reconnect attempts). Reports are written whatever ends the exam, errors included.
    """
    out_dir = Path(out_dir)
    stop = stop or Stop()
    feed = FrameStream(source, latest_wins=latest_wins, stop=stop)
    identity = bundle_identity(bundle, scorer)
    results: list[PatientResult] = []
    session: ExamSession | None = None
    group: str | None = None
    dropped_at_start = 0
    seen = 0
    ended_by = "end of input"
    complete = True
    start = time.monotonic()
    base_id = new_session_id()

    def open_session(frame_patient: str | None) -> ExamSession:
        sid = base_id if not results else f"{base_id}-{len(results) + 1}"
        return ExamSession(bundle, scorer, out_dir / sid, frame_patient or patient, stream=stream,
                           overlays=overlays, session_id=sid, source=getattr(source, "kind", ""))

    def finish(s: ExamSession, reason: str, ok: bool) -> None:
        s.dropped = feed.dropped - dropped_at_start
        results.append(s.close(ended_by=reason, complete=ok))

    try:
        for frame in feed:
            if session is None or frame.group != group:
                if session is not None:
                    finish(session, "end of this patient's frames", True)
                    dropped_at_start = feed.dropped
                session, group = open_session(frame.patient_id), frame.group
            result = session.feed(frame)
            session.dropped = feed.dropped - dropped_at_start
            seen += 1
            if on_frame is not None and on_frame(frame, result, session) is False:
                stop.request("stopped from the live view")
            if max_frames is not None and seen >= max_frames:
                ended_by = f"frame limit ({max_frames}) reached"
                break
            if duration_s is not None and time.monotonic() - start >= duration_s:
                ended_by = f"time limit ({duration_s:g} s) reached"
                break
            if stop.is_set():
                break
        if stop.is_set():
            ended_by = stop.reason
        elif getattr(source, "lost", False):
            ended_by = source.end_reason or "capture lost"
            complete = False
    except KeyboardInterrupt:
        ended_by, complete = "interrupted", False
        raise
    except GoutEdgeError as exc:
        ended_by, complete = f"error: {exc}", False
        raise
    except BaseException as exc:
        ended_by, complete = f"error: {type(exc).__name__}", False
        raise
    finally:
        feed.close()
        if session is None and complete:  # not one frame, and no error: still a report that says so
            session = open_session(None)
        if session is not None:
            finish(session, ended_by, complete)
    return ExamResult(
        patients=tuple(results), frames_seen=seen, frames_captured=feed.captured, dropped=feed.dropped,
        ended_by=ended_by, capture_lost=bool(getattr(source, "lost", False)),
        source=getattr(source, "kind", type(source).__name__), live=feed.latest_wins, bundle=identity,
        skipped_files=tuple(getattr(source, "skipped", ()) or ()),
    )
