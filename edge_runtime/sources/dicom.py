"""DICOM input: a file, a multi-frame cine, or a directory tree of studies (pydicom).

Every file is checked before the first frame is scored — readable, an image, a transfer syntax an
installed decoder handles, an ultrasound SOP class — so an exam never stops half-way on a bad
file. Frames come out grouped by patient and study (``Frame.group``), in series and instance
order, as uint8 grey (MONOCHROME1 inverted) or BGR (RGB, YBR_FULL, YBR_FULL_422 and PALETTE
COLOR converted). A Sequence of Ultrasound Regions gives the B-mode region: the largest 2-D
tissue region, clipped to the image (real exports declare regions beyond Rows × Columns) and
dropped for image analysis when what is left is implausible.

Decoders are pydicom's plugins: native and RLE always, JPEG Baseline/Extended and JPEG 2000 with
pillow, the rest with pylibjpeg, pyjpegls or python-gdcm when installed; a file whose decoder
is missing is refused with what to install. Logs and messages name files by their base name only
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydicom import uid

from gout_edge.bundle import PreprocessSpec
from gout_edge.errors import InputError

from ..dicom_identity import SourceInstance, StudyIdentity
from ..preprocess import Roi
from ._base import FileSource, Frame, SourceGroup, to_uint8
from ._guard import check_dicom_size, file_error, limit_pillow, reason_of, without_name

__all__ = [
    "DicomFile",
    "DicomSource",
    "RegionInfo",
    "check_decoder",
    "decode_frames",
    "is_dicom_file",
    "read_dicom_file",
    "ultrasound_region",
]

log = logging.getLogger(__name__)

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
     "pip install pylibjpeg pylibjpeg-libjpeg (GPLv3), or pip install python-gdcm"),
    (("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
     "pip install pyjpegls, or pip install pylibjpeg pylibjpeg-libjpeg (GPLv3), or pip install python-gdcm"),
    (("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20"),
     "pip install pylibjpeg pylibjpeg-openjpeg, or pillow built with OpenJPEG, or pip install python-gdcm"),
    (("1.2.840.10008.1.2.5",), "pip install pylibjpeg pylibjpeg-rle (pydicom's own RLE decoder needs numpy)"),
)


@dataclass(frozen=True)
class RegionInfo:
    """The B-mode region a file declares: ``roi`` (clipped; None when absent or implausible)."""

    roi: Roi | None
    pixel_mm: float | None
    declared: bool  # the file has a 2-D tissue region
    clipped: bool  # it reached past Rows × Columns
    note: str


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


def _float(value: object) -> float | None:
    """A single finite number, or None (absent, several values, text that is not a number)."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def ultrasound_region(ds: object, rows: int, columns: int, min_fraction: float | None = None) -> RegionInfo:
    """The largest 2-D tissue region of the Sequence of Ultrasound Regions, clipped to the image.

    Corners are inclusive in DICOM; the ``Roi`` is end-exclusive. Pixel spacing in mm comes from
    PhysicalDeltaX when its unit is cm (3).
    """
    if min_fraction is None:
        min_fraction = PreprocessSpec().roi_min_area_fraction
    items = getattr(ds, "SequenceOfUltrasoundRegions", None) or []
    best: tuple[int, Roi, Roi, object] | None = None
    for item in items:
        if _int(item.get("RegionSpatialFormat")) != 1 or _int(item.get("RegionDataType")) != 1:
            continue  # Doppler, M-mode, waveform, graphics
        try:
            raw = Roi(int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                      int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1)
        except (AttributeError, TypeError, ValueError):
            continue
        roi = raw.clip(rows, columns)
        area = max(0, roi.width) * max(0, roi.height)
        if best is None or area > best[0]:
            best = (area, roi, raw, item)
    if best is None:
        return RegionInfo(None, None, False, False, "no 2-D tissue region declared")
    area, roi, raw, item = best
    pixel_mm = None
    if _int(item.get("PhysicalUnitsXDirection")) == 3:
        delta = _float(item.get("PhysicalDeltaX"))  # VM 1; anything else is ignored
        pixel_mm = delta * 10.0 if delta is not None and 0 < delta < 1e3 else None
    clipped = roi != raw
    if area <= 0 or not roi.is_plausible(rows, columns, min_fraction):
        return RegionInfo(None, pixel_mm, True, clipped,
                          f"declared region {raw.x0},{raw.y0}–{raw.x1 - 1},{raw.y1 - 1} leaves "
                          f"{max(0, roi.width)}×{max(0, roi.height)} px inside the {columns}×{rows} image; "
                          "the image is analysed instead")
    note = "declared region" + (f", clipped to the {columns}×{rows} image" if clipped else "")
    return RegionInfo(roi, pixel_mm, True, clipped, note)


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
    if not syntax:  # files without meta information: assume the DICOM default
        syntax = "1.2.840.10008.1.2"
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper().strip()
    if photometric not in PHOTOMETRICS:
        raise InputError(f"DICOM file {name} has photometric interpretation {photometric[:40]!r}; expected one of {', '.join(PHOTOMETRICS)}")
    rows, columns = _int(ds.Rows), _int(ds.Columns)
    check_dicom_size(name, rows, columns, max(1, _int(ds.get("NumberOfFrames"), 1)),
                     _int(ds.get("SamplesPerPixel"), 1), _int(ds.get("BitsAllocated"), 8))
    frame_time = ds.get("FrameTime")
    try:
        frame_time_ms = float(frame_time) if frame_time not in (None, "") else None
    except (TypeError, ValueError):
        frame_time_ms = None
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
        region=ultrasound_region(ds, rows, columns),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        study=StudyIdentity.from_dataset(ds),
    )


def decode_frames(file: DicomFile) -> Iterator[np.ndarray]:
    """The file's frames, one at a time, as uint8 grey or BGR (``InputError`` naming the file and
    the frame when decoding fails, or when the file gives fewer frames than it declares)."""
    import pydicom
    from pydicom.pixels import iter_pixels

    check_decoder(file.transfer_syntax, f"DICOM file {file.name}")
    limit_pillow()
    produced = 0
    try:
        lut_ds = pydicom.dcmread(file.path, stop_before_pixels=True, force=True) if file.photometric == "PALETTE COLOR" else None
        for arr in iter_pixels(file.path, as_rgb=True):  # frames are decoded one at a time
            produced += 1
            yield _to_display(arr, file, lut_ds)
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


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    return f"{UID(uid).name} ({uid})"


def _to_display(arr: np.ndarray, file: DicomFile, lut_ds: object) -> np.ndarray:
    if file.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, lut_ds)
        if arr.dtype != np.uint8:  # 16-bit lookup tables
            arr = (arr.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        # pydicom converts YBR to RGB on decoding (as_rgb=True)
        return cv2.cvtColor(np.ascontiguousarray(to_uint8(arr[..., :3], file.bits_stored)), cv2.COLOR_RGB2BGR)
    if arr.ndim != 2:
        raise InputError(f"DICOM file {file.name} gives pixel arrays of shape {arr.shape}; expected one image per frame")
    grey = to_uint8(arr, file.bits_stored)
    if file.photometric == "MONOCHROME1":  # 0 is white
        grey = 255 - grey
    return np.ascontiguousarray(grey)


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
        self.files = files
        self._check(files)

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

    def _check(self, files: list[DicomFile]) -> None:
        for f in files:
            check_decoder(f.transfer_syntax, f"DICOM file {f.name}")
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
                    origin = rel if still else f"{rel} frame {k}"
                    yield Frame(image, index, (k - 1) * step_s, roi=file.region.roi, group=file.group,
                                patient_id=file.patient_id, still=still, origin=origin,
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
