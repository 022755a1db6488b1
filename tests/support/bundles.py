"""Bundles for tests: random-weight models exported at a small input size, calibrated copies of the
session's bundle, and the ONNX graph alone (export's first step) for tests of parity only.

A full ``export_bundle`` also writes phantom calibration images, fits the scope guard, derives the
CAM scale and writes the reference set: tens of seconds. Tests that need *a* bundle take the
session's (``small_bundle``, ``scan_bundle_dir`` in ``tests/conftest.py``); tests of the graph take
``export_graph``; a test exports a bundle of its own only when the export is what it checks."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from gout_edge.manifest import DecisionSpec, InputSpec, OutputSpec, write_manifest

SMALL = InputSpec(height=96, width=224)
"""The tests' model input: the paper's 320 × 700 costs ten times as much for the same checks."""

DECISION = DecisionSpec(patient_threshold=0.3, calibrated=True, min_key_frames=3, source="test")
"""The decision of a calibrated copy: patient threshold 0.3, verdicts from 3 key frames."""


def random_model(blocks: int = 3, seed: int = 0):
    """A random-weight ``GoutResNet`` in eval mode, BatchNorm statistics away from identity so that
    folding is exercised."""
    import torch

    from gout_edge.export.model import GoutResNet

    torch.manual_seed(seed)
    model = GoutResNet(blocks)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def save_random_checkpoint(path: Path, blocks: int = 3, seed: int = 0):
    """Save ``random_model(blocks, seed)`` with plain torch; returns the model."""
    import torch

    model = random_model(blocks, seed)
    torch.save(model.state_dict(), path)
    return model


def export_small(tmp: Path, blocks: int = 3, seed: int = 0, name: str = "bundle", **config):
    """Save a random-weight checkpoint with plain torch and export a whole FP32 bundle of it at the
    small input size; ``config`` overrides ``ExportConfig`` fields. Returns (ExportResult, model)."""
    from gout_edge.export.build import ExportConfig, export_bundle

    checkpoint = tmp / f"{name}.pt"
    model = save_random_checkpoint(checkpoint, blocks, seed)
    settings = {"input": SMALL, "int8": False, **config}
    return export_bundle(ExportConfig(checkpoint, tmp / name, **settings)), model


@dataclass(frozen=True)
class GraphExport:
    """Export's first step alone: the checkpoint loaded, the FP32 ONNX graph written, its parity."""

    onnx: Path
    parity: object  # gout_edge.export.onnx.ParityReport
    blocks: int
    outputs: OutputSpec
    folded_rgb_stem: bool
    model: object  # the loaded torch model


def export_graph(checkpoint: Path, out: Path, spec: InputSpec = SMALL, blocks: int | None = None) -> GraphExport:
    """What ``export_bundle`` does before anything else, step for step: load the checkpoint, write
    ``model.fp32.onnx`` with the CAM and features outputs, check it against torch. No calibration
    images, scope guard, CAM scale or reference set (the session's bundle covers those)."""
    import torch

    from gout_edge.export.build import ONNX_FP32
    from gout_edge.export.checkpoint import load_checkpoint
    from gout_edge.export.onnx import check_parity, export_onnx, parity_inputs

    loaded = load_checkpoint(checkpoint, blocks)
    model = loaded.model
    with torch.no_grad():
        feats = model.features(torch.zeros(1, spec.channels, spec.height, spec.width))
    outputs = OutputSpec(cam_stride=model.cam_stride, cam_height=int(feats.shape[2]), cam_width=int(feats.shape[3]),
                         features="features")
    out.mkdir(parents=True, exist_ok=True)
    path = export_onnx(model, out / ONNX_FP32, spec, outputs)
    parity = check_parity(model, path, parity_inputs(spec))
    return GraphExport(path, parity, loaded.blocks, outputs, loaded.folded_rgb_stem, model)


def calibrated_copy(small_bundle, dest: Path, decision: DecisionSpec = DECISION, scope: bool = False) -> Path:
    """A copy of the session's small bundle with a patient threshold (hashes stay valid). Its
    random-weight model finds every phantom screen out of scope, so the scope guard is left out
    unless asked for (tests/test_scope.py sets its threshold)."""
    result, _ = small_bundle
    if not dest.exists():
        shutil.copytree(result.bundle, dest)
        m = result.manifest
        write_manifest(dest, dataclasses.replace(m, decision=decision, scope=m.scope if scope else None))
    return dest
