"""Frame sources behind one small interface, in a registry that imports each kind lazily.

    from gout_edge.edge_runtime.sources import open_source

    source = open_source("dicom", "STUDY/", strict=True)
    for frame in source:          # Frame: image, index, timestamp_s, roi, group, patient_id, …
        ...
    source.close()

Kinds: ``v4l2`` (a capture device: path or index), ``video`` (a file or stream URL),
``images`` (a folder of PNG/JPEG/DICOM), ``dicom`` (a file, cine or study tree). ``video_kind``
tells ``v4l2`` from ``video`` for a ``--video`` argument. Any iterable of ``Frame`` with
``close()`` is a source too: the phantom generator's demo recording is
one, handed to ``run_exam`` by the ``scan --demo`` command.

File sources share one error boundary per file and the size ceilings checked before decoding
(``_guard``, docs/design.md §8): a file that cannot be read is an ``InputError`` naming it by its
base name; a folder scan skips it and lists it in ``source.skipped`` (``SkippedFile``: name and
reason); a file source that ended before all of its input was read has ``complete`` False.
"""

from __future__ import annotations

import importlib
from typing import Any

from gout_edge.errors import UsageError

from ._base import Frame, FrameSource, SourceGroup
from ._guard import MAX_DECODED_BYTES, MAX_FRAME_PIXELS, SkippedFile, reason_of

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_FRAME_PIXELS",
    "REGISTRY",
    "Frame",
    "FrameSource",
    "SkippedFile",
    "SourceGroup",
    "open_source",
    "reason_of",
    "video_kind",
]

# kind → "module:factory", relative to this package; the factory takes (target, **options)
REGISTRY: dict[str, str] = {
    "v4l2": ".v4l2:V4L2Source",
    "video": ".video:VideoSource",
    "images": ".images:ImageFolderSource",
    "dicom": ".dicom:DicomSource",
}


def video_kind(target: str) -> str:
    """``--video`` argument → source kind: an index or ``/dev/…`` is a device, anything else a video."""
    text = str(target)
    return "v4l2" if text.isdigit() or text.startswith("/dev/") else "video"


def open_source(kind: str, target: Any = None, **options: Any) -> FrameSource:
    """Open a source of ``kind`` on ``target`` (a path, URL or device)."""
    try:
        module_name, factory = REGISTRY[kind].split(":")
    except KeyError:
        raise UsageError(f"unknown frame source {kind!r}; choose one of {', '.join(REGISTRY)}") from None
    cls = getattr(importlib.import_module(module_name, __package__), factory)
    return cls(target, **options)
