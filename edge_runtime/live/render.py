"""The live picture and its words: ``render_live`` draws a frame with its CAM, region, legend and
status bar (≤ 5 ms for a 1080p frame: ``benchmarks/test_live_view.py``); ``frame_state`` says why a
frame counts or not; ``ProgressLine`` is the view without a screen. Shared by the window and the page."""

from __future__ import annotations

import math
import time
from typing import Any, TextIO

import cv2
import numpy as np

from gout_edge.edge_runtime.present.overlay import cam_legend, overlay_cam
from gout_edge.edge_runtime.present.report import VERDICT_COLOURS, ascii_text, why_line
from gout_edge.edge_runtime.sources._base import Frame
from gout_edge.manifest import CamScale

__all__ = ["ProgressLine", "frame_state", "render_live", "verdict_banner"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


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
        return "key", True, f"counted: key frame {result.key_index + 1}"  # numbered from 1, as the summary
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
        return (f"scan {session.session_id} · frames {session.tally.frames_seen} · scored {session.tally.frames_scored} · "
                f"dropped {session.dropped} · key frames {result.key_frames} · abnormal {_fmt_fraction(result)} · "
                f"p {p} {state}".rstrip())

    def __call__(self, frame: Frame, result: Any, session: Any) -> bool:
        now = time.monotonic()
        self._last = self.line(result, session)
        if now >= self._next:
            self._next = now + self.interval_s
            self._write(self._last)
            if not self.tty:
                self._last = ""  # written as it is: not again at the end
        return True

    def _write(self, text: str) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def flush(self) -> None:
        """The latest state, once, ending the line: called by ``run_exam`` before a session closes,
        so that no progress line comes after the session's verdict."""
        if self._last:
            self._write(self._last)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
            self._last, self._width = "", 0

    def close(self) -> None:
        self.flush()


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
