"""JPEG Lossless (Process 14, and its Selection Value 1) in the default install: a pydicom decoder
plugin over OpenCV's own libjpeg-turbo (docs/design.md §8).

Ultrasound scanners and PACS write JPEG Lossless; pydicom decodes it only with python-gdcm or with
pylibjpeg-libjpeg (GPLv3, kept out of the default install). libjpeg-turbo decodes lossless JPEG
since 3.0, and the OpenCV wheels carry it (BSD-style licences; OpenCV is Apache-2.0 and already a
runtime dependency). It decodes 8-bit lossless JPEG — what an ultrasound screen is; a frame of
higher precision (CT, MR, NM) is declined, and pydicom falls back to another installed plugin or
says what to install.

The plugin returns the frame as stored, with no colour transform, as pydicom expects of a decoder
("raw"): a JFIF or Adobe marker can tell libjpeg that three components are YCbCr, which it then
refuses to convert in lossless mode (or, where it converts, changes the samples — wrong for
DICOM's RGB). So for three components the frame is handed over with its components named R, G, B
and without JFIF or Adobe markers, which tells libjpeg to leave the samples alone.
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["DECODER_DEPENDENCIES", "LABEL", "is_available", "lossless_header", "register"]

LABEL = "gout-edge-opencv"  # the plugin's name among pydicom's
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
DECODER_DEPENDENCIES = {
    JPEG_LOSSLESS: ("opencv-python-headless>=4.10 (libjpeg-turbo 3)",),
    JPEG_LOSSLESS_SV1: ("opencv-python-headless>=4.10 (libjpeg-turbo 3)",),
}
_SOF3, _SOS, _SOI, _EOI = 0xC3, 0xDA, 0xD8, 0xD9
_APP0, _APP14 = 0xE0, 0xEE


@lru_cache(maxsize=1)
def _libjpeg_turbo_major() -> int:
    """The major version of the libjpeg-turbo OpenCV was built with (0: none, or not known)."""
    try:
        import cv2

        info = cv2.getBuildInformation()
    except Exception:  # noqa: BLE001 - no OpenCV: not available
        return 0
    m = re.search(r"JPEG:[^\n]*libjpeg-turbo[^\n]*?\(ver (\d+)\.", info)
    return int(m.group(1)) if m else 0


def is_available(uid: str) -> bool:
    """pydicom's question: can this plugin decode ``uid`` here (libjpeg-turbo 3 or later in OpenCV)?"""
    return str(uid) in DECODER_DEPENDENCIES and _libjpeg_turbo_major() >= 3


def _segments(src: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of every marker segment from SOI to the first SOS (inclusive), where
    start is the marker's first byte and end one past its segment."""
    if src[:2] != b"\xff\xd8":
        raise ValueError("the frame does not start with a JPEG SOI marker")
    out = [(_SOI, 0, 2)]
    i = 2
    while i + 4 <= len(src):
        if src[i] != 0xFF:
            raise ValueError(f"no JPEG marker where one was expected (byte {i})")
        marker = src[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == _EOI:
            raise ValueError("the JPEG frame ends before its first scan")
        (length,) = struct.unpack(">H", src[i + 2 : i + 4])
        end = i + 2 + length
        if length < 2 or end > len(src):
            raise ValueError("a JPEG marker segment runs past the end of the frame")
        out.append((marker, i, end))
        if marker == _SOS:
            return out
        i = end
    raise ValueError("the JPEG frame has no scan")


def lossless_header(src: bytes) -> tuple[int, int, int, int]:
    """(precision, rows, columns, components) of a lossless (SOF3) JPEG frame; ValueError when the
    frame is no lossless JPEG."""
    for marker, start, end in _segments(src):
        if marker == _SOF3:
            if end - start < 10:
                raise ValueError("the JPEG frame header is cut short")
            precision, rows, cols, comps = struct.unpack(">BHHB", src[start + 4 : start + 10])
            return precision, rows, cols, comps
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise ValueError(f"the frame is a JPEG of process SOF{marker - 0xC0}, not lossless (SOF3)")
    raise ValueError("the JPEG frame has no frame header")


def _as_stored(src: bytes) -> bytes:
    """A three-component frame rewritten so that libjpeg applies no colour transform: component
    IDs R, G, B (in the frame header and every scan header) and no JFIF or Adobe segment."""
    ids: dict[int, int] = {}
    out = bytearray()
    segments = _segments(src)
    for marker, start, end in segments:
        seg = bytearray(src[start:end])
        if marker in (_APP0, _APP14):
            continue
        if marker == _SOF3:
            n = seg[9]
            for k in range(n):
                old = seg[10 + 3 * k]
                ids[old] = (0x52, 0x47, 0x42)[k] if n == 3 else old
                seg[10 + 3 * k] = ids[old]
        out += seg
    tail = bytearray(src[segments[-1][2] :])
    # every scan header names its components by ID: the first is in ``out``, later ones follow
    # (non-interleaved lossless frames have one scan per component)
    first_sos = out.rfind(b"\xff\xda")
    _rename_scan(out, first_sos, ids)
    pos = 0
    while True:
        pos = tail.find(b"\xff\xda", pos)
        if pos < 0:
            break
        _rename_scan(tail, pos, ids)
        pos += 2
    return bytes(out + tail)


def _rename_scan(buf: bytearray, at: int, ids: dict[int, int]) -> None:
    if at < 0 or at + 5 > len(buf):
        return
    n = buf[at + 4]
    for k in range(n):
        p = at + 5 + 2 * k
        if p < len(buf):
            buf[p] = ids.get(buf[p], buf[p])


def _decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom's decoder call: one frame's JPEG Lossless bytes → its samples as stored, colour-by-pixel."""
    import cv2

    precision, rows, cols, comps = lossless_header(src)
    if precision > 8:
        raise NotImplementedError(
            f"OpenCV decodes 8-bit lossless JPEG only; this frame has {precision}-bit samples "
            "(pip install python-gdcm decodes it)")
    data = _as_stored(src) if comps == 3 else src
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("OpenCV could not decode this JPEG Lossless frame (damaged data?)")
    if image.ndim == 3:
        image = np.ascontiguousarray(image[:, :, 2::-1])  # OpenCV's BGR → the stored component order
    if image.shape[:2] != (rows, cols) or (image.shape[2] if image.ndim == 3 else 1) != comps:
        raise ValueError(f"the JPEG frame decoded to {image.shape}, not {rows}×{cols}×{comps}")
    runner.set_option("bits_allocated", 8)
    if comps > 1:
        runner.set_option("planar_configuration", 0)
    return image.tobytes()


def register() -> None:
    """Add the plugin to pydicom's JPEG Lossless decoders, once (after any plugin already there:
    an installed python-gdcm keeps its place)."""
    from pydicom.pixels.decoders import JPEGLosslessDecoder, JPEGLosslessSV1Decoder

    for decoder in (JPEGLosslessDecoder, JPEGLosslessSV1Decoder):
        if LABEL not in decoder._available and LABEL not in decoder._unavailable:  # noqa: SLF001
            decoder.add_plugin(LABEL, (__name__, "_decode_frame"))
