"""A JPEG decoded to its own planes (Y, and Cb, Cr as stored) by the system's libturbojpeg, through
PyTurboJPEG: ``ScreenDecoder``'s fast path for MJPG (``video.py``'s docstring says why).

The library is optional at run time: it is looked for once per process (per ``lib_path``), on the
first JPEG, under a lock; where it is absent or unusable one debug line says so and ``load``
returns ``None``, and the caller decodes with OpenCV as before. ``decode`` accepts only what it
decodes exactly as OpenCV would — 8-bit sequential (baseline or extended Huffman) JPEGs, YCbCr with
4:2:0, 4:2:2 or 4:4:4 chroma, or grey — and returns ``None`` for anything else (progressive,
arithmetic-coded, 12-bit, CMYK/YCCK/RGB, 4:4:0 or 4:1:1) and for any error or libjpeg warning
(a damaged frame), so that the caller's OpenCV decode decides what such data gives.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._guard import jpeg_frame

__all__ = ["Planes", "decode", "load"]

log = logging.getLogger(__name__)

# PyTurboJPEG's constants (turbojpeg.h), repeated so that nothing is imported before it is needed
_TJSAMP_444, _TJSAMP_422, _TJSAMP_420, _TJSAMP_GRAY = 0, 1, 2, 3
_TJCS_YCbCr, _TJCS_GRAY = 1, 2
_TJFLAG_STOPONWARNING = 8192
_TJPF_GRAY = 6
# (colour space, subsampling) → chroma subsampling (rows, columns); grey: no chroma
_ACCEPTED = {(_TJCS_YCbCr, _TJSAMP_420): (2, 2), (_TJCS_YCbCr, _TJSAMP_422): (1, 2),
             (_TJCS_YCbCr, _TJSAMP_444): (1, 1), (_TJCS_GRAY, _TJSAMP_GRAY): None}
# start-of-frame markers: C0 baseline, C1 extended sequential (Huffman); the others (progressive,
# lossless, arithmetic, hierarchical) are left to OpenCV
_SEQUENTIAL_HUFFMAN = frozenset({0xC0, 0xC1})

_lock = threading.Lock()
_loaded: dict[str | None, Any] = {}


class _Refused(Exception):
    """libturbojpeg stopped on an error or a warning."""


def load(lib_path: str | None = None) -> Any:
    """The process's PyTurboJPEG decoder for ``lib_path`` (``None``: the system's libturbojpeg,
    wherever PyTurboJPEG finds it), or ``None`` where it cannot be had. Loaded once, thread-safely."""
    try:
        return _loaded[lib_path]
    except KeyError:
        pass
    with _lock:
        if lib_path not in _loaded:
            _loaded[lib_path] = _open(lib_path)
        return _loaded[lib_path]


def _open(lib_path: str | None) -> Any:
    try:
        from turbojpeg import TurboJPEG

        if not callable(getattr(TurboJPEG, "_TurboJPEG__report_error", None)):
            raise RuntimeError(f"this PyTurboJPEG ({getattr(TurboJPEG, '__module__', '?')}) reports errors differently")

        class Strict(TurboJPEG):
            # PyTurboJPEG turns a libjpeg warning (corrupt or truncated data) into a Python warning
            # and returns what was decoded; here it is refused, and OpenCV decides
            def _TurboJPEG__report_error(self, handle: Any) -> None:
                raise _Refused(self._TurboJPEG__get_error_string(handle))

        decoder = Strict(lib_path)
    except Exception as exc:  # noqa: BLE001 - not installed, no libturbojpeg, one it cannot use: OpenCV decodes
        log.debug("JPEG planes decoding unavailable (%s: %s); MJPG frames are decoded by OpenCV",
                  type(exc).__name__, exc)
        return None
    log.debug("MJPG frames are decoded to their planes by libturbojpeg")
    return decoder


@dataclass(frozen=True, slots=True)
class Planes:
    """A decoded JPEG: ``y`` (H × W), and ``cb``, ``cr`` subsampled ``chroma`` = (rows, columns)
    times (``None`` for a grey JPEG)."""

    y: np.ndarray
    cb: np.ndarray | None
    cr: np.ndarray | None
    chroma: tuple[int, int] | None


def decode(decoder: Any, buf: np.ndarray) -> Planes | None:
    """``buf`` (a 1-D uint8 JPEG) decoded to its planes by ``decoder`` (from ``load``), or ``None``
    where this path does not take it (see the module docstring): the caller decodes it with OpenCV."""
    frame = jpeg_frame(buf)
    if frame is None or frame.marker not in _SEQUENTIAL_HUFFMAN or frame.precision != 8 or frame.components not in (1, 3):
        return None
    try:
        w, h, subsampling, colour_space = decoder.decode_header(buf)
        if (colour_space, subsampling) not in _ACCEPTED:
            return None
        if subsampling == _TJSAMP_GRAY:  # its one plane (PyTurboJPEG 1.8's decode_to_yuv_planes asks for three)
            planes = [decoder.decode(buf, pixel_format=_TJPF_GRAY, flags=_TJFLAG_STOPONWARNING).reshape(h, w)]
        else:
            planes = decoder.decode_to_yuv_planes(buf, flags=_TJFLAG_STOPONWARNING)
    except Exception as exc:  # noqa: BLE001 - an error or a warning: OpenCV decides what the data gives
        log.debug("JPEG planes decode refused (%s: %s); decoding with OpenCV", type(exc).__name__, exc)
        return None
    y = planes[0]
    if y.shape != (h, w):  # planes are padded to whole chroma blocks (odd sizes)
        y = np.ascontiguousarray(y[:h, :w])
    chroma = _ACCEPTED[(colour_space, subsampling)]
    if chroma is None:
        return Planes(y, None, None, None)
    return Planes(y, planes[1], planes[2], chroma)
