"""Scanner screens as DICOM: Ultrasound Image Storage frames and a multi-frame cine per patient.

Three pixel encodings rotate between files, as carts differ: MONOCHROME2 and RGB uncompressed
(Explicit VR Little Endian), and YBR_FULL_422 in JPEG Baseline (pydicom has no JPEG Baseline
encoder, so Pillow writes the 4:2:2 JPEG and ``pydicom.encaps.encapsulate`` wraps it). Every file
carries a Sequence of Ultrasound Regions with one 2-D tissue region: the B-mode area, inclusive
corners, pixel spacing in cm. Patient and study tags are synthetic (``PHANTOM^P0007``) and every
UID is derived from the seed, so the same seed writes the same files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from ._screen import Layout
from .patients import ImageSpec, Patient, study_date

__all__ = ["PHOTOMETRIC_VARIANTS", "US_IMAGE_STORAGE", "US_MULTIFRAME_STORAGE", "write_dicom"]

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
PHOTOMETRIC_VARIANTS = ("MONOCHROME2", "RGB", "YBR_FULL_422")
JPEG_QUALITY = 90


def _uid(seed: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=["gout-edge-phantom", str(seed), *map(str, parts)]))


def _region(layout: Layout, pixel_mm: float) -> Dataset:
    x0, y0, x1, y1 = layout.bmode_rect
    r = Dataset()
    r.RegionSpatialFormat = 1  # 2-D
    r.RegionDataType = 1  # tissue
    r.RegionFlags = 0
    r.RegionLocationMinX0 = x0
    r.RegionLocationMinY0 = y0
    r.RegionLocationMaxX1 = x1 - 1  # inclusive
    r.RegionLocationMaxY1 = y1 - 1
    r.PhysicalUnitsXDirection = 3  # cm
    r.PhysicalUnitsYDirection = 3
    r.PhysicalDeltaX = pixel_mm / 10.0
    r.PhysicalDeltaY = pixel_mm / 10.0
    r.ReferencePixelX0 = (x1 - x0) // 2
    r.ReferencePixelY0 = 0
    r.ReferencePixelPhysicalValueX = 0.0
    r.ReferencePixelPhysicalValueY = 0.0
    return r


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=1)  # 4:2:2
    return buf.getvalue()


def _pixels(ds: Dataset, frames_bgr: Sequence[np.ndarray], photometric: str) -> None:
    h, w = frames_bgr[0].shape[:2]
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = photometric
    if photometric == "MONOCHROME2":
        ds.SamplesPerPixel = 1
        data = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames_bgr])
        ds.PixelData = data.tobytes()
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames_bgr]
    if photometric == "RGB":
        ds.PixelData = np.stack(rgb).tobytes()
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return
    if photometric != "YBR_FULL_422":
        raise ValueError(f"photometric {photometric!r} is not one of {PHOTOMETRIC_VARIANTS}")
    encoded = [_jpeg(f) for f in rgb]
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ratio = h * w * 3 * len(encoded) / sum(len(e) for e in encoded)
    ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]


def _dataset(patient: Patient, seed: int, sop_class: str, sop_uid: str, series: int, instance: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date(patient.patient_id)
    ds.StudyTime = "103000"
    ds.ContentDate = ds.StudyDate
    ds.AccessionNumber = f"SYN{patient.patient_id[1:]}"
    ds.Modality = "US"
    ds.Manufacturer = "gout-edge synthetic phantom"
    ds.ManufacturerModelName = patient.scanner.name
    ds.InstitutionName = "SYNTHETIC PHANTOM"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "MTP1 ULTRASOUND (SYNTHETIC PHANTOM)"
    ds.PatientName = f"PHANTOM^{patient.patient_id}"
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.BodyPartExamined = "FOOT"
    ds.TransducerData = [patient.scanner.probe]
    ds.StudyInstanceUID = _uid(seed, patient.patient_id, "study")
    ds.SeriesInstanceUID = _uid(seed, patient.patient_id, "series", series)
    ds.StudyID = "1"
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.Laterality = "R"
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    return ds


def _write(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_dicom(
    out_dir: Path,
    patient: Patient,
    patient_index: int,
    seed: int,
    screens: Sequence[tuple[ImageSpec, np.ndarray, float]],
    cine: tuple[ImageSpec, Sequence[np.ndarray], float, int],
    layout: Layout,
    cine_layout: Layout,
) -> list[Path]:
    """Write one patient's single frames (``screens``: spec, BGR screen, mm per pixel) and cine.

    ``cine`` is (spec, BGR frames, mm per pixel on screen, frames per second).
    """
    folder = out_dir / "dicom" / patient.patient_id
    paths = []
    for spec, screen, pixel_mm in screens:
        photometric = PHOTOMETRIC_VARIANTS[(patient_index + spec.index) % len(PHOTOMETRIC_VARIANTS)]
        sop = _uid(seed, patient.patient_id, "image", spec.index)
        ds = _dataset(patient, seed, US_IMAGE_STORAGE, sop, 1, spec.index)
        ds.SeriesDescription = "MTP1 static images"
        ds.ImageComments = f"SYNTHETIC PHANTOM, {spec.view} view; not patient data"
        ds.SequenceOfUltrasoundRegions = DicomSequence([_region(layout, pixel_mm)])
        _pixels(ds, [screen], photometric)
        path = folder / f"IM{spec.index:02d}_{spec.view}.dcm"
        _write(ds, path)
        paths.append(path)
    spec, frames, pixel_mm, fps = cine
    photometric = PHOTOMETRIC_VARIANTS[patient_index % len(PHOTOMETRIC_VARIANTS)]
    ds = _dataset(patient, seed, US_MULTIFRAME_STORAGE, _uid(seed, patient.patient_id, "cine"), 2, 1)
    ds.SeriesDescription = "MTP1 cine"
    ds.ImageComments = f"SYNTHETIC PHANTOM cine, {spec.view} view; not patient data"
    ds.NumberOfFrames = len(frames)
    ds.FrameTime = f"{1000.0 / fps:.1f}"
    ds.CineRate = fps
    ds.RecommendedDisplayFrameRate = fps
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.SequenceOfUltrasoundRegions = DicomSequence([_region(cine_layout, pixel_mm)])
    _pixels(ds, list(frames), photometric)
    path = folder / "CINE.dcm"
    _write(ds, path)
    paths.append(path)
    return paths
