"""Scanner screens as DICOM: Ultrasound Image Storage frames and a multi-frame cine per patient.

Three pixel encodings rotate between files, as carts differ: MONOCHROME2 and RGB uncompressed
(Explicit VR Little Endian), and YBR_FULL_422 in JPEG Baseline (pydicom has no JPEG Baseline
encoder, so Pillow writes the 4:2:2 JPEG and ``pydicom.encaps.encapsulate`` wraps it). Every file
carries a Sequence of Ultrasound Regions with one 2-D tissue region: the B-mode area, inclusive
corners, pixel spacing in cm. Patient and study tags are synthetic (``PHANTOM^P0007``) and every
UID is derived from the seed, so the same seed writes the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from gout_edge.edge_runtime.imaging.dicom_write import (
    PHOTOMETRIC_VARIANTS,
    region_item,
    set_pixels,
    ultrasound_dataset,
    write_dataset,
)

from ._screen import Layout
from .patients import ImageSpec, Patient, study_date

__all__ = ["write_dicom"]


def _uid(seed: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=["gout-edge-phantom", str(seed), *map(str, parts)]))


def _region(layout: Layout, pixel_mm: float) -> Dataset:
    return region_item(layout.bmode_rect, pixel_mm / 10.0)


def _dataset(patient: Patient, seed: int, sop_uid: str, series: int, instance: int, multiframe: bool = False) -> Dataset:
    ds = ultrasound_dataset(sop_uid, _uid(seed, patient.patient_id, "study"), _uid(seed, patient.patient_id, "series", series),
                            multiframe=multiframe, manufacturer="gout-edge synthetic phantom")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDate = study_date(patient.patient_id)
    ds.StudyTime = "103000"
    ds.ContentDate = ds.StudyDate
    ds.AccessionNumber = f"SYN{patient.patient_id[1:]}"
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
    ds.StudyID = "1"
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.Laterality = "R"
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    return ds


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
        ds = _dataset(patient, seed, sop, 1, spec.index)
        ds.SeriesDescription = "MTP1 static images"
        ds.ImageComments = f"SYNTHETIC PHANTOM, {spec.view} view; not patient data"
        ds.SequenceOfUltrasoundRegions = DicomSequence([_region(layout, pixel_mm)])
        set_pixels(ds, [screen], photometric)
        path = folder / f"IM{spec.index:02d}_{spec.view}.dcm"
        write_dataset(ds, path)
        paths.append(path)
    spec, frames, pixel_mm, fps = cine
    photometric = PHOTOMETRIC_VARIANTS[patient_index % len(PHOTOMETRIC_VARIANTS)]
    ds = _dataset(patient, seed, _uid(seed, patient.patient_id, "cine"), 2, 1, multiframe=True)
    ds.SeriesDescription = "MTP1 cine"
    ds.ImageComments = f"SYNTHETIC PHANTOM cine, {spec.view} view; not patient data"
    ds.FrameTime = f"{1000.0 / fps:.1f}"
    ds.CineRate = fps
    ds.RecommendedDisplayFrameRate = fps
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.SequenceOfUltrasoundRegions = DicomSequence([_region(cine_layout, pixel_mm)])
    set_pixels(ds, list(frames), photometric)
    path = folder / "CINE.dcm"
    write_dataset(ds, path)
    paths.append(path)
    return paths
