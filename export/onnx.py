"""torch → ONNX FP32 with the CAM in the graph, checked against the torch model.

The exported graph has one input (``input``, N×1×H×W, dynamic batch) and three outputs:
``logits`` (N×2), ``cam`` (N×2×h×w) and ``features`` (N×C, the pooled last feature map the scope
guard reads). Parity is measured on random and structured inputs, and the identity
``cam.mean((2,3)) + fc.bias == logits`` is checked on the ONNX outputs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gout_edge.manifest import InputSpec, OutputSpec

from .model import GoutResNet, WithCam

__all__ = ["OPSET", "ParityReport", "cam_free_model", "check_parity", "export_onnx", "parity_inputs", "without_cam"]

OPSET = 18
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityReport:
    inputs: int
    logits_max_abs_diff: float
    cam_max_abs_diff: float
    identity_max_abs_diff: float  # |cam.mean((2,3)) + fc.bias - logits| on the ONNX outputs
    tolerance: float
    features_max_abs_diff: float = 0.0

    @property
    def passed(self) -> bool:
        worst = max(self.logits_max_abs_diff, self.cam_max_abs_diff, self.identity_max_abs_diff, self.features_max_abs_diff)
        return worst <= self.tolerance


def export_onnx(model: GoutResNet, path: Path, spec: InputSpec = InputSpec(), outputs: OutputSpec = OutputSpec()) -> Path:
    """Export ``model`` with its CAM and pooled features to ``path`` (one self-contained file)."""
    wrapped = WithCam(model).eval()
    example = torch.zeros(2, spec.channels, spec.height, spec.width)
    # The dynamo exporter and its optimizer log each pass and warn about torchvision ops it
    # skips (none are used here); keep the command's output to what the user needs.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                (example,),
                str(path),
                input_names=["input"],
                output_names=[outputs.logits, outputs.cam, outputs.features or "features"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=256)}},
                opset_version=OPSET,
                external_data=False,
                dynamo=True,
                verbose=False,
            )
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    return Path(path)


def parity_inputs(spec: InputSpec = InputSpec(), seed: int = 0) -> np.ndarray:
    """Random and structured inputs: noise, zeros, a ramp, a checkerboard, a bright band, spikes."""
    rng = np.random.default_rng(seed)
    h, w = spec.height, spec.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    band = np.where(np.abs(yy - h * 0.4) < h * 0.03, 4.0, -0.2).astype(np.float32)
    spikes = np.zeros((h, w), np.float32)
    spikes[rng.integers(0, h, 50), rng.integers(0, w, 50)] = 20.0
    images = [
        rng.standard_normal((h, w), dtype=np.float32),
        rng.standard_normal((h, w), dtype=np.float32) * 3.0,
        np.zeros((h, w), np.float32),
        (xx / w + yy / h - 1.0).astype(np.float32),
        np.where(((yy // 16) + (xx // 16)) % 2 == 0, 1.0, -1.0).astype(np.float32),
        band,
        spikes,
    ]
    return np.stack(images)[:, None]


def check_parity(model: GoutResNet, onnx_path: Path, inputs: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> ParityReport:
    """Compare the ONNX graph (ONNX Runtime, FP32) with the torch model on ``inputs``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    logits_diff = cam_diff = identity_diff = features_diff = 0.0
    bias = model.fc.bias.detach().numpy()
    with torch.no_grad():
        wrapped = WithCam(model).eval()
        for start in range(0, len(inputs), 4):
            batch = np.ascontiguousarray(inputs[start : start + 4], dtype=np.float32)
            ref_logits = model(torch.from_numpy(batch)).numpy()
            _, ref_cam, ref_features = wrapped(torch.from_numpy(batch))
            logits, cam, features = session.run(None, {"input": batch})
            logits_diff = max(logits_diff, float(np.abs(logits - ref_logits).max()))
            cam_diff = max(cam_diff, float(np.abs(cam - ref_cam.numpy()).max()))
            features_diff = max(features_diff, float(np.abs(features - ref_features.numpy()).max()))
            identity = cam.astype(np.float64).mean(axis=(2, 3)) + bias - logits
            identity_diff = max(identity_diff, float(np.abs(identity).max()))
    return ParityReport(len(inputs), logits_diff, cam_diff, identity_diff, tolerance, features_diff)


def without_cam(model, logits: str = "logits"):
    """The same network with a pooled head instead of the CAM: ``GlobalAveragePool → Flatten →
    Gemm(fc)`` on the last feature map, output ``logits`` only (an ``onnx.ModelProto``; ``None``
    when the graph has no CAM einsum or no ``fc.bias``). Works on the FP32 and the QDQ graph."""
    from onnx import helper

    graph = model.graph
    einsum = next((n for n in graph.node if n.op_type == "Einsum"), None)
    # the head's bias: an initializer (FP32) or the output of its DequantizeLinear (QDQ)
    bias = next((i for n in graph.node if n.op_type == "Add" for i in n.input if "fc.bias" in i), None)
    if einsum is None or bias is None:
        return None
    weight, features = einsum.input
    producers = {out: n for n in graph.node for out in n.output}
    needed, stack = set(), [weight, features, bias]
    while stack:  # every node the feature map and the weight depend on
        node = producers.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    keep = [n for n in graph.node if id(n) in needed]
    keep += [helper.make_node("GlobalAveragePool", [features], ["_gap"]),
             helper.make_node("Flatten", ["_gap"], ["_pooled"], axis=1),
             helper.make_node("Gemm", ["_pooled", weight, bias], [logits], transB=1)]
    del graph.node[:]
    graph.node.extend(keep)
    outputs = [o for o in graph.output if o.name == logits]
    del graph.output[:]
    graph.output.extend(outputs)
    return model


def cam_free_model(model_bytes: bytes, logits: str = "logits") -> bytes | None:
    """An ONNX model (its bytes) with a pooled head instead of the CAM, serialized (``without_cam``):
    what ``gout-edge bench`` compares the bundle's graph with to measure the CAM overhead."""
    import onnx

    model = without_cam(onnx.load_from_string(model_bytes), logits)
    return None if model is None else model.SerializeToString()
