"""Ultrasound DICOM writing: the one writer behind the phantom generator, the reference set and
the DICOM results of an exam.

``ultrasound_dataset`` makes an Ultrasound (Multi-frame) Image Storage dataset with its file meta
and the tags every writer sets; ``region_item`` describes the B-mode area in a Sequence of
Ultrasound Regions item; ``set_pixels`` stores BGR frames as MONOCHROME2 or RGB (uncompressed, or
RLE Lossless, which pydicom decodes alone) or YBR_FULL_422 in JPEG Baseline (Pillow writes the
4:2:2 JPEG, ``pydicom.encaps.encapsulate`` wraps it: pydicom has no JPEG Baseline encoder);
``write_dataset`` saves it atomically. SOP classes come from ``pydicom.uid``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from gout_edge._io import atomic_write

__all__ = ["PHOTOMETRIC_VARIANTS", "region_item", "set_pixels", "ultrasound_dataset", "write_dataset"]

PHOTOMETRIC_VARIANTS = ("MONOCHROME2", "RGB", "YBR_FULL_422")
JPEG_QUALITY = 90


def ultrasound_dataset(sop_uid: str, study_uid: str, series_uid: str, *, multiframe: bool = False,
                       manufacturer: str = "gout-edge") -> Dataset:
    """An ultrasound image dataset with its file meta, UIDs and modality; the caller adds patient,
    study and series tags, the region and the pixels."""
    sop_class = UltrasoundMultiFrameImageStorage if multiframe else UltrasoundImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    return ds


def region_item(roi: Sequence[int], pixel_cm: float | None = None) -> Dataset:
    """One 2-D tissue region of a Sequence of Ultrasound Regions: ``roi`` = (x0, y0, x1, y1),
    exclusive ends (written inclusive, as DICOM wants); ``pixel_cm`` the physical pixel size."""
    x0, y0, x1, y1 = (int(v) for v in roi)
    r = Dataset()
    r.RegionSpatialFormat = 1  # 2-D
    r.RegionDataType = 1  # tissue
    r.RegionFlags = 0
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1 - 1, y1 - 1  # inclusive
    if pixel_cm is not None:
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3  # cm
        r.PhysicalDeltaX = r.PhysicalDeltaY = float(pixel_cm)
        r.ReferencePixelX0, r.ReferencePixelY0 = (x1 - x0) // 2, 0
        r.ReferencePixelPhysicalValueX = r.ReferencePixelPhysicalValueY = 0.0
    return r


def _bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=1)  # 4:2:2
    return buf.getvalue()


def set_pixels(ds: Dataset, frames: Sequence[np.ndarray], photometric: str, *, rle: bool = False) -> None:
    """Store uint8 frames (grey or BGR) with ``photometric`` (one of ``PHOTOMETRIC_VARIANTS``):
    MONOCHROME2 and RGB uncompressed, or RLE Lossless with ``rle``; YBR_FULL_422 as JPEG Baseline."""
    if photometric not in PHOTOMETRIC_VARIANTS:
        raise ValueError(f"photometric {photometric!r} is not one of {PHOTOMETRIC_VARIANTS}")
    h, w = frames[0].shape[:2]
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = photometric
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    if photometric == "MONOCHROME2":
        ds.SamplesPerPixel = 1
        data = np.stack([f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames])
    else:
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        data = np.stack([cv2.cvtColor(_bgr(f), cv2.COLOR_BGR2RGB) for f in frames])
    if photometric == "YBR_FULL_422":
        encoded = [_jpeg(f) for f in data]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ratio = h * w * 3 * len(encoded) / sum(len(e) for e in encoded)
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        return
    pixels = np.ascontiguousarray(data if len(frames) > 1 else data[0])
    if rle:
        ds.compress(RLELossless, pixels)
        return
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Save as a DICOM file (preamble, file meta), atomically; the folder is made if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
