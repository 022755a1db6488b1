"""The few file and JSON helpers every layer shares; one implementation each.

- **Atomic writes**: ``atomic_write(path, write)`` lets ``write`` fill a temporary file in the
  same folder, fsyncs it, renames it over ``path`` and fsyncs the folder, so that a reader (or a
  cart after a power cut) sees the old file or the new one, never a torn one.
- **JSON**: ``to_json`` turns results into plain JSON values. The one NaN policy: NaN and
  infinities become ``null`` (JSON has no NaN; a string ``"nan"`` would pass for a value).
  Dataclasses become objects, tuples lists, numpy scalars and arrays Python numbers and lists,
  paths strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "crash_folder",
    "dumps_json",
    "fsync_dir",
    "sha256_file",
    "to_json",
]


def sha256_file(path: Path | str, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path | str) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` fills a temporary file beside ``path``; it is fsynced, renamed over ``path``
    and the folder fsynced. On any failure the temporary file is removed and ``path`` untouched."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(value: Any) -> Any:
    """Plain JSON values (see the module docstring for the rules; NaN and infinities → None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return to_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_json(value: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``to_json`` then ``json.dumps`` with ``allow_nan=False``: what is written is strict JSON."""
    return json.dumps(to_json(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def atomic_write_json(path: Path | str, value: Any) -> Path:
    return atomic_write_text(path, dumps_json(value) + "\n")


def crash_folder() -> Path:
    """Where crash files go: ``$XDG_STATE_HOME/gout-edge`` (default ``~/.local/state/gout-edge``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "gout-edge"
