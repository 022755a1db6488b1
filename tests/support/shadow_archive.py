"""A small hospital archive for ``gout-edge shadow``: phantom DICOM studies (``write_phantoms``) with
scanner rooms and exam months spread over them, plus the damage a real archive holds — a study whose
every file lost the end of its pixel data, a file that is no DICOM at all but named ``.dcm``, and a
good study with one truncated file. Also an old bundle that differs from the demo bundle in its
thresholds, so that verdicts change. Used by tests/test_shadow.py and benchmarks/shadow_throughput.py.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STATIONS = ("US-ROOM-1", "US-ROOM-2", "US-CART-3")
MONTHS = ("202301", "202302", "202303")


@dataclass(frozen=True)
class ShadowArchive:
    root: Path  # the phantom folder (index.csv, ground_truth.json)
    archive: Path  # root / "dicom": the archive given to --archive
    labels: Path  # root / "index.csv"
    patients: int  # phantom studies
    damaged_study: str  # Patient ID of the study whose files are all truncated
    garbage: str  # archive-relative path of the file that is not DICOM
    truncated_file: str  # archive-relative path of the one truncated file inside a good study

    @property
    def studies(self) -> int:  # rows expected in studies.parquet
        return self.patients + 2


def _retag(path: Path, **tags: str) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)


def make_archive(root: Path, patients: int, seed: int = 5, damaged: bool = True, retag: bool = True) -> ShadowArchive:
    """``patients`` phantom DICOM studies under ``root/dicom`` (labels in ``root/index.csv``)."""
    import pydicom
    from pydicom.uid import generate_uid

    from gout_edge.phantom import write_phantoms

    write_phantoms(root, patients, seed=seed, formats=("dicom",))
    archive = root / "dicom"
    folders = sorted(p for p in archive.iterdir() if p.is_dir())
    if retag:  # scanner rooms and months, as a hospital archive has them
        for i, folder in enumerate(folders):
            for f in sorted(folder.iterdir()):
                _retag(f, StationName=STATIONS[i % len(STATIONS)], StudyDate=MONTHS[i % len(MONTHS)] + "15")
    damaged_id = garbage = truncated = ""
    if damaged:
        # a study of three files, each cut in the middle of its pixel data (the header is intact)
        damaged_id = "DAMAGED1"
        target = archive / "DAMAGED1"
        target.mkdir()
        study_uid = str(generate_uid(entropy_srcs=["shadow-damaged", str(seed)]))
        for k, src in enumerate(sorted(folders[0].glob("IM0[1-3]_*.dcm"))):
            ds = pydicom.dcmread(src)
            ds.PatientID, ds.PatientName, ds.StudyInstanceUID = damaged_id, "DAMAGED^ONE", study_uid
            ds.SOPInstanceUID = str(generate_uid(entropy_srcs=["shadow-damaged", str(seed), str(k)]))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            out = target / src.name
            ds.save_as(out, enforce_file_format=True)
            data = out.read_bytes()
            out.write_bytes(data[: len(data) - max(2000, (len(data) - 4000) // 2)])
        # a file named .dcm that holds no DICOM at all
        (archive / "ZZ_TRASH").mkdir()
        garbage = "ZZ_TRASH/noise.dcm"
        (archive / garbage).write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        # one truncated file inside a good study (the study is scored without it, as the cart does)
        victim = sorted(folders[-1].glob("IM05_*.dcm"))[0]
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 2])
        truncated = victim.relative_to(archive).as_posix()
    return ShadowArchive(root, archive, root / "index.csv", patients, damaged_id, garbage, truncated)


def old_bundle(dest: Path, patient_threshold: float = 0.45, image_cutoff: float = 0.3) -> Path:
    """A copy of the demo bundle with other thresholds (the same network): an "old" bundle whose
    verdicts and image calls differ from the demo's on some studies."""
    from gout_edge.edge_runtime.inference.loading import default_bundle_path, open_bundle
    from gout_edge.manifest import write_manifest

    shutil.copytree(default_bundle_path(), dest)
    m = open_bundle(dest).manifest
    decision = dataclasses.replace(m.decision, patient_threshold=patient_threshold, image_cutoff=image_cutoff)
    write_manifest(dest, dataclasses.replace(m, decision=decision))
    return dest


def crashing_score(ref: dict) -> dict:
    """``engines.run_local``'s per-study function, except that the worker dies (as a native
    decoder crash kills it) on the study of Patient ID ``P0002``."""
    import os

    from gout_edge.shadow import engines

    if ref.get("patient_id") == "P0002":
        os._exit(11)
    return engines._score(ref)
