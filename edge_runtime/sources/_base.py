"""The frame-source interface: an iterator of ``Frame``s with ``close()``.

A source turns one kind of input (a capture device, a video, a folder of images, DICOM) into
frames of one shape: an 8-bit grey or BGR image and what the source knows about it — the
ultrasound region a DICOM file declares, which patient and study it belongs to, whether it is a
stored still image. Patient identifiers travel in frames for the report; they are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from gout_edge.edge_runtime.imaging.dicom_identity import SourceInstance
from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.errors import InputError

from ._guard import SkippedFile

__all__ = ["BACKOFF_S", "FileSource", "Frame", "FrameSource", "Reconnect", "SkippedFile", "SourceGroup", "to_uint8"]

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # waits before each reconnect attempt of a lost live source


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    ``image``: uint8, H×W grey or H×W×3 BGR (owned by the frame; sources never reuse it).
    ``roi``: the ultrasound region the source declares (DICOM Sequence of Ultrasound Regions),
    already clipped to the image; ``None`` when the image must be analysed.
    ``group``: the patient/study the frame belongs to ("" for a single exam); frames of one group
    arrive together. ``patient_id``: for the report only — never log it.
    ``still``: a stored still image (each distinct one is a key-frame candidate), as opposed to
    live video or a cine loop, whose neighbouring frames repeat each other.
    ``origin``: where the frame came from, in words (a file relative to the source's root and a
    frame number), for the journal and the report; ``file`` and ``frame_number`` (from 1, in a
    multi-frame file; None for a still or a video) say the same as fields. ``view``: the protocol
    view the file's name or DICOM tags name (``imaging.views``); None when unknown.
    ``colour_sample``: for a grey ``image`` taken from colour video (a YUYV grabber's Y plane), a
    BGR sample of the frame at every ``preprocess.COLOUR_STRIDE``-th pixel of every
    ``COLOUR_STRIDE``-th row, set by the decoder, for the Doppler gate; ``None`` otherwise.
    """

    image: np.ndarray
    index: int
    timestamp_s: float
    roi: Roi | None = None
    group: str = ""
    patient_id: str | None = None
    still: bool = False
    origin: str = ""
    file: str = ""
    frame_number: int | None = None
    view: str | None = None
    pixel_mm: float | None = None
    dicom: SourceInstance | None = None  # the source image's study and UIDs (DICOM input), for DICOM results
    colour_sample: np.ndarray | None = field(default=None, repr=False, compare=False)


class FileSource:
    """What the file sources (images, DICOM) share: a root, the strict flag, the files skipped
    with a warning (``skipped``: base name and reason), and the end-of-input state a live source
    also reports (``complete`` is False when the input ended before all of it was read)."""

    live = False
    read_ahead = 0

    def __init__(self, target: str | Path, strict: bool) -> None:
        self.root = Path(target).expanduser()
        self.strict = strict
        self.lost = False
        self.complete = True
        self.end_reason: str | None = None
        self.skipped: list[SkippedFile] = []
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def defer_decoding(self) -> None:
        """Files are read in order, every frame: nothing to defer."""
        return None

    def skip(self, name: str, reason: str) -> None:
        """Leave a file out, with a warning naming it (base name only) and why."""
        log.warning("skipped %s: %s", name, reason)
        self.skipped.append(SkippedFile(name, reason))

    def nothing_read(self, files: int, what: str) -> InputError:
        """The error for a folder in which not one of ``files`` gave a frame: why, file by file."""
        shown = "; ".join(str(s) for s in self.skipped[:5]) + (" …" if len(self.skipped) > 5 else "")
        return InputError(
            f"none of the {files} {what} given could be read, so there is nothing to scan"
            + (f" ({shown})" if shown else "")
        )


@dataclass(frozen=True)
class SourceGroup:
    """One patient/study of a file source: its key, patient ID (never logged) and size."""

    key: str
    patient_id: str | None
    files: int
    frames: int


@runtime_checkable
class FrameSource(Protocol):
    """What every source offers.

    ``live``: frames arrive in real time whether or not anyone reads them, so a consumer that
    falls behind must drop (``stream.FrameStream`` keeps only the newest). ``lost``: a live
    source ended because its device stopped giving frames and did not come back;
    ``end_reason`` then says so in words. ``complete``: False when the input ended before all of
    it was read (a cut file). ``skipped``: the input files left out, each with why.
    ``read_ahead``: how many frames a reader may decode ahead of use (0: none). ``defer_decoding()``:
    for a live source whose frames can leave undecoded, the decoder the reader applies to the
    frame it takes; None otherwise.
    """

    kind: str
    live: bool
    lost: bool
    complete: bool
    end_reason: str | None
    skipped: Sequence[SkippedFile]
    read_ahead: int

    def __iter__(self) -> Iterator[Frame]: ...

    def defer_decoding(self) -> Callable[[Frame], Frame | None] | None: ...

    def close(self) -> None: ...


class Reconnect:
    """Waits with back-off between reconnect attempts; ``wait`` returns early when closed."""

    def __init__(self, backoff_s: Sequence[float] = BACKOFF_S) -> None:
        self.backoff_s = tuple(backoff_s)
        self.closed = threading.Event()
        self.attempts = 0

    def run(self, attempt: Callable[[], bool], what: str) -> bool:
        """Call ``attempt`` after each wait until it returns True; False when all failed."""
        for delay in self.backoff_s:
            log.warning("%s: no frame; reconnecting in %.1f s", what, delay)
            if self.closed.wait(delay):
                return False
            self.attempts += 1
            try:
                if attempt():
                    log.warning("%s: frames again after %d attempt(s)", what, self.attempts)
                    return True
            except Exception as exc:  # a reopen that fails is one failed attempt
                log.debug("%s: reconnect attempt failed: %s", what, exc)
        return False

    @property
    def total_s(self) -> float:
        return float(sum(self.backoff_s))


def to_uint8(image: np.ndarray, bits_stored: int | None = None) -> np.ndarray:
    """Scale integer or float pixels to uint8: integers by their stored bit depth, floats min-max."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return np.nan_to_num((image - lo) * scale).astype(np.uint8)
    bits = bits_stored or 8 * image.dtype.itemsize
    x = image.astype(np.float32)
    if image.dtype.kind == "i":  # signed: shift into 0 … 2**bits - 1
        x += 2.0 ** (bits - 1)
    x *= 255.0 / (2.0**bits - 1.0)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
