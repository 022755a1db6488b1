"""An exam session fed frame by frame: the Python API integrators embed (docs/design.md §7, §10).

    from gout_edge import ExamSession, Frame, Scorer, open_bundle

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

Each frame goes through the pipeline (``pipeline.stages.compose``) into a ``Tally``; the verdict
is ``Tally.decide`` — the one rule (``pipeline.verdict``) that ``evaluate`` and ``calibrate`` use
too. ``run_exam`` (``driver.py``) drives sessions from a frame source.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge._io import atomic_write_json, fsync_dir, to_json
from gout_edge.edge_runtime.imaging.preprocess import check_image
from gout_edge.edge_runtime.inference.cam_scale import cam_scale_for
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.results import (
    REPORT_FORMAT,
    FrameResult,
    KeyFrame,
    PatientResult,
    bundle_identity,
    skipped_list,
)
from gout_edge.edge_runtime.pipeline.stages import Exclusion, FrameOutcome, FrameScorer, Tally, compose
from gout_edge.edge_runtime.pipeline.stream import StreamSpec
from gout_edge.edge_runtime.present.pictures import write_exam_pictures
from gout_edge.edge_runtime.present.printable import paper_name
from gout_edge.edge_runtime.present.report import ExamIdentity, ExcludedFrames, Tile
from gout_edge.edge_runtime.sources._base import Frame
from gout_edge.errors import UsageError

__all__ = ["JOURNAL_NAME", "REPORT_NAME", "SUMMARY_NAME", "ExamSession", "FrameScorer", "new_session_id"]

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"

REPORT_NAME = "report.json"

SUMMARY_NAME = "summary.png"


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
    candidate). ``predecessors``: SR files of earlier scans of the same study, which this exam's SR
    supersedes (a study re-read after it changed). Not thread-safe: feed it from one thread.
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
        predecessors: Sequence[Path] = (),
        paper: str | None = None,
    ) -> None:
        m = bundle.manifest
        self.paper = paper_name(paper)  # report.pdf's size: a4 (default), letter; None: $GOUT_EDGE_PAPER
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
        self.pipeline = compose(m, scorer, stream)  # region → preparation → dedupe → scorer → gates → key frames
        self.tally = Tally()  # counts and key-frame votes: the verdict's input
        self._group: tuple[str, str | None] | None = None  # the (group, patient) of the first frame
        self._n_overlays = overlays
        self._top: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # min-heap (p, key, crop, cam)
        self.key_frames: list[KeyFrame] = []
        self.dropped = 0  # frames the driver's capture dropped (feed's and close's ``dropped``)
        self.skipped_files: tuple[Any, ...] = ()  # input files the driver left out, with why (close's argument)
        self.started_at = _now()
        self._t0 = time.monotonic()
        self._feed_ms: list[float] = []
        self._capture_ms: list[float] = []
        self._result: PatientResult | None = None
        self._dicom_results = dicom_results  # close() writes SR and SC objects (dicom_results.py)
        self._predecessors = tuple(predecessors)  # earlier SRs of the study, superseded by this one's
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
            "bundle": self.identity.to_dict(),
            "decision": {"image_cutoff": self.decision.image_cutoff, "patient_threshold": self.decision.patient_threshold,
                         "min_key_frames": self.decision.min_key_frames, "calibrated": self.decision.calibrated},
        })
        fsync_dir(self.dir)
        log.info("session %s: started (%s %s) in %s", self.session_id, self.identity.backend,
                 self.identity.precision, self.dir)

    # -- feeding
    def feed(self, frame: Frame | np.ndarray, captured_at: float | None = None, *, dropped: int | None = None) -> FrameResult:
        """Run one frame through the pipeline (``stages.compose``); a key frame is journalled before
        this returns. A bare image (uint8 grey or BGR) is a still: frame number and time are filled
        in. ``captured_at``: the ``time.monotonic()`` at which the frame left its source (a capture
        thread's ``FrameStream.captured_at``), for the capture-to-result latency. ``dropped``: frames
        the driver's capture has dropped so far in this exam (``FrameStream.dropped``). Frames of a
        second patient or study are refused (``UsageError``): one session is one patient."""
        if self._result is not None:
            raise UsageError(f"session {self.session_id} is closed; start a new ExamSession")
        if not isinstance(frame, Frame):
            frame = Frame(check_image(frame, f"the image fed to session {self.session_id}"), self.tally.frames_seen, time.monotonic() - self._t0, still=True,
                          origin=f"image {self.tally.frames_seen}")
        if not (math.isfinite(frame.timestamp_s) and frame.timestamp_s >= 0):  # a caller's time that cannot be one
            log.warning("session %s: frame %d has no usable time (%s); its time in the exam is used",
                        self.session_id, frame.index, "not finite" if not math.isfinite(frame.timestamp_s) else "negative")
            frame = dataclasses.replace(frame, timestamp_s=time.monotonic() - self._t0)
        self._check_patient(frame)
        t0 = time.perf_counter()
        if dropped is not None:
            self.dropped = dropped
        if self._study is None and frame.dicom is not None:
            self._study = frame.dicom.study
        outcome = self.pipeline(frame)
        self.tally.add(outcome)
        if outcome.exclusion is not None and not outcome.duplicate:
            self.excluded.observe(frame, outcome.exclusion.value)
        key_index = self._add_key(outcome, captured_at) if outcome.key else None
        self._feed_ms.append((time.perf_counter() - t0) * 1e3)
        capture_ms = None if captured_at is None else (time.monotonic() - captured_at) * 1e3
        if capture_ms is not None:
            self._capture_ms.append(capture_ms)
        o = outcome
        return FrameResult(
            index=frame.index, timestamp_s=frame.timestamp_s, probability=o.probability, abnormal=o.abnormal,
            usable=o.usable, blank=o.exclusion is Exclusion.BLANK, colour=o.exclusion is Exclusion.COLOUR,
            duplicate=o.duplicate, key_frame=key_index is not None, key_index=key_index,
            key_frames=self.tally.key_frames, abnormal_key_frames=self.tally.abnormal_key_frames, roi=o.roi,
            roi_detected=o.roi_detected, latency_ms=self._feed_ms[-1], cam=o.cam, capture_to_result_ms=capture_ms,
            out_of_scope=o.exclusion is Exclusion.SCOPE, scope_distance=o.scope_distance,
        )

    def _check_patient(self, frame: Frame) -> None:
        """One session is one patient: a frame of another patient or study group is refused (no
        identifier in the message: it may be shown or logged)."""
        key = (frame.group, frame.patient_id)
        if self._group is None:
            self._group = key
        elif key != self._group:
            raise UsageError(
                f"frame {frame.index} belongs to another patient or study than the frames before it in session "
                f"{self.session_id}; feed each patient's frames to an ExamSession of its own (run_exam does this)"
            )

    def _add_key(self, o: FrameOutcome, captured_at: float | None) -> int:
        frame = o.frame
        assert o.probability is not None and o.cam is not None
        k = len(self.key_frames)
        since = None if captured_at is None else (time.monotonic() - captured_at) * 1e3
        record = KeyFrame(k, frame.index, frame.timestamp_s, o.probability, bool(o.abnormal), o.roi, frame.origin,
                          since, frame.still, frame.view, frame.file, frame.frame_number)
        self._append(record.to_dict())  # durable before anyone sees it
        self.key_frames.append(record)
        self._key_sources.append(frame.dicom)
        if self._n_overlays > 0 and (len(self._top) < self._n_overlays or o.probability > self._top[0][0]):
            roi = o.roi
            crop = frame.image[roi.y0 : roi.y1, roi.x0 : roi.x1].copy()
            item = (o.probability, -k, crop, np.array(o.cam, copy=True))
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

    def _build(self, ended_by: str, complete: bool, ended_at: str | None) -> PatientResult:
        """The result without the paths of what ``close`` writes (the verdict: ``Tally.decide``)."""
        t, d = self.tally, self.tally.decide(self.bundle.manifest)
        return PatientResult(
            session_id=self.session_id, patient_id=self.patient, diagnosis=d.diagnosis, reason=d.reason,
            abnormal_fraction=d.abnormal_fraction, abnormal_key_frames=d.abnormal_frames, key_frames=d.key_frames,
            min_key_frames=self.decision.min_key_frames, threshold=d.threshold, image_cutoff=self.decision.image_cutoff,
            threshold_source=self.decision.source, frames_seen=t.frames_seen, frames_scored=t.frames_scored,
            duplicates=t.duplicates, blank_frames=t.blank_frames, colour_frames=t.colour_frames,
            dropped=self.dropped, ended_by=ended_by, complete=complete, started_at=self.started_at, ended_at=ended_at,
            session_dir=self.dir, journal=self.journal_path, report=None, summary=None, overlays=(),
            bundle=self.identity, key_frame_list=tuple(self.key_frames), timing=self.timing(),
            skipped_files=self.skipped_files, out_of_scope_frames=t.out_of_scope_frames,
            scope_judged=t.scope_judged, scope_refused=t.scope_refused, not_key_frames=t.not_key_frames,
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

    def close(self, ended_by: str = "end of input", complete: bool = True, *, dropped: int | None = None,
              skipped_files: tuple[Any, ...] | None = None) -> PatientResult:
        """Decide, then write overlays, summary, PDF, DICOM results and the report (each once,
        atomically) and end the journal; idempotent. ``dropped`` and ``skipped_files`` are the
        driver's facts: frames its capture dropped, input files it left out (with why)."""
        if self._result is not None:
            return self._result
        if dropped is not None:
            self.dropped = dropped
        if skipped_files is not None:
            self.skipped_files = tuple(skipped_files)
        ended_at = _now()
        ranked = sorted(self._top, key=lambda t: (-t[0], -t[1]))
        keys = self.key_frames
        tiles = [Tile(k.key_index, p, crop, cam, k.origin, k.timestamp_s, k.still, k.abnormal, k.view, k.file, k.frame_number)
                 for p, neg_k, crop, cam in ranked for k in (keys[-neg_k],)]
        result = self._build(ended_by, complete, ended_at)
        pictures = write_exam_pictures(self.dir, result, tiles, scale=self.cam_scale, excluded=self.excluded,
                                       identity=ExamIdentity.of(self.patient, self._study, self.source),
                                       summary_name=SUMMARY_NAME, paper=self.paper)
        result = dataclasses.replace(result, summary=pictures.summary, overlays=tuple(pictures.overlays), pdf=pictures.pdf)
        dicom = self._write_dicom(result, [(path, -neg_k, p) for path, (p, neg_k, _, _)
                                           in zip(pictures.overlays, ranked, strict=False)])
        result = dataclasses.replace(result, dicom=dicom, report=self.dir / REPORT_NAME)
        atomic_write_json(result.report, result.to_dict())
        self._append({"type": "end", "ended_at": ended_at, "ended_by": ended_by, "diagnosis": result.diagnosis,
                      "key_frames": result.key_frames, "abnormal_fraction": result.abnormal_fraction,
                      "excluded": {"blank": result.blank_frames, "colour": result.colour_frames,
                                   "out_of_scope": result.out_of_scope_frames, "duplicate": result.duplicates},
                      "skipped_files": skipped_list(result.skipped_files), "report": REPORT_NAME})
        self._journal.close()
        fsync_dir(self.dir)
        self._result = result
        fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.3f}"
        log.info("session %s: %s (abnormal fraction %s over %d key frames; %d frames seen, %d scored, %d dropped); "
                 "ended by %s; report %s", self.session_id, result.diagnosis, fraction, result.key_frames,
                 result.frames_seen, result.frames_scored, result.dropped, ended_by, result.report)
        return result

    def _write_dicom(self, draft: PatientResult, overlays: list[tuple[Path, int, float]]) -> tuple[Path, ...]:
        """The SR and SC objects (docs/design.md §12); a failure is logged and leaves the report intact."""
        if not self._dicom_results:
            return ()
        try:
            from gout_edge.edge_runtime.present.dicom_results import KeyImage, write_dicom_results

            sources = self._key_sources
            images = [KeyImage(path, k, p, sources[k] if k < len(sources) else None) for path, k, p in overlays]
            return write_dicom_results(draft, study=self._study, key_sources=sources, overlays=images,
                                       predecessors=self._predecessors).paths
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

