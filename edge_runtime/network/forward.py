"""The forward queue: result objects on their way to a PACS, kept on disk until it has them.

One job per DICOM object, a small JSON file in ``<queue>/pending/`` written atomically before
``enqueue`` returns; the object itself stays where the exam wrote it. A job's name is derived from
the object's path, so queueing the same object again (a restart that repeats a step) is a no-op.
``deliver_due`` sends every job that is due over one association (``scu.send_files``):

- **stored**: the job moves to ``sent/`` (the record is written before the pending job is
  removed, so a crash in between cannot send it twice: a pending job with a sent record is
  dropped on the next pass);
- **not reached** — no association, an association aborted or lost, no answer: *not* a refusal.
  The job stays pending and is retried after ``retry_s``, doubling up to ``max_wait_s``, each wait
  drawn between half and all of that (jitter, so carts that lost the same PACS do not return in
  step), for ``horizon_s`` (default 72 hours) from when it was queued; only then does it move to
  ``failed/``, with the last error;
- **refused** — a DICOM failure status from the PACS, or no presentation context accepted for the
  object: counted; after ``max_refusals`` refusals the job moves to ``failed/`` with the status;
- **damaged** — a job file that cannot be read, an object that is gone or is no DICOM file that
  can be sent: quarantined at once in ``failed/`` with the reason, and the jobs behind it flow.

A pass that fails in an unexpected way is logged and waited on like an unreachable PACS, never
retried in a tight loop. ``status`` says what the queue holds (``listen --status``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write_json, fsync_dir
from gout_edge.edge_runtime.imaging.text import clean_line
from gout_edge.errors import InputError

from .peer import DEFAULT_AE_TITLE, Peer, PeerUnavailableError
from .scu import SendOutcome, read_header, send_files

__all__ = ["BACKOFF_CAP", "DEFAULT_HORIZON_S", "DeliveryReport", "ForwardQueue"]

log = logging.getLogger(__name__)

BACKOFF_CAP = 12  # the longest wait is this many first waits, unless max_wait_s says otherwise
DEFAULT_HORIZON_S = 72 * 3600.0  # how long an object that cannot reach the PACS is kept trying
_RECENT_FAILED = 5


@dataclass(frozen=True)
class DeliveryReport:
    """One pass of ``deliver_due``."""

    attempted: int
    delivered: int
    refused: int
    unreachable: bool
    error: str | None = None
    quarantined: int = 0
    retried: int = 0  # jobs kept for a later try (not reached, or a lost association)


def _job_name(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:24] + ".json"


class ForwardQueue:
    """Durable queue of DICOM objects for one peer (``pending/``, ``sent/``, ``failed/``)."""

    def __init__(self, root: str | Path, peer: Peer, *, calling_aet: str = DEFAULT_AE_TITLE,
                 tls: ssl.SSLContext | None = None, retry_s: float = 5.0, max_refusals: int = 5,
                 max_wait_s: float | None = None, horizon_s: float = DEFAULT_HORIZON_S,
                 send: Callable[..., list[SendOutcome]] = send_files, timeout_s: float = 30.0,
                 seed: int | None = None) -> None:
        self.root = Path(root).expanduser()
        self.peer = peer
        self.calling_aet = calling_aet
        self.tls = tls
        self.retry_s = float(retry_s)
        self.max_wait_s = float(max_wait_s) if max_wait_s is not None else self.retry_s * BACKOFF_CAP
        self.horizon_s = float(horizon_s)
        self.max_refusals = int(max_refusals)
        self.timeout_s = float(timeout_s)
        self._send = send
        self._random = random.Random(seed)
        self.pending_dir, self.sent_dir, self.failed_dir = (self.root / n for n in ("pending", "sent", "failed"))
        for d in (self.pending_dir, self.sent_dir, self.failed_dir):
            d.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)
        self._lock = threading.Lock()  # enqueueing
        self._passing = threading.Lock()  # one delivery pass at a time
        self._wake = threading.Event()
        self._last_error: str | None = None
        self._last_logged: tuple[str | None, float] = (None, 0.0)
        self._last_delivery: float | None = None
        self._recent_failed: list[dict[str, Any]] = []

    # -- jobs
    def enqueue(self, paths: Sequence[Path]) -> list[Path]:
        """Queue each object for the peer (durably, before returning); the job files. An object
        already queued, sent or failed is not queued again."""
        jobs = []
        now = time.time()
        with self._lock:
            for path in paths:
                resolved = Path(path).resolve()
                name = _job_name(resolved)
                job_path = self.pending_dir / name
                if job_path.exists() or (self.sent_dir / name).exists() or (self.failed_dir / name).exists():
                    jobs.append(job_path)
                    continue
                job = {"file": str(resolved), "peer": self.peer.spec, "attempts": 0, "refusals": 0,
                       "enqueued_at": now, "next_attempt_at": now, "last_error": None}
                jobs.append(atomic_write_json(job_path, job))
        self._wake.set()
        return jobs

    def _jobs(self, folder: Path) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for p in folder.glob("*.json"):
            try:
                job = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(job, dict) or not isinstance(job.get("file"), str):
                    raise ValueError("not a job")
                out.append((p, job))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                if folder == self.pending_dir:
                    self._quarantine_damaged(p, exc)
        out.sort(key=lambda pj: (float(pj[1].get("enqueued_at", 0) or 0), pj[0].name))
        return out

    def _quarantine_damaged(self, path: Path, exc: BaseException) -> None:
        """A job file that cannot be read: moved aside with the reason; the others flow."""
        reason = f"the job file cannot be read ({type(exc).__name__})"
        try:
            path.replace(self.failed_dir / (path.name + ".damaged"))
        except OSError:
            path.unlink(missing_ok=True)
        atomic_write_json(self.failed_dir / path.name, {"file": None, "last_error": reason, "quarantined": True,
                                                        "failed_at": time.time()})
        fsync_dir(self.pending_dir)
        self._note_failed(path.name, reason)
        log.error("forward to %s: job %s quarantined in %s: %s", self.peer, path.name, self.failed_dir, reason)

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

    def _fail(self, path: Path, job: dict[str, Any], reason: str) -> None:
        job["last_error"] = reason
        job["failed_at"] = time.time()
        self._move(path, job, self.failed_dir)
        self._note_failed(Path(job.get("file") or path.name).name, reason)
        log.error("forward to %s: %s moved to %s: %s", self.peer, Path(job.get("file") or "").name, self.failed_dir,
                  reason)

    def _note_failed(self, name: str, reason: str) -> None:
        self._recent_failed = [*self._recent_failed, {"file": clean_line(name, 120), "reason": reason}][-_RECENT_FAILED:]

    def _wait_s(self, attempts: int) -> float:
        base = min(self.retry_s * 2 ** max(0, min(attempts, 60) - 1), self.max_wait_s)
        return base * self._random.uniform(0.5, 1.0)

    def _retry(self, path: Path, job: dict[str, Any], error: str, now: float) -> bool:
        """Keep a job that did not reach the PACS for a later try; False when its horizon is over
        (it moved to ``failed/``)."""
        job["attempts"] = attempts = int(job.get("attempts", 0)) + 1
        job["last_error"] = error
        if now - float(job.get("enqueued_at", now) or now) >= self.horizon_s:
            self._fail(path, job, f"not delivered within {self.horizon_s / 3600:g} h of being queued "
                                  f"({attempts} attempts; last: {error})")
            return False
        job["next_attempt_at"] = now + self._wait_s(attempts)
        atomic_write_json(path, job)
        return True

    @staticmethod
    def _unsendable(file: Path) -> str | None:
        """Why an object cannot be sent at all (gone, or no DICOM file), or None."""
        if not file.is_file():
            return "the file is gone"
        try:
            read_header(file)
        except InputError as exc:
            return clean_line(str(exc), 300)
        return None

    # -- delivery
    def deliver_due(self) -> DeliveryReport:
        """Send every due job once; move, reschedule, refuse or quarantine each by its outcome."""
        with self._passing:
            return self._deliver_due()

    def _deliver_due(self) -> DeliveryReport:
        now = time.time()
        due: list[tuple[Path, dict[str, Any]]] = []
        quarantined = 0
        for path, job in self._jobs(self.pending_dir):
            if (self.sent_dir / path.name).exists():  # stored before a crash: never twice
                path.unlink(missing_ok=True)
                continue
            if job.get("next_attempt_at", 0) > now:
                continue
            why = self._unsendable(Path(job["file"]))
            if why is not None:
                self._fail(path, job, why)
                quarantined += 1
                continue
            due.append((path, job))
        if not due:
            return DeliveryReport(0, 0, 0, False, quarantined=quarantined)
        peer = self.peer  # jobs name the peer they were queued for; they go to the one configured now
        try:
            outcomes = self._send([Path(j["file"]) for _, j in due], peer, calling_aet=self.calling_aet, tls=self.tls,
                                  timeout_s=self.timeout_s)
        except PeerUnavailableError as exc:
            return self._not_reached(due, str(exc), quarantined)
        except Exception as exc:  # a pass that fails in an unexpected way waits like an unreachable PACS
            log.debug("forward: delivery pass failed", exc_info=True)
            return self._not_reached(due, f"delivery failed ({type(exc).__name__}: {clean_line(exc, 200)})",
                                     quarantined)
        delivered = refused = retried = 0
        now = time.time()
        for (path, job), outcome in zip(due, outcomes, strict=True):
            if outcome.stored:
                job["attempts"] = int(job.get("attempts", 0)) + 1
                job.update(sent_at=now, status=f"0x{outcome.status or 0:04X}", sop_instance_uid=outcome.sop_instance_uid)
                self._move(path, job, self.sent_dir)
                delivered += 1
                continue
            if outcome.transient:  # the association was lost, or no answer came: not a refusal
                retried += self._retry(path, job, outcome.error or "no answer", now)
                continue
            refused += 1
            job["attempts"] = int(job.get("attempts", 0)) + 1
            job["refusals"] = int(job.get("refusals", 0)) + 1
            job["status"] = None if outcome.status is None else f"0x{outcome.status:04X}"
            error = outcome.error or "refused"
            if job["refusals"] >= self.max_refusals:
                self._fail(path, job, f"refused {job['refusals']} times (status {job['status']}: {error})")
            else:
                job["last_error"] = error
                job["next_attempt_at"] = now + self._wait_s(job["attempts"])
                atomic_write_json(path, job)
        if delivered:
            self._last_delivery = now
            self._last_error = None
            self._last_logged = (None, 0.0)  # the next outage is logged at once
        if retried:
            self._last_error = next((o.error for o in outcomes if o.transient), None)
        log.info("forward: %d object(s) delivered to %s%s%s", delivered, peer, f", {refused} refused" if refused else "",
                 f", {retried} kept for another try (association lost)" if retried else "")
        return DeliveryReport(len(due), delivered, refused, False, quarantined=quarantined, retried=retried)

    def _not_reached(self, due: list[tuple[Path, dict[str, Any]]], error: str, quarantined: int) -> DeliveryReport:
        now = time.time()
        kept = sum(self._retry(path, job, error, now) for path, job in due)
        self._last_error = error
        waits = [float(j.get("next_attempt_at", now)) - now for _, j in due]
        last, at = self._last_logged
        if error != last or now - at > 60:  # an outage's first failure, then a line a minute, not one per try
            log.warning("forward: %s; %d object(s) kept, next try in %.0f s", error, kept, min(waits, default=0.0))
            self._last_logged = (error, now)
        return DeliveryReport(len(due), 0, 0, True, error, quarantined=quarantined, retried=kept)

    def next_due_in(self) -> float | None:
        """Seconds until the next pending job is due (0: now), None when nothing is pending."""
        times = [job.get("next_attempt_at", 0) for _, job in self._jobs(self.pending_dir)]
        return None if not times else max(0.0, min(times) - time.time())

    def status(self) -> dict[str, Any]:
        """What the queue holds, for ``listen --status`` and the status file: counts, the oldest
        pending object's age, when the next try is due, the last error, the last delivery and the
        latest failures with their reasons (file base names only)."""
        now = time.time()
        pending = self._jobs(self.pending_dir)
        oldest = min((float(j.get("enqueued_at", now) or now) for _, j in pending), default=None)
        due = min((float(j.get("next_attempt_at", now) or now) for _, j in pending), default=None)
        return {"peer": str(self.peer), **self.counts(),
                "oldest_pending_s": None if oldest is None else round(now - oldest, 1),
                "next_attempt_in_s": None if due is None else round(max(0.0, due - now), 1),
                "last_error": self._last_error,
                "last_delivery_at": None if self._last_delivery is None
                else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._last_delivery)),
                "recent_failures": list(self._recent_failed),
                "retry_s": self.retry_s, "max_wait_s": self.max_wait_s, "horizon_h": round(self.horizon_s / 3600, 3)}

    # -- the worker
    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set: at once when work arrives, else when a retry is due."""
        while not stop.is_set():
            failed = False
            try:
                self.deliver_due()
            except Exception as exc:  # the worker must not die, nor spin: log, then wait a retry interval
                failed = True
                log.error("forward: delivery pass failed (%s); next try in %.0f s", type(exc).__name__, self.retry_s)
                log.debug("forward: delivery pass failed", exc_info=True)
            try:
                wait = self.next_due_in()
            except Exception:
                wait, failed = None, True
            wait = idle_s if wait is None else min(max(wait, 0.05), max(idle_s, self.max_wait_s))
            if failed:
                wait = max(wait, self.retry_s)
            self._wake.wait(wait)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()
