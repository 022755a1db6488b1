"""Small ultrasound studies for the network tests and the soak: 320 × 240 grey stills (a speckled
B-mode region with its Sequence of Ultrasound Regions) written by the runtime's one DICOM writer,
uncompressed so any storage SCU sends them; header attributes as a test needs them (line feeds,
601-character names, invalid UIDs); and a cine whose pixel data no installed decoder reads (H.264)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from gout_edge.edge_runtime.imaging.dicom_write import region_item, set_pixels, ultrasound_dataset, write_dataset

from .screens import screen

H264 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile: pydicom has no decoder for it


def write_study(folder: Path, n: int, *, study_uid: str | None = None, seed: int = 0, patient_id: str = "NET-0001",
                patient_name: str = "NET^PATIENT", attrs: Mapping[str, Any] | None = None,
                size: tuple[int, int] = (240, 320), images: Sequence[np.ndarray] | None = None) -> list[Path]:
    """``n`` stills of one study in ``folder`` (``IM01.dcm`` …), each a different screen (or the
    ``images`` given, grey or BGR, without a declared region); ``attrs`` set on every file after the
    writer's own tags (any keyword, any value)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or str(generate_uid())
    series_uid = str(generate_uid())
    paths = []
    h, w = size
    for i in range(n):
        ds = ultrasound_dataset(str(generate_uid()), study_uid, series_uid)
        ds.PatientID, ds.PatientName = patient_id, patient_name
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20261201", "101500", "ACC1", "1"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        if images is not None:
            set_pixels(ds, [images[i % len(images)]], "MONOCHROME2" if images[i % len(images)].ndim == 2 else "RGB")
        else:
            ds.SequenceOfUltrasoundRegions = [region_item((w // 8, h // 8, w - w // 8, h - h // 8), 0.005)]
            set_pixels(ds, [screen(h, w, rect=(w // 8, h // 8, w - w // 8, h - h // 8), seed=seed * 1000 + i)],
                       "MONOCHROME2")
        for keyword, value in (attrs or {}).items():
            setattr(ds, keyword, value)
        if "SOPInstanceUID" in (attrs or {}):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        paths.append(write_dataset(ds, folder / f"IM{i + 1:02d}.dcm"))
    return paths


def changed_copy(path: Path, out: Path) -> Path:
    """The same instance (same SOP Instance UID) with other pixels: a re-send that changed."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.copy()
    arr[: arr.shape[0] // 2] = 255 - arr[: arr.shape[0] // 2]
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out


def write_h264_cine(path: Path, study_uid: str, patient_id: str = "NET-0001", frames: int = 10) -> Path:
    """An ultrasound cine of ``frames`` frames whose pixel data is H.264 (made-up bytes: no decoder
    gets that far, since none is installed for the syntax)."""
    ds = ultrasound_dataset(str(generate_uid()), study_uid, str(generate_uid()), multiframe=True)
    ds.PatientID, ds.PatientName = patient_id, "NET^PATIENT"
    ds.SeriesNumber, ds.InstanceNumber = 2, 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = 240, 320, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, "YBR_FULL_422"  # a header that reads as an image
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 8, 8, 7, 0, 0
    ds.FrameTime = 40.0
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01\x67" + bytes(200)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = H264
    return write_dataset(ds, path)
