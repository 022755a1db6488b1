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

import os
import sys
from functools import lru_cache
from typing import Any, Protocol, TextIO

import cv2
import numpy as np

from gout_edge.edge_runtime.sources._base import Frame
from gout_edge.errors import UsageError

from .render import ProgressLine, render_live, verdict_banner
from .web import WebView

__all__ = [
    "LIVE_KINDS",
    "LiveView",
    "WindowView",
    "display_available",
    "has_display",
    "open_view",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc
PAUSE_KEYS = (ord(" "), ord("p"), ord("P"))
LIVE_KINDS = ("auto", "web", "window")
DEFAULT_PORT = 8765


class LiveView(Protocol):
    """What ``scan`` does with a view: call it with each frame (False: the user ended the exam),
    ``flush`` it before a session's verdict is logged (no progress line after it), ``close`` it."""

    def __call__(self, frame: Frame, result: Any, session: Any) -> bool: ...

    def flush(self) -> None: ...

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
    one), ``window`` (an OpenCV window, where OpenCV has a GUI) or ``auto`` (the page where a display
    exists, else the progress line; as the README and ``scan --help`` say). ``stop`` (``exam.Stop``): what the page's End button and the
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
    if kind == "window":  # only when asked for: the page is the bedside view (docs/live-view.md)
        if not window_ok:
            raise UsageError(f"--live-view window needs an OpenCV window, but {why}")
        return WindowView(stop=stop)
    if kind == "auto" and not has_display():
        if display:
            raise UsageError("--display asked for a live view, but there is no display (DISPLAY and WAYLAND_DISPLAY "
                             "are not set); pass --live-view web to serve the live page anyway (open it through an "
                             "SSH tunnel), or --no-display")
        return ProgressLine(stream)
    return WebView(port=port, stop=stop, hold_s=hold_s, stream=stream,
                   open_browser=has_display() if open_browser is None else open_browser)


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

    def flush(self) -> None:
        """Nothing to end: the window has no progress line."""

    def close(self) -> None:
        try:
            if self._picture is not None and self._sessions and self.hold_s > 0:
                cv2.imshow(self.title, verdict_banner(self._picture, self._sessions[-1].result()))
                cv2.waitKey(int(self.hold_s * 1000))
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
