"""The receive spool: every instance a peer sends is on disk, fsynced, before it is acknowledged,
and every study is scanned once for what it holds (docs/design.md §12).

Layout: ``<spool>/studies/<key>/<SOP Instance UID>.dcm``, where ``<key>`` is the study's pseudonym
(``study_key``: 16 hex digits of the SHA-256 of its Study Instance UID; folder names and logs carry
no patient attribute). Each file is the DICOM Part 10 stream as received, moved in with fsync,
rename and fsync of the folder. ``<spool>/incoming/`` holds transfers still arriving (the
listener receives into it; what a dropped connection leaves there is removed).

**One lock and one durable state per study.** Receiving, counting and the decision to scan happen
under the study's lock:

- ``.instances.jsonl`` (append-only, fsynced) has one line per *content change*: a new instance,
  or one re-sent with other content (SHA-256 of its data set, file meta left out). The line count
  is the study's **generation**. An identical re-send — on the same association or another, at the
  same moment or later — changes nothing: it is acknowledged and not counted.
- ``.state.json`` (atomic) records the generation the last finished scan saw, the study's status
  (``idle``; ``scanning`` with the attempt's session ID; ``forwarding`` with the objects to queue),
  the scans so far, the last scan's SRs (which a later SR supersedes) and the last error.

A study is due when its generation is past the scanned one and nothing has arrived for the quiet
period; ``claim_due`` marks it ``scanning`` durably before the scan starts, so one study is never
scanned twice at once, and a study whose instances arrive during its scan is due again once, after
it. After a crash, ``interrupted`` names the studies whose scan was cut short (their partial
session folders are removed by the listener, then they are scanned again) or whose results were
not yet queued (queued now; queueing is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write_json, fsync_dir
from gout_edge.edge_runtime.imaging.dicom_identity import study_key

__all__ = ["INDEX_NAME", "STATE_NAME", "Claim", "Spool", "Stored", "StudyState", "dataset_digest", "disk_free_bytes"]

log = logging.getLogger(__name__)

STATE_NAME = ".state.json"
INDEX_NAME = ".instances.jsonl"
INCOMING = "incoming"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_CHUNK = 1 << 20


@dataclass
class StudyState:
    """What the spool knows of one study (a copy; the spool keeps its own)."""

    key: str
    instances: int  # distinct SOP instances on disk
    generation: int  # content changes received (new or changed instances)
    scanned_generation: int  # the generation the last finished scan saw
    last_received: float  # time.monotonic()
    scans: int = 0
    status: str = "idle"  # idle | scanning | forwarding
    last_error: str | None = None
    failures: int = 0  # failed scans in a row

    @property
    def pending(self) -> bool:
        return self.generation > self.scanned_generation

    @property
    def scanned(self) -> int:  # the instances the last scan saw, as a count (older callers)
        return self.instances if not self.pending else 0


@dataclass(frozen=True)
class Stored:
    """What ``store`` did: the study key, the file, whether the study is new here, and the change:
    ``new`` (an instance not seen before), ``changed`` (its content differs) or ``same`` (an
    identical re-send: nothing written, nothing counted)."""

    key: str
    path: Path
    new_study: bool
    change: str


@dataclass(frozen=True)
class Claim:
    """A study taken for one scan: the generation it covers, the session ID the scan must use (so
    a crash's partial folders can be found), the SRs a new SR supersedes."""

    key: str
    generation: int
    session_id: str
    attempt: int
    instances: int
    predecessors: tuple[str, ...] = ()
    again: bool = False


@dataclass
class _Study:
    key: str
    files: dict[str, str] = field(default_factory=dict)  # file name → SHA-256 of its data set
    generation: int = 0
    scanned_generation: int = 0
    last_received: float = 0.0
    scans: int = 0
    status: str = "idle"
    attempt: dict[str, Any] | None = None
    results: list[str] = field(default_factory=list)  # SR files of the last scan
    sessions: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)  # objects to queue (status forwarding)
    last_error: str | None = None
    failures: int = 0  # failed scans in a row of this generation
    retry_after: float = 0.0  # time.monotonic() before which a failed scan is not tried again
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pending_change(self) -> bool:
        return self.generation > self.scanned_generation

    def snapshot(self) -> StudyState:
        return StudyState(self.key, len(self.files), self.generation, self.scanned_generation, self.last_received,
                          self.scans, self.status, self.last_error, self.failures)

    def record(self) -> dict[str, Any]:
        return {"generation": self.generation, "scanned_generation": self.scanned_generation, "status": self.status,
                "attempt": self.attempt, "scans": self.scans, "results": self.results, "sessions": self.sessions,
                "forward": self.forward, "last_error": self.last_error, "failures": self.failures,
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _file_name(sop_uid: str) -> str:
    uid = sop_uid.strip().rstrip("\x00")
    if _UID.match(uid) and len(uid) <= 64:
        return f"{uid}.dcm"
    return hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32] + ".dcm"


def _meta_end(head: bytes) -> int:
    """Where the data set starts in a Part 10 stream (after the preamble and the File Meta
    Information group, whose length its first element gives); 0 when there is no preamble."""
    if len(head) >= 144 and head[128:132] == b"DICM" and head[132:136] == b"\x02\x00\x00\x00" \
            and head[136:138] == b"UL":
        return 144 + int.from_bytes(head[140:144], "little")
    return 0


def dataset_digest(source: bytes | Path) -> str:
    """SHA-256 of the data set (the File Meta Information left out: it names the sender's
    implementation and differs between senders of the same instance); read in chunks from a file."""
    h = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        h.update(data[_meta_end(data[:144]):])
        return h.hexdigest()
    with open(source, "rb") as fh:
        head = fh.read(144)
        start = _meta_end(head)
        fh.seek(start)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class Spool:
    """Durable storage of received instances, grouped by study, with one lock and one state per
    study (see the module's docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.studies_dir = self.root / "studies"
        self.incoming_dir = self.root / INCOMING
        self.studies_dir.mkdir(parents=True, exist_ok=True)
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)
        self._lock = threading.Lock()  # the index of studies; each study has its own lock
        self._index: dict[str, _Study] = {}
        for tmp in self.incoming_dir.iterdir():  # transfers a crash cut short: never acknowledged
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
        now = time.monotonic()
        for folder in sorted(p for p in self.studies_dir.iterdir() if p.is_dir()):
            for tmp in folder.glob(".*.tmp"):  # a write cut short by a crash: never acknowledged
                tmp.unlink(missing_ok=True)
            study = self._load(folder)
            # a restart waits a whole quiet period before scanning: the sender may still be sending
            study.last_received = now
            self._index[folder.name] = study

    # -- reading a study's folder back
    def _load(self, folder: Path) -> _Study:
        study = _Study(folder.name)
        index = folder / INDEX_NAME
        known: dict[str, tuple[str, int, int]] = {}  # name → (digest, size, mtime_ns)
        lines = 0
        if index.exists():
            for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    known[str(rec["file"])] = (str(rec["sha256"]), int(rec.get("size", -1)), int(rec.get("mtime_ns", -1)))
                    lines += 1
                except (ValueError, KeyError, TypeError):  # a line torn by a power cut: the last one
                    continue
        state = self._read_state(folder)
        legacy = not index.exists()
        for path in sorted(p for p in folder.glob("*.dcm") if not p.name.startswith(".")):
            st = path.stat()
            rec = known.get(path.name)
            if rec is not None and rec[1] == st.st_size and rec[2] == st.st_mtime_ns:
                study.files[path.name] = rec[0]
                continue
            digest = dataset_digest(path)  # new since the index line, or never indexed (a crash between)
            study.files[path.name] = digest
            if rec is None or rec[0] != digest:
                _append_line(index, {"file": path.name, "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
                lines += 1
        study.generation = lines
        if legacy:  # a spool from before the index: its state counted instances
            scanned = int(state.get("scanned", 0) or 0)
            study.scanned_generation = lines if lines and scanned >= len(study.files) else 0
        else:
            study.scanned_generation = min(int(state.get("scanned_generation", 0) or 0), lines)
        study.scans = int(state.get("scans", 0) or 0)
        study.status = str(state.get("status", "idle") or "idle")
        study.attempt = state.get("attempt") if isinstance(state.get("attempt"), dict) else None
        study.results = [str(p) for p in state.get("results", []) or []]
        study.sessions = [str(s) for s in state.get("sessions", []) or []]
        study.forward = [str(p) for p in state.get("forward", []) or []]
        study.last_error = state.get("last_error")
        study.failures = int(state.get("failures", 0) or 0)
        return study

    @staticmethod
    def _read_state(folder: Path) -> dict[str, Any]:
        try:
            doc = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, study: _Study) -> None:
        atomic_write_json(self.folder(study.key) / STATE_NAME, study.record())

    def folder(self, key: str) -> Path:
        return self.studies_dir / key

    def _study(self, key: str) -> tuple[_Study, bool]:
        with self._lock:
            study = self._index.get(key)
            if study is not None:
                return study, False
            study = self._index[key] = _Study(key, last_received=time.monotonic())
            return study, True

    # -- receiving
    def incoming_file(self) -> Path:
        """A fresh path in ``incoming/`` for a transfer to be written to before ``store_file``."""
        return self.incoming_dir / f"{time.monotonic_ns()}-{threading.get_ident()}-{os.urandom(4).hex()}.dcm"

    def store(self, encoded: bytes, study_uid: str, sop_uid: str) -> Stored:
        """Write one received instance (a Part 10 stream) durably; see ``store_file``."""
        tmp = self.incoming_file()
        with open(tmp, "wb") as fh:
            fh.write(encoded)
        return self.store_file(tmp, study_uid, sop_uid, dataset_digest(encoded))

    def store_file(self, received: Path, study_uid: str, sop_uid: str, digest: str | None = None) -> Stored:
        """Move ``received`` (a Part 10 file in ``incoming/``) into its study, fsynced, under the
        study's lock, and count it: an identical re-send is dropped and not counted (``same``); a
        changed one replaces the file and counts as a change (the study will be read again)."""
        key = study_key(study_uid)
        folder = self.folder(key)
        digest = digest or dataset_digest(received)
        study, created = self._study(key)
        with study.lock:
            new_study = created
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.studies_dir)  # the folder's entry survives a power cut, like its files
                new_study = True
            name = _file_name(sop_uid)
            path = folder / name
            before = study.files.get(name)
            study.last_received = time.monotonic()
            if before == digest and path.exists():
                Path(received).unlink(missing_ok=True)
                return Stored(key, path, new_study, "same")
            _fsync_file(received)
            os.replace(received, path)
            fsync_dir(folder)
            st = path.stat()
            _append_line(folder / INDEX_NAME, {"file": name, "sha256": digest, "size": st.st_size,
                                               "mtime_ns": st.st_mtime_ns})
            study.files[name] = digest
            study.generation += 1
            return Stored(key, path, new_study, "new" if before is None else "changed")

    def sweep_incoming(self, older_than_s: float) -> int:
        """Remove transfers in ``incoming/`` not written to for ``older_than_s`` seconds (what an
        aborted association left); the number removed."""
        cutoff = time.time() - older_than_s
        removed = 0
        for p in self.incoming_dir.iterdir():
            try:
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    # -- deciding and recording scans
    def claim_due(self, quiet_s: float, limit: int, session_id: Callable[[], str]) -> list[Claim]:
        """Up to ``limit`` studies whose generation is past the scanned one, idle, with nothing
        received for ``quiet_s`` seconds: each marked ``scanning`` durably, oldest first."""
        now = time.monotonic()
        with self._lock:
            candidates = sorted((s for s in self._index.values() if s.status == "idle" and now >= s.retry_after
                                 and s.generation > s.scanned_generation and now - s.last_received >= quiet_s),
                                key=lambda s: s.last_received)
        claims: list[Claim] = []
        for study in candidates:
            if len(claims) >= limit:
                break
            with study.lock:
                if not (study.status == "idle" and study.generation > study.scanned_generation
                        and time.monotonic() - study.last_received >= quiet_s):
                    continue
                sid = session_id()
                study.status = "scanning"
                study.attempt = {"generation": study.generation, "session_id": sid, "number": study.scans + 1,
                                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                self._save(study)
                claims.append(Claim(study.key, study.generation, sid, study.scans + 1, len(study.files),
                                    tuple(study.results), study.scans > 0))
        return claims

    def release(self, claim: Claim) -> None:
        """Give a claimed study back unscanned (no room on the disk yet): due again."""
        study, _ = self._study(claim.key)
        with study.lock:
            study.status, study.attempt = "idle", None
            self._save(study)

    def finish(self, claim: Claim, *, sessions: Sequence[str], results: Sequence[Path | str],
               forward: Sequence[Path | str], enqueue: Callable[[list[Path]], Any] | None,
               error: str | None = None, tries: int = 3, retry_in_s: float = 60.0) -> StudyState:
        """Record a finished scan: the objects to forward are written into the state first, then
        queued (``enqueue`` must be idempotent), then the study is ``idle`` with the claim's
        generation scanned. A failed scan (``error``) is tried again after ``retry_in_s``
        (quadrupled each time), ``tries`` times in all; then it counts as scanned, with its error,
        and is tried again only when the study changes — never in a loop."""
        study, _ = self._study(claim.key)
        with study.lock:
            study.status = "forwarding"
            study.forward = [str(p) for p in forward]
            study.sessions = list(sessions)
            if results:
                study.results = [str(p) for p in results]
            study.last_error = error
            self._save(study)
        if enqueue is not None and study.forward:
            enqueue([Path(p) for p in study.forward])
        with study.lock:
            study.status, study.attempt, study.forward = "idle", None, []
            study.scans += 1
            study.failures = study.failures + 1 if error is not None else 0
            if error is not None and study.failures < tries:
                study.retry_after = time.monotonic() + retry_in_s * 4 ** (study.failures - 1)
            else:
                study.scanned_generation = max(study.scanned_generation, claim.generation)
                study.failures = 0 if error is None else study.failures
            self._save(study)
            return study.snapshot()

    def interrupted(self) -> list[tuple[StudyState, dict[str, Any] | None, list[str]]]:
        """Studies a crash left ``scanning`` (with the attempt: its session ID) or ``forwarding``
        (with the objects still to queue)."""
        with self._lock:
            studies = [s for s in self._index.values() if s.status != "idle"]
        return [(s.snapshot(), s.attempt, list(s.forward)) for s in studies]

    def recover(self, key: str, enqueue: Callable[[list[Path]], Any] | None) -> None:
        """After a crash: a cut-short scan is forgotten (scanned again when due); results not yet
        queued are queued (idempotently) and the scan counted."""
        study, _ = self._study(key)
        if study.status == "forwarding":
            attempt = study.attempt or {}
            if enqueue is not None and study.forward:
                enqueue([Path(p) for p in study.forward])
            with study.lock:
                study.scanned_generation = max(study.scanned_generation,
                                               int(attempt.get("generation", study.generation)))
                study.scans += 1
                study.status, study.attempt, study.forward = "idle", None, []
                self._save(study)
            return
        with study.lock:
            study.status, study.attempt = "idle", None
            self._save(study)

    # -- views
    def due(self, quiet_s: float) -> list[StudyState]:
        """Studies that are due (see ``claim_due``), without claiming them."""
        now = time.monotonic()
        with self._lock:
            return [s.snapshot() for s in self._index.values()
                    if s.status == "idle" and s.pending_change and now - s.last_received >= quiet_s]

    def pending(self) -> list[StudyState]:
        with self._lock:
            return [s.snapshot() for s in self._index.values() if s.generation > s.scanned_generation]

    def state(self, key: str) -> StudyState | None:
        with self._lock:
            study = self._index.get(key)
        return None if study is None else study.snapshot()

    def studies(self) -> list[StudyState]:
        with self._lock:
            return [s.snapshot() for s in self._index.values()]

    def files(self, key: str) -> list[Path]:
        return sorted(p for p in self.folder(key).glob("*.dcm") if not p.name.startswith("."))

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)


def disk_free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
