"""Numbers read from a file or a header, checked where they enter (docs/design.md §8).

A timing or spacing value that a file states (DICOM Frame Time, Cine Rate, a video's frame rate
or a frame's position) is used only when it is a finite number inside a plausible range. Anything
else — NaN, an infinity (``1e309`` parses as one), a negative or zero interval, a frame rate of a
million, a value that is no number — is treated as absent: the reader goes on exactly as if the
file had not stated it, and says so in one warning per file that names the tag and the class of
the value (``not a number``, ``infinite``, ``negative``, ``zero``, ``too large``, …), never the
value itself nor anything else from the file.

    checks = ValueChecks("IM0001.dcm")
    frame_ms = checks.number("Frame Time", ds.get("FrameTime"), FRAME_INTERVAL_MS)
    checks.warn()   # one line, only when something was dropped
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

__all__ = [
    "FRAME_INTERVAL_MS",
    "FRAME_RATE_HZ",
    "FRAME_TIME_S",
    "PIXEL_SPACING_CM",
    "Range",
    "ValueChecks",
    "checked_number",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Range:
    """Where a value is plausible: ``low < x ≤ high`` (``low ≤ x`` with ``low_inclusive``)."""

    low: float
    high: float
    low_inclusive: bool = False


# One frame's interval: above 0, at most an hour (a cine is seconds long; a longer gap is no timing).
FRAME_INTERVAL_MS = Range(0.0, 3_600_000.0)
# A stated frame rate (Cine Rate, a container's FPS): above 0, at most 10 000 frames a second.
FRAME_RATE_HZ = Range(0.0, 10_000.0)
# A frame's position in a file: from 0 to a day.
FRAME_TIME_S = Range(0.0, 86_400.0, low_inclusive=True)
# The width of a pixel in cm (DICOM Physical Delta X): above 0, below 10 m.
PIXEL_SPACING_CM = Range(0.0, 1e3)


def checked_number(value: object, allowed: Range) -> tuple[float | None, str | None]:
    """``(number, None)`` for a single finite number inside ``allowed``; ``(None, why)`` otherwise,
    ``why`` the class of the value (``None, None`` when the value is absent: None or empty)."""
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return None, None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return None, "several values"
    if isinstance(value, bool):
        return None, "not a number"
    try:
        x = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None, "infinite"
    except (TypeError, ValueError):
        return None, "not a number"
    if math.isnan(x):
        return None, "not a number (NaN)"
    if math.isinf(x):
        return None, "infinite"
    if x < 0 and not (allowed.low_inclusive and x >= allowed.low):
        return None, "negative"
    if x == 0 and not (allowed.low_inclusive and allowed.low == 0):
        return None, "zero"
    if x < allowed.low or (x == allowed.low and not allowed.low_inclusive):
        return None, "too small"
    if x > allowed.high:
        return None, "too large"
    return x, None


class ValueChecks:
    """The values of one file, checked as they are read; ``warn()`` logs the dropped ones once."""

    def __init__(self, name: str) -> None:
        self.name = name  # the file's base name (never a folder: folders can be patient names)
        self.dropped: dict[str, str] = {}  # tag → class of its value
        self._warned: set[str] = set()

    def number(self, tag: str, value: object, allowed: Range) -> float | None:
        """The value as a float, or None (absent, or dropped and remembered for the warning)."""
        x, why = checked_number(value, allowed)
        if why is not None:
            self.dropped.setdefault(tag, why)
        return x

    def warn(self) -> None:
        """One warning naming each tag dropped since the last call, and why; nothing when none was
        (a tag is named once per file, however many frames repeat it)."""
        new = {tag: why for tag, why in self.dropped.items() if tag not in self._warned}
        if not new:
            return
        self._warned.update(new)
        shown = "; ".join(f"{tag} is {why}" for tag, why in new.items())
        log.warning("%s: %s; treated as absent", self.name or "a file", shown)
