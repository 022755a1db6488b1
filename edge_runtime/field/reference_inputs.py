"""The reference set on this device: its raw frames and expected outputs read from the bundle,
run through the edge path, and the reference patients' decisions (format: ``gout_edge.reference_format``).

``export`` builds the set with these functions, ``calibrate`` refreshes the expected decisions
with ``refresh_expected_decisions`` and ``verify`` compares what this device makes of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.inference.loading import reference_file
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.pipeline.verdict import Vote, verdict
from gout_edge.edge_runtime.sources.dicom import decode_frames, read_dicom_file
from gout_edge.errors import BundleError, InputError
from gout_edge.manifest import DecidedWith, DecisionSpec, Manifest, ReferenceSet
from gout_edge.reference_format import ReferenceOutputs, reference_section

__all__ = [
    "ReferenceFrame",
    "load_reference_frames",
    "patient_decisions",
    "refresh_expected_decisions",
    "stored_decisions",
    "run_reference",
]


@dataclass(frozen=True)
class ReferenceFrame:
    """A raw reference frame and, for DICOM, the B-mode region the file declares."""

    image: np.ndarray  # uint8, H×W grey or H×W×3 BGR
    roi: Roi | None = None


def _decode_dicom(path: Path, input_id: str) -> ReferenceFrame:
    """A reference DICOM file as the cart reads one: the runtime's DICOM source (first frame and
    the Sequence of Ultrasound Regions)."""
    try:
        file = read_dicom_file(path)
        frames = decode_frames(file)
        try:
            image = next(iter(frames))
        finally:
            getattr(frames, "close", lambda: None)()
    except (InputError, StopIteration) as exc:
        raise BundleError(f"reference input {input_id} ({path.name}) cannot be decoded on this device: {exc}") from None
    return ReferenceFrame(image, file.region.roi)


def load_reference_frames(bundle) -> list[ReferenceFrame]:
    """The raw reference frames, in manifest order: npz frames as stored, DICOM decoded here."""
    archives: dict[str, Any] = {}
    frames = []
    try:
        for item in reference_section(bundle.manifest).inputs:
            path = reference_file(bundle, item.file)
            if item.key is not None:
                if item.file not in archives:
                    archives[item.file] = np.load(path, allow_pickle=False)
                try:
                    frame = ReferenceFrame(archives[item.file][item.key])
                except KeyError:
                    raise BundleError(f"reference input {item.id}: {item.file} has no array {item.key!r}") from None
            else:
                frame = _decode_dicom(path, item.id)
            if frame.image.dtype != np.uint8:
                raise BundleError(f"reference input {item.id} is {frame.image.dtype}; raw frames are uint8")
            frames.append(frame)
    except ValueError as exc:  # a damaged or pickled npz
        raise BundleError(f"the reference inputs cannot be read ({exc}); re-export the bundle") from None
    finally:
        for archive in archives.values():
            archive.close()
    return frames


def run_reference(
    bundle, frames: Sequence[ReferenceFrame | np.ndarray], backend: str, precision: str, threads: int | None = None,
    batch: int = 8,
) -> ReferenceOutputs:
    """Raw frames through the edge path (``Scorer``: ROI → preprocess → backend → CAM → scope guard)."""

    items = [f if isinstance(f, ReferenceFrame) else ReferenceFrame(f) for f in frames]
    scorer = Scorer(bundle, backend, precision, threads)
    scores = []
    try:
        for i in range(0, len(items), batch):
            scores += scorer.score_prepared([scorer.prepare(f.image, f.roi) for f in items[i : i + batch]])
    finally:
        scorer.close()
    return ReferenceOutputs(
        probability=np.array([s.probability for s in scores], np.float32),
        cam=np.stack([np.asarray(s.cam, np.float32) for s in scores]),
        roi=np.array([[s.roi.x0, s.roi.y0, s.roi.x1, s.roi.y1] for s in scores], np.int32).reshape(-1, 4),
        blank=np.array([s.blank for s in scores], bool),
        colour=np.array([s.colour for s in scores], bool),
        scope=None if scorer.guard is None else np.array([s.scope_distance for s in scores], np.float32),
    )


def patient_decisions(reference: ReferenceSet, probabilities: Sequence[float], decision: DecisionSpec) -> dict[str, str]:
    """Each reference patient's diagnosis by the paper's vote, from per-input probabilities."""

    index = {item.id: i for i, item in enumerate(reference.inputs)}
    p = np.asarray(probabilities, np.float64)
    return {pt.name: verdict([Vote(float(p[index[i]])) for i in pt.inputs], decision).diagnosis.value
            for pt in reference.patients}


def stored_decisions(reference: ReferenceSet, role: str, decision: DecisionSpec) -> dict[str, str]:
    """Each reference patient's diagnosis from the probabilities the model owner recorded."""

    return {pt.name: verdict([Vote(float(q)) for q in pt.probabilities[role]], decision).diagnosis.value
            for pt in reference.patients}


def refresh_expected_decisions(manifest: Manifest) -> Manifest:
    """The manifest with its reference patients' expected decisions recomputed for its current
    decision settings. Whoever sets the threshold (``export``, ``gout-edge calibrate``) calls this
    before writing (and signing) the manifest; verification then fails on a later edit that
    changes a reference patient's decision."""
    ref = manifest.reference
    if ref is None or not ref.patients:
        return manifest
    d = manifest.decision
    ref = dataclasses.replace(
        ref,
        expected_decisions={role: stored_decisions(ref, role, d) for role in ref.engines},
        decided_with=DecidedWith(d.image_cutoff, d.patient_threshold, d.min_key_frames),
    )
    return dataclasses.replace(manifest, reference=ref)

