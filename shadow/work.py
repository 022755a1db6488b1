"""The work folder: what makes a night's run survive a crash, a reboot or ``kill -9``.

``OUT/work/`` holds

- ``run.json``: which bundles (folder, SHA-256 of ``manifest.json``, engine, precision) scored
  the studies of which archive. A rerun with other bundles or another archive is refused instead
  of mixing two runs' results in one table;
- ``headers.json``: the archive's header cache (``archive.discover``);
- ``studies/<key>.json``: one record per finished study, written atomically (temporary file,
  fsync, rename, fsync of the folder) by the driver as each result arrives.

A study is finished when its record exists; a rerun scores only the others. The tables are
merged from the records at the end of every run, so a run that was killed and rerun ends with
the same tables as one that never stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gout_edge._io import atomic_write_json, atomic_write_text, dumps_json
from gout_edge.errors import UsageError

__all__ = ["WORK_FORMAT", "WorkFolder"]

log = logging.getLogger(__name__)

WORK_FORMAT = "gout-edge-shadow-work"
WORK_VERSION = 1


class WorkFolder:
    def __init__(self, out: Path) -> None:
        self.dir = Path(out) / "work"
        self.studies = self.dir / "studies"

    @property
    def run_file(self) -> Path:
        return self.dir / "run.json"

    def start(self, fingerprint: dict[str, Any]) -> bool:
        """Create the folder for a run of ``fingerprint``, or check that the one there is of the
        same run. Returns True when a previous run's records are taken up."""
        self.studies.mkdir(parents=True, exist_ok=True)
        want = {"format": WORK_FORMAT, "version": WORK_VERSION, **fingerprint}
        if self.run_file.exists():
            try:
                have = json.loads(self.run_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                have = None
            if have != want:
                what = "another archive" if have and have.get("archive") != want["archive"] else "other bundles"
                raise UsageError(
                    f"the work folder {self.dir} holds results of {what} (see its run.json); a rerun resumes only the "
                    "same archive with the same bundles, engine settings aside: give another --out, or remove that "
                    "folder to start again"
                )
            return True
        atomic_write_json(self.run_file, want)
        return False

    def finished(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` whose record is on disk."""
        present = {p.stem for p in self.studies.glob("*.json")}
        return {k for k in keys if k in present}

    def commit(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.studies / f"{record['key']}.json", dumps_json(record, indent=None) + "\n")

    def load(self, key: str) -> dict[str, Any]:
        return json.loads((self.studies / f"{key}.json").read_text(encoding="utf-8"))

    def headers(self) -> dict[str, Any]:
        path = self.dir / "headers.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def save_headers(self, headers: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "headers.json", dumps_json(headers, indent=None) + "\n")
