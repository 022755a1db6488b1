"""What the sonographer sees while scanning: a live page in the cart's browser, an OpenCV window,
or a progress line (docs/design.md §13, docs/live-view.md).

``open_view(display, kind=…)`` returns a callable ``view(frame, result, session) -> bool`` (False:
the user asked to end the exam) with ``close()``; ``scan`` hands it to ``run_exam`` as
``on_frame`` and closes it when the exam is over. The kinds:

- ``web`` (``live_web.WebView``): a page served on ``http://127.0.0.1:PORT/`` for the cart's
  browser — the frame with the CAM on the bundle's fixed scale and its legend, the frame's
  probability and why it does or does not count, the running abnormal fraction against the
  threshold, the key-frame count, and the verdict when the exam ends; Space pauses, q or Esc
  ends. It needs nothing beyond the base install (``opencv-python-headless`` has no GUI).
- ``window`` (``WindowView``): the same picture in an OpenCV window with a status bar, where an
  OpenCV build with a GUI backend and a display exist; Space pauses, q or Esc ends.
- otherwise one progress line on stderr (rewritten in place on a terminal, a line every few
  seconds otherwise).

None shows a patient identifier. ``render_live`` draws the picture (≤ 5 ms for a 1080p frame:
``benchmarks/test_live_view.py``); ``frame_state`` says in words why a frame counts or not.
"""

from __future__ import annotations

import math
import os
import sys
import time
from functools import lru_cache
from typing import Any, Protocol, TextIO

import cv2
import numpy as np

from gout_edge.errors import UsageError

from .cam import CamScale, cam_legend, overlay_cam
from .report import VERDICT_COLOURS, ascii_text, why_line
from .sources._base import Frame

__all__ = [
    "LIVE_KINDS",
    "LiveView",
    "ProgressLine",
    "WindowView",
    "display_available",
    "frame_state",
    "has_display",
    "open_view",
    "render_live",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc
PAUSE_KEYS = (ord(" "), ord("p"), ord("P"))
LIVE_KINDS = ("auto", "web", "window")
DEFAULT_PORT = 8765


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


def has_display() -> bool:
    """Whether this session has a screen (X11 or Wayland; always on macOS and Windows)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or not sys.platform.startswith("linux")


def display_available() -> tuple[bool, str]:
    """(whether an OpenCV window can open, why not)."""
    if not has_display():
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    if gui_backend() is None:
        return False, ("this OpenCV build has no GUI backend (opencv-python-headless); "
                       "use the live page instead (--live-view web)")
    return True, ""


def open_view(display: bool | None = None, stream: TextIO | None = None, *, kind: str = "auto",
              port: int = DEFAULT_PORT, hold_s: float = 10.0, stop: Any = None,
              open_browser: bool | None = None) -> LiveView:
    """The live view for ``scan``.

    ``display``: False — the progress line; True — a live view (``UsageError`` when the one asked
    for cannot open); None — a live view when there is a screen to show it on, else the progress
    line. ``kind``: ``web`` (the page at ``http://127.0.0.1:port/``; ``port`` 0 picks a free
    one), ``window`` (an OpenCV window) or ``auto`` (the window where OpenCV has a GUI and a
    display exists, else the page). ``stop`` (``exam.Stop``): what the page's End button and the
    pause wait on; ``hold_s``: how long the page keeps showing the verdict to a browser that has
    not yet seen it; ``open_browser``: open the page in the system's browser (default: when
    there is a display).
    """
    if kind not in LIVE_KINDS:
        raise UsageError(f"unknown live view {kind!r}; expected one of {', '.join(LIVE_KINDS)}")
    stream = stream or sys.stderr
    if display is False:
        return ProgressLine(stream)
    window_ok, why = display_available()
    if kind == "window" or (kind == "auto" and window_ok):
        if not window_ok:
            raise UsageError(f"--live-view window needs an OpenCV window, but {why}")
        return WindowView(stop=stop)
    if kind == "auto" and not has_display():
        if display:
            raise UsageError("--display asked for a live view, but there is no display (DISPLAY and WAYLAND_DISPLAY "
                             "are not set); pass --live-view web to serve the live page anyway (open it through an "
                             "SSH tunnel), or --no-display")
        return ProgressLine(stream)
    from .live_web import WebView

    return WebView(port=port, stop=stop, hold_s=hold_s, stream=stream,
                   open_browser=has_display() if open_browser is None else open_browser)


# ------------------------------------------------------------------------------------ what a frame is


def frame_state(result: Any) -> tuple[str, bool, str]:
    """(state, counted, words): whether the frame enters the vote and, if not, why — in the words
    the live view shows. States: ``key``, ``scored`` (usable, not a key frame), ``blank``,
    ``colour``, ``scope`` (out of scope, when a gate says so), ``duplicate``."""
    if result.blank:
        return "blank", False, "not counted: no signal (probe lifted or blank screen)"
    if result.colour:
        return "colour", False, "not counted: colour Doppler"
    if getattr(result, "out_of_scope", False):
        return "scope", False, "not counted: not an image this model was made for"
    if result.key_frame:
        return "key", True, f"counted: key frame {result.key_index}"
    if result.duplicate:
        return "duplicate", False, "not counted: repeats an earlier frame (frozen screen)"
    return "scored", False, "not counted: probe moving, low contrast, or like a recent key frame"


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
        state = frame_state(result)[0]
        state = "" if state == "scored" else "repeat" if state == "duplicate" else state
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


# ------------------------------------------------------------------------------------ the picture


def render_live(frame: Frame, result: Any, scale: CamScale | None = None, max_width: int = 1280,
                status: bool = True) -> np.ndarray:
    """The frame with the CAM over its region on ``scale``, the region outlined (amber on a key
    frame), the legend on the right and, with ``status``, a status bar on top (BGR uint8).

    A frame wider than ``max_width`` is shrunk by a whole factor (a 1080p frame to 960 × 540),
    which OpenCV does cheaply; the CAM is laid over the shrunk region."""
    image = frame.image
    h, w = image.shape[:2]
    k = max(1, math.ceil(w / max_width))
    if k > 1:
        shown = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    else:
        shown = image.copy()  # never draw on the frame
    bgr = cv2.cvtColor(shown, cv2.COLOR_GRAY2BGR) if shown.ndim == 2 else np.ascontiguousarray(shown[:, :, :3])
    roi = result.roi
    x0, y0, x1, y1 = roi.x0 // k, roi.y0 // k, roi.x1 // k, roi.y1 // k
    if result.cam is not None and x1 > x0 and y1 > y0:
        bgr[y0:y1, x0:x1] = overlay_cam(bgr[y0:y1, x0:x1], result.cam, scale)
    if x1 > x0 and y1 > y0:
        colour = (0, 190, 255) if result.key_frame else (150, 150, 150)
        cv2.rectangle(bgr, (x0, y0), (x1 - 1, y1 - 1), colour, 2 if result.key_frame else 1)
    out = np.hstack([bgr, cam_legend(scale, bgr.shape[0], dark=True)[: bgr.shape[0]]]) if bgr.shape[0] >= 90 else bgr
    if not status:
        return out
    p = "not scored" if result.probability is None else f"p {result.probability:.2f}"
    words = frame_state(result)[2]
    text = f"{p} | {words} | abnormal fraction {_fmt_fraction(result)} | key frames {result.key_frames} | space: pause, q: end"
    bar = np.full((32, out.shape[1], 3), 20, np.uint8)
    cv2.putText(bar, text.replace("–", "-"), (8, 22), _FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, out])


def verdict_banner(image: np.ndarray, result: Any) -> np.ndarray:
    """``image`` with the exam's verdict written across its top (the window's last picture)."""
    out = image.copy()
    colour = VERDICT_COLOURS.get(result.diagnosis, VERDICT_COLOURS["indeterminate"])
    cv2.rectangle(out, (0, 0), (out.shape[1], 84), colour, -1)
    cv2.putText(out, result.diagnosis.upper(), (12, 44), _FONT, 1.3, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(out, ascii_text(why_line(result))[:140], (12, 72), _FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class WindowView:
    """An OpenCV window (needs an OpenCV build with a GUI); Space pauses, q or Esc ends. At the
    end it shows the verdict until a key is pressed or ``hold_s`` passes."""

    def __init__(self, title: str = "gout-edge scan", stop: Any = None, hold_s: float = 10.0) -> None:
        self.title = title
        self.stop = stop
        self.hold_s = hold_s
        self._picture: np.ndarray | None = None
        self._sessions: list[Any] = []
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def __call__(self, frame: Frame, result: Any, session: Any) -> bool:
        if not self._sessions or self._sessions[-1] is not session:
            self._sessions.append(session)
        self._picture = render_live(frame, result, getattr(session, "cam_scale", None))
        cv2.imshow(self.title, self._picture)
        key = cv2.waitKey(1) & 0xFF
        if key in PAUSE_KEYS:
            while True:  # paused: nothing is fed until Space again
                key = cv2.waitKey(100) & 0xFF
                if key in PAUSE_KEYS or key in QUIT_KEYS or (self.stop is not None and self.stop.is_set()):
                    break
        return key not in QUIT_KEYS

    def close(self) -> None:
        try:
            if self._picture is not None and self._sessions and self.hold_s > 0:
                cv2.imshow(self.title, verdict_banner(self._picture, self._sessions[-1].result()))
                cv2.waitKey(int(self.hold_s * 1000))
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
