"""The bundle contract between ``export`` and ``edge_runtime`` (docs/design.md §4).

A bundle is a directory with ``manifest.json`` at its root. The manifest is a tree of frozen
dataclasses; ``Manifest.from_dict`` validates a parsed manifest — types, then ranges — and names
the first field that breaks the contract. Every field has a reader (the runtime, a command, or
``gout-edge info`` for the records kept for people); a field that nothing reads is removed.

Format versions: this module writes version 2 and reads versions 1 and 2. A version-1 manifest
is upgraded in memory (``_upgrade_v1``) and never rewritten on open, so its signature, made over
the file's bytes, still verifies. This module is torch-free and numpy-free: the runtime and the
exporter both import it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ._io import atomic_write_bytes
from .errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "Budgets",
    "CamScale",
    "DecidedWith",
    "DecisionSpec",
    "EngineRef",
    "Evaluation",
    "ExportInfo",
    "FidelityGate",
    "FileEntry",
    "InputSpec",
    "Manifest",
    "ModelInfo",
    "OutputSpec",
    "Parity",
    "PreprocessSpec",
    "Quantization",
    "ReferenceInput",
    "ReferencePatient",
    "ReferenceSet",
    "SCOPE_METHODS",
    "SCOPE_ROLE",
    "ScopeSpec",
    "ToleranceSet",
    "Tolerances",
    "manifest_bytes",
    "read_manifest",
    "write_manifest",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
NOT_FOR_CLINICAL_USE = "Research software; a model trained on synthetic phantoms is not for clinical use."
INTERPOLATIONS = ("area", "linear", "cubic")  # edge_runtime.imaging.preprocess maps them to OpenCV flags


class TextEnum(str, Enum):
    """A str Enum whose ``str()`` and f-string form are its value (``"gout"``, ``"onnx-fp32"``): the
    base of every enum whose members travel as text in JSON, manifests and reports."""

    def __str__(self) -> str:
        return self.value


class Role(TextEnum):
    """The role of a bundle file in the manifest (``FileEntry.role``): the one list of names."""

    ONNX_FP32 = "onnx-fp32"
    ONNX_INT8 = "onnx-int8"
    OPENVINO_INT8 = "openvino-int8"
    OPENVINO_INT8_BIN = "openvino-int8-bin"
    SCOPE_GUARD = "scope-guard"
    REFERENCE = "reference"


class Precision(TextEnum):
    FP32 = "fp32"
    INT8 = "int8"


PRECISIONS = tuple(p.value for p in Precision)
SCOPE_METHODS = ("mahalanobis", "knn")  # edge_runtime.inference.scope_guard scores each; export.scope_fit fits and compares them
SCOPE_ROLE = Role.SCOPE_GUARD
_SHA256 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# range checks: each dataclass's ``_check(where)`` runs when a manifest is read (and before one is
# written, which reads it back); ``where`` is the field's path, e.g. ``manifest.input``.


def _require(ok: bool, where: str, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise BundleError(f"{where}.{name} is {value!r}; allowed: {allowed}")


def _within(value: float | None, lo: float, hi: float) -> bool:
    """``lo <= value <= hi`` for a finite number (NaN and infinities fail)."""
    return value is not None and math.isfinite(value) and lo <= value <= hi


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _inside_bundle(path: str) -> bool:
    """A relative POSIX path that stays inside the bundle directory."""
    if not path or "\\" in path or "\x00" in path or PureWindowsPath(path).drive:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and p.parts not in ((), (".",))


_PATH_RULE = "a relative path inside the bundle (no '..', not absolute); any other leaves the bundle directory"


# --------------------------------------------------------------------------------------------
# the sections


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    architecture: str
    blocks: int
    widths: tuple[int, ...]
    parameters: int
    macs_per_frame: int
    checkpoint_sha256: str
    class_names: tuple[str, ...] = ("normal", "gout lesion")
    abnormal_index: int = 1
    provenance: str = "unknown"
    intended_use: str = NOT_FOR_CLINICAL_USE

    def _check(self, where: str) -> None:
        _require(self.blocks >= 1, where, "blocks", self.blocks, "≥ 1")
        _require(len(self.widths) == self.blocks and all(w >= 1 for w in self.widths), where, "widths", self.widths,
                 f"one positive width per stage ({self.blocks})")
        _require(self.parameters >= 0, where, "parameters", self.parameters, "≥ 0")
        _require(self.macs_per_frame >= 0, where, "macs_per_frame", self.macs_per_frame, "≥ 0")
        _require(bool(_SHA256.fullmatch(self.checkpoint_sha256)), where, "checkpoint_sha256", self.checkpoint_sha256,
                 "64 lower-case hex characters")
        _require(len(self.class_names) >= 2, where, "class_names", self.class_names, "at least two classes")
        _require(0 <= self.abnormal_index < len(self.class_names), where, "abnormal_index", self.abnormal_index,
                 f"0…{len(self.class_names) - 1} (an index into class_names)")


@dataclass(frozen=True)
class InputSpec:
    """The model input: one grey channel, standardized per image (``preprocess.standardize``)."""

    height: int = 320
    width: int = 700
    channels: int = 1
    dtype: str = "float32"

    def _check(self, where: str) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            _require(16 <= value <= 4096, where, name, value, "16…4096 px")
        _require(self.channels == 1, where, "channels", self.channels, "1 (grey)")
        _require(self.dtype == "float32", where, "dtype", self.dtype, "'float32'")


@dataclass(frozen=True)
class PreprocessSpec:
    """How a frame becomes a model input; the same code runs at export, calibration and bedside:
    the B-mode region (a DICOM file's declared region, else threshold + morphology), cropped and
    stretched to the input size."""

    roi_threshold: int = 12  # grey level above which a pixel may belong to the B-mode area
    roi_morph_kernel: int = 9  # opening kernel (px, on the analysis image) that removes text
    roi_analysis_width: int = 480  # frames are analysed at this width for speed
    roi_min_area_fraction: float = 0.04
    interpolation: str = "area"

    def _check(self, where: str) -> None:
        _require(0 <= self.roi_threshold <= 254, where, "roi_threshold", self.roi_threshold, "0…254 (grey level)")
        _require(1 <= self.roi_morph_kernel <= 255, where, "roi_morph_kernel", self.roi_morph_kernel, "1…255 px")
        _require(16 <= self.roi_analysis_width <= 4096, where, "roi_analysis_width", self.roi_analysis_width, "16…4096 px")
        _require(_within(self.roi_min_area_fraction, 0.0, 1.0) and self.roi_min_area_fraction > 0, where,
                 "roi_min_area_fraction", self.roi_min_area_fraction, "(0, 1]")
        _require(self.interpolation in INTERPOLATIONS, where, "interpolation", self.interpolation, ", ".join(INTERPOLATIONS))


@dataclass(frozen=True)
class OutputSpec:
    logits: str = "logits"
    cam: str = "cam"
    cam_stride: int = 16
    cam_height: int = 20
    cam_width: int = 44
    features: str | None = None  # pooled last-stage features (N, C), what the scope guard reads; null: none

    def _check(self, where: str) -> None:
        _require(bool(self.logits) and self.logits != self.cam, where, "logits", self.logits,
                 "a tensor name, not the CAM's")
        _require(bool(self.cam), where, "cam", self.cam, "a tensor name")
        _require(self.features is None or (bool(self.features) and self.features not in (self.logits, self.cam)),
                 where, "features", self.features, "null or a tensor name other than the logits' and the CAM's")
        _require(1 <= self.cam_stride <= 4096, where, "cam_stride", self.cam_stride, "1…4096 px")


@dataclass(frozen=True)
class DecisionSpec:
    """The paper's vote: gout when the abnormal fraction of key frames > ``patient_threshold``.

    An exam answers only when it is complete enough to stand for the protocol: at least
    ``min_key_frames`` key frames; for moving input (video, cine) key frames spread over at least
    ``min_span_s`` seconds; and, where the frames' views are known (file names, DICOM), key frames
    of every view in ``views``. Otherwise it is indeterminate, saying what is missing."""

    image_cutoff: float = 0.5
    patient_threshold: float | None = None
    min_key_frames: int = 5
    calibrated: bool = False
    source: str = "not calibrated: run `gout-edge calibrate`"
    min_span_s: float = 4.0
    views: tuple[str, ...] = ("dorsal", "medial", "plantar")

    def _check(self, where: str) -> None:
        _check_decision(self, where)
        _require(_within(self.min_span_s, 0.0, 3600.0), where, "min_span_s", self.min_span_s, "[0, 3600] s")
        _require(all(v and v == v.strip().lower() for v in self.views) and len(set(self.views)) == len(self.views),
                 where, "views", list(self.views), "distinct lower-case view names")
        _require(not (self.calibrated and self.patient_threshold is None), where, "calibrated", self.calibrated,
                 "false while patient_threshold is null")


def _check_decision(d: DecisionSpec | DecidedWith, where: str) -> None:
    _require(_within(d.image_cutoff, 0.0, 1.0), where, "image_cutoff", d.image_cutoff, "[0, 1]")
    _require(d.patient_threshold is None or _within(d.patient_threshold, 0.0, 1.0), where, "patient_threshold",
             d.patient_threshold, "[0, 1] or null (not calibrated)")
    _require(d.min_key_frames >= 1, where, "min_key_frames", d.min_key_frames, "≥ 1")


@dataclass(frozen=True)
class FileEntry:
    path: str
    role: str
    sha256: str
    size: int

    def _check(self, where: str) -> None:
        _require(_inside_bundle(self.path), where, "path", self.path, _PATH_RULE)
        _require(bool(self.role), where, "role", self.role, "a role name")
        _require(bool(_SHA256.fullmatch(self.sha256)), where, "sha256", self.sha256, "64 lower-case hex characters")
        _require(self.size >= 0, where, "size", self.size, "≥ 0 bytes")


@dataclass(frozen=True)
class Parity:
    """Torch vs the exported ONNX graph on ``inputs`` random inputs (``export.onnx.check_parity``)."""

    inputs: int
    logits_max_abs_diff: float
    cam_max_abs_diff: float
    identity_max_abs_diff: float
    tolerance: float
    features_max_abs_diff: float | None = None  # null: the graph has no features output

    def _check(self, where: str) -> None:
        _require(self.inputs >= 1, where, "inputs", self.inputs, "≥ 1")
        for name in ("logits_max_abs_diff", "cam_max_abs_diff", "identity_max_abs_diff", "features_max_abs_diff"):
            value = getattr(self, name)
            _require(value is None or _within(value, 0.0, math.inf), where, name, value, "a finite number ≥ 0")
        _require(_positive(self.tolerance), where, "tolerance", self.tolerance, "> 0")


@dataclass(frozen=True)
class ExportInfo:
    versions: dict[str, str]  # gout_edge, torch, onnx, onnxruntime, python
    opset: int
    folded_rgb_stem: bool  # conv1 had 3 input channels, folded to 1
    parity: Parity

    def _check(self, where: str) -> None:
        _require(1 <= self.opset <= 1000, where, "opset", self.opset, "an ONNX opset (1…1000)")


@dataclass(frozen=True)
class FidelityGate:
    """What INT8 must keep of FP32 (``export.fidelity``); a gate above 1 is one nothing passes."""

    max_auc_drop: float = 0.005
    min_cam_correlation: float = 0.98

    def _check(self, where: str) -> None:
        _require(_within(self.max_auc_drop, 0.0, 1.0), where, "max_auc_drop", self.max_auc_drop, "[0, 1]")
        _require(_within(self.min_cam_correlation, -math.inf, math.inf), where, "min_cam_correlation",
                 self.min_cam_correlation, "a finite number")


@dataclass(frozen=True)
class Quantization:
    """How the INT8 models were made and how close they stay to FP32; per engine, a report for
    people (method, scheme, candidates, latency, fidelity) that ``gout-edge info`` shows."""

    calibration: dict[str, Any]  # the calibration/fidelity split: source, images, patients
    gate: FidelityGate
    passed: bool
    accepted_by_user: bool = False  # shipped although the gate failed (export --accept-drop)
    onnxruntime: dict[str, Any] | None = None
    openvino: dict[str, Any] | None = None
    fp32_latency_ms: float | None = None

    def _check(self, where: str) -> None:
        _require(self.fp32_latency_ms is None or _positive(self.fp32_latency_ms), where, "fp32_latency_ms",
                 self.fp32_latency_ms, "> 0 ms or null")


@dataclass(frozen=True)
class EngineRef:
    """The engine that recorded a model file's expected reference outputs."""

    backend: str
    precision: str

    def _check(self, where: str) -> None:
        _require(bool(self.backend), where, "backend", self.backend, "a backend name")
        _require(self.precision in PRECISIONS, where, "precision", self.precision, ", ".join(PRECISIONS))


@dataclass(frozen=True)
class ToleranceSet:
    probability_abs: float
    image_decision_band: float
    cam_correlation_min: float
    scope_rel: float = 0.1  # scope distances: |measured − recorded| ≤ scope_rel × the guard's threshold

    def _check(self, where: str) -> None:
        for name in ("probability_abs", "image_decision_band", "scope_rel"):
            value = getattr(self, name)
            _require(_within(value, 0.0, 1.0), where, name, value, "[0, 1]")
        _require(_within(self.cam_correlation_min, -1.0, 1.0), where, "cam_correlation_min", self.cam_correlation_min,
                 "[-1, 1]")


@dataclass(frozen=True)
class Tolerances:
    """How far a device's outputs may be from the recorded ones; blank/colour flags and the
    reference patients' decisions must be identical."""

    fp32: ToleranceSet = ToleranceSet(probability_abs=1e-4, image_decision_band=1e-4, cam_correlation_min=0.99,
                                      scope_rel=1e-3)
    int8: ToleranceSet = ToleranceSet(probability_abs=0.05, image_decision_band=0.05, cam_correlation_min=0.95,
                                      scope_rel=0.1)
    roi_max_abs_px: int = 2

    def of(self, precision: str) -> ToleranceSet:
        if precision not in PRECISIONS:
            raise BundleError(f"no reference tolerances for precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        return getattr(self, precision)

    def _check(self, where: str) -> None:
        _require(0 <= self.roi_max_abs_px <= 4096, where, "roi_max_abs_px", self.roi_max_abs_px, "0…4096 px")


@dataclass(frozen=True)
class ReferenceInput:
    """One raw reference frame: an array ``key`` of the npz ``file``, or a DICOM ``file`` (key null)."""

    id: str
    file: str
    kind: str  # screen-grey | screen-bgr | dicom-monochrome2 | dicom-rgb | no-signal screen | colour-doppler screen
    key: str | None = None
    label: int | None = None  # 1: lesion visible; null for the blank and colour screens
    patient: str | None = None  # the reference patient it belongs to
    selected_as: str = ""  # why it was chosen (lowest / highest probability, borderline, spread)

    def _check(self, where: str) -> None:
        _require(bool(self.id), where, "id", self.id, "a non-empty id")
        _require(_inside_bundle(self.file), where, "file", self.file, _PATH_RULE)
        dicom = self.kind.startswith("dicom")
        _require((self.key is None) == dicom, where, "key", self.key,
                 "null for a DICOM input (kind dicom-…), an npz array name otherwise")
        _require(self.label in (None, 0, 1), where, "label", self.label, "0, 1 or null")


@dataclass(frozen=True)
class ReferencePatient:
    """A reference patient: its inputs' ids and the probabilities recorded per model file (role)."""

    name: str
    inputs: tuple[str, ...]
    probabilities: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def _check(self, where: str) -> None:
        _require(bool(self.inputs), where, "inputs", self.inputs, "at least one input id")
        for role, probs in self.probabilities.items():
            _require(len(probs) == len(self.inputs) and all(_within(p, 0.0, 1.0) for p in probs), where,
                     f"probabilities[{role!r}]", probs, f"{len(self.inputs)} probabilities in [0, 1], one per input")


@dataclass(frozen=True)
class DecidedWith:
    """The decision settings the expected decisions were computed with."""

    image_cutoff: float
    patient_threshold: float | None
    min_key_frames: int

    def _check(self, where: str) -> None:
        _check_decision(self, where)


@dataclass(frozen=True)
class ReferenceSet:
    """The field-verification set (``gout_edge.reference_format``; ``gout-edge verify`` reads it)."""

    inputs: tuple[ReferenceInput, ...]
    expected: str  # the npz of expected outputs
    engines: dict[str, EngineRef] = field(default_factory=dict)  # model file (role) → engine
    patients: tuple[ReferencePatient, ...] = ()
    expected_decisions: dict[str, dict[str, str]] = field(default_factory=dict)  # role → patient → diagnosis
    decided_with: DecidedWith | None = None
    tolerances: Tolerances = Tolerances()
    source: str = ""  # where the frames came from (shown by `info`)
    size_bytes: int = 0  # all reference files together

    def _check(self, where: str) -> None:
        ids = [i.id for i in self.inputs]
        _require(len(set(ids)) == len(ids), where, "inputs", sorted({i for i in ids if ids.count(i) > 1}),
                 "unique input ids")
        _require(_inside_bundle(self.expected), where, "expected", self.expected, _PATH_RULE)
        _require(self.size_bytes >= 0, where, "size_bytes", self.size_bytes, "≥ 0 bytes")
        names = [p.name for p in self.patients]
        _require(len(set(names)) == len(names), where, "patients", names, "unique patient names")
        members = {i: p.name for p in self.patients for i in p.inputs}
        for k, pt in enumerate(self.patients):
            unknown = sorted(set(pt.inputs) - set(ids))
            _require(not unknown, f"{where}.patients[{k}]", "inputs", unknown, "ids of the reference inputs")
            roles = sorted(set(pt.probabilities) - set(self.engines))
            _require(not roles, f"{where}.patients[{k}]", "probabilities", roles, "roles listed in engines")
        for k, item in enumerate(self.inputs):
            _require(item.patient == members.get(item.id), f"{where}.inputs[{k}]", "patient", item.patient,
                     f"{members.get(item.id)!r} (the patient that lists this input)")
        for role, decisions in self.expected_decisions.items():
            _require(role in self.engines and set(decisions) <= set(names), where, f"expected_decisions[{role!r}]",
                     decisions, "decisions of the reference patients for a role listed in engines")


@dataclass(frozen=True)
class Budgets:
    """The performance budgets of docs/design.md §9 for the reference cart (2 x86 cores, AVX2)."""

    end_to_end_p50_ms: float = 40.0
    end_to_end_p99_ms: float = 60.0
    preprocess_1080p_p50_ms: float = 3.0
    cam_overhead_fraction: float = 0.05
    cold_start_s: float = 1.5
    resident_memory_mb: float = 300.0
    int8_speedup_vs_torch_fp32: float = 4.0
    scope_guard_p50_ms: float = 1.0  # the scope guard's cost per frame (docs/design.md §14)

    def _check(self, where: str) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _require(_positive(value), where, f.name, value, "a finite number > 0")


@dataclass(frozen=True)
class Evaluation:
    """Figures measured on labelled data, records for people (``gout-edge info`` shows them)."""

    held_out: dict[str, Any] | None = None  # gout-edge evaluate --record
    threshold_calibration: dict[str, Any] | None = None  # gout-edge calibrate
    fidelity: dict[str, Any] | None = None  # a student against its teacher: gout-edge evaluate --compare TEACHER --record


@dataclass(frozen=True)
class CamScale:
    """The one colour scale of this bundle's CAM overlays (docs/design.md §13): abnormal-class CAM
    values at or below ``lo`` are drawn transparent, values at or above ``hi`` in the hottest
    colour, whatever the frame. Fitted at export on the INT8 calibration images
    (``edge_runtime.inference.cam_scale.fit_cam_scale``); a bundle without it gets one derived from its
    reference set when it is opened (``edge_runtime.inference.cam_scale.cam_scale_for``)."""

    lo: float
    hi: float
    fitted_on: str = ""  # what the scale was fitted on, for people (`gout-edge info`)

    def _check(self, where: str) -> None:
        _require(_within(self.lo, -1e6, 1e6), where, "lo", self.lo, "a finite number within ±1e6")
        _require(_within(self.hi, -1e6, 1e6) and self.hi > self.lo, where, "hi", self.hi,
                 f"a finite number within ±1e6 above lo ({self.lo})")


@dataclass(frozen=True)
class ScopeSpec:
    """The scope guard (docs/design.md §14): a distance from a frame's pooled features (output
    ``outputs.features``) to what the network saw of in-scope first-MTP images at export. Frames
    farther than ``threshold`` are out of scope and stay out of the vote; an exam in which more than
    ``max_out_of_scope_fraction`` of the judged frames are out of scope ends indeterminate.
    ``file`` (role ``scope-guard``, hashed) holds the fitted arrays (``edge_runtime.inference.scope_guard``)."""

    method: str
    file: str
    threshold: float
    false_refusal_target: float  # at most this fraction of held-out in-scope frames refused, with any model file
    max_out_of_scope_fraction: float = 0.5
    k: int = 1  # knn: the k-th nearest neighbour's distance
    fitted_on: str = ""  # for people (`gout-edge info`): the images the guard was fitted on
    threshold_set_on: str = ""
    comparison: dict[str, Any] = field(default_factory=dict)  # methods compared at export: AUROC, refusal rates

    def _check(self, where: str) -> None:
        _require(self.method in SCOPE_METHODS, where, "method", self.method, ", ".join(SCOPE_METHODS))
        _require(_inside_bundle(self.file), where, "file", self.file, _PATH_RULE)
        _require(_within(self.threshold, 0.0, 1e6), where, "threshold", self.threshold, "a distance in [0, 1e6]")
        _require(_within(self.false_refusal_target, 0.0, 0.5), where, "false_refusal_target",
                 self.false_refusal_target, "[0, 0.5]")
        _require(_within(self.max_out_of_scope_fraction, 0.0, 1.0), where, "max_out_of_scope_fraction",
                 self.max_out_of_scope_fraction, "[0, 1]")
        _require(1 <= self.k <= 1000, where, "k", self.k, "1…1000")


@dataclass(frozen=True)
class Manifest:
    model: ModelInfo
    input: InputSpec
    preprocess: PreprocessSpec
    outputs: OutputSpec
    decision: DecisionSpec
    files: tuple[FileEntry, ...]
    export: ExportInfo | None = None
    quantization: Quantization | None = None  # None: no INT8 models were made
    reference: ReferenceSet | None = None  # None: the bundle cannot be verified in the field
    budgets: Budgets = Budgets()
    evaluation: Evaluation = Evaluation()
    cam: CamScale | None = None  # None: the display scale is derived from the reference set on opening
    scope: ScopeSpec | None = None  # None: no scope guard (bundles exported before it existed)

    def file(self, role: str) -> FileEntry:
        for entry in self.files:
            if entry.role == role:
                return entry
        roles = ", ".join(sorted(e.role for e in self.files)) or "none"
        raise BundleError(f"the bundle has no file with role {role!r} (it has: {roles})")

    def roles(self) -> tuple[str, ...]:
        return tuple(e.role for e in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON form, always of the current ``FORMAT_VERSION``."""
        return {"format_version": FORMAT_VERSION, **_to_plain(self)}

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a parsed manifest of a readable version (1 is upgraded first) into a ``Manifest``."""
        if not isinstance(data, dict):
            raise BundleError("manifest.json must hold a JSON object")
        version = data.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise BundleError(
                f"manifest format_version is {version!r}; this gout-edge reads "
                f"{' and '.join(map(str, READABLE_VERSIONS))}. Re-export the bundle with this version of gout-edge."
            )
        if version == 1:
            data = _upgrade_v1(data)
        return _from_plain(cls, {k: v for k, v in data.items() if k != "format_version"}, "manifest")

    def _check(self, where: str) -> None:
        if self.scope is not None:
            _require(self.outputs.features is not None, f"{where}.outputs", "features", self.outputs.features,
                     "a tensor name: the scope guard reads the pooled features")
            listed = any(e.path == self.scope.file and e.role == SCOPE_ROLE for e in self.files)
            _require(listed, f"{where}.scope", "file", self.scope.file,
                     f"a file listed in the manifest's files with role {SCOPE_ROLE!r}")
        for axis in ("height", "width"):
            size, cells = getattr(self.input, axis), getattr(self.outputs, f"cam_{axis}")
            want = -(-size // self.outputs.cam_stride)
            _require(cells == want, f"{where}.outputs", f"cam_{axis}", cells,
                     f"{want} (input {axis} {size} / cam_stride {self.outputs.cam_stride}, rounded up)")


# --------------------------------------------------------------------------------------------
# version 1


_V1_REMOVED = {  # fields that no code read
    "input": ("normalization",),
    "preprocess": ("roi_method", "resize"),
    "decision": ("rule",),
}
_V1_EXPORT_VERSIONS = ("gout_edge", "torch", "onnx", "onnxruntime", "python")


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A parsed version-1 manifest in the version-2 shape (the argument is left untouched).

    Drops the fields nothing read (``input.normalization``, ``preprocess.roi_method`` and
    ``resize``, ``decision.rule``, ``reference.format_version`` and ``purpose``, the descriptive
    ``reference.tolerances.flags`` and ``patient_decisions``); empty ``{}`` sections
    (``export``, ``quantization``, ``reference``) become absent; ``export``'s library versions
    move into ``export.versions``.
    """
    out = dict(data)
    for section, names in _V1_REMOVED.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in names}
    for section in ("export", "quantization", "reference"):
        if out.get(section) == {}:
            del out[section]
    export = out.get("export")
    if isinstance(export, dict):
        versions = {k: export[k] for k in _V1_EXPORT_VERSIONS if k in export}
        out["export"] = {**{k: v for k, v in export.items() if k not in _V1_EXPORT_VERSIONS}, "versions": versions}
    ref = out.get("reference")
    if isinstance(ref, dict):
        ref = {k: v for k, v in ref.items() if k not in ("format_version", "purpose")}
        if isinstance(ref.get("tolerances"), dict):
            ref["tolerances"] = {k: v for k, v in ref["tolerances"].items() if k not in ("flags", "patient_decisions")}
        out["reference"] = ref
    out["format_version"] = FORMAT_VERSION
    return out


# --------------------------------------------------------------------------------------------
# plain JSON ↔ dataclasses


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _from_plain(tp: Any, value: Any, where: str) -> Any:
    """Build ``tp`` from parsed JSON, raising ``BundleError`` naming the offending field; each
    dataclass's ``_check`` then checks its ranges."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise BundleError(f"{where} must be an object, found {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise BundleError(f"{where} has unknown field(s) {unknown}; expected only {sorted(known)}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _from_plain(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BundleError(f"{where}.{f.name} is missing; it is required by the bundle contract")
        obj = tp(**kwargs)
        check = getattr(obj, "_check", None)
        if check is not None:
            check(where)
        return obj
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_plain(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise BundleError(f"{where} must be a list, found {type(value).__name__}")
        (inner, _ellipsis) = typing.get_args(tp)
        return tuple(_from_plain(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise BundleError(f"{where} must be an object, found {type(value).__name__}")
        (_key, inner) = typing.get_args(tp)
        if inner is Any:  # a record for people: kept as parsed
            return value
        return {k: _from_plain(inner, v, f"{where}[{k!r}]") for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise BundleError(f"{where} must be a number, found {value!r}")
    if tp in (int, str, bool) and (type(value) is not tp):
        raise BundleError(f"{where} must be {tp.__name__}, found {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# files


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical serialisation (sorted keys): what is hashed and signed. It is read back first,
    so that nothing is written that a reader would refuse (``BundleError`` naming the field)."""
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n"
    Manifest.from_dict(json.loads(text))
    return text.encode("utf-8")


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    return atomic_write_bytes(Path(bundle_dir) / MANIFEST_NAME, manifest_bytes(manifest))


def read_manifest(bundle_dir: Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"{path} not found: a bundle is a directory with manifest.json at its root "
            "(made by `gout-edge export`)"
        )
    with open(path, "rb") as fh:
        raw = fh.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{path} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB, far beyond any manifest gout-edge "
            "writes; the bundle is damaged or not a gout-edge bundle — re-export it"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged, re-export it") from None
    except RecursionError:
        raise BundleError(f"{path} is nested too deeply to be a manifest; the bundle is damaged, re-export it") from None
    return Manifest.from_dict(data)
