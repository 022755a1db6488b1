"""Synthetic scanner screens and the files the scan tests read: a console screen, DICOM files of
every photometric and transfer syntax the runtime decodes (with ultrasound regions), MJPG videos,
and a still ``Frame``. No patient data: every pixel is drawn here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from gout_edge.edge_runtime.sources import Frame

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def screen(h: int = 240, w: int = 320, rect: tuple[int, int, int, int] = (40, 30, 280, 200), seed: int = 0,
           colour: bool = False) -> np.ndarray:
    """A black console with a speckled B-mode rectangle (x0, y0, x1, y1) and a line of text."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = rect
    speckle = rng.rayleigh(40.0, (y1 - y0, x1 - x0)).clip(0, 255)
    speckle += np.linspace(60, 0, y1 - y0)[:, None]  # some structure: a bright near field
    image[y0:y1, x0:x1] = speckle.clip(20, 255).astype(np.uint8)
    cv2.putText(image, "GAIN 52", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1)
    if colour:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        bgr[y0 + 20 : y0 + 60, x0 + 20 : x0 + 80] = (0, 0, 230)  # a Doppler box
        return bgr
    return image


def region(x0: int, y0: int, x1: int, y1: int, spatial: int = 1, data_type: int = 1):
    """A Sequence of Ultrasound Regions item with inclusive corners."""
    from pydicom.dataset import Dataset

    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = spatial, data_type, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x0, y0, x1, y1
    r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
    r.PhysicalDeltaX = r.PhysicalDeltaY = 0.005
    return r


def write_dicom(path: Path, frames: Sequence[np.ndarray], *, photometric: str = "MONOCHROME2",
                syntax: str = "1.2.840.10008.1.2.1", sop: str | None = None, patient: str | None = "PX1",
                study: str = "1.2.826.0.1.3680043.10.1.1", regions: Sequence = (), modality: str = "US",
                bits_stored: int = 8, palette: np.ndarray | None = None, instance: int = 1) -> Path:
    """Write an ultrasound DICOM file; ``frames`` are uint8/uint16 grey or RGB arrays."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import UID, generate_uid

    arr = np.stack(frames)
    multi = len(frames) > 1
    sop = sop or (US_MULTIFRAME if multi else US_IMAGE)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    if patient is not None:
        ds.PatientID = patient
        ds.PatientName = f"DOE^{patient}"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + ".1"
    ds.SeriesNumber, ds.InstanceNumber = 1, instance
    ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if arr.ndim == 4 else 1
    if arr.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 16 if arr.dtype == np.uint16 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    if multi:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = "50.0"
    if regions:
        ds.SequenceOfUltrasoundRegions = DicomSequence(list(regions))
    if palette is not None:  # (256, 3) uint16 lookup table
        for i, c in enumerate(("Red", "Green", "Blue")):
            setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{c}PaletteColorLookupTableData", palette[:, i].astype("<u2").tobytes())
    uid = UID(syntax)
    if uid == "1.2.840.10008.1.2.4.50":  # JPEG Baseline, 4:2:2, as the phantom writer and carts do
        import io

        from PIL import Image

        encoded = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=95, subsampling=1)
            encoded.append(buf.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
    elif uid == "1.2.840.10008.1.2.5":
        ds.compress(uid, arr if multi else arr[0], encoding_plugin="pydicom")
    elif uid.is_transfer_syntax and not uid.is_compressed:
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW" if arr.dtype == np.uint16 else "OB"
    else:  # a syntax no plugin can decode here: only the header matters
        ds.PixelData = encapsulate([b"\xff\x4f\x00\x00not really compressed"])
        ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    if uid.is_transfer_syntax:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return path



def write_video(path: Path, n: int = 20, size: tuple[int, int] = (320, 240), fps: float = 25.0) -> Path:
    """An MJPG file of ``n`` distinct screens, each with its frame number drawn in the corner."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        frame = cv2.cvtColor(screen(size[1], size[0], seed=i), cv2.COLOR_GRAY2BGR)
        cv2.putText(frame, str(i), (250, 230), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        writer.write(frame)
    writer.release()
    return path


def still(i: int, seed: int | None = None, **kw) -> Frame:
    """Frame ``i`` as a still image (``im<i>.png``): the screen of seed ``i`` unless given."""
    return Frame(screen(seed=i if seed is None else seed, **kw), i, float(i), still=True, origin=f"im{i}.png")
