"""The DICOM node behind ``gout-edge listen``: C-STORE and C-ECHO in, results out (pynetdicom).

    spool = Spool("spool/")
    node = Listener(ListenConfig(port=11112, allowed=("SCANNER",), host="10.1.2.3"), spool,
                    scan=exam_scanner(bundle, scorer, "scans/"), queue=ForwardQueue(...))
    node.start(); node.wait(stop); node.stop()

- **Receive.** Associations from calling AE titles outside ``allowed`` are rejected (when the list
  is empty, every caller is accepted). Every storage SOP class is accepted in any transfer syntax;
  each instance arrives in ``<spool>/incoming/`` (on disk, not in memory) and is moved into its
  study and fsynced *before* the success status goes back (``Spool.store_file``). An identical
  re-send is acknowledged and not counted; an instance over ``max_instance_bytes`` is refused with
  "out of resources" (0xA700) and an error comment that says the limit; so is one that would leave
  the disk without room for the scans still to come (``session_reserve_bytes`` each).
- **Bounded.** At most ``max_associations`` connections at once; a connection that has not asked
  for an association within ``acse_timeout_s`` (TLS handshake included) is dropped, and when the
  limit is reached the oldest such idle connection makes room for a new one, so idle sockets never
  lock the scanner out. An association silent for ``idle_timeout_s`` is aborted; a PDU must
  arrive whole within ``pdu_timeout_s`` and be at most ``MAX_PDU_BYTES``. Aborted associations and
  lost connections are logged, once each, with what they stored.
- **Complete.** A study counts as complete when no instance of it has arrived for ``quiet_s``
  seconds; the watcher claims it (``Spool.claim_due``: one durable state per study, so a study is
  scanned once for what it holds) and hands it to a pool of ``scan_workers`` threads, each scan
  within a time (``scan_time_budget_s``) and pixel (``scan_pixel_budget``) budget. Instances
  arriving later make the study due again, once; its new SR supersedes the earlier one
  (Predecessor Documents). A crash during a scan leaves no folder behind: at the next start the
  scan's session folders are removed and the study is scanned again.
- **Forward.** The DICOM results of each scan go into the ``ForwardQueue`` (idempotently), whose
  worker thread delivers them (retrying while the PACS cannot be reached; a restart resumes).
- **Status.** ``<spool>/status.json`` is rewritten every few seconds: what was received, the
  studies, the connections and the forward queue (``listen --status`` reads it).

Logs name studies by their pseudonym (``study_key``), sessions by ID and peers by AE title and
address, cleaned to one line; never a patient attribute (docs/design.md §8). pynetdicom's own
chatter is kept to warnings.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write_json
from gout_edge.edge_runtime.imaging.text import clean_line
from gout_edge.edge_runtime.pipeline.results import PatientResult
from gout_edge.errors import GoutEdgeError, UsageError

from .forward import ForwardQueue
from .peer import DEFAULT_AE_TITLE
from .spool import Claim, Spool, disk_free_bytes

__all__ = ["STATUS_NAME", "ExamScanner", "ListenConfig", "Listener", "ScanRequest", "exam_scanner", "read_status"]

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 64 << 20  # keep this much disk free; refuse an instance rather than fill the disk
MAX_PDU_BYTES = 4 << 20  # no PDU a peer may send us is longer (we accept 16 kB P-DATA)
STATUS_NAME = "status.json"
SCAN_TRIES = 3  # a scan that fails is tried this many times, then waits for the study to change
_RECENT_SCANS = 100  # scans kept for ``summary``; the counters count all


@dataclass(frozen=True)
class ListenConfig:
    """How the node listens, what it accepts and when a study is complete (docs/design.md §12)."""

    ae_title: str = DEFAULT_AE_TITLE
    host: str = "127.0.0.1"  # a cart names its hospital-network address with --bind
    port: int = 11112
    allowed: tuple[str, ...] = ()
    quiet_s: float = 10.0
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    poll_s: float = 0.2
    max_associations: int = 8
    acse_timeout_s: float = 10.0  # connect → A-ASSOCIATE-RQ (and the TLS handshake)
    idle_timeout_s: float = 60.0  # an association with nothing received for this long is aborted
    pdu_timeout_s: float = 30.0  # one PDU must arrive whole within this
    max_instance_bytes: int = 2 << 30
    session_reserve_bytes: int = 16 << 20  # disk a scan's session may need (pictures, PDF, SR, SC)
    scan_workers: int = 2
    scan_time_budget_s: float | None = 900.0
    scan_pixel_budget: int | None = 4_000_000_000
    scan_retry_s: float = 30.0  # a failed scan is tried again after this, then 4 times as long (3 tries)
    status_interval_s: float = 5.0


@dataclass(frozen=True)
class ScanRequest:
    """One study to scan: its spool folder, the session ID the scan must use (its first session;
    later patients in the study add -2, -3 …), the SRs its SR supersedes, and its budgets."""

    folder: Path
    session_id: str
    predecessors: tuple[Path, ...] = ()
    time_budget_s: float | None = None
    pixel_budget: int | None = None


ScanFn = Callable[[ScanRequest], Sequence[PatientResult]]


class _Serialised:
    """A scorer shared by the scan pool: one inference at a time (an engine's request is not
    re-entrant); decoding, pictures and DICOM writing of the studies run side by side."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)

    def score_prepared(self, frames: Any) -> Any:
        with self._lock:
            return self._scorer.score_prepared(frames)


class ExamScanner:
    """A study folder → ``run_exam`` over its DICOM files (one session per patient/study group),
    within the request's time and pixel budgets; ``discard`` removes what a cut-short scan left."""

    def __init__(self, bundle: Any, scorer: Any, out_dir: str | Path) -> None:
        self.bundle = bundle
        self.scorer = _Serialised(scorer)
        self.out_dir = Path(out_dir)

    def __call__(self, request: ScanRequest) -> Sequence[PatientResult]:
        from gout_edge.edge_runtime.exam.driver import Stop, run_exam
        from gout_edge.edge_runtime.sources.dicom import DicomSource

        stop = Stop()
        seen = [0]
        started = time.monotonic()

        def budget(frame: Any, _result: Any, _session: Any) -> None:
            seen[0] += int(frame.image.shape[0]) * int(frame.image.shape[1])
            if request.time_budget_s is not None and time.monotonic() - started >= request.time_budget_s:
                stop.request(f"time budget reached ({request.time_budget_s:g} s); the rest of the study was not read",
                             complete=False)
            elif request.pixel_budget is not None and seen[0] >= request.pixel_budget:
                stop.request(f"pixel budget reached ({request.pixel_budget:,} pixels scanned); the rest of the "
                             "study was not read", complete=False)

        source = DicomSource(request.folder)
        try:
            return run_exam(source, self.bundle, self.scorer, self.out_dir, stop=stop, on_frame=budget,
                            session_id=request.session_id, predecessors=request.predecessors).patients
        finally:
            source.close()

    def discard(self, session_id: str) -> list[Path]:
        """Remove the session folders of ``session_id`` (``<id>``, ``<id>-2`` …); those removed."""
        removed = []
        if not session_id or "/" in session_id or session_id.startswith("."):
            return removed
        for p in self.out_dir.glob(f"{session_id}*"):
            rest = p.name[len(session_id):]
            if p.is_dir() and (rest == "" or (rest.startswith("-") and rest[1:].isdigit())):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed


def exam_scanner(bundle: Any, scorer: Any, out_dir: str | Path) -> ExamScanner:
    """The scanner ``listen`` uses: ``ExamScanner(bundle, scorer, out_dir)``."""
    return ExamScanner(bundle, scorer, out_dir)


@dataclass
class _Conn:
    """One TCP connection to the node, from accept to close."""

    sock: Any
    address: str
    opened: float
    assoc: Any = None
    state: str = "open"  # open → requested → accepted | rejected
    ae_title: str = ""
    stored: int = 0
    same: int = 0
    refused: int = 0
    in_flight: int = 0  # bytes received since the last C-STORE answer
    aborted: bool = False
    released: bool = False


def _bounded_recv(assoc_socket: Any, pdu_timeout_s: float, max_bytes: int) -> Callable[[int], bytearray]:
    """A replacement for pynetdicom's ``AssociationSocket.recv`` that reads one PDU piece within a
    deadline and refuses a length over ``max_bytes`` (pynetdicom's own waits without end for a peer
    that trickles a byte at a time, and allocates whatever length a PDU header claims)."""

    def recv(nr_bytes: int) -> bytearray:
        sock = assoc_socket.socket
        if nr_bytes > max_bytes:
            raise OSError(f"a PDU of {nr_bytes} bytes is over the {max_bytes}-byte limit")
        deadline = time.monotonic() + pdu_timeout_s
        out = bytearray()
        try:
            while len(out) < nr_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"a PDU did not arrive whole within {pdu_timeout_s:g} s")
                sock.settimeout(left)
                chunk = sock.recv(min(65536, nr_bytes - len(out)))
                if not chunk:
                    return out
                out.extend(chunk)
        finally:
            try:
                sock.settimeout(pdu_timeout_s)  # sends get the whole time too
            except OSError:
                pass
        return out

    return recv


class Listener:
    """A storage SCP with a spool, a quiet-period watcher that hands complete studies to a bounded
    pool of scans, and an optional forward queue."""

    def __init__(self, config: ListenConfig, spool: Spool, scan: ScanFn | None = None,
                 queue: ForwardQueue | None = None) -> None:
        self.config = config
        self.spool = spool
        self.scan = scan
        self.queue = queue
        self.received = 0  # instances stored (new or changed)
        self.duplicates = 0  # identical re-sends, acknowledged and not counted
        self.refused = 0
        self.aborted_associations = 0
        self.scanned_studies = 0
        self.scan_failures = 0
        self.scans: collections.deque[dict[str, Any]] = collections.deque(maxlen=_RECENT_SCANS)
        self._server: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._conns: dict[int, _Conn] = {}  # id(client socket) → connection
        self._by_assoc: dict[int, int] = {}  # id(association) → id(client socket)
        self._closed: collections.OrderedDict[int, _Conn] = collections.OrderedDict()  # lately closed, for their abort
        self._pool: ThreadPoolExecutor | None = None
        self._running = 0  # scans in the pool
        self._last_busy_log = 0.0
        self._last_evict_log = 0.0
        self._evicted = 0
        self._last_disk_log = 0.0

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
        # the node's own gate (``_admit``) keeps the count; pynetdicom's limit is only a backstop, wide
        # enough for the threads of evicted idle connections that are still winding down after a flood
        ae.maximum_associations = max(64, self.config.max_associations * 8)
        ae.acse_timeout = self.config.acse_timeout_s
        ae.network_timeout = self.config.idle_timeout_s
        ae.dimse_timeout = self.config.idle_timeout_s
        return ae

    def _receive_on_disk(self) -> None:
        """Received data sets go to ``<spool>/incoming/`` as they arrive, not into memory."""
        from pynetdicom import _config, dimse_messages

        _config.STORE_RECV_CHUNKED_DATASET = True
        dimse_messages.NamedTemporaryFile = functools.partial(tempfile.NamedTemporaryFile,
                                                              dir=str(self.spool.incoming_dir))

    def start(self) -> None:
        """Bind the port and start the server, the watcher, the scan pool and the forward worker."""
        from pynetdicom import evt

        self._recover()
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_REJECTED, self._on_rejected), (evt.EVT_ACCEPTED, self._on_accepted),
                    (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_ABORTED, self._on_aborted),
                    (evt.EVT_RELEASED, self._on_released), (evt.EVT_CONN_OPEN, self._on_open),
                    (evt.EVT_CONN_CLOSE, self._on_close), (evt.EVT_DATA_RECV, self._on_data)]
        ae = self._ae()
        self._receive_on_disk()
        try:
            server = ae.make_server((self.config.host, self.config.port), ssl_context=self.config.tls,
                                    evt_handlers=handlers, server_class=_gated_server(self))
        except OSError as exc:
            raise UsageError(f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc}); "
                             "choose another --port or --bind, or stop the program that holds it") from None
        self._server = server
        ae._servers.append(server)
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.config.scan_workers), thread_name_prefix="gout-edge-scan")
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="gout-edge-dicom",
                             daemon=True),
            threading.Thread(target=self._watch, name="gout-edge-study-watcher", daemon=True),
            threading.Thread(target=self._housekeeping, name="gout-edge-status", daemon=True),
        ]
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
                 "without new instances; at most %d connections, %d scan(s) at a time%s", self.config.ae_title,
                 self.config.host, self.port, "on" if self.config.tls is not None else "off", allowed,
                 self.config.quiet_s, self.config.max_associations, max(1, self.config.scan_workers),
                 f"; {len(waiting)} study(ies) in the spool still to scan" if waiting else "")

    def _recover(self) -> None:
        """What a crash left: a scan cut short (its session folders removed, the study scanned again
        when due) or results not yet queued (queued now)."""
        for state, attempt, _forward in self.spool.interrupted():
            if state.status == "scanning":
                sid = str((attempt or {}).get("session_id") or "")
                removed = self.scan.discard(sid) if sid and hasattr(self.scan, "discard") else []
                log.warning("study %s: its scan was cut short (the process stopped); %d partial session folder(s) "
                            "removed; it will be scanned again", state.key, len(removed))
            else:
                log.info("study %s: queueing the results of a scan that finished before the process stopped", state.key)
            self.spool.recover(state.key, self.queue.enqueue if self.queue is not None else None)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else self.config.port

    # -- connections: admission, bounds, what happened to each
    def _admit(self, request: Any, address: Any) -> bool:
        """Called for each accepted TCP connection before a thread is spent on it: room is made by
        closing the oldest connection that has not asked for an association; with no such
        connection and no room, the new one is closed."""
        host = clean_line(address[0] if isinstance(address, tuple) else address, 64)
        now = time.monotonic()
        evict: list[_Conn] = []
        with self._lock:
            self._forget_dead()
            over = len(self._conns) + 1 - self.config.max_associations
            if over > 0:
                idle = sorted((c for c in self._conns.values() if c.state == "open"), key=lambda c: c.opened)
                evict = idle[:over]
                over -= len(evict)
            if over > 0:
                if now - self._last_busy_log > 10:
                    self._last_busy_log = now
                    log.warning("connection from %s refused: %d connections open (at most %d)", host, len(self._conns),
                                self.config.max_associations)
                return False
            for c in evict:
                self._conns.pop(id(c.sock), None)
            self._conns[id(request)] = _Conn(request, host, now)
        for c in evict:
            _shutdown(c.sock)
        if evict:
            self._evicted += len(evict)
            if now - self._last_evict_log > 10:  # a flood of idle connections is one line, not one per socket
                self._last_evict_log = now
                log.warning("%d connection(s) that asked for no association closed to make room (latest from %s, idle "
                            "%.1f s)", self._evicted, evict[-1].address, now - evict[-1].opened)
                self._evicted = 0
        return True

    def _forget_dead(self) -> None:
        for key, c in list(self._conns.items()):
            try:
                dead = c.sock.fileno() < 0
            except OSError:
                dead = True
            if dead and time.monotonic() - c.opened > 1.0:
                self._conns.pop(key, None)

    def _conn(self, event: Any) -> _Conn | None:
        with self._lock:
            key = self._by_assoc.get(id(event.assoc))
            return None if key is None else self._conns.get(key)

    def _on_open(self, event: Any) -> None:
        sock = event.assoc.dul.socket
        raw = getattr(sock, "socket", None)
        with self._lock:
            conn = self._conns.get(id(raw))
            if conn is None:  # not through the gate (a test server): count it anyway
                conn = self._conns[id(raw)] = _Conn(raw, clean_line(event.address[0], 64), time.monotonic())
            conn.assoc = event.assoc
            self._by_assoc[id(event.assoc)] = id(raw)
        sock.recv = _bounded_recv(sock, self.config.pdu_timeout_s, MAX_PDU_BYTES)

    def _on_close(self, event: Any) -> None:
        with self._lock:
            key = self._by_assoc.pop(id(event.assoc), None)
            conn = self._conns.pop(key, None) if key is not None else None
        if conn is None:
            return
        if conn.state == "accepted" and not (conn.released or conn.aborted):
            conn.aborted = True  # pynetdicom may tell of the abort after the close: one line for both
            with self._lock:
                self.aborted_associations += 1
                self._closed[id(event.assoc)] = conn
                while len(self._closed) > 64:
                    self._closed.popitem(last=False)
            log.warning("association from %s (%s) aborted after %d instance(s) stored (by the peer, or the connection "
                        "was lost); an instance being sent was not acknowledged and is not kept", conn.ae_title,
                        conn.address, conn.stored)
        elif conn.state == "open":
            log.debug("connection from %s closed without an association request", conn.address)

    def _on_requested(self, event: Any) -> None:
        conn = self._conn(event)
        if conn is not None:
            conn.state = "requested"
            conn.ae_title = clean_line(event.assoc.requestor.ae_title, 16)

    def _on_accepted(self, event: Any) -> None:
        r = event.assoc.requestor
        conn = self._conn(event)
        if conn is not None:
            conn.state = "accepted"
            conn.ae_title = clean_line(r.ae_title, 16)
        log.debug("association from %s (%s) accepted", clean_line(r.ae_title, 16), clean_line(r.address, 64))

    def _on_rejected(self, event: Any) -> None:
        r = event.assoc.requestor
        conn = self._conn(event)
        if conn is not None:
            conn.state = "rejected"
        log.warning("association from %s (%s) rejected: calling AE title not on the --allow list",
                    clean_line(r.ae_title, 16), clean_line(r.address, 64))

    def _on_released(self, event: Any) -> None:
        conn = self._conn(event)
        if conn is not None:
            conn.released = True
            if conn.stored or conn.same or conn.refused:
                log.info("association from %s released: %d instance(s) stored, %d identical re-send(s), %d refused",
                         conn.ae_title, conn.stored, conn.same, conn.refused)

    def _on_aborted(self, event: Any) -> None:
        conn = self._conn(event)
        if conn is None:
            with self._lock:
                conn = self._closed.get(id(event.assoc))
        r = event.assoc.requestor
        if conn is not None:
            if conn.aborted:
                return
            conn.aborted = True
        with self._lock:
            self.aborted_associations += 1
        log.warning("association from %s (%s) aborted after %d instance(s) stored; an instance being sent was not "
                    "acknowledged and is not kept", clean_line(r.ae_title, 16), clean_line(r.address, 64),
                    conn.stored if conn else 0)

    def _on_data(self, event: Any) -> None:
        """Every P-DATA received: an instance far over the size limit, or a disk about to fill,
        ends the association (the refusal status can only follow a complete instance)."""
        conn = self._conn(event)
        if conn is None:
            return
        before = conn.in_flight
        conn.in_flight += len(event.data)
        if conn.in_flight > 4 * self.config.max_instance_bytes + MAX_PDU_BYTES:
            log.error("association from %s aborted: an instance of more than %d MB is arriving (the limit is %d MB)",
                      conn.ae_title, conn.in_flight >> 20, self.config.max_instance_bytes >> 20)
            event.assoc.abort()
        elif conn.in_flight >> 23 != before >> 23:  # every 8 MB: is there still room?
            if disk_free_bytes(self.spool.root) < MIN_FREE_BYTES:
                log.error("association from %s aborted: the spool's disk is full", conn.ae_title)
                event.assoc.abort()

    def _on_echo(self, event: Any) -> int:
        log.info("C-ECHO from %s", clean_line(event.assoc.requestor.ae_title, 16))
        return 0x0000

    def _answer(self, status: int, comment: str) -> Any:
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.Status = status
        ds.ErrorComment = comment[:64]
        return ds

    def _on_store(self, event: Any) -> Any:
        import pydicom

        conn = self._conn(event)
        calling = clean_line(event.assoc.requestor.ae_title, 16)
        try:
            return self._store(event, conn, calling, pydicom)
        finally:
            if conn is not None:
                conn.in_flight = 0

    def _store(self, event: Any, conn: _Conn | None, calling: str, pydicom: Any) -> Any:
        try:
            received: Path | None = Path(event.dataset_path)
        except AttributeError:
            received = None
        try:
            if received is None:
                raw = event.encoded_dataset(include_meta=True)
                size = len(raw)
                header = pydicom.dcmread(_bytes_io(raw), stop_before_pixels=True,
                                         specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
            else:
                size = received.stat().st_size
                header = pydicom.dcmread(received, stop_before_pixels=True,
                                         specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
        except Exception as exc:
            log.warning("C-STORE from %s: the data set cannot be read (%s); refused", calling, type(exc).__name__)
            self._count_refused(conn)
            return 0xC210  # cannot understand
        study_uid = str(header.get("StudyInstanceUID", "") or "").strip()
        sop_uid = str(header.get("SOPInstanceUID", "") or event.request.AffectedSOPInstanceUID or "").strip()
        if not study_uid or not sop_uid:
            log.warning("C-STORE from %s: no Study or SOP Instance UID; refused", calling)
            self._count_refused(conn)
            return 0xA900  # data set does not match the SOP class
        limit = self.config.max_instance_bytes
        if size > limit:
            log.warning("C-STORE from %s refused: an instance of %s is over this node's limit of %s "
                        "(--max-instance-mb)", calling, _size(size), _size(limit))
            self._count_refused(conn)
            return self._answer(0xA700, f"instance of {_size(size)} over this node's {_size(limit)} limit")
        try:
            reserve = MIN_FREE_BYTES + self.config.session_reserve_bytes * (len(self.spool.pending()) + 1)
            if disk_free_bytes(self.spool.root) < reserve + (0 if received is not None else size):
                now = time.monotonic()
                if now - self._last_disk_log > 10:
                    self._last_disk_log = now
                    log.error("C-STORE from %s refused: the spool's disk is nearly full (room is kept for the scans "
                              "still to come)", calling)
                self._count_refused(conn)
                return self._answer(0xA700, "out of resources: disk nearly full")
            if received is None:
                stored = self.spool.store(raw, study_uid, sop_uid)
            else:
                stored = self.spool.store_file(received, study_uid, sop_uid)
        except OSError as exc:
            log.error("C-STORE from %s: the spool cannot be written (%s); refused", calling, exc.strerror or exc)
            self._count_refused(conn)
            return 0xA700
        with self._lock:
            if stored.change == "same":
                self.duplicates += 1
            else:
                self.received += 1
        if conn is not None:
            if stored.change == "same":
                conn.same += 1
            else:
                conn.stored += 1
        if stored.new_study:
            log.info("study %s: receiving from %s", stored.key, calling)
        elif stored.change == "changed":
            log.info("study %s: an instance was sent again with other content; the study will be read again",
                     stored.key)
        return 0x0000  # only now: the instance is on disk and fsynced

    def _count_refused(self, conn: _Conn | None) -> None:
        with self._lock:
            self.refused += 1
        if conn is not None:
            conn.refused += 1

    # -- completion and scanning
    def _watch(self) -> None:
        workers = max(1, self.config.scan_workers)
        while not self._stop.is_set():
            with self._lock:
                free = workers - self._running
            if free > 0:
                try:
                    claims = self.spool.claim_due(self.config.quiet_s, free, _session_id)
                except Exception:
                    log.exception("the study watcher failed; trying again")
                    claims = []
                for claim in claims:
                    with self._lock:
                        self._running += 1
                    assert self._pool is not None
                    self._pool.submit(self._run_scan, claim)
            self._stop.wait(self.config.poll_s)

    def _run_scan(self, claim: Claim) -> None:
        try:
            self._scan(claim)
        except Exception:  # the pool thread must not die with the study half-recorded
            log.exception("study %s: recording its scan failed", claim.key)
        finally:
            with self._lock:
                self._running -= 1

    def _scan(self, claim: Claim) -> None:
        key = claim.key
        out = getattr(self.scan, "out_dir", None)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            if disk_free_bytes(Path(out)) < MIN_FREE_BYTES + self.config.session_reserve_bytes:
                now = time.monotonic()
                if now - self._last_disk_log > 10:
                    self._last_disk_log = now
                    log.error("study %s: not scanned yet: the disk of the scans folder is nearly full", key)
                self.spool.release(claim)
                self._stop.wait(self.config.quiet_s)
                return
        log.info("study %s: complete (%g s without new instances): %d instance(s); scanning%s", key,
                 self.config.quiet_s, claim.instances, " again (it changed)" if claim.again else "")
        results: Sequence[PatientResult] = ()
        error = None
        if self.scan is not None:
            request = ScanRequest(self.spool.folder(key), claim.session_id, tuple(Path(p) for p in claim.predecessors),
                                  self.config.scan_time_budget_s, self.config.scan_pixel_budget)
            try:
                results = self.scan(request)
            except GoutEdgeError as exc:
                error = clean_line(exc, 500)
            except Exception as exc:
                error = f"internal error ({type(exc).__name__}): a bug in gout-edge"
                log.debug("study %s: the scan failed", key, exc_info=True)
        paths = [p for r in results for p in r.dicom]
        srs = [p for p in paths if Path(p).name == "SR.dcm"]
        state = self.spool.finish(claim, sessions=[r.session_id for r in results], results=srs,
                                  forward=paths if self.queue is not None else [],
                                  enqueue=self.queue.enqueue if self.queue is not None else None, error=error,
                                  tries=SCAN_TRIES, retry_in_s=self.config.scan_retry_s)
        left_out = sorted({getattr(s, "name", str(s)) for r in results for s in r.skipped_files})
        with self._lock:
            self.scanned_studies += 1
            self.scan_failures += error is not None
            self.scans.append({
                "study": key, "instances": claim.instances, "scan": state.scans,
                "sessions": [{"session_id": r.session_id, "diagnosis": r.diagnosis, "report": r.report,
                              "dicom": list(r.dicom), "ended_by": r.ended_by} for r in results],
                "forwarded": bool(self.queue is not None and paths), "error": error, "left_out": len(left_out),
            })
        if error is not None:
            again = "it is scanned again when it changes" if not state.pending else \
                f"try {state.failures} of {SCAN_TRIES}; it is tried again in {self.config.scan_retry_s:g} s or more"
            log.error("study %s: not scanned: %s (%s)", key, error, again)
            return
        verdicts = "; ".join(f"session {r.session_id}: {r.diagnosis}" + ("" if r.complete else f" ({r.ended_by})")
                             for r in results) or "no result"
        where = f"queued for {self.queue.peer}" if self.queue is not None else "written"
        skipped = f"; {len(left_out)} file(s) left out (named, with why, in the report and SR)" if left_out else ""
        log.info("study %s: %s; %d DICOM result object(s) %s%s", key, verdicts, len(paths), where, skipped)

    # -- status
    def summary(self) -> dict[str, Any]:
        """What this run did (``listen --json``): no patient attribute, studies by their key; the
        latest scans (at most 100) and counters of all."""
        with self._lock:
            doc = {
                "ae_title": self.config.ae_title, "port": self.port, "received": self.received,
                "duplicates": self.duplicates, "refused": self.refused,
                "aborted_associations": self.aborted_associations,
                "studies_scanned": self.scanned_studies, "scan_failures": self.scan_failures,
                "scans": list(self.scans), "connections": len(self._conns),
            }
        doc.update({"spool": str(self.spool.root), "pending_studies": len(self.spool.pending()),
                    "forward": None if self.queue is None else {"peer": str(self.queue.peer), **self.queue.counts()}})
        return doc

    def status(self) -> dict[str, Any]:
        """The status file's document (``listen --status``)."""
        studies = self.spool.studies()
        with self._lock:
            doc = {"written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(), "running": True,
                   "ae_title": self.config.ae_title, "address": f"{self.config.host}:{self.port}",
                   "received": self.received, "duplicates": self.duplicates, "refused": self.refused,
                   "aborted_associations": self.aborted_associations, "connections": len(self._conns),
                   "scans_running": self._running, "studies_scanned": self.scanned_studies,
                   "scan_failures": self.scan_failures}
        doc["studies"] = {"total": len(studies), "waiting": sum(s.pending and s.status == "idle" for s in studies),
                          "scanning": sum(s.status != "idle" for s in studies),
                          "failed": sum(s.last_error is not None and not s.pending for s in studies)}
        doc["forward"] = None if self.queue is None else self.queue.status()
        return doc

    def _housekeeping(self) -> None:
        """The status file, and transfers a dropped connection left in ``incoming/``."""
        while not self._stop.wait(self.config.status_interval_s):
            self.write_status()
            try:
                self.spool.sweep_incoming(self.config.idle_timeout_s + self.config.pdu_timeout_s + 60)
            except OSError:
                pass

    def write_status(self, running: bool = True) -> None:
        try:
            doc = self.status()
            doc["running"] = running
            atomic_write_json(self.spool.root / STATUS_NAME, doc)
        except Exception as exc:  # the status is for people; its failure must not stop the node
            log.debug("status file not written (%s)", type(exc).__name__)

    # -- life
    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (a signal handler sets it)."""
        while not stop.wait(0.5):
            pass

    def stop(self) -> None:
        """Stop accepting, let running scans finish, stop the forward worker; the spool and the
        queue stay on disk for the next start."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self.queue is not None:
            self.queue.wake()
        for t in self._threads:
            t.join(timeout=60)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.write_status(running=False)
        log.info("stopped: %d instance(s) received (%d identical re-sends), %d study scan(s)%s", self.received,
                 self.duplicates, self.scanned_studies,
                 "" if self.queue is None else f"; forward queue {self.queue.counts()}")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def _session_id() -> str:
    from gout_edge.edge_runtime.exam.session import new_session_id

    return new_session_id()


def _bytes_io(raw: bytes) -> Any:
    import io

    return io.BytesIO(raw)


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _gated_server(node: Listener) -> type:
    """pynetdicom's threaded server with the node's gate: admission before a thread is spent, the
    TLS handshake in the connection's own thread within ``acse_timeout_s`` (pynetdicom's does it
    in the accepting thread, with no time limit), and no traceback for a connection a peer drops."""
    from pynetdicom.transport import ThreadedAssociationServer

    class GatedServer(ThreadedAssociationServer):
        def get_request(self) -> tuple[Any, Any]:
            client, address = self.socket.accept()
            if self.ssl_context:
                client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
            return client, address

        def verify_request(self, request: Any, client_address: Any) -> bool:
            return node._admit(request, client_address)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            if isinstance(request, ssl.SSLSocket):
                try:
                    request.settimeout(node.config.acse_timeout_s)
                    request.do_handshake()
                    request.settimeout(None)
                except (OSError, ssl.SSLError) as exc:
                    log.info("connection from %s: TLS handshake failed (%s)", clean_line(client_address[0], 64),
                             type(exc).__name__)
                    with node._lock:
                        node._conns.pop(id(request), None)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)

        def handle_error(self, request: Any, client_address: Any) -> None:
            log.debug("connection from %s failed", clean_line(client_address[0], 64), exc_info=True)

    return GatedServer


def read_status(spool_root: str | Path) -> dict[str, Any]:
    """What a spool holds, read from the disk (the node may be running or not): the studies (still
    to scan, being scanned, whose last scan failed), the forward queue (counts, the oldest pending
    object, the next try, the last error, the latest failures with why) and, from the status file
    the node rewrites, what it received and whether it is running. ``listen --status``."""
    import json

    from .spool import INDEX_NAME, STATE_NAME

    root = Path(spool_root).expanduser()
    if not (root / "studies").is_dir():
        raise UsageError(f"{root} is not a gout-edge spool (no studies/ folder); give the --spool of a listen node")
    node: dict[str, Any] = {}
    try:
        node = json.loads((root / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        node = {}
    running = bool(node.get("running")) and _alive(node.get("pid"))
    studies = {"total": 0, "waiting": 0, "scanning": 0, "failed": 0}
    for folder in (root / "studies").iterdir():
        if not folder.is_dir():
            continue
        studies["total"] += 1
        try:
            generation = sum(1 for _ in open(folder / INDEX_NAME, encoding="utf-8"))
        except OSError:
            generation = sum(1 for p in folder.glob("*.dcm"))
        try:
            state = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        scanned = int(state.get("scanned_generation", 0) or 0)
        if state.get("status", "idle") != "idle":
            studies["scanning"] += 1
        elif generation > scanned:
            studies["waiting"] += 1
        elif state.get("last_error"):
            studies["failed"] += 1
    forward = None
    queue = root / "forward"
    if queue.is_dir():
        now = time.time()
        pending = []
        for p in (queue / "pending").glob("*.json"):
            try:
                pending.append(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pending.append({})
        failed = sorted((queue / "failed").glob("*.json"), key=lambda p: p.stat().st_mtime)[-5:]
        recent = []
        for p in failed:
            try:
                job = json.loads(p.read_text(encoding="utf-8"))
                recent.append({"file": Path(job.get("file") or p.name).name, "reason": job.get("last_error")})
            except (OSError, ValueError):
                recent.append({"file": p.name, "reason": "the job file cannot be read"})
        latest = max(pending, key=lambda j: float(j.get("attempts", 0) or 0), default={})
        forward = {
            "pending": len(pending), "sent": sum(1 for _ in (queue / "sent").glob("*.json")),
            "failed": sum(1 for _ in (queue / "failed").glob("*.json")),
            "oldest_pending_s": round(now - min(float(j.get("enqueued_at", now) or now) for j in pending), 1)
            if pending else None,
            "next_attempt_in_s": round(max(0.0, min(float(j.get("next_attempt_at", now) or now) for j in pending) - now), 1)
            if pending else None,
            "last_error": latest.get("last_error"),
            "recent_failures": recent,
        }
        if isinstance(node.get("forward"), dict):
            forward["peer"] = node["forward"].get("peer")
    return {"spool": str(root), "running": running, "written_at": node.get("written_at"),
            "received": node.get("received"), "duplicates": node.get("duplicates"), "refused": node.get("refused"),
            "aborted_associations": node.get("aborted_associations"), "connections": node.get("connections"),
            "studies": studies, "forward": forward}


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
