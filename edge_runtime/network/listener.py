"""The DICOM node behind ``gout-edge listen``: C-STORE and C-ECHO in, results out (pynetdicom).

    spool = Spool("spool/")
    node = Listener(ListenConfig(port=11112, allowed=("SCANNER",), forward=parse_peer("pacs:104:PACS")),
                    spool, scan=exam_scanner(bundle, scorer, "scans/"), queue=ForwardQueue(...))
    node.start(); node.wait(stop); node.stop()

- **Receive.** Associations from calling AE titles outside ``allowed`` are rejected (when the list
  is empty, every caller is accepted). Every storage SOP class is accepted in any transfer syntax;
  each instance is written into the spool and fsynced *before* the success status goes back
  (``Spool.store``); a full disk answers "out of resources" (0xA700) instead of losing it.
- **Complete.** A study counts as complete when no instance of it has arrived for ``quiet_s``
  seconds; the watcher thread then scans it (``scan``: the study folder → the exam's patient
  results) and records how many instances it saw. Instances arriving later make the study due
  again, and it is scanned again as a whole.
- **Forward.** The DICOM results of each scan go into the ``ForwardQueue``, whose worker thread
  delivers them (retrying while the PACS is down; a restart resumes).

Logs name studies by their pseudonym (``study_key``), sessions by ID and peers by AE title and
address; never a patient attribute (docs/design.md §8). pynetdicom's own chatter is kept to
warnings.
"""

from __future__ import annotations

import io
import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.pipeline.results import PatientResult
from gout_edge.errors import GoutEdgeError, UsageError

from .forward import ForwardQueue
from .peer import DEFAULT_AE_TITLE
from .spool import Spool, StudyState, disk_free_bytes

__all__ = ["ListenConfig", "Listener", "exam_scanner"]

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 64 << 20  # keep this much disk free; refuse an instance rather than fill the disk

ScanFn = Callable[[Path], Sequence[PatientResult]]


@dataclass(frozen=True)
class ListenConfig:
    """How the node listens and when a study is complete."""

    ae_title: str = DEFAULT_AE_TITLE
    host: str = "0.0.0.0"
    port: int = 11112
    allowed: tuple[str, ...] = ()
    quiet_s: float = 10.0
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    poll_s: float = 0.2


def exam_scanner(bundle: Any, scorer: Any, out_dir: str | Path) -> ScanFn:
    """A study folder → ``run_exam`` over its DICOM files → one result per patient/study group."""
    from gout_edge.edge_runtime.exam.driver import run_exam
    from gout_edge.edge_runtime.sources.dicom import DicomSource

    def scan(folder: Path) -> Sequence[PatientResult]:
        source = DicomSource(folder)
        try:
            return run_exam(source, bundle, scorer, out_dir).patients
        finally:
            source.close()

    return scan


class Listener:
    """A storage SCP with a spool, a quiet-period watcher that scans complete studies, and an
    optional forward queue."""

    def __init__(self, config: ListenConfig, spool: Spool, scan: ScanFn | None = None,
                 queue: ForwardQueue | None = None) -> None:
        self.config = config
        self.spool = spool
        self.scan = scan
        self.queue = queue
        self.received = 0
        self.scanned_studies = 0
        self.scans: list[dict[str, Any]] = []  # one record per study scan, for ``summary``
        self._server: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- the SCP
    def _ae(self) -> Any:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        from .scu import _quiet_pynetdicom

        _quiet_pynetdicom()
        ae = AE(ae_title=self.config.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        if self.config.allowed:
            ae.require_calling_aet = list(self.config.allowed)
        ae.maximum_associations = 16
        return ae

    def start(self) -> None:
        """Bind the port and start the server, the watcher and the forward worker."""
        from pynetdicom import evt

        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_REJECTED, self._on_rejected), (evt.EVT_ACCEPTED, self._on_accepted)]
        ae = self._ae()
        try:
            self._server = ae.start_server((self.config.host, self.config.port), block=False,
                                           ssl_context=self.config.tls, evt_handlers=handlers)
        except OSError as exc:
            raise UsageError(f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc}); "
                             "choose another --port, or stop the program that holds it") from None
        self._threads = [threading.Thread(target=self._watch, name="gout-edge-study-watcher", daemon=True)]
        if self.queue is not None:
            pending = self.queue.resume()
            if pending:
                log.info("forward: %d object(s) pending from before; delivering to %s", pending, self.queue.peer)
            self._threads.append(threading.Thread(target=self.queue.run, args=(self._stop,),
                                                  name="gout-edge-forward", daemon=True))
        for t in self._threads:
            t.start()
        waiting = self.spool.pending()
        allowed = ", ".join(self.config.allowed) if self.config.allowed else "any (no --allow list)"
        log.info("listening as %s on %s:%d (TLS %s); calling AE titles: %s; a study is complete after %g s "
                 "without new instances%s", self.config.ae_title, self.config.host, self.port,
                 "on" if self.config.tls is not None else "off", allowed, self.config.quiet_s,
                 f"; {len(waiting)} study(ies) in the spool still to scan" if waiting else "")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else self.config.port

    def _on_accepted(self, event: Any) -> None:
        r = event.assoc.requestor
        log.debug("association from %s (%s) accepted", r.ae_title, r.address)

    def _on_rejected(self, event: Any) -> None:
        r = event.assoc.requestor
        log.warning("association from %s (%s) rejected: calling AE title not on the --allow list", r.ae_title, r.address)

    def _on_echo(self, event: Any) -> int:
        log.info("C-ECHO from %s", event.assoc.requestor.ae_title)
        return 0x0000

    def _on_store(self, event: Any) -> int:
        import pydicom

        calling = event.assoc.requestor.ae_title
        try:
            raw = event.encoded_dataset(include_meta=True)
            header = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True,
                                     specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
        except Exception as exc:
            log.warning("C-STORE from %s: the data set cannot be read (%s); refused", calling, type(exc).__name__)
            return 0xC210  # cannot understand
        study_uid = str(header.get("StudyInstanceUID", "") or "").strip()
        sop_uid = str(header.get("SOPInstanceUID", "") or event.request.AffectedSOPInstanceUID or "").strip()
        if not study_uid or not sop_uid:
            log.warning("C-STORE from %s: no Study or SOP Instance UID; refused", calling)
            return 0xA900  # data set does not match the SOP class
        try:
            if disk_free_bytes(self.spool.root) < len(raw) + MIN_FREE_BYTES:
                log.error("C-STORE from %s refused: the spool's disk is nearly full", calling)
                return 0xA700  # out of resources
            key, _, new = self.spool.store(raw, study_uid, sop_uid)
        except OSError as exc:
            log.error("C-STORE from %s: the spool cannot be written (%s); refused", calling, exc.strerror or exc)
            return 0xA700
        with self._lock:
            self.received += 1
        if new:
            log.info("study %s: receiving from %s", key, calling)
        return 0x0000  # only now: the instance is on disk and fsynced

    # -- completion and scanning
    def _watch(self) -> None:
        while not self._stop.is_set():
            for state in self.spool.due(self.config.quiet_s):
                if self._stop.is_set():
                    break
                self._scan(state)
            self._stop.wait(self.config.poll_s)

    def _scan(self, state: StudyState) -> None:
        key = state.key
        instances = len(self.spool.files(key))
        again = " again" if state.scans else ""
        log.info("study %s: complete (%g s without new instances): %d instance(s); scanning%s", key,
                 self.config.quiet_s, instances, again)
        results: Sequence[PatientResult] = ()
        if self.scan is not None:
            try:
                results = self.scan(self.spool.folder(key))
            except GoutEdgeError as exc:
                log.error("study %s: not scanned: %s", key, exc)
            except Exception:
                log.exception("study %s: the scan failed", key)
        paths = [p for r in results for p in r.dicom]
        if self.queue is not None and paths:
            self.queue.enqueue(paths)
        self.spool.mark_scanned(key, instances, [r.session_id for r in results])
        with self._lock:
            self.scanned_studies += 1
            self.scans.append({
                "study": key, "instances": instances,
                "sessions": [{"session_id": r.session_id, "diagnosis": r.diagnosis, "report": r.report,
                              "dicom": list(r.dicom)} for r in results],
                "forwarded": bool(self.queue is not None and paths),
            })
        verdicts = "; ".join(f"session {r.session_id}: {r.diagnosis}" for r in results) or "no result"
        where = f"queued for {self.queue.peer}" if self.queue is not None else "written"
        log.info("study %s: %s; %d DICOM result object(s) %s", key, verdicts, len(paths), where)

    def summary(self) -> dict[str, Any]:
        """What this run did (``listen --json``): no patient attribute, studies by their key."""
        with self._lock:
            return {
                "ae_title": self.config.ae_title, "port": self.port, "received": self.received,
                "studies_scanned": self.scanned_studies, "scans": list(self.scans),
                "spool": str(self.spool.root), "pending_studies": len(self.spool.pending()),
                "forward": None if self.queue is None else {"peer": str(self.queue.peer), **self.queue.counts()},
            }

    # -- life
    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (a signal handler sets it)."""
        while not stop.wait(0.5):
            pass

    def stop(self) -> None:
        """Stop accepting, let a running scan finish, stop the forward worker; the spool and the
        queue stay on disk for the next start."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self.queue is not None:
            self.queue.wake()
        for t in self._threads:
            t.join(timeout=60)
        log.info("stopped: %d instance(s) received, %d study scan(s)%s", self.received, self.scanned_studies,
                 "" if self.queue is None else f"; forward queue {self.queue.counts()}")
