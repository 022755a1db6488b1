"""An exam session fed frame by frame: the Python API integrators embed (docs/design.md §7, §10).

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
abnormal key frames, ``summary.png``, the printable ``report.pdf`` and ``report.json``, each
atomically (temporary file, fsync, rename). Patient IDs go into the journal and report, never into log lines: logs name
the session ID.

``run_exam`` (``exam.py``) drives sessions from a frame source.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import os
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gout_edge._io import atomic_write_json, fsync_dir, to_json
from gout_edge.errors import UsageError

from .bundle import Bundle
from .cam import cam_scale_for
from .preprocess import PreparedFrame, Roi
from .report import ExamIdentity, ExcludedFrames, Tile, write_exam_pictures
from .results import REPORT_FORMAT, FrameResult, KeyFrame, PatientResult, bundle_identity
from .scoring import FrameScore, Scorer
from .sources._base import Frame
from .stream import FramePreparer, KeyFrameSelector, RoiTracker, StreamSpec, contrast
from .vote import INDETERMINATE, decide, missing_coverage, scope_refusal

__all__ = ["JOURNAL_NAME", "REPORT_NAME", "SUMMARY_NAME", "ExamSession", "FrameScorer", "new_session_id"]

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"

REPORT_NAME = "report.json"

SUMMARY_NAME = "summary.png"



class FrameScorer(Protocol):
    """What a session needs from ``scoring.Scorer`` (a fake with these members works in tests)."""

    backend: str
    precision: str

    def score_prepared(self, frames: list[PreparedFrame]) -> list[FrameScore]: ...


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class ExamSession:
    """One patient's exam: ``feed`` frames, read ``result``, ``close`` to write the report.

    ``out_dir`` is the session's own folder (created; ``ExamSession.start`` picks a fresh one
    under a scans folder). ``patient`` goes into the journal and the report only. ``overlays``:
    how many of the most abnormal key frames get a CAM overlay PNG. ``dicom_results``: ``close``
    also writes the exam's SR and SC objects into ``<out_dir>/dicom/`` (docs/design.md §12), in the
    source's patient and study when the frames came from DICOM. ``feed`` takes a ``Frame``
    from a source, or a bare image, which counts as a still (each distinct one is a key-frame
    candidate). Not thread-safe: feed it from one thread.
    """

    @classmethod
    def start(cls, bundle: Bundle, scorer: FrameScorer | None = None, *, scans: str | Path = "scans",
              patient: str | None = None, **options: Any) -> ExamSession:
        """A new session in its own folder ``scans/<session id>`` (never one that exists), scored by
        ``scorer`` (default: ``Scorer(bundle)``, the engine ``auto`` picks)."""
        if scorer is None:
            scorer = Scorer(bundle)
        session_id = options.pop("session_id", None) or new_session_id()
        return cls(bundle, scorer, Path(scans) / session_id, patient, session_id=session_id, **options)

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
        dicom_results: bool = True,
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
        self.cam_scale = cam_scale_for(bundle)  # one CAM colour scale for every picture (docs/design.md §13)
        self.excluded = ExcludedFrames()  # frames left out of the vote by reason, with examples for the summary
        self.source = source
        self._prepare = FramePreparer(m.input, m.preprocess)
        self._tracker = RoiTracker(m.preprocess, stream)
        self._keys = KeyFrameSelector(stream)
        self._n_overlays = overlays
        self._top: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # min-heap (p, key, crop, cam)
        self.key_frames: list[KeyFrame] = []
        self._probabilities: list[float] = []
        self._abnormal = 0
        # the last scored frame's outcome, repeated for duplicates:
        # (probability, abnormal, usable, blank, colour, out_of_scope, scope distance, cam)
        self._last: tuple[Any, ...] | None = None
        self.frames_seen = 0
        self.frames_scored = 0
        self.duplicates = 0
        self.blank_frames = 0
        self.colour_frames = 0
        self.out_of_scope_frames = 0
        self._guarded = getattr(scorer, "guard", None) is not None  # the scorer judges scope
        self.scope_judged = self.scope_refused = 0
        self._usable_scored = 0  # distinct frames that could vote: key frames and the ones passed over
        self.dropped = 0  # set by the driver that owns the capture (FrameStream.dropped)
        self.skipped_files: tuple[Any, ...] = ()  # set by the driver: input files left out, with why
        self.started_at = _now()
        self._t0 = time.monotonic()
        self._feed_ms: list[float] = []
        self._capture_ms: list[float] = []
        self._result: PatientResult | None = None
        self._dicom_results = dicom_results  # close() writes SR and SC objects (dicom_results.py)
        self._study: Any = None  # the source's StudyIdentity (DICOM input), from the first frame that has one
        self._key_sources: list[Any] = []  # the SourceInstance of each key frame (None: not DICOM)
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
        fsync_dir(self.dir)
        log.info("session %s: started (%s %s) in %s", self.session_id, self.identity.get("backend"),
                 self.identity.get("precision"), self.dir)

    # -- feeding
    def feed(self, frame: Frame | np.ndarray, captured_at: float | None = None) -> FrameResult:
        """Score one frame (unless it repeats the last one); a key frame is journalled before this
        returns. A bare image (uint8 grey or BGR) is a still: frame number and time are filled in.
        ``captured_at``: the ``time.monotonic()`` at which the frame left its source (a capture
        thread's ``FrameStream.captured_at``), for the capture-to-result latency."""
        if self._result is not None:
            raise UsageError(f"session {self.session_id} is closed; start a new ExamSession")
        if not isinstance(frame, Frame):
            frame = Frame(np.asarray(frame), self.frames_seen, time.monotonic() - self._t0, still=True,
                          origin=f"image {self.frames_seen}")
        t0 = time.perf_counter()
        self.frames_seen += 1
        if self._study is None and getattr(frame, "dicom", None) is not None:
            self._study = frame.dicom.study
        image = frame.image
        roi, detected = self._tracker.locate(image, frame.roi, still=frame.still)
        prepared = self._prepare(image, roi, frame.colour_sample)
        roi = prepared.roi
        thumb = self._keys.thumbnail(prepared.tensor)
        duplicate, motion = self._keys.observe(thumb)
        key_index = None
        if duplicate and self._last is not None:
            self.duplicates += 1
            probability, abnormal, usable, blank, colour, out_of_scope, distance, cam = self._last
        else:
            blank, colour = prepared.blank, prepared.colour
            probability = abnormal = cam = distance = None
            out_of_scope = False
            # Colour frames never vote, but the scope guard judges them too: a Doppler exam of
            # another organ must end with the scope reason, not with "too few key frames".
            if not blank and (not colour or self._guarded):
                score = self.scorer.score_prepared([prepared])[0]
                self.frames_scored += 1
                distance = score.scope_distance
                if distance is not None:
                    self.scope_judged += 1
                    self.scope_refused += score.out_of_scope
                out_of_scope = score.out_of_scope and not colour
                if not (colour or out_of_scope):
                    probability, abnormal, cam = score.probability, score.abnormal, score.cam
            usable = not (blank or colour or out_of_scope)
            if not usable:
                reason = "blank" if blank else "colour" if colour else "scope"
                self.blank_frames += reason == "blank"
                self.colour_frames += reason == "colour"
                self.out_of_scope_frames += reason == "scope"
                self.excluded.observe(frame, reason)
            self._last = (probability, abnormal, usable, blank, colour, out_of_scope, distance, cam)
            self._usable_scored += usable
            if usable and self._keys.is_key(thumb, usable, contrast(image, roi), frame.still, motion):
                assert probability is not None and cam is not None
                key_index = self._add_key(frame, roi, probability, bool(abnormal), cam, captured_at)
        self._feed_ms.append((time.perf_counter() - t0) * 1e3)
        capture_ms = None if captured_at is None else (time.monotonic() - captured_at) * 1e3
        if capture_ms is not None:
            self._capture_ms.append(capture_ms)
        return FrameResult(
            index=frame.index, timestamp_s=frame.timestamp_s, probability=probability, abnormal=abnormal,
            usable=bool(usable), blank=bool(blank), colour=bool(colour), duplicate=duplicate,
            key_frame=key_index is not None, key_index=key_index, key_frames=len(self.key_frames),
            abnormal_key_frames=self._abnormal, roi=roi, roi_detected=detected,
            latency_ms=self._feed_ms[-1], cam=cam, capture_to_result_ms=capture_ms,
            out_of_scope=bool(out_of_scope), scope_distance=distance,
        )

    def _add_key(self, frame: Frame, roi: Roi, probability: float, abnormal: bool, cam: np.ndarray,
                 captured_at: float | None) -> int:
        k = len(self.key_frames)
        since = None if captured_at is None else (time.monotonic() - captured_at) * 1e3
        record = KeyFrame(k, frame.index, frame.timestamp_s, probability, abnormal, roi, frame.origin, since, frame.still)
        self._append(record.to_dict())  # durable before anyone sees it
        self.key_frames.append(record)
        self._key_sources.append(getattr(frame, "dicom", None))
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
        self._journal.write(json.dumps(to_json(record), separators=(",", ":"), allow_nan=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    # -- results
    def result(self) -> PatientResult:
        """The patient result so far (the final one, with report paths, once closed)."""
        if self._result is not None:
            return self._result
        return self._build(ended_by="in progress", complete=True, ended_at=None)

    def _build(self, ended_by: str, complete: bool, ended_at: str | None, report: Path | None = None,
               summary: Path | None = None, overlays: tuple[Path, ...] = (),
               dicom: tuple[Path, ...] = (), pdf: Path | None = None) -> PatientResult:
        d = decide(self._probabilities, self.decision)
        scope = self.bundle.manifest.scope
        refusal = scope and scope_refusal(self.scope_refused, self.scope_judged, scope.max_out_of_scope_fraction)
        if refusal:
            d = dataclasses.replace(d, diagnosis=INDETERMINATE, reason=refusal)
        elif d.diagnosis != INDETERMINATE:
            keys = self.key_frames
            gap = missing_coverage([k.timestamp_s for k in keys], [k.still for k in keys], [k.origin for k in keys],
                                   self.decision)
            if gap is not None:
                d = dataclasses.replace(d, diagnosis=INDETERMINATE,
                                        reason=f"{gap} (abnormal fraction so far {d.abnormal_fraction:.3f})")
        return PatientResult(
            session_id=self.session_id, patient_id=self.patient, diagnosis=d.diagnosis, reason=d.reason,
            abnormal_fraction=d.abnormal_fraction, abnormal_key_frames=d.abnormal_frames, key_frames=d.key_frames,
            min_key_frames=self.decision.min_key_frames, threshold=d.threshold, image_cutoff=self.decision.image_cutoff,
            threshold_source=self.decision.source, frames_seen=self.frames_seen, frames_scored=self.frames_scored,
            duplicates=self.duplicates, blank_frames=self.blank_frames, colour_frames=self.colour_frames,
            dropped=self.dropped, ended_by=ended_by, complete=complete, started_at=self.started_at, ended_at=ended_at,
            session_dir=self.dir, journal=self.journal_path, report=report, summary=summary, overlays=overlays,
            bundle=self.identity, key_frame_list=tuple(self.key_frames), timing=self.timing(), dicom=dicom, pdf=pdf,
            skipped_files=self.skipped_files, out_of_scope_frames=self.out_of_scope_frames,
            scope_judged=self.scope_judged, scope_refused=self.scope_refused,
            not_key_frames=self._usable_scored - len(self.key_frames),
        )

    def timing(self) -> dict[str, Any]:
        """Latency as this exam ran it: ``feed`` (region → inference → vote → journal) and, for
        captured frames, capture → result (queueing behind the model included), p50/p99 in ms,
        and frames fed per second of the exam."""
        def stats(samples: list[float]) -> dict[str, float] | None:
            if not samples:
                return None
            p50, p99 = np.percentile(samples, [50, 99])
            return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}

        elapsed = time.monotonic() - self._t0
        return {"frames": len(self._feed_ms), "feed_ms": stats(self._feed_ms),
                "capture_to_result_ms": stats(self._capture_ms),
                "frames_per_s": round(len(self._feed_ms) / elapsed, 2) if elapsed > 0 and self._feed_ms else None}

    def close(self, ended_by: str = "end of input", complete: bool = True) -> PatientResult:
        """Write overlays, summary and report (atomically) and end the journal; idempotent."""
        if self._result is not None:
            return self._result
        ended_at = _now()
        ranked = sorted(self._top, key=lambda t: (-t[0], -t[1]))
        keys = self.key_frames
        tiles = [Tile(-neg_k, p, crop, cam, keys[-neg_k].origin, keys[-neg_k].timestamp_s, keys[-neg_k].still,
                      keys[-neg_k].abnormal) for p, neg_k, crop, cam in ranked]
        draft = self._build(ended_by, complete, ended_at)
        pictures = write_exam_pictures(self.dir, draft, tiles, scale=self.cam_scale, excluded=self.excluded,
                                       identity=ExamIdentity.of(self.patient, self._study, self.source),
                                       views=self.decision.views, summary_name=SUMMARY_NAME)
        overlays, summary, pdf = list(pictures.overlays), pictures.summary, pictures.pdf
        report = self.dir / REPORT_NAME
        dicom = self._write_dicom(self._build(ended_by, complete, ended_at, None, summary, tuple(overlays), pdf=pdf),
                                  [(path, -neg_k, p) for path, (p, neg_k, _, _) in zip(overlays, ranked, strict=False)])
        result = self._build(ended_by, complete, ended_at, report, summary, tuple(overlays), dicom, pdf)
        atomic_write_json(report, result.to_dict())
        self._append({"type": "end", "ended_at": ended_at, "ended_by": ended_by, "diagnosis": result.diagnosis,
                      "key_frames": result.key_frames, "abnormal_fraction": result.abnormal_fraction,
                      "excluded": {"blank": result.blank_frames, "colour": result.colour_frames,
                                   "out_of_scope": result.out_of_scope_frames, "duplicate": result.duplicates},
                      "report": REPORT_NAME})
        self._journal.close()
        fsync_dir(self.dir)
        self._result = result
        fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.3f}"
        log.info("session %s: %s (abnormal fraction %s over %d key frames; %d frames seen, %d scored, %d dropped); "
                 "ended by %s; report %s", self.session_id, result.diagnosis, fraction, result.key_frames,
                 result.frames_seen, result.frames_scored, result.dropped, ended_by, report)
        return result

    def _write_dicom(self, draft: PatientResult, overlays: list[tuple[Path, int, float]]) -> tuple[Path, ...]:
        """The SR and SC objects (docs/design.md §12); a failure is logged and leaves the report intact."""
        if not self._dicom_results:
            return ()
        try:
            from .dicom_results import KeyImage, write_dicom_results

            sources = self._key_sources
            images = [KeyImage(path, k, p, sources[k] if k < len(sources) else None) for path, k, p in overlays]
            return write_dicom_results(draft, study=self._study, key_sources=sources, overlays=images).paths
        except Exception as exc:  # the JSON report and PNGs still get written
            log.warning("session %s: DICOM results not written (%s)", self.session_id, type(exc).__name__)
            log.debug("session %s: DICOM results failed", self.session_id, exc_info=True)
            return ()

    def __enter__(self) -> ExamSession:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.close(ended_by=f"error: {type(exc).__name__}", complete=False)

