"""DICOM input: a file, a multi-frame cine, or a directory tree of studies (pydicom).

Every file is checked before the first frame is scored — readable, an image, a transfer syntax an
installed decoder handles, an ultrasound SOP class — so an exam never stops half-way on a bad
file. Frames come out grouped by patient and study (``Frame.group``), in series and instance
order, as uint8 grey or BGR (RGB, YBR_FULL, YBR_FULL_422 and PALETTE COLOR converted), the same
pixels whatever the byte order or transfer syntax (``decode_frames``):

- PALETTE COLOR: the lookup tables are read in the file's byte order (pydicom's
  ``apply_color_lut`` reads non-segmented 16-bit tables in the machine's, which turned a
  big-endian file into a blank frame) and scaled to 8 bits by the tables' own bit depth.
- MONOCHROME1/2 with a VOI LUT Sequence or a window (Window Center/Width) are shown as the
  scanner showed them: modality LUT or rescale, then pydicom's ``apply_voi_lut`` (the LUT
  preferred), the VOI output range mapped onto 0–255, then MONOCHROME1 inverted. Without either,
  stored values are scaled by Bits Stored (``to_uint8``). Per-frame VOI of enhanced multi-frame
  objects is not read.
- Files without File Meta Information are decoded in the encoding pydicom detected; deflated
  files are inflated by pydicom first.

A Sequence of Ultrasound Regions gives the B-mode region (``ultrasound_region``): the largest 2-D
tissue region. Regions a pixel or two past Rows × Columns are clipped (exports give the
one-past-the-end column as the inclusive corner). Regions well past it were declared for a larger
frame: when the image is a standard scanner frame size uniformly reduced by a simple factor and
the regions fit that size, they are rescaled with it; otherwise they are ignored and the image is
analysed, as for a file without regions. What is left must be a plausible region, or the image is
analysed as well.

The protocol view (dorsal, medial, plantar) is read from the tags — View Code Sequence's Code
Meaning, then View Name, Image Comments, Series Description, Protocol Name: the first naming
exactly one view — and, with what the file's name says (``frame_view``), becomes each frame's ``view``. Only the view word leaves the tags.

Decoders are pydicom's plugins: native and RLE always, JPEG Baseline/Extended and JPEG 2000 with
pillow, JPEG-LS with pyjpegls (MIT; a runtime dependency), 8-bit JPEG Lossless with OpenCV's
libjpeg-turbo (``_jpeg_lossless``, registered here), the rest with pylibjpeg or python-gdcm when
installed; a file whose decoder is missing is refused with what to install. Logs and messages name files by their base name only
(folder names in PACS exports can be patient names) and never carry patient tags.

One error boundary per file (``_guard``): whatever goes wrong while reading one file's header or
decoding its pixels — a value pydicom parses only when it is read, a sequence nested thousands deep,
damaged compressed data, a declared size over the ceilings — is an ``InputError`` naming the file
and the reason. In a folder such a file is skipped and listed with its reason in ``skipped``
(``strict``: the exam is refused before its first frame, every file having been decoded once); a
folder in which no file gives a frame is an ``InputError`` listing why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from pydicom import uid

from gout_edge.edge_runtime.imaging.dicom_identity import SourceInstance, StudyIdentity
from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.imaging.views import view_named, views_named
from gout_edge.errors import InputError
from gout_edge.manifest import DecisionSpec, PreprocessSpec

from ._base import FileSource, Frame, SourceGroup, to_uint8
from ._guard import check_dicom_size, file_error, limit_pillow, reason_of, without_name
from ._jpeg_lossless import register as _register_jpeg_lossless
from ._values import FRAME_INTERVAL_MS, FRAME_RATE_HZ, PIXEL_SPACING_CM, ValueChecks

__all__ = [
    "DicomFile",
    "DicomSource",
    "RegionInfo",
    "check_decoder",
    "decode_frames",
    "frame_origin",
    "frame_view",
    "is_dicom_file",
    "read_dicom_file",
    "ultrasound_region",
    "view_from_tags",
]

log = logging.getLogger(__name__)

_register_jpeg_lossless()  # 8-bit JPEG Lossless without GPL or GDCM (docs/design.md §8)

ULTRASOUND_SOP_CLASSES = {
    uid.UltrasoundImageStorage: "Ultrasound Image Storage",
    uid.UltrasoundMultiFrameImageStorage: "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",  # pydicom names no retired classes
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
}
# Screen grabs of a scanner often arrive as Secondary Capture; they count when Modality is US.
SECONDARY_CAPTURE = {
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameSingleBitSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
}
DICOM_SUFFIXES = (".dcm", ".dicom", ".dcn")
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR",
                "YBR_RCT", "YBR_ICT")

# What to install for a transfer syntax family, by the UID's prefix (pydicom 3 plugins).
_INSTALL_HINTS = (
    (("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"),
     "pip install pillow (JPEG Baseline/Extended), or pip install pylibjpeg pylibjpeg-libjpeg "
     "(GPLv3), or pip install python-gdcm"),
    (("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"),
     "the default install decodes 8-bit JPEG Lossless with OpenCV's libjpeg-turbo 3 "
     "(pip install -U opencv-python-headless); other precisions: pip install python-gdcm, "
     "or pip install pylibjpeg pylibjpeg-libjpeg (GPLv3)"),
    (("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
     "pip install pyjpegls, or pip install pylibjpeg pylibjpeg-libjpeg (GPLv3), or pip install python-gdcm"),
    (("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20"),
     "pip install pylibjpeg pylibjpeg-openjpeg, or pillow built with OpenJPEG, or pip install python-gdcm"),
    (("1.2.840.10008.1.2.5",), "pip install pylibjpeg pylibjpeg-rle (pydicom's own RLE decoder needs numpy)"),
)


# Frame sizes (width, height) a scanner declares its regions for when it exports a reduced image:
# VGA to UXGA (4:3, 5:4), HD video (16:9) and digitised PAL and NTSC video.
DECLARED_SIZES = ((640, 480), (800, 600), (1024, 768), (1280, 960), (1280, 1024), (1600, 1200),
                  (1280, 720), (1920, 1080), (720, 576), (720, 480))
# The uniform reductions tried, the mildest first; the first under which the regions fit is the
# one, and it must turn a size of DECLARED_SIZES into the image's (±1 px), or the regions are ignored.
REDUCTIONS = (Fraction(3, 4), Fraction(2, 3), Fraction(1, 2), Fraction(1, 3), Fraction(1, 4))
_TISSUE_2D = (1, 1)  # RegionSpatialFormat 2D, RegionDataType tissue


@dataclass(frozen=True)
class RegionInfo:
    """The B-mode region a file declares: ``roi`` (clipped; None when absent or implausible)."""

    roi: Roi | None
    pixel_mm: float | None
    declared: bool  # the file has a 2-D tissue region
    clipped: bool  # it reached past Rows × Columns
    note: str
    scale: Fraction | None = None  # the regions were declared for a frame this much larger, and rescaled


@dataclass(frozen=True)
class DicomFile:
    """What the header of one image file says (patient tags: for grouping and reports only)."""

    path: Path
    name: str
    patient_id: str | None
    study_uid: str
    series_uid: str
    series_number: int
    instance_number: int
    sop_class: str
    modality: str
    transfer_syntax: str
    photometric: str
    frames: int
    rows: int
    columns: int
    bits_stored: int
    frame_time_ms: float | None
    region: RegionInfo
    sop_uid: str = ""
    study: StudyIdentity | None = field(default=None, repr=False)  # patient and study, for DICOM results
    view: str | None = None  # the protocol view the tags name (``view_from_tags``)

    @property
    def group(self) -> str:
        return f"{self.patient_id or ''}\x1f{self.study_uid}"

    @property
    def ultrasound(self) -> bool:
        return self.sop_class in ULTRASOUND_SOP_CLASSES or (
            self.sop_class in SECONDARY_CAPTURE and self.modality.upper() == "US"
        )

    @property
    def sop_name(self) -> str:
        from pydicom.uid import UID

        name = UID(self.sop_class).name if self.sop_class else "no SOP class"
        return name


def is_dicom_file(path: Path) -> bool:
    """DICOM by its preamble (``DICM`` at byte 128) or by its extension."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default


def ultrasound_region(ds: object, rows: int, columns: int, min_fraction: float | None = None,
                      checks: ValueChecks | None = None) -> RegionInfo:
    """The largest 2-D tissue region of the Sequence of Ultrasound Regions, fitted to the image.

    Corners are inclusive in DICOM; the ``Roi`` is end-exclusive. Pixel spacing in mm comes from
    PhysicalDeltaX when its unit is cm (3). The rule for regions that do not fit the image, from
    the furthest right and bottom any region of the file reaches (its extent; all regions of a
    file share one frame, Doppler and graphics regions included):

    - an extent at most 2 px or 2 % past the image: clipped (exports often give the
      one-past-the-end column as the inclusive corner);
    - further past it: the regions were declared for a larger frame. The mildest reduction of
      ``REDUCTIONS`` (3/4, 2/3, 1/2, 1/3, 1/4) under which the extent fits the image is taken,
      and accepted only when it is uniform — the image's Columns × Rows is a size of
      ``DECLARED_SIZES`` times that factor (±1 px) on both axes, e.g. 640×480 → 320×240 at 1/2 —
      and that size holds the extent. The regions, and the pixel spacing, are then rescaled by it;
    - otherwise the regions are ignored (``roi`` None) and the image is analysed, as when a file
      declares none. An image uniformly enlarged from the declared size cannot be told from one
      whose regions fit, and is taken as it is.
    """
    if min_fraction is None:
        min_fraction = PreprocessSpec().roi_min_area_fraction
    items = getattr(ds, "SequenceOfUltrasoundRegions", None) or []
    declared: list[tuple[Roi, bool, object]] = []  # every region with corners: (raw, 2-D tissue?, item)
    for item in items:
        try:
            raw = Roi(int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                      int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1)
        except (AttributeError, TypeError, ValueError):
            continue
        kind = (_int(item.get("RegionSpatialFormat")), _int(item.get("RegionDataType")))
        declared.append((raw, kind == _TISSUE_2D, item))  # Doppler, M-mode, waveform, graphics: not tissue
    tissue = [(raw, item) for raw, is_tissue, item in declared if is_tissue]
    if not tissue:
        return RegionInfo(None, None, False, False, "no 2-D tissue region declared")
    x_end = max(raw.x1 for raw, _, _ in declared)
    y_end = max(raw.y1 for raw, _, _ in declared)
    scale: Fraction | None = None
    if not (_nearly_within(x_end, columns) and _nearly_within(y_end, rows)):
        found = _uniform_reduction(x_end, y_end, rows, columns)
        if found is None:
            return RegionInfo(None, None, True, True,
                              f"ignored: the regions reach to {x_end}×{y_end} px, past the {columns}×{rows} image, and no "
                              "uniform reduction of a standard frame size (" + ", ".join(f"{w}×{h}" for w, h in DECLARED_SIZES[:4])
                              + ", …) gives this image; the image is analysed instead")
        scale, size = found
    best: tuple[int, Roi, Roi, Roi, object] | None = None
    for raw, item in tissue:
        fitted = _rescaled(raw, scale) if scale is not None else raw
        roi = fitted.clip(rows, columns)
        area = max(0, roi.width) * max(0, roi.height)
        if best is None or area > best[0]:
            best = (area, roi, fitted, raw, item)
    assert best is not None
    area, roi, fitted, raw, item = best
    pixel_mm = None
    if _int(item.get("PhysicalUnitsXDirection")) == 3:
        checks = checks if checks is not None else ValueChecks("")
        delta = checks.number("Physical Delta X (0018,602C)", item.get("PhysicalDeltaX"), PIXEL_SPACING_CM)  # VM 1, in cm
        pixel_mm = delta * 10.0 if delta is not None else None
    if pixel_mm is not None and scale is not None:
        pixel_mm /= float(scale)  # a reduced image has larger pixels
    clipped = roi != fitted or scale is not None
    if area <= 0 or not roi.is_plausible(rows, columns, min_fraction):
        return RegionInfo(None, pixel_mm, True, clipped,
                          f"declared region {raw.x0},{raw.y0}–{raw.x1 - 1},{raw.y1 - 1}"
                          + (f" (rescaled by {scale})" if scale is not None else "") + " leaves "
                          f"{max(0, roi.width)}×{max(0, roi.height)} px inside the {columns}×{rows} image; "
                          "the image is analysed instead", scale)
    if scale is not None:
        note = (f"rescaled by {scale}: the regions were declared for a {size[0]}×{size[1]} frame and the image "
                f"is {columns}×{rows}")
    else:
        note = "declared region" + (f", clipped to the {columns}×{rows} image" if clipped else "")
    return RegionInfo(roi, pixel_mm, True, clipped, note, scale)


def _nearly_within(extent: int, side: int) -> bool:
    """An extent (end-exclusive) at most 2 px or 2 % past the image's side: clipped, not rescaled."""
    return extent <= side + max(2, side // 50)


def _uniform_reduction(x_end: int, y_end: int, rows: int, columns: int) -> tuple[Fraction, tuple[int, int]] | None:
    """The factor and declared frame size (width, height) of ``ultrasound_region``'s rule, or None."""
    factor = next((f for f in REDUCTIONS if x_end * f <= columns + 1 and y_end * f <= rows + 1), None)
    if factor is None:
        return None
    for width, height in DECLARED_SIZES:
        if (abs(width * factor - columns) <= 1 and abs(height * factor - rows) <= 1
                and _nearly_within(x_end, width) and _nearly_within(y_end, height)):
            return factor, (width, height)
    return None


def _rescaled(raw: Roi, scale: Fraction) -> Roi:
    """A declared region on the reduced image: corners outwards to whole pixels."""
    return Roi(math.floor(raw.x0 * scale), math.floor(raw.y0 * scale), math.ceil(raw.x1 * scale), math.ceil(raw.y1 * scale))


# -- views ------------------------------------------------------------------------------------

_VIEW_TAGS = ("ViewName", "ImageComments", "SeriesDescription", "ProtocolName")


def view_from_tags(ds: object, views: Sequence[str] | None = None) -> str | None:
    """The protocol view a file's tags name: View Code Sequence's Code Meaning, then View Name,
    Image Comments, Series Description and Protocol Name — the first naming exactly one of
    ``views`` (default: the protocol's dorsal, medial, plantar) wins; a tag naming none or several
    is passed over. None when no tag names one. A value that cannot be read counts as absent."""
    views = tuple(DecisionSpec().views if views is None else views)
    texts: list[object] = []
    try:
        codes = ds.get("ViewCodeSequence") or []  # type: ignore[attr-defined]
        if codes:
            texts.append(codes[0].get("CodeMeaning"))
    except Exception:  # a damaged sequence: the view is only a hint, the image still counts
        pass
    for keyword in _VIEW_TAGS:
        try:
            texts.append(ds.get(keyword))  # type: ignore[attr-defined]
        except Exception:  # a value pydicom cannot convert: as if absent
            continue
    for text in texts:
        if text is None:
            continue
        found = views_named(str(text), views)
        if len(found) == 1:
            return found[0]
    return None


def frame_origin(rel: str, file: DicomFile, frame: int | None = None) -> str:
    """Where a frame came from, for the journal and the report: ``rel`` (a still) or
    ``rel frame K`` (frame K of a cine, from 1)."""
    return rel if frame is None or file.frames == 1 else f"{rel} frame {frame}"


def frame_view(rel: str, file: DicomFile) -> str | None:
    """The view of a file's frames: the one its name and its tags name together; None when they
    name none, or different ones (``IM04_dorsal.dcm`` whose tags say medial: unknown)."""
    return view_named(rel, also=[file.view])


def check_decoder(transfer_syntax: str, where: str) -> None:
    """Raise ``InputError`` when no installed pydicom plugin decodes ``transfer_syntax``."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        raise InputError(
            f"{where}: transfer syntax {uid} is not a DICOM transfer syntax pydicom knows; the file "
            "cannot be decoded. Re-export it uncompressed (Explicit VR Little Endian), e.g. with "
            "`gdcmconv --raw` or `dcmdjpeg`"
        )
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise InputError(
            f"{where}: transfer syntax {uid.name} ({uid}) is not supported: no pydicom decoder exists for "
            "it. Re-export the file uncompressed (Explicit VR Little Endian), e.g. with `gdcmconv --raw`"
        ) from None
    if decoder.is_available:
        return
    hint = next((h for prefixes, h in _INSTALL_HINTS if str(uid).startswith(prefixes)),
                "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, or pip install python-gdcm")
    missing = "; ".join(decoder.missing_dependencies) or "no plugin installed"
    raise InputError(
        f"{where}: pixel data in {uid.name} ({uid}) needs a decoder that is not installed ({missing}). "
        f"Fix: {hint}"
    )


def read_dicom_file(path: Path, *, strict_image: bool = True) -> DicomFile | None:
    """Read one file's header. Not DICOM, unreadable, damaged, too large or no image: ``InputError``
    naming the file by its base name (or None when ``strict_image`` is False and the file is a
    DICOM object that is not an image, e.g. a DICOMDIR or a structured report)."""
    path = Path(path)
    try:
        return _read_header(path, strict_image)
    except InputError:
        raise
    except Exception as exc:  # pydicom parses many elements only when they are read
        raise file_error("DICOM file", path, exc) from None


def _not_an_image(ds: object, meta: object) -> bool:
    """A DICOM object that is no image by its SOP class (DICOMDIR, report, presentation state…),
    as opposed to a file that lost its image to damage or truncation."""
    from pydicom.uid import UID

    if "DirectoryRecordSequence" in ds:  # type: ignore[operator]
        return True
    sop = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or "")  # type: ignore[attr-defined]
    name = UID(sop).name if sop else ""
    return bool(name) and name != sop and "Image" not in name and "Volume" not in name


def _read_header(path: Path, strict_image: bool) -> DicomFile | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    name = path.name
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=path.suffix.lower() in DICOM_SUFFIXES)
    except FileNotFoundError:
        raise InputError(f"DICOM file {name} not found") from None
    except PermissionError:
        raise InputError(f"DICOM file {name} cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a folder, not a DICOM file") from None
    except InvalidDicomError:
        raise InputError(f"{name} is not a DICOM file (no DICM preamble); for PNG or JPEG images use --images") from None
    except Exception as exc:
        raise InputError(f"DICOM file {name} is damaged or truncated and cannot be read ({reason_of(exc, path)})") from None
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if "Rows" not in ds or "Columns" not in ds:
        if _not_an_image(ds, meta):
            if strict_image:
                raise InputError(f"DICOM file {name} holds no image (a report, a DICOMDIR or another non-image object)")
            return None
        if len(ds) == 0 and not meta:
            raise InputError(f"DICOM file {name} is empty or not DICOM: no element could be read from it")
        raise InputError(
            f"DICOM file {name} is damaged or truncated: it has no Rows and Columns, although its SOP class "
            "is an image or unknown; export the image again"
        )
    if not syntax:  # files without meta information: the encoding pydicom found while reading
        syntax = _syntax_of_encoding(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper().strip()
    if photometric not in PHOTOMETRICS:
        raise InputError(f"DICOM file {name} has photometric interpretation {photometric[:40]!r}; expected one of {', '.join(PHOTOMETRICS)}")
    rows, columns = _int(ds.Rows), _int(ds.Columns)
    check_dicom_size(name, rows, columns, max(1, _int(ds.get("NumberOfFrames"), 1)),
                     _int(ds.get("SamplesPerPixel"), 1), _int(ds.get("BitsAllocated"), 8))
    checks = ValueChecks(name)  # timing and spacing: checked here, as they enter (docs/design.md §8)
    frame_time_ms = _frame_interval_ms(ds, checks)
    region = ultrasound_region(ds, rows, columns, checks=checks)
    checks.warn()
    patient_id = str(ds.get("PatientID", "") or "").strip() or None
    return DicomFile(
        path=path,
        name=path.name,
        patient_id=patient_id,
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        series_number=_int(ds.get("SeriesNumber")),
        instance_number=_int(ds.get("InstanceNumber")),
        sop_class=str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        transfer_syntax=syntax,
        photometric=photometric,
        frames=max(1, _int(ds.get("NumberOfFrames"), 1)),
        rows=rows,
        columns=columns,
        bits_stored=min(max(_int(ds.get("BitsStored"), 8), 0), 64) or 8,
        frame_time_ms=frame_time_ms,
        region=region,
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        study=StudyIdentity.from_dataset(ds),
        view=view_from_tags(ds),
    )


_UNREADABLE = object()


def _frame_interval_ms(ds: object, checks: ValueChecks) -> float | None:
    """The time between frames a header states, in ms: Frame Time, else 1000 / Cine Rate, else
    1000 / Recommended Display Frame Rate. Each is checked as it is read (a finite interval above 0
    and at most an hour, a rate above 0 and at most 10 000 a second); one that fails counts as absent,
    and None (no timing: the frames of a cine share time 0) when none is usable."""
    def get(keyword: str) -> object:
        try:
            return ds.get(keyword)  # type: ignore[attr-defined]
        except Exception:  # a value pydicom cannot convert: no number either
            return _UNREADABLE

    interval = checks.number("Frame Time (0018,1063)", get("FrameTime"), FRAME_INTERVAL_MS)
    if interval is not None:
        return interval
    for tag, keyword in (("Cine Rate (0018,0040)", "CineRate"),
                         ("Recommended Display Frame Rate (0008,2144)", "RecommendedDisplayFrameRate")):
        rate = checks.number(tag, get(keyword), FRAME_RATE_HZ)
        if rate is not None:
            return 1000.0 / rate
    return None


def _syntax_of_encoding(ds: object) -> str:
    """The transfer syntax of a file without File Meta Information, from the encoding pydicom
    detected (implicit VR little endian, the DICOM default, when it could not tell)."""
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if little is False:
        return uid.ExplicitVRBigEndian
    if implicit is False:
        return uid.ExplicitVRLittleEndian
    return uid.ImplicitVRLittleEndian


def decode_frames(file: DicomFile) -> Iterator[np.ndarray]:
    """The file's frames, one at a time, as uint8 grey or BGR as the scanner showed them (palette
    applied, VOI LUT or window applied, MONOCHROME1 inverted; see the module's docstring), the same
    pixels whatever the byte order or transfer syntax. ``InputError`` naming the file and the frame
    when decoding fails, or when the file gives fewer frames than it declares."""
    import pydicom
    from pydicom.pixels import iter_pixels

    check_decoder(file.transfer_syntax, f"DICOM file {file.name}")
    limit_pillow()
    produced = 0
    try:
        if file.transfer_syntax == uid.DeflatedExplicitVRLittleEndian:
            # pydicom inflates a deflated file only when it reads the whole dataset
            header = pydicom.dcmread(file.path, force=True)
            frames = iter_pixels(header, as_rgb=True)
        else:
            header = (pydicom.dcmread(file.path, stop_before_pixels=True, force=True)
                      if file.photometric in _NEEDS_HEADER else None)
            # the syntax named: files without File Meta Information have none of their own
            frames = iter_pixels(file.path, as_rgb=True, transfer_syntax_uid=file.transfer_syntax)
        display = _Display(file, header)
        for arr in frames:  # frames are decoded one at a time
            produced += 1
            yield display(arr)
    except InputError:
        raise
    except Exception as exc:
        syntax = _syntax_name(file.transfer_syntax)
        raise InputError(
            f"DICOM file {file.name}: frame {produced + 1} of {file.frames} could not be decoded "
            f"({reason_of(exc, file.path)}); transfer syntax {syntax}. The pixel data may be damaged, "
            "or need another decoder: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"
        ) from None
    if produced < file.frames:
        raise InputError(
            f"DICOM file {file.name} gave {produced} of the {file.frames} frames it declares; it is cut short"
        )


_NEEDS_HEADER = ("PALETTE COLOR", "MONOCHROME1", "MONOCHROME2")  # lookup tables, windows


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    return f"{UID(uid).name} ({uid})"


class _Display:
    """Decoded frames of one file → uint8 grey or BGR as the scanner showed them."""

    def __init__(self, file: DicomFile, header: object) -> None:
        self.file = file
        self.header = header
        self.palette: object | None = None
        self.palette_full = 65535.0
        self.voi: tuple[float, float] | None = None  # the VOI output range mapped onto 0–255
        if header is None:
            return
        if file.photometric == "PALETTE COLOR":
            self.palette, self.palette_full = _native_palette(header, file)
        elif file.photometric in ("MONOCHROME1", "MONOCHROME2"):
            self.voi = _voi_range(header)

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        file = self.file
        if self.palette is not None:
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, self.palette)
            if arr.dtype != np.uint8:  # 16-bit lookup tables
                arr = (arr.astype(np.float32) * (255.0 / self.palette_full) + 0.5).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == 3:
            # pydicom converts YBR to RGB on decoding (as_rgb=True)
            return cv2.cvtColor(np.ascontiguousarray(to_uint8(arr[..., :3], file.bits_stored)), cv2.COLOR_RGB2BGR)
        if arr.ndim != 2:
            raise InputError(f"DICOM file {file.name} gives pixel arrays of shape {arr.shape}; expected one image per frame")
        grey = self._voi(arr) if self.voi is not None else None
        if grey is None:
            grey = to_uint8(arr, file.bits_stored)
        if file.photometric == "MONOCHROME1":  # 0 is white
            grey = 255 - grey
        return np.ascontiguousarray(grey)

    def _voi(self, arr: np.ndarray) -> np.ndarray | None:
        """Modality LUT or rescale, then the VOI LUT (preferred) or window, mapped onto 0–255; None
        (stored values scaled by Bits Stored) when the file's VOI cannot be applied."""
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        assert self.voi is not None
        lo, hi = self.voi
        try:
            x = apply_modality_lut(arr, self.header)
            if x.dtype.kind == "f" and self.header.get("VOILUTSequence"):  # type: ignore[attr-defined]
                x = np.rint(x).astype(np.int64)  # LUT input values are whole numbers
            y = apply_voi_lut(x, self.header, prefer_lut=True)
        except Exception as exc:  # a window pydicom refuses (width < 1, unknown function…): shown unwindowed
            log.warning("%s: its VOI LUT or window cannot be applied (%s); stored values are scaled by Bits Stored instead",
                        self.file.name, reason_of(exc, self.file.path))
            self.voi = None
            return None
        out = (np.asarray(y, np.float64) - lo) * (255.0 / (hi - lo))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _native_palette(header: object, file: DicomFile) -> tuple[object, float]:
    """The palette module with its (non-segmented) lookup tables in this machine's byte order, and
    the table value of full intensity (255 for 8-bit entries stored in 16 bits, else 65535).

    pydicom's ``apply_color_lut`` reads 16-bit Palette Color Lookup Table Data with the machine's
    byte order, not the file's: a big-endian file's table came out byte-swapped (values 256 times
    too small: a blank frame). Segmented tables it reads in the file's order already.
    """
    from pydicom.uid import UID

    little = UID(file.transfer_syntax).is_little_endian is not False
    descriptor = header.get("RedPaletteColorLookupTableDescriptor")  # type: ignore[attr-defined]
    try:
        entries = int(descriptor[0]) or 2**16
        nominal = int(descriptor[2])
    except (TypeError, ValueError, IndexError):
        return header, 65535.0  # pydicom's apply_color_lut says what is wrong
    biggest = 0
    for colour in ("Red", "Green", "Blue", "Alpha"):
        keyword = f"{colour}PaletteColorLookupTableData"
        if keyword not in header:  # type: ignore[operator]
            continue
        value = header[keyword].value  # type: ignore[index]
        if isinstance(value, bytes | bytearray):
            if len(value) != 2 * entries:
                continue  # 8-bit entries: no byte order
            table = np.frombuffer(value, dtype="<u2" if little else ">u2").astype(np.uint16)
        else:  # read as US values (implicit VR): numbers already
            table = np.asarray(value if isinstance(value, list | tuple) else [value], dtype=np.uint16)
        biggest = max(biggest, int(table.max(initial=0)))
        header.add_new(header[keyword].tag, "OW", table.tobytes())  # type: ignore[attr-defined, index]
    return header, 255.0 if nominal <= 8 and biggest <= 255 and biggest else 65535.0


def _voi_range(header: object) -> tuple[float, float] | None:
    """The output range of the VOI transform ``apply_voi_lut`` applies (the LUT when there is one,
    as pydicom prefers it, else the window); None when the file has neither, or values no VOI can
    come from. The LUT's range is 0 … 2**bits − 1 (its descriptor's bits per entry); the window's
    is pydicom's: that of the modality LUT's output, or of the stored values, rescaled."""
    ds = header
    try:
        voi = ds.get("VOILUTSequence")  # type: ignore[attr-defined]
        if voi and voi[0].get("LUTDescriptor") is not None and voi[0].get("LUTData") is not None:
            bits = int(voi[0].LUTDescriptor[2])
            return (0.0, float(2**bits - 1)) if bits == 8 or 10 <= bits <= 16 else None
        if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:  # type: ignore[attr-defined]
            return None
        modality = ds.get("ModalityLUTSequence")  # type: ignore[attr-defined]
        bits_stored = int(ds.get("BitsStored") or 0)  # type: ignore[attr-defined]
        if modality:
            lo, hi = 0.0, float(2 ** int(modality[0].LUTDescriptor[2]) - 1)
        elif not 1 <= bits_stored <= 32:
            return None
        elif _int(ds.get("PixelRepresentation")) == 0:  # type: ignore[attr-defined]
            lo, hi = 0.0, float(2**bits_stored - 1)
        else:
            lo, hi = float(-(2 ** (bits_stored - 1))), float(2 ** (bits_stored - 1) - 1)
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")  # type: ignore[attr-defined]
        if slope is not None and intercept is not None:
            lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None
    # (a negative slope gives lo > hi: values below the window are still shown black)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi != lo else None


def _files_under(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))


class DicomSource(FileSource):
    """Frames of a DICOM file, cine or directory tree, grouped by patient and study.

    ``strict``: refuse (``InputError``) non-ultrasound objects and damaged files in a tree
    instead of warning (non-ultrasound images are then scored anyway, damaged files skipped and
    listed in ``skipped`` with their reason); with ``strict`` every file is decoded once before
    the first frame, so a damaged one refuses the exam before it starts. ``patient``: keep only
    the files with this Patient ID; when no file carries one, it names the patient of every file.
    """

    kind = "dicom"

    def __init__(self, target: str | Path, *, strict: bool = False, patient: str | None = None) -> None:
        super().__init__(target, strict)
        files = self._scan()
        if patient is not None:
            files = self._select(files, patient)
        self.files = self._decodable(files)
        self._check(self.files)

    # -- scanning
    def _scan(self) -> list[DicomFile]:
        root = self.root
        if not root.exists():
            raise InputError(f"DICOM path {root.name!r} not found; give a DICOM file, a multi-frame cine or a study folder")
        if root.is_file():
            file = read_dicom_file(root)
            assert file is not None
            return [file]
        candidates = [p for p in _files_under(root) if is_dicom_file(p)]
        files: list[DicomFile] = []
        not_images = 0
        for path in candidates:
            try:
                file = read_dicom_file(path, strict_image=False)
            except InputError as exc:
                if self.strict:
                    raise InputError(f"{exc}; refused because of --strict (leave it out to skip such files)") from None
                self.skip(path.name, without_name(str(exc), path.name))
                continue
            if file is None:
                not_images += 1
                continue
            files.append(file)
        if not_images:
            log.info("%d DICOM object(s) without pixel data skipped (DICOMDIR, reports, …)", not_images)
        self._scanned = len(candidates)
        if not files:
            if self.skipped:
                raise self.nothing_read(len(candidates), "DICOM file(s)")
            what = f"{len(candidates)} DICOM object(s) but no image" if candidates else "no DICOM files"
            raise InputError(
                f"the folder given holds {what}; give a folder with ultrasound DICOM images (.dcm or files with a "
                "DICM preamble)"
            )
        return files

    def _select(self, files: list[DicomFile], patient: str) -> list[DicomFile]:
        if not any(f.patient_id for f in files):
            return [_with_patient(f, patient) for f in files]
        chosen = [f for f in files if f.patient_id == patient]
        if not chosen:
            n = len({f.patient_id for f in files})
            raise InputError(
                f"none of the {n} patient(s) in the DICOM files given has the Patient ID given with --patient; "
                "leave --patient out to scan every patient"
            )
        return chosen

    def _decodable(self, files: list[DicomFile]) -> list[DicomFile]:
        """The files an installed decoder reads. In a folder, one that none reads (an H.264 cine
        beside stills) is left out and listed in ``skipped`` with why, and the study is scanned from
        the rest; a single file, or ``strict``, refuses."""
        kept = []
        for f in files:
            try:
                check_decoder(f.transfer_syntax, f"DICOM file {f.name}")
            except InputError as exc:
                if self.strict or not self.root.is_dir():
                    raise
                self.skip(f.name, without_name(str(exc), f.name))
                continue
            kept.append(f)
        if not kept:
            raise self.nothing_read(getattr(self, "_scanned", len(files)), "DICOM file(s)")
        return kept

    def _check(self, files: list[DicomFile]) -> None:
        foreign = [f for f in files if not f.ultrasound]
        if foreign:
            kinds = sorted({f.sop_name for f in foreign})
            msg = (f"{len(foreign)} of {len(files)} DICOM image(s) are not ultrasound ({', '.join(kinds)}; "
                   f"first: {foreign[0].name})")
            if self.strict:
                raise InputError(f"{msg}; refused because of --strict. Give ultrasound images only, or leave out --strict to score them with a warning")
            log.warning("%s; they are scored anyway (--strict refuses them)", msg)
        for f in files:
            if f.region.clipped or (f.region.declared and f.region.roi is None):
                log.warning("%s: ultrasound region %s", f.name, f.region.note)
            named = views_named(f.name)
            if f.view is not None and named and named != [f.view]:
                log.warning("%s: its tags name the %s view, its name the %s view; its view counts as unknown",
                            f.name, f.view, " and ".join(named))
        if self.strict:  # every file decoded once: a damaged one refuses the exam before its first frame
            for f in files:
                for _ in decode_frames(f):
                    pass

    def groups(self) -> list[SourceGroup]:
        out: dict[str, list[DicomFile]] = {}
        for f in self.files:
            out.setdefault(f.group, []).append(f)
        return [SourceGroup(k, v[0].patient_id, len(v), sum(f.frames for f in v)) for k, v in out.items()]

    def _ordered(self) -> list[DicomFile]:
        first: dict[str, int] = {}
        for i, f in enumerate(self.files):
            first.setdefault(f.group, i)
        return sorted(self.files, key=lambda f: (first[f.group], f.series_number, f.series_uid, f.instance_number, str(f.path)))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        folder = self.root.is_dir()
        base = self.root if folder else self.root.parent
        for file in self._ordered():
            try:
                rel = file.path.relative_to(base).as_posix()
            except ValueError:
                rel = file.name
            still = file.frames == 1
            step_s = (file.frame_time_ms or 0.0) / 1000.0
            k = 0
            try:
                for k, image in enumerate(decode_frames(file), 1):
                    if self._closed:
                        return
                    yield Frame(image, index, (k - 1) * step_s, roi=file.region.roi, group=file.group,
                                patient_id=file.patient_id, still=still, origin=frame_origin(rel, file, k),
                                file=rel, frame_number=None if still else k, view=frame_view(rel, file),
                                pixel_mm=file.region.pixel_mm, dicom=_source_instance(file, None if still else k))
                    index += 1
            except InputError as exc:
                if not folder or self.strict:
                    raise
                reason = without_name(str(exc), file.name)
                self.skip(file.name, reason if not k else f"{reason} (its first {k} frame(s) were used)")
        if index == 0 and self.skipped:
            raise self.nothing_read(getattr(self, "_scanned", len(self.files)), "DICOM file(s)")
        self.end_reason = "end of files"


def _source_instance(file: DicomFile, frame_number: int | None) -> SourceInstance | None:
    if file.study is None or not file.sop_uid:
        return None
    return SourceInstance(file.study, file.series_uid, file.sop_class, file.sop_uid, frame_number)


def _with_patient(file: DicomFile, patient: str) -> DicomFile:
    import dataclasses

    return dataclasses.replace(file, patient_id=patient)
