"""The receive spool: every instance a peer sends is on disk, fsynced, before it is acknowledged.

Layout: ``<spool>/studies/<key>/<SOP Instance UID>.dcm``, where ``<key>`` is the study's
pseudonym (``study_key``: 16 hex digits of the SHA-256 of its Study Instance UID; folder names
and logs carry no patient attribute). Each file is the DICOM Part 10 stream as received (preamble,
file meta, data set), written by ``_io.atomic_write_bytes``: a temporary file, fsync, rename, fsync
of the folder. A new study folder is fsynced into ``studies/`` before its first file lands.
``.state.json`` in a study folder records how many instances the last scan saw, so that a study
is scanned again only when new instances have arrived since.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gout_edge._io import atomic_write_bytes, atomic_write_json, fsync_dir
from gout_edge.edge_runtime.imaging.dicom_identity import study_key

__all__ = ["STATE_NAME", "Spool", "StudyState"]

STATE_NAME = ".state.json"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass
class StudyState:
    """What the spool knows of one study: instances on disk, when the last one came, and how many
    instances the last scan saw (``scans`` scans so far)."""

    key: str
    instances: int
    last_received: float  # time.monotonic()
    scanned: int = 0
    scans: int = 0

    @property
    def pending(self) -> bool:
        return self.instances > self.scanned


def _file_name(sop_uid: str) -> str:
    import hashlib

    uid = sop_uid.strip().rstrip("\x00")
    if _UID.match(uid) and len(uid) <= 64:
        return f"{uid}.dcm"
    return hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32] + ".dcm"


class Spool:
    """Durable storage of received instances, grouped by study, with an index in memory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.studies_dir = self.root / "studies"
        self.studies_dir.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)
        self._lock = threading.Lock()
        self._index: dict[str, StudyState] = {}
        now = time.monotonic()
        for folder in sorted(p for p in self.studies_dir.iterdir() if p.is_dir()):
            for tmp in folder.glob(".*.tmp"):  # a write cut short by a crash: never acknowledged
                tmp.unlink(missing_ok=True)
            state = self._read_state(folder)
            # a restart waits a whole quiet period before scanning: the sender may still be sending
            self._index[folder.name] = StudyState(folder.name, self._count(folder), now,
                                                  int(state.get("scanned", 0)), int(state.get("scans", 0)))

    @staticmethod
    def _count(folder: Path) -> int:
        return sum(1 for p in folder.glob("*.dcm") if not p.name.startswith("."))

    @staticmethod
    def _read_state(folder: Path) -> dict:
        try:
            return json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def folder(self, key: str) -> Path:
        return self.studies_dir / key

    def store(self, encoded: bytes, study_uid: str, sop_uid: str) -> tuple[str, Path, bool]:
        """Write one received instance durably; (study key, path, whether the study is new here)."""
        key = study_key(study_uid)
        folder = self.folder(key)
        new_study = False
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.studies_dir)  # the folder's entry survives a power cut, like its files
            new_study = True
        path = folder / _file_name(sop_uid)
        existed = path.exists()
        atomic_write_bytes(path, encoded)  # fsync of the file, rename, fsync of the folder
        with self._lock:
            state = self._index.get(key)
            if state is None:
                state = self._index[key] = StudyState(key, 0, time.monotonic())
                new_study = True
            if not existed:
                state.instances += 1
            state.last_received = time.monotonic()
        return key, path, new_study

    def due(self, quiet_s: float) -> list[StudyState]:
        """Studies with instances no scan has seen, and nothing received for ``quiet_s`` seconds."""
        now = time.monotonic()
        with self._lock:
            return [StudyState(**vars(s)) for s in self._index.values() if s.pending and now - s.last_received >= quiet_s]

    def pending(self) -> list[StudyState]:
        with self._lock:
            return [StudyState(**vars(s)) for s in self._index.values() if s.pending]

    def files(self, key: str) -> list[Path]:
        return sorted(p for p in self.folder(key).glob("*.dcm") if not p.name.startswith("."))

    def mark_scanned(self, key: str, instances: int, sessions: list[str]) -> None:
        """Record that a scan saw ``instances`` instances of the study (durably)."""
        with self._lock:
            state = self._index.get(key)
            if state is None:
                return
            state.scanned = max(state.scanned, instances)
            state.scans += 1
            record = {"scanned": state.scanned, "scans": state.scans, "sessions": sessions,
                      "scanned_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(self.folder(key) / STATE_NAME, record)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)


def disk_free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
