"""Checkpoint → bundle: the ``gout-edge export`` pipeline (docs/design.md §2, §4).

Rebuild the network, export ONNX FP32 with the CAM, check it against torch, and write the bundle
with ``manifest.json`` listing every file with its role and SHA-256.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gout_edge._io import sha256_file
from gout_edge._version import __version__
from gout_edge.calibration.index import IndexTable, read_index
from gout_edge.errors import CheckFailedError, UsageError
from gout_edge.manifest import (
    MANIFEST_NAME,
    Budgets,
    DecisionSpec,
    ExportInfo,
    FileEntry,
    InputSpec,
    Manifest,
    ModelInfo,
    OutputSpec,
    Parity,
    PreprocessSpec,
    Role,
    write_manifest,
)
from gout_edge.signing import sign_manifest

from .checkpoint import load_checkpoint
from .fidelity import FidelityGate
from .int8 import LabelledInputs, build_int8, calibration_cam_scale, labelled_inputs
from .onnx import OPSET, ParityReport, check_parity, export_onnx, parity_inputs

__all__ = ["ExportConfig", "ExportResult", "export_bundle", "file_entry"]

ONNX_FP32 = "model.fp32.onnx"


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    out: Path
    blocks: int | None = None
    name: str = "gout-resnet"
    version: str = "0.0.0"
    provenance: str = "unknown"
    input: InputSpec | None = None  # None: the size the checkpoint was trained at (its metadata), else 320 × 700
    preprocess: PreprocessSpec = PreprocessSpec()
    overwrite: bool = False
    int8: bool = True
    calib: Path | None = None  # index table for INT8 calibration and fidelity; None: phantoms
    calib_seed: int = 20260
    phantom_patients: int = 24
    accept_drop: bool = False
    gate: FidelityGate = FidelityGate()
    threads: int | None = None
    sign_key: Path | None = None  # Ed25519 private key (PEM): sign the manifest


@dataclass(frozen=True)
class ExportResult:
    bundle: Path
    manifest: Manifest
    parity: ParityReport
    folded_rgb_stem: bool
    int8_failures: tuple[str, ...] = ()


def trained_input(settings: dict[str, Any]) -> InputSpec:
    """The input size a gout-edge checkpoint records (``input``: ``HxW``); 320 × 700 without one."""
    height, _, width = str(settings.get("input", "")).partition("x")
    if height.isdigit() and width.isdigit():
        return InputSpec(height=int(height), width=int(width))
    return InputSpec()


def file_entry(bundle_dir: Path, name: str, role: str) -> FileEntry:
    path = Path(bundle_dir) / name
    return FileEntry(path=name, role=role, sha256=sha256_file(path), size=path.stat().st_size)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).is_file() or not overwrite:
            raise UsageError(
                f"output directory {out} is not empty; choose a new directory"
                + (" or pass --overwrite to replace the bundle there" if (out / MANIFEST_NAME).is_file() else "")
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export_bundle(config: ExportConfig, progress: Callable[[str], None] = lambda msg: None) -> ExportResult:
    """Export FP32 (parity-checked) and, with ``config.int8``, INT8 models gated on fidelity.

    Raises ``CheckFailedError`` when parity fails, or when the INT8 gate fails and the drop was
    not accepted (the bundle then holds the FP32 model only).
    """
    import onnx
    import onnxruntime
    import torch

    from .model import count_macs

    loaded = load_checkpoint(config.checkpoint, config.blocks)
    model = loaded.model
    out = Path(config.out)
    _prepare_out(out, config.overwrite)
    spec = config.input or trained_input(loaded.settings)
    config = dataclasses.replace(config, input=spec)
    stride = model.cam_stride
    feats = model.features(torch.zeros(1, spec.channels, spec.height, spec.width))
    outputs = OutputSpec(cam_stride=stride, cam_height=int(feats.shape[2]), cam_width=int(feats.shape[3]),
                         features="features")
    progress("exporting ONNX FP32 with the CAM")
    export_onnx(model, out / ONNX_FP32, spec, outputs)
    parity = check_parity(model, out / ONNX_FP32, parity_inputs(spec))
    if not parity.passed:
        raise CheckFailedError(
            f"the ONNX graph does not reproduce the torch model: max abs diff logits "
            f"{parity.logits_max_abs_diff:.3g}, CAM {parity.cam_max_abs_diff:.3g}, features "
            f"{parity.features_max_abs_diff:.3g}, identity "
            f"{parity.identity_max_abs_diff:.3g} (tolerance {parity.tolerance:g}); the bundle in {out} "
            "is incomplete — report this with your torch/onnx versions"
        )
    info = ModelInfo(
        name=config.name,
        version=config.version,
        architecture=f"resnet-{model.blocks}stage-basicblock",
        blocks=model.blocks,
        widths=model.widths,
        parameters=sum(p.numel() for p in model.parameters()),
        macs_per_frame=count_macs(model, spec.height, spec.width),
        checkpoint_sha256=loaded.sha256,
        provenance=config.provenance,
    )
    manifest = Manifest(
        model=info,
        input=spec,
        preprocess=config.preprocess,
        outputs=outputs,
        decision=DecisionSpec(),
        files=(file_entry(out, ONNX_FP32, Role.ONNX_FP32),),
        export=ExportInfo(
            versions={
                "gout_edge": __version__,
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "python": platform.python_version(),
            },
            opset=OPSET,
            folded_rgb_stem=loaded.folded_rgb_stem,
            parity=Parity(
                inputs=parity.inputs,
                logits_max_abs_diff=float(parity.logits_max_abs_diff),
                cam_max_abs_diff=float(parity.cam_max_abs_diff),
                identity_max_abs_diff=float(parity.identity_max_abs_diff),
                tolerance=float(parity.tolerance),
                features_max_abs_diff=float(parity.features_max_abs_diff),
            ),
        ),
        budgets=Budgets(),  # docs/design.md §9, for the reference machine (2 x86 cores, AVX2)
    )
    with tempfile.TemporaryDirectory(prefix="gout-edge-calib-") as tmp:
        progress("preparing calibration and fidelity images")
        table, source = _calibration_table(config, Path(tmp))
        data = labelled_inputs(table, config.input, config.preprocess, seed=config.calib_seed, source=source)
    failures: tuple[str, ...] = ()
    if config.int8:
        manifest, failures = _add_int8(out, manifest, data, config, progress)
    from .reference_writer import add_reference_set  # the field-verification set (docs/design.md §4)
    from .scope_fit import add_scope_guard  # docs/design.md §14

    manifest = add_scope_guard(out, manifest, data, lambda name, role: file_entry(out, name, role), config.threads,
                               progress)
    progress("CAM colour scale on the calibration images")
    manifest = dataclasses.replace(manifest, cam=calibration_cam_scale(out, manifest, data, config.threads))
    manifest = add_reference_set(out, manifest, config, progress)  # last: it records every output above
    write_manifest(out, manifest)
    if config.sign_key is not None:
        sign_manifest(out, config.sign_key)
    if failures and not config.accept_drop:
        raise CheckFailedError(
            "INT8 fidelity gate failed: " + "; ".join(failures) + f". The bundle in {out} keeps only "
            "the FP32 model. Calibrate on more representative data (--calib INDEX.csv), or pass "
            "--accept-drop to ship the INT8 models anyway (recorded in the manifest)."
        )
    return ExportResult(out, manifest, parity, loaded.folded_rgb_stem, failures)


def _calibration_table(config: ExportConfig, workdir: Path) -> tuple[IndexTable, str]:
    if config.calib is not None:
        return read_index(config.calib), f"index table {Path(config.calib).name}"
    from gout_edge.phantom import write_phantoms

    write_phantoms(workdir, config.phantom_patients, seed=config.calib_seed, formats=("png",))
    source = f"synthetic phantoms: {config.phantom_patients} patients, seed {config.calib_seed}"
    return read_index(workdir / "index.csv"), source


def _add_int8(
    out: Path, manifest: Manifest, data: LabelledInputs, config: ExportConfig, progress: Callable[[str], None]
) -> tuple[Manifest, tuple[str, ...]]:
    """Quantize, measure and gate; drop the INT8 files when the gate fails and is not accepted."""
    result = build_int8(
        out, manifest, data, lambda name, role: file_entry(out, name, role), config.gate, config.threads, progress
    )
    quantization = result.quantization
    files = manifest.files + result.files
    if result.failures:
        quantization = dataclasses.replace(quantization, accepted_by_user=config.accept_drop)
        if not config.accept_drop:
            for entry in result.files:
                (out / entry.path).unlink()
            files = manifest.files
    return dataclasses.replace(manifest, files=files, quantization=quantization), result.failures
