"""A V4L2 capture device (an HDMI/DVI → USB grabber mirroring the scanner's screen).

``cv2.VideoCapture(path_or_index, cv2.CAP_V4L2)``; the four-character code (MJPG by default: UVC
grabbers deliver 1080p only as MJPG) is set before the size and rate, which are then read back
— a grabber silently gives what it can. The driver buffer is one frame, so a frame is never
older than one frame interval when it is read. A device that stops giving frames (cable pulled,
scanner switched off) is reopened with back-off; after the last attempt the source ends with
``lost`` set.

With ``raw`` (the default) OpenCV's own conversion is switched off (``CAP_PROP_CONVERT_RGB`` 0) and
the frames go through ``ScreenDecoder``: an MJPG frame is decoded once, and a YUYV frame gives
its Y plane without any colour conversion (a sparse colour sample travels with the frame,
``Frame.colour_sample``, for the Doppler gate). A backend that ignores the setting still hands
over BGR frames, which pass through unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge.errors import CaptureError

from ._base import BACKOFF_S
from .video import CaptureSource, ScreenDecoder

__all__ = ["CaptureFormat", "V4L2Source", "device_path"]

log = logging.getLogger(__name__)

_CHECK = (
    "check that the grabber is plugged in and powered and that the scanner's video output is on; "
    "list devices with `ls /dev/video*` or `v4l2-ctl --list-devices` and pass the right one "
    "with --video /dev/videoN"
)


@dataclass(frozen=True)
class CaptureFormat:
    width: int
    height: int
    fps: float
    fourcc: str


def device_path(target: str | int | Path) -> tuple[str | int, Path]:
    """``0`` / ``"0"`` / ``"/dev/video0"`` → (what OpenCV opens, the device node)."""
    text = str(target)
    if text.isdigit():
        return int(text), Path(f"/dev/video{int(text)}")
    return text, Path(text)


def _fourcc_text(value: float) -> str:
    code = int(value)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00") or "?"


class V4L2Source(CaptureSource):
    """Live frames from a V4L2 device: latest frame only, reconnected when it drops out."""

    kind = "v4l2"

    def __init__(
        self,
        target: str | int | Path = 0,
        *,
        width: int = 1920,
        height: int = 1080,
        fps: float = 30.0,
        fourcc: str = "MJPG",
        backoff_s: Sequence[float] = BACKOFF_S,
        patient: str | None = None,
        raw: bool = True,
    ) -> None:
        self.requested = CaptureFormat(width, height, fps, fourcc)
        self.actual: CaptureFormat | None = None
        self.raw = raw
        self.screen_decoder = ScreenDecoder()
        opened, node = device_path(target)
        self.node = node

        def opener() -> cv2.VideoCapture:
            return self._open(opened, node)

        super().__init__(opener, f"capture device {node}", True, backoff_s=backoff_s, patient=patient,
                         decoder=self._decode if raw else None)

    def _decode(self, buffer: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
        """An unconverted capture → (image, colour sample): YUYV may come flat (1 × 2·W·H); MJPG as its bytes."""
        a = self.actual
        buffer = np.asarray(buffer)
        if (a is not None and a.fourcc == "YUYV" and buffer.ndim <= 2 and buffer.dtype == np.uint8
                and buffer.size == a.width * a.height * 2):
            buffer = buffer.reshape(a.height, a.width, 2)
        return self.screen_decoder(buffer)

    def _open(self, opened: str | int, node: Path) -> cv2.VideoCapture:
        if not node.exists():
            raise CaptureError(f"capture device {node} does not exist on this machine; {_CHECK}")
        if not os.access(node, os.R_OK | os.W_OK):
            raise CaptureError(
                f"capture device {node} exists but this user may not open it (permission denied); "
                "add the user to the 'video' group (sudo usermod -aG video $USER) and log in again"
            )
        if not cv2.videoio_registry.hasBackend(cv2.CAP_V4L2):
            raise CaptureError("this OpenCV build has no V4L2 backend; install opencv-python-headless from PyPI")
        cap = cv2.VideoCapture(opened, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"capture device {node} could not be opened (busy in another program, or not a capture device); {_CHECK}")
        r = self.requested
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*r.fourcc))  # before size and rate
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, r.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, r.height)
        cap.set(cv2.CAP_PROP_FPS, r.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.raw:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # undecoded frames: ScreenDecoder decodes what is used
        self.actual = CaptureFormat(
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            float(cap.get(cv2.CAP_PROP_FPS)),
            _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)),
        )
        a = self.actual
        log.info("%s: %d×%d @ %.0f fps %s (asked %d×%d @ %.0f fps %s)",
                 node, a.width, a.height, a.fps, a.fourcc, r.width, r.height, r.fps, r.fourcc)
        if (a.width, a.height) != (r.width, r.height) or a.fourcc != r.fourcc:
            log.warning("%s gives %d×%d %s instead of the requested %d×%d %s",
                        node, a.width, a.height, a.fourcc, r.width, r.height, r.fourcc)
        return cap
