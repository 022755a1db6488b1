"""The field-verification reference set, made at export (docs/design.md §4; checked by ``gout-edge verify``).

From the export's labelled data (the ``--calib`` index table, else a few freshly generated
phantom patients) a pool of raw frames is scored by the FP32 model through the runtime's own edge
path, and 24 are chosen: the lowest and highest probability, the ones nearest the image cut-off
(borderline), then both classes spread evenly over the probability range. Six of them are written
as DICOM files (MONOCHROME2 and RGB, RLE Lossless, with a Sequence of Ultrasound Regions) that
the cart decodes itself; the rest stay raw scanner screens (uint8, grey or BGR, with their console
overlays) in one ``.npz``. A no-signal screen and a colour-Doppler screen are added so that the
blank/colour flags are verified too. The non-borderline inputs form three reference patients.

Then every model file in the bundle runs the whole set through the runtime (``Scorer``: ROI →
preprocess → backend → CAM) with the engine that the cart would use for it, and the outputs are
stored compactly in ``reference/expected.npz`` (layout: ``gout_edge.reference_format``). All
reference files are listed in the manifest with role ``reference`` and hashed.

Privacy: frames from a real index table are de-identified by blacking out everything outside the
detected B-mode region (burned-in names and dates live in the console overlays); phantom frames,
which carry no patient data, keep their overlays. Reference patients are named R1…R3, never by
the source's identifiers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from gout_edge.calibration.index import read_index
from gout_edge.edge_runtime.field.reference_inputs import (
    load_reference_frames,
    refresh_expected_decisions,
    run_reference,
)
from gout_edge.edge_runtime.imaging.dicom_write import region_item, set_pixels, ultrasound_dataset, write_dataset
from gout_edge.edge_runtime.imaging.preprocess import find_roi, to_gray
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.sources.images import load_image
from gout_edge.manifest import EngineRef, Manifest, ReferenceInput, ReferencePatient, ReferenceSet
from gout_edge.reference_format import (
    DEFAULT_TOLERANCES,
    EXPECTED_NAME,
    INPUTS_NAME,
    REFERENCE_ENGINES,
    REFERENCE_ROLE,
    encode_cam,
    write_npz,
)

__all__ = [
    "Candidate",
    "add_reference_set",
    "build_reference_set",
    "refresh_expected_decisions",
    "select_reference",
]

log = logging.getLogger(__name__)

N_INPUTS = 24
N_BORDERLINE = 6
N_DICOM = 6
N_PATIENTS = 3
REFERENCE_OUT_OF_SCOPE_KINDS = ("cardiac_sector", "muscle", "abdominal", "doppler_carotid", "doppler_kidney",
                                "off_joint", "depth_extreme", "document", "xray", "photo")
SCOPE_MARGIN = 1.25  # an out-of-scope reference lies at least this many thresholds from the in-scope images
MAX_SCREEN_WIDTH = 384  # px: keeps the set ≲ 1.5 MB while the frames still need ROI extraction
POOL_MAX = 96
PHANTOM_PATIENTS = 3
SIZE_BUDGET_BYTES = 2_000_000  # with the out-of-scope screens

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """A raw frame (uint8 grey H×W or BGR H×W×3) that may enter the reference set."""

    frame: np.ndarray
    label: int  # 1 = lesion visible


# --------------------------------------------------------------------------------------------
# the pool of candidate frames


def _shrink(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= MAX_SCREEN_WIDTH:
        return np.ascontiguousarray(frame)
    size = (MAX_SCREEN_WIDTH, max(1, round(h * MAX_SCREEN_WIDTH / w)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _deidentify(frame: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Black out everything outside the detected B-mode region (burned-in annotations)."""

    gray, _ = to_gray(frame)
    roi = find_roi(gray, manifest.preprocess)
    out = np.zeros_like(frame)  # no region found: nothing is kept
    if roi is not None:
        out[roi.y0 : roi.y1, roi.x0 : roi.x1] = frame[roi.y0 : roi.y1, roi.x0 : roi.x1]
    return out


def _is_phantom_table(csv: Path) -> bool:
    truth = Path(csv).parent / "ground_truth.json"
    try:
        return "gout-edge phantom" in json.loads(truth.read_text(encoding="utf-8")).get("generator", "")
    except (OSError, ValueError, AttributeError):
        return False


def _candidate_pool(config, manifest: Manifest, workdir: Path, progress: Progress) -> tuple[list[Candidate], str]:

    if config.calib is not None:
        table = read_index(config.calib)
        synthetic = _is_phantom_table(table.path)
        source = f"index table {table.path.name} (sha256 {table.sha256[:16]}…)" + (
            "" if synthetic else "; de-identified: pixels outside the B-mode region blacked out"
        )
    else:
        from gout_edge.phantom import write_phantoms

        seed = config.calib_seed + 1
        progress(f"rendering {PHANTOM_PATIENTS} phantom patients for the reference set")
        write_phantoms(workdir, PHANTOM_PATIENTS, seed=seed, formats=("png",))
        table = read_index(workdir / "index.csv")
        synthetic = True
        source = f"synthetic phantoms: {PHANTOM_PATIENTS} patients, seed {seed}"
    rows = list(range(len(table)))
    if len(rows) > POOL_MAX:  # stratified by label, deterministic
        rng = np.random.default_rng([config.calib_seed, 7])
        labels = table.labels
        picked = []
        for label in (0, 1):
            idx = np.flatnonzero(labels == label)
            k = min(len(idx), POOL_MAX // 2)
            picked += rng.choice(idx, k, replace=False).tolist()
        rest = [i for i in rows if i not in set(picked)]
        picked += rng.choice(rest, POOL_MAX - len(picked), replace=False).tolist() if len(picked) < POOL_MAX else []
        rows = sorted(picked)
    pool = []
    for i in rows:
        frame = _shrink(load_image(table.rows[i].image))
        if not synthetic:
            frame = _deidentify(frame, manifest)
        pool.append(Candidate(frame, table.rows[i].image_label))
    return pool, source


# --------------------------------------------------------------------------------------------
# selection


def select_reference(
    probabilities: np.ndarray, labels: np.ndarray, cutoff: float, n: int = N_INPUTS, n_borderline: int = N_BORDERLINE
) -> list[tuple[int, str]]:
    """Indices (with the reason each was chosen) spanning the probability range and both classes."""
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels)
    chosen: dict[int, str] = {}

    def add(i: int, why: str) -> None:
        if int(i) not in chosen and len(chosen) < n:
            chosen[int(i)] = why

    order = np.argsort(p, kind="stable")
    if len(order):
        add(order[0], "lowest probability")
        add(order[-1], "highest probability")
    for i in np.argsort(np.abs(p - cutoff), kind="stable")[:n_borderline]:
        add(i, "borderline: nearest the image cut-off")
    quota = {1: (n - len(chosen) + 1) // 2, 0: (n - len(chosen)) // 2}
    for label, why in ((1, "spread: lesion image"), (0, "spread: image without lesion")):
        idx = [int(i) for i in order if labels[i] == label and int(i) not in chosen]
        k = min(quota[label], len(idx))
        for pos in np.unique(np.linspace(0, len(idx) - 1, k).round().astype(int)) if k else ():
            add(idx[pos], why)
    rest = [int(i) for i in order if int(i) not in chosen]
    k = min(n - len(chosen), len(rest))
    for pos in np.unique(np.linspace(0, len(rest) - 1, k).round().astype(int)) if k > 0 else ():
        add(rest[pos], "spread")
    for i in rest:  # rounding in linspace may have left gaps
        add(i, "spread")
    return sorted(chosen.items(), key=lambda item: p[item[0]])


def _patients(ids: list[str], p: np.ndarray, reasons: list[str], min_key_frames: int) -> list[ReferencePatient]:
    """Three reference patients: mostly-low, mixed and mostly-high frames; borderline frames stay out
    when enough others remain, so a patient's decision does not hinge on INT8 rounding."""
    core = [i for i, why in enumerate(reasons) if not why.startswith("borderline")]
    if len(core) // N_PATIENTS < min_key_frames:
        core = list(range(len(ids)))
    core.sort(key=lambda i: p[i])
    k = len(core) // N_PATIENTS
    if k == 0:
        return []
    groups = [core[:k], core[k : len(core) - k][:k], core[-k:]]
    names = ("R1", "R2", "R3")
    return [ReferencePatient(name, tuple(ids[i] for i in sorted(g))) for name, g in zip(names, groups, strict=True)]


# --------------------------------------------------------------------------------------------
# files


def _write_dicom(path: Path, frame: np.ndarray, roi: Sequence[int], photometric: str, uid_seed: str) -> None:
    """One frame as Ultrasound Image Storage in RLE Lossless (lossless, decoded by pydicom alone),
    with its B-mode region in a Sequence of Ultrasound Regions."""
    def uid(*parts: str) -> str:
        return str(generate_uid(entropy_srcs=["gout-edge-reference", uid_seed, *parts]))

    ds = ultrasound_dataset(uid(path.name), uid("study"), uid("series"), manufacturer="gout-edge reference set")
    ds.PatientName = "REFERENCE^GOUT-EDGE"
    ds.PatientID = "REFERENCE"
    ds.PatientIdentityRemoved = "YES"
    ds.ImageComments = "gout-edge field-verification reference input; not for diagnosis"
    ds.SequenceOfUltrasoundRegions = DicomSequence([region_item(roi)])
    set_pixels(ds, [frame], photometric, rle=True)
    write_dataset(ds, path)


def _no_signal(frame: np.ndarray, roi: Sequence[int]) -> np.ndarray:
    """The screen with a flat B-mode area: the probe lifted, or a frozen no-signal display."""
    x0, y0, x1, y1 = roi
    out = frame.copy()
    out[y0:y1, x0:x1] = 60
    return out


def _doppler(frame: np.ndarray, roi: Sequence[int]) -> np.ndarray:
    """The screen with a colour-Doppler box (red and blue flow) inside the B-mode area."""
    x0, y0, x1, y1 = roi
    bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    rx, ry = max(4, (x1 - x0) // 8), max(4, (y1 - y0) // 8)
    cv2.ellipse(bgr, (cx - rx // 2, cy), (rx, ry), 0, 0, 360, (30, 30, 220), -1)
    cv2.ellipse(bgr, (cx + rx, cy + ry // 2), (rx // 2, ry // 2), 0, 0, 360, (220, 60, 30), -1)
    return bgr


def _out_of_scope_screens(out: Path, manifest: Manifest, threads: int | None) -> list[tuple[str, np.ndarray]]:
    """With a scope guard: per out-of-scope category, the generated screen (shrunk like the others)
    that the FP32 guard refuses by the widest margin, if that margin is at least ``SCOPE_MARGIN``."""
    if manifest.scope is None:
        return []
    from gout_edge.phantom import generate_out_of_scope

    images = generate_out_of_scope(seed=7, per_category=1, kinds=REFERENCE_OUT_OF_SCOPE_KINDS)
    frames = [_shrink(image.screen) for image in images]
    scored = run_reference(Bundle(out, manifest), frames, "onnxruntime", "fp32", threads)
    assert scored.scope is not None
    best: dict[str, int] = {}
    for i in np.argsort(-scored.scope, kind="stable"):
        category = images[i].category
        if category not in best and not scored.blank[i] and scored.scope[i] >= SCOPE_MARGIN * manifest.scope.threshold:
            best[category] = int(i)
    return [(f"{images[i].category}/{images[i].kind}", frames[i]) for i in sorted(best.values())]


# --------------------------------------------------------------------------------------------
# the set


def build_reference_set(
    out: Path,
    manifest: Manifest,
    pool: Sequence[Candidate],
    source: str,
    threads: int | None = None,
    progress: Progress = lambda msg: None,
) -> Manifest:
    """Choose, write and run the reference set; return the manifest with its files and section."""
    from .build import file_entry

    out = Path(out)
    if not pool:
        raise ValueError("the reference set needs at least one candidate frame")
    progress("scoring reference candidates (FP32, edge path)")
    scored = run_reference(Bundle(out, manifest), [c.frame for c in pool], "onnxruntime", "fp32", threads)
    cutoff = manifest.decision.image_cutoff
    picked = select_reference(scored.probability, np.array([c.label for c in pool]), cutoff)
    if len(picked) < N_INPUTS:
        log.warning("only %d candidate frames for the reference set; %d wanted", len(picked), N_INPUTS)
    ids = [f"ref{k:02d}" for k in range(len(picked))]
    reasons = [why for _, why in picked]
    p = np.array([scored.probability[i] for i, _ in picked])
    patients = _patients(ids, p, reasons, manifest.decision.min_key_frames)
    member = {i: pt.name for pt in patients for i in pt.inputs}
    dicom_slots = set(np.linspace(1, len(picked) - 1, min(N_DICOM, max(0, len(picked) - 1))).round().astype(int).tolist())

    inputs: list[ReferenceInput] = []
    arrays: dict[str, np.ndarray] = {}
    dicom_files: list[str] = []
    n_dicom = 0
    for k, ((i, why), rid) in enumerate(zip(picked, ids, strict=True)):
        frame = pool[i].frame
        item = {"id": rid, "label": int(pool[i].label), "patient": member.get(rid), "selected_as": why}
        if k in dicom_slots:
            photometric = ("MONOCHROME2", "MONOCHROME2", "RGB")[n_dicom % 3]
            n_dicom += 1
            rel = f"reference/{rid}.dcm"
            _write_dicom(out / rel, frame, scored.roi[i], photometric, manifest.model.checkpoint_sha256)
            dicom_files.append(rel)
            item.update({"file": rel, "key": None, "kind": f"dicom-{photometric.lower()}"})
        else:
            arrays[rid] = frame
            item.update({"file": INPUTS_NAME, "key": rid, "kind": "screen-bgr" if frame.ndim == 3 else "screen-grey"})
        inputs.append(ReferenceInput(**item))
    # Frames that must stay out of the vote: a no-signal screen and a colour-Doppler screen.
    base = picked[0][0] if picked else 0
    for rid, kind, frame in (
        (f"ref{len(picked):02d}", "no-signal screen", _no_signal(pool[base].frame, scored.roi[base])),
        (f"ref{len(picked) + 1:02d}", "colour-doppler screen", _doppler(pool[base].frame, scored.roi[base])),
    ):
        arrays[rid] = frame
        inputs.append(ReferenceInput(rid, INPUTS_NAME, kind, key=rid, selected_as=kind))
    for kind, frame in _out_of_scope_screens(out, manifest, threads):
        rid = f"ref{len(inputs):02d}"
        arrays[rid] = frame
        inputs.append(ReferenceInput(rid, INPUTS_NAME, "out-of-scope screen", key=rid, selected_as=f"out of scope: {kind}"))
    write_npz(out / INPUTS_NAME, arrays)

    engines = {role: EngineRef(b, pr) for role, (b, pr) in REFERENCE_ENGINES.items() if role in manifest.roles()}
    section = ReferenceSet(
        inputs=tuple(inputs), expected=EXPECTED_NAME, engines=engines, patients=tuple(patients),
        tolerances=DEFAULT_TOLERANCES, source=source,
    )
    entries = tuple(file_entry(out, rel, REFERENCE_ROLE) for rel in (INPUTS_NAME, *dicom_files))
    manifest = dataclasses.replace(manifest, files=manifest.files + entries, reference=section)
    bundle = Bundle(out, manifest)
    frames = load_reference_frames(bundle)  # DICOM decoded by the runtime's loader, as on the cart

    expected: dict[str, np.ndarray] = {}
    index = {item.id: n for n, item in enumerate(inputs)}
    recorded: dict[str, dict[str, tuple[float, ...]]] = {pt.name: {} for pt in patients}
    preprocessed = None
    for role, engine in engines.items():
        progress(f"reference outputs: {role} on {engine.backend} {engine.precision}")
        outputs = run_reference(bundle, frames, engine.backend, engine.precision, threads)
        preprocessed = preprocessed or outputs  # ROI and flags do not depend on the model file
        u8, lo, scale = encode_cam(outputs.cam)
        expected.update({f"{role}.probability": outputs.probability, f"{role}.cam": u8,
                         f"{role}.cam_lo": lo, f"{role}.cam_scale": scale})
        if outputs.scope is not None:
            expected[f"{role}.scope"] = outputs.scope
        for pt in patients:  # float32 values, exact in JSON
            recorded[pt.name][role] = tuple(float(outputs.probability[index[i]]) for i in pt.inputs)
    if preprocessed is None:
        raise ValueError(f"the bundle has none of the model files {', '.join(REFERENCE_ENGINES)}")
    expected.update({"roi": preprocessed.roi, "blank": preprocessed.blank, "colour": preprocessed.colour})
    write_npz(out / EXPECTED_NAME, expected)
    entries += (file_entry(out, EXPECTED_NAME, REFERENCE_ROLE),)
    total = sum(e.size for e in entries)
    if total > SIZE_BUDGET_BYTES:
        log.warning("the reference set takes %.2f MB (> %.1f MB)", total / 1e6, SIZE_BUDGET_BYTES / 1e6)
    section = dataclasses.replace(
        section, size_bytes=total,
        patients=tuple(dataclasses.replace(pt, probabilities=recorded[pt.name]) for pt in patients),
    )
    manifest = dataclasses.replace(manifest, files=manifest.files + entries[-1:], reference=section)
    return refresh_expected_decisions(manifest)


def add_reference_set(out: Path, manifest: Manifest, config, progress: Progress = lambda msg: None) -> Manifest:
    """The export step: the pool from ``config`` (``calib`` table or phantoms), then the set."""
    with tempfile.TemporaryDirectory(prefix="gout-edge-reference-") as tmp:
        progress("preparing the reference set")
        pool, source = _candidate_pool(config, manifest, Path(tmp), progress)
    return build_reference_set(out, manifest, pool, source, config.threads, progress)
