"""The error boundary around one input file, and the size limits checked before any decoder runs.

Every failure while reading one DICOM, PNG, JPEG or video file — pydicom's parser and its lazily
converted elements, a decoder plugin, OpenCV, a value deeper or larger than anything real — ends
as one ``InputError`` that names the file by its **base name** and says why (docs/design.md §8).
Folder names of a PACS export are patient names, so no message, log line or skipped-file entry
carries a folder: ``file_error`` also scrubs the file's folders from a library's own message.

Limits (docs/design.md §8), checked from the header, before pixels are allocated:

- ``MAX_FRAME_PIXELS``: rows × columns of one image or frame (40 million: an 8K UHD screen is 33
  million, an ultrasound screen at most 2.1 million). Enforced for DICOM from Rows and Columns,
  for PNG and JPEG from the IHDR / SOF header (``raster_size``), and for JPEG and JPEG 2000 pixel
  data inside DICOM through Pillow's ``Image.MAX_IMAGE_PIXELS``.
- ``MAX_DECODED_BYTES``: rows × columns × samples × bytes per sample × frames of one DICOM file
  (16 GiB; ≈ 2 700 frames of 1920 × 1080 RGB). Frames are decoded one at a time, so this bounds
  the work a file can ask for, not memory.
- ``MAX_RASTER_FILE_BYTES``: the size of one PNG or JPEG file, read whole before decoding (256 MiB).
- ``MIN_SIDE``: the fewest rows and columns an image may have (16 px, the smallest model input);
  anything smaller is not an ultrasound screen.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from gout_edge.errors import InputError

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_FRAME_PIXELS",
    "MAX_RASTER_FILE_BYTES",
    "MIN_SIDE",
    "JpegFrame",
    "SkippedFile",
    "check_dicom_size",
    "check_raster_size",
    "file_error",
    "jpeg_frame",
    "limit_pillow",
    "raster_size",
    "reason_of",
    "without_name",
]

MAX_FRAME_PIXELS = 40_000_000
MAX_DECODED_BYTES = 16 * 2**30
MAX_RASTER_FILE_BYTES = 256 * 2**20
MIN_SIDE = 16
_MAX_REASON = 240  # characters of a library's message kept in a reason


@dataclass(frozen=True)
class SkippedFile:
    """A file a folder scan left out: its base name and why (for the result, the report, --json)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.name, "reason": self.reason}


def reason_of(exc: BaseException, path: Path | str | None = None) -> str:
    """One line saying what went wrong, without the file's folders, tracebacks or long dumps."""
    if isinstance(exc, RecursionError):
        return "nested too deeply (a sequence or value nested thousands of levels deep)"
    if isinstance(exc, MemoryError):
        return "too large to decode in the memory of this device"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if path is not None:
        p = Path(path)
        for folder in {str(p.parent), str(p.parent.resolve()) if p.parent != Path("") else ""} - {"", "."}:
            text = text.replace(folder + "/", "").replace(folder, "…")
    text = re.sub(r"(/[^\s'\"/]+)+/([^\s'\"/]+)", r"\2", text)  # any other absolute path: base name
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def without_name(message: str, name: str) -> str:
    """An error message about file ``name`` without the leading words naming it (for a list that
    already names each file)."""
    for prefix in (f"DICOM file {name}: ", f"DICOM file {name} ", f"image {name}: ", f"image {name} ",
                   f"video {name}: ", f"video {name} ", f"{name}: ", f"{name} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def file_error(what: str, path: Path | str, exc: BaseException) -> InputError:
    """``InputError`` for a failure while reading ``path``: ``"<what> NAME: <reason>"``."""
    if isinstance(exc, InputError):
        return exc
    return InputError(f"{what} {Path(path).name} could not be read: {reason_of(exc, path)}")


def check_dicom_size(name: str, rows: int, columns: int, frames: int, samples: int, bits_allocated: int) -> None:
    """Refuse a DICOM file whose declared pixel data is larger than the ceilings (before decoding)."""
    pixels = rows * columns
    if min(rows, columns) < MIN_SIDE:
        raise InputError(
            f"DICOM file {name} declares {columns} × {rows} pixels, fewer than {MIN_SIDE} on a side: too small to be "
            "an ultrasound image (or its header is damaged)"
        )
    if pixels > MAX_FRAME_PIXELS:
        raise InputError(
            f"DICOM file {name} declares {columns} × {rows} pixels per frame ({pixels / 1e6:.0f} million), "
            f"over the ceiling of {MAX_FRAME_PIXELS / 1e6:.0f} million that gout-edge decodes; it is not an "
            "ultrasound image (or its header is damaged)"
        )
    decoded = pixels * max(1, frames) * max(1, samples) * max(1, (bits_allocated + 7) // 8)
    if decoded > MAX_DECODED_BYTES:
        raise InputError(
            f"DICOM file {name} declares {max(1, frames)} frame(s) of {columns} × {rows} × {samples} that would "
            f"decode to {decoded / 2**30:.1f} GiB, over the ceiling of {MAX_DECODED_BYTES // 2**30} GiB per file; "
            "split the cine or check its header"
        )


def check_raster_size(name: str, width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise InputError(
            f"image {name} is {width} × {height} pixels, fewer than {MIN_SIDE} on a side: too small to be an "
            "ultrasound screen"
        )
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(
            f"image {name} is {width} × {height} pixels ({width * height / 1e6:.0f} million), over the ceiling of "
            f"{MAX_FRAME_PIXELS / 1e6:.0f} million that gout-edge decodes; it is not an ultrasound screen"
        )


_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # colour type → bit depths
# JPEG start-of-frame markers: C0–CF except DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def raster_size(data: bytes | memoryview) -> tuple[str, int, int] | None:
    """``(format, width, height)`` from a PNG's IHDR or a JPEG's first SOF segment, reading headers
    only (for a PNG, every chunk's length and the critical chunks' CRCs); None when ``data`` is
    neither, or its header or chunk structure is cut off or invalid."""
    data = memoryview(data)
    if bytes(data[:8]) == _PNG:
        if len(data) < 33 or bytes(data[8:16]) != b"\x00\x00\x00\rIHDR":
            return None
        width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
        crc = struct.unpack(">I", data[29:33])[0]
        # A header libpng would refuse is refused here: a decoder fed one has been seen to spend
        # seconds on it (a 1.8 kB file with bit depth 255 took OpenCV 10 s).
        if (not width or not height or width > 2**31 - 1 or height > 2**31 - 1
                or depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1
                or crc != zlib.crc32(bytes(data[12:29]))):
            return None
        if not _png_chunks_fit(data):
            return None
        return "png", width, height
    frame = jpeg_frame(data)
    if frame is None or frame.precision not in (8, 12, 16) or frame.components not in (1, 2, 3, 4) \
            or not frame.width or not frame.height:
        return None
    return "jpeg", frame.width, frame.height


@dataclass(frozen=True)
class JpegFrame:
    """A JPEG's first start-of-frame segment: its marker (C0 baseline, C2 progressive …), sample
    precision, size and number of components."""

    marker: int
    precision: int
    height: int
    width: int
    components: int


def jpeg_frame(data: bytes | memoryview) -> JpegFrame | None:
    """The first SOF segment of a JPEG, walking the markers before it by their lengths; None when
    ``data`` is not a JPEG or its markers end, break or reach a scan before a frame header."""
    data = memoryview(data)
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if length < 2:
            return None
        if marker in _SOF:
            if i + 10 > n:
                return None
            return JpegFrame(marker, *struct.unpack(">BHHB", data[i + 4 : i + 10]))
        i += 2 + length
    return None


_PNG_CRITICAL = (b"IHDR", b"PLTE", b"IDAT", b"IEND")


def _png_chunks_fit(data: memoryview) -> bool:
    """Every chunk of the PNG lies inside the file and the critical ones carry a valid CRC, up to
    IEND. A chunk declaring more bytes than the file holds made OpenCV allocate 2 GB and spend
    seconds on a 2.4 kB file; libpng refuses a bad critical CRC anyway."""
    i, n = 8, len(data)
    while i + 12 <= n:
        length = struct.unpack(">I", data[i:i + 4])[0]
        kind = bytes(data[i + 4:i + 8])
        end = i + 12 + length
        if length > 2**31 - 1 or end > n:
            return False
        if kind in _PNG_CRITICAL:
            crc = struct.unpack(">I", data[end - 4:end])[0]
            if crc != zlib.crc32(data[i + 4:end - 4]):
                return False
        if kind == b"IEND":
            return True
        i = end
    return False  # no IEND: cut short


def limit_pillow() -> None:
    """Pillow refuses (``DecompressionBombError``) images over ``MAX_FRAME_PIXELS`` when it opens
    them — the JPEG and JPEG 2000 pixel data pydicom hands it. Pillow raises only past twice its
    limit (and warns between), so its limit is set to half the ceiling and its warning ignored."""
    import warnings

    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_FRAME_PIXELS // 2:
        Image.MAX_IMAGE_PIXELS = MAX_FRAME_PIXELS // 2
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
