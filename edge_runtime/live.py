"""What the sonographer sees while scanning: a window with the CAM, or a progress line.

``open_view(display)`` returns a callable ``view(frame, result, session) -> bool`` (False: the
user asked to end the exam) with ``close()``. With a display (``DISPLAY`` or ``WAYLAND_DISPLAY``
set and an OpenCV build with a GUI backend — ``opencv-python-headless`` has none) it is an
OpenCV window: the frame with the CAM over the region, the frame's probability, the running
abnormal fraction and key-frame count; q or Esc ends the exam. Headless, it is one progress line
on stderr (rewritten in place on a terminal, a line every few seconds otherwise). Neither shows
a patient identifier.
"""

from __future__ import annotations

import os
import sys
import time
from functools import lru_cache
from typing import Any, Protocol, TextIO

import cv2
import numpy as np

from gout_edge.errors import UsageError

from .cam import overlay_cam
from .sources._base import Frame

__all__ = ["LiveView", "ProgressLine", "WindowView", "display_available", "open_view", "render_live"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc


class LiveView(Protocol):
    def __call__(self, frame: Frame, result: Any, session: Any) -> bool: ...

    def close(self) -> None: ...


@lru_cache(maxsize=1)
def gui_backend() -> str | None:
    """The GUI backend OpenCV was built with (GTK, QT, WIN32UI, COCOA …), or None."""
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "GUI":
            value = value.strip()
            return None if not value or value.upper() == "NONE" else value
    return None


def display_available() -> tuple[bool, str]:
    """(whether a window can open, why not)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    if gui_backend() is None:
        return False, ("this OpenCV build has no GUI backend (opencv-python-headless); "
                       "install opencv-python instead for a live window")
    return True, ""


def open_view(display: bool | None = None, stream: TextIO | None = None) -> LiveView:
    """``display``: True (a window, or ``UsageError`` when impossible), False (progress line),
    None (a window when one can open)."""
    ok, why = display_available()
    if display and not ok:
        raise UsageError(f"--display asked for a live window, but {why}; use --no-display")
    if (display is None and ok) or display:
        return WindowView()
    return ProgressLine(stream or sys.stderr)


def _fmt_fraction(result: Any) -> str:
    f = result.abnormal_fraction
    return "–" if f is None else f"{f:.2f} ({result.abnormal_key_frames}/{result.key_frames})"


class ProgressLine:
    """One line on stderr: frames, scored, key frames, running abnormal fraction, last probability."""

    def __init__(self, stream: TextIO, interval_s: float | None = None) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.1 if self.tty else 2.0)
        self._next = 0.0
        self._last = ""
        self._width = 0

    def line(self, result: Any, session: Any) -> str:
        p = "–" if result.probability is None else f"{result.probability:.2f}"
        state = "blank" if result.blank else "colour" if result.colour else "repeat" if result.duplicate else "key" if result.key_frame else ""
        return (f"scan {session.session_id} · frames {session.frames_seen} · scored {session.frames_scored} · "
                f"dropped {session.dropped} · key frames {result.key_frames} · abnormal {_fmt_fraction(result)} · "
                f"p {p} {state}".rstrip())

    def __call__(self, frame: Frame, result: Any, session: Any) -> bool:
        now = time.monotonic()
        self._last = self.line(result, session)
        if now >= self._next:
            self._next = now + self.interval_s
            self._write(self._last)
        return True

    def _write(self, text: str) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._last:
            self._write(self._last)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()


def render_live(frame: Frame, result: Any, max_width: int = 1280) -> np.ndarray:
    """The frame with the CAM over its region and a status bar (BGR uint8)."""
    image = frame.image
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()  # never draw on the frame
    roi = result.roi
    if result.cam is not None and roi.width > 0 and roi.height > 0:
        bgr[roi.y0 : roi.y1, roi.x0 : roi.x1] = overlay_cam(bgr[roi.y0 : roi.y1, roi.x0 : roi.x1], result.cam)
    colour = (0, 200, 255) if result.key_frame else (200, 200, 200)
    cv2.rectangle(bgr, (roi.x0, roi.y0), (roi.x1 - 1, roi.y1 - 1), colour, 2)
    scale = min(1.0, max_width / bgr.shape[1])
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    p = "not scored" if result.probability is None else f"p {result.probability:.2f}"
    if result.blank:
        p += " (no signal)"
    elif result.colour:
        p += " (colour Doppler: not voted)"
    status = f"{p} | abnormal fraction {_fmt_fraction(result)} | key frames {result.key_frames} | q/Esc: end exam"
    bar = np.full((32, bgr.shape[1], 3), 20, np.uint8)
    cv2.putText(bar, status.replace("–", "-"), (8, 22), _FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, bgr])


class WindowView:
    """An OpenCV window; q or Esc ends the exam."""

    def __init__(self, title: str = "gout-edge scan") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def __call__(self, frame: Frame, result: Any, session: Any) -> bool:
        cv2.imshow(self.title, render_live(frame, result))
        key = cv2.waitKey(1) & 0xFF
        return key not in QUIT_KEYS

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
