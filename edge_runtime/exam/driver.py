"""``run_exam``: sessions driven from a frame source — one session per patient/study group — with
the capture thread (``FrameStream``), a stop request (SIGINT/SIGTERM, the live view's keys, a
caller), frame and time limits. Whatever ends the exam, each session's report is written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.pipeline.results import ExamResult, FrameResult, PatientResult, bundle_identity
from gout_edge.edge_runtime.pipeline.stages import FrameScorer
from gout_edge.edge_runtime.pipeline.stream import FrameStream, StreamSpec
from gout_edge.edge_runtime.present.printable import paper_name
from gout_edge.edge_runtime.sources._base import Frame, FrameSource
from gout_edge.errors import GoutEdgeError

from .session import ExamSession, new_session_id

__all__ = ["Stop", "run_exam", "stop_on_signals"]


class Stop(threading.Event):
    """A stop request with its reason (a signal handler, the live view's q key, a caller) and
    whether the exam counts as complete (False: a budget cut it short, the input was not all read)."""

    reason: str = "stopped"
    complete: bool = True

    def request(self, reason: str, complete: bool = True) -> None:
        if not self.is_set():
            self.reason = reason
            self.complete = complete
        self.set()


@contextlib.contextmanager
def stop_on_signals(stop: Stop) -> Iterator[Stop]:
    """While inside: SIGINT and SIGTERM request ``stop`` (the exam ends and its report is written);
    a second Ctrl-C aborts at once. The previous handlers are restored on exit. Outside the main
    thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame: Any) -> None:
        stop.request(f"stopped by {signal.Signals(signum).name}")
        if signum == signal.SIGINT:  # a second Ctrl-C aborts at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    handle_signals: bool = False,
    latest_wins: bool | None = None,
    on_frame: Callable[[Frame, FrameResult, ExamSession], bool | None] | None = None,
    before_close: Callable[[], None] | None = None,
    stream: StreamSpec = StreamSpec(),
    overlays: int = 6,
    session_id: str | None = None,
    predecessors: Sequence[Path] = (),
    paper: str | None = None,
) -> ExamResult:
    """Feed ``source`` through sessions under ``out_dir`` (one folder per patient/study group).

    Ends at the end of the source, after ``max_frames`` frames or ``duration_s`` seconds, when
    ``stop`` is set (with ``handle_signals``: on SIGINT or SIGTERM too), when ``on_frame`` returns
    False, or when a live device is lost (after its reconnect attempts); ``before_close`` runs before
    each session closes (the live view ends its progress line). Reports are written
    whatever ends the exam, errors included. ``session_id``: the first session's ID (later ones add
    ``-2``, ``-3``…; default a new one), so that a caller can find, or remove, what an exam cut
    short by a crash left. ``predecessors``: earlier SRs of the study (``ExamSession``). ``paper``: the size of each
    session's ``report.pdf`` (``a4``, ``letter``; None: ``$GOUT_EDGE_PAPER`` or A4).
    """
    out_dir = Path(out_dir)
    paper = paper_name(paper)  # a wrong size is refused before the first frame, not when a report is written
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
    base_id = session_id or new_session_id()

    def open_session(frame_patient: str | None) -> ExamSession:
        sid = base_id if not results else f"{base_id}-{len(results) + 1}"
        return ExamSession(bundle, scorer, out_dir / sid, frame_patient or patient, stream=stream,
                           overlays=overlays, session_id=sid, source=source.kind, predecessors=predecessors,
                           paper=paper)

    def finish(s: ExamSession, reason: str, ok: bool) -> None:
        if before_close is not None:  # e.g. the live view ends its progress line before the verdict is logged
            before_close()
        results.append(s.close(ended_by=reason, complete=ok, dropped=feed.dropped - dropped_at_start,
                               skipped_files=tuple(source.skipped)))  # files left out so far

    with stop_on_signals(stop) if handle_signals else contextlib.nullcontext(stop):
        try:
            for frame in feed:
                if session is None or frame.group != group:
                    if session is not None:
                        finish(session, "end of this patient's frames", True)
                        dropped_at_start = feed.dropped
                    session, group = open_session(frame.patient_id), frame.group
                result = session.feed(frame, feed.captured_at, dropped=feed.dropped - dropped_at_start)
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
                ended_by, complete = stop.reason, stop.complete
            elif source.lost:
                ended_by = source.end_reason or "capture lost"
                complete = False
            elif not source.complete:  # a file that ended before its promised end
                ended_by = source.end_reason or "the input was cut short"
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
        ended_by=ended_by, capture_lost=source.lost,
        source=source.kind, live=feed.latest_wins, bundle=identity,
        skipped_files=tuple(source.skipped),
    )

