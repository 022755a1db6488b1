"""The forward queue: result objects on their way to a PACS, kept on disk until it has them.

One job per DICOM object, a small JSON file in ``<queue>/pending/`` written atomically before
``enqueue`` returns; the object itself stays where the exam wrote it. ``deliver_due`` sends every
job that is due over one association (``scu.send_files``). A stored object's job moves to
``sent/`` (the record is written before the pending job is removed, so a crash in between cannot
send it twice: a pending job with a sent record is dropped on the next pass). A PACS that cannot be
reached leaves every job pending, retried after ``retry_s``, doubling up to ``12 × retry_s``;
nothing is lost and a restart resumes (pending jobs are due at once after a restart). An object the
PACS refuses with a failure status is tried ``max_refusals`` times, then moved to ``failed/``
with the status, for a person to look at. A job whose file has gone also moves to ``failed/``.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write_json, fsync_dir

from .peer import DEFAULT_AE_TITLE, Peer, PeerUnavailableError
from .scu import SendOutcome, send_files

__all__ = ["DeliveryReport", "ForwardQueue"]

log = logging.getLogger(__name__)

BACKOFF_CAP = 12  # the longest wait is this many first waits


@dataclass(frozen=True)
class DeliveryReport:
    """One pass of ``deliver_due``."""

    attempted: int
    delivered: int
    refused: int
    unreachable: bool
    error: str | None = None


class ForwardQueue:
    """Durable queue of DICOM objects for one peer (``pending/``, ``sent/``, ``failed/``)."""

    def __init__(self, root: str | Path, peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE,
                 tls: ssl.SSLContext | None = None, retry_s: float = 5.0, max_refusals: int = 5,
                 send: Callable[..., list[SendOutcome]] = send_files) -> None:
        self.root = Path(root).expanduser()
        self.peer = peer
        self.calling_aet = calling_aet
        self.tls = tls
        self.retry_s = float(retry_s)
        self.max_refusals = int(max_refusals)
        self._send = send
        self.pending_dir, self.sent_dir, self.failed_dir = (self.root / n for n in ("pending", "sent", "failed"))
        for d in (self.pending_dir, self.sent_dir, self.failed_dir):
            d.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._seq = 0

    # -- jobs
    def enqueue(self, paths: Sequence[Path]) -> list[Path]:
        """Queue each object for the peer (durably, before returning); the job files."""
        jobs = []
        now = time.time()
        with self._lock:
            for path in paths:
                self._seq += 1
                name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._seq:06d}-{secrets.token_hex(3)}.json"
                job = {"file": str(Path(path).resolve()), "peer": self.peer.spec, "attempts": 0, "refusals": 0,
                       "enqueued_at": now, "next_attempt_at": now, "last_error": None}
                jobs.append(atomic_write_json(self.pending_dir / name, job))
        self._wake.set()
        return jobs

    def _jobs(self, folder: Path) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for p in sorted(folder.glob("*.json")):
            try:
                out.append((p, json.loads(p.read_text(encoding="utf-8"))))
            except (OSError, ValueError):  # a torn file cannot exist (atomic writes); skip anything odd
                log.warning("forward queue: %s cannot be read; left in place", p.name)
        return out

    def counts(self) -> dict[str, int]:
        return {name: sum(1 for _ in d.glob("*.json"))
                for name, d in (("pending", self.pending_dir), ("sent", self.sent_dir), ("failed", self.failed_dir))}

    def resume(self) -> int:
        """After a restart: every pending job is due now. The number of pending jobs."""
        jobs = self._jobs(self.pending_dir)
        now = time.time()
        for path, job in jobs:
            if job.get("next_attempt_at", 0) > now:
                job["next_attempt_at"] = now
                atomic_write_json(path, job)
        return len(jobs)

    def _move(self, path: Path, job: dict[str, Any], folder: Path) -> None:
        atomic_write_json(folder / path.name, job)  # the record first …
        path.unlink(missing_ok=True)  # … then the pending job: a crash between sends nothing twice
        fsync_dir(self.pending_dir)

    def _wait_s(self, attempts: int) -> float:
        return min(self.retry_s * 2 ** max(0, attempts - 1), self.retry_s * BACKOFF_CAP)

    # -- delivery
    def deliver_due(self) -> DeliveryReport:
        """Send every due job once; move, reschedule or fail each by its outcome."""
        now = time.time()
        due: list[tuple[Path, dict[str, Any]]] = []
        for path, job in self._jobs(self.pending_dir):
            if (self.sent_dir / path.name).exists():  # stored before a crash: never twice
                path.unlink(missing_ok=True)
                continue
            if job.get("next_attempt_at", 0) > now:
                continue
            if not Path(job["file"]).is_file():
                job["last_error"] = "the file is gone"
                self._move(path, job, self.failed_dir)
                log.error("forward to %s: %s is gone; job moved to %s", self.peer, Path(job["file"]).name, self.failed_dir)
                continue
            due.append((path, job))
        if not due:
            return DeliveryReport(0, 0, 0, False)
        peer = self.peer  # jobs name the peer they were queued for; they go to the one configured now
        try:
            outcomes = self._send([Path(j["file"]) for _, j in due], peer, calling_aet=self.calling_aet, tls=self.tls)
        except PeerUnavailableError as exc:
            attempts = 0
            for path, job in due:
                job["attempts"] = attempts = int(job.get("attempts", 0)) + 1
                job["next_attempt_at"] = time.time() + self._wait_s(attempts)
                job["last_error"] = str(exc)
                atomic_write_json(path, job)
            log.warning("forward: %s; %d object(s) kept, next try in %.0f s", exc, len(self._jobs(self.pending_dir)),
                        self._wait_s(attempts))
            return DeliveryReport(len(due), 0, 0, True, str(exc))
        delivered = refused = 0
        for (path, job), outcome in zip(due, outcomes, strict=True):
            job["attempts"] = int(job.get("attempts", 0)) + 1
            if outcome.stored:
                job.update(sent_at=time.time(), status=f"0x{outcome.status or 0:04X}", sop_instance_uid=outcome.sop_instance_uid)
                self._move(path, job, self.sent_dir)
                delivered += 1
                continue
            refused += 1
            job["refusals"] = int(job.get("refusals", 0)) + 1
            job["last_error"] = outcome.error or "refused"
            job["status"] = None if outcome.status is None else f"0x{outcome.status:04X}"
            if job["refusals"] >= self.max_refusals:
                self._move(path, job, self.failed_dir)
                log.error("forward to %s: %s refused %d times (status %s); moved to %s", peer, Path(job["file"]).name,
                          job["refusals"], job["status"], self.failed_dir)
            else:
                job["next_attempt_at"] = time.time() + self._wait_s(job["attempts"])
                atomic_write_json(path, job)
        log.info("forward: %d object(s) delivered to %s%s", delivered, peer, f", {refused} refused" if refused else "")
        return DeliveryReport(len(due), delivered, refused, False)

    def next_due_in(self) -> float | None:
        """Seconds until the next pending job is due (0: now), None when nothing is pending."""
        times = [job.get("next_attempt_at", 0) for _, job in self._jobs(self.pending_dir)]
        return None if not times else max(0.0, min(times) - time.time())

    # -- the worker
    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set: at once when work arrives, else when a retry is due."""
        while not stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # the worker must not die: log and go on
                log.exception("forward: delivery pass failed")
            wait = self.next_due_in()
            wait = idle_s if wait is None else min(max(wait, 0.05), idle_s * 30)
            self._wake.wait(wait)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

