"""FP32 ONNX → INT8: ONNX Runtime static QDQ and OpenVINO IR through NNCF.

Facts that shape the defaults (docs/design.md §9): on x86 without VNNI, ONNX Runtime's
S8S8 QDQ can be slower than FP32, while U8S8 with per-channel weights fuses every convolution but
needs ``reduce_range=True`` (7-bit weights) to avoid ``vpmaddubsw`` saturation. OpenVINO runs INT8
with AVX2/VNNI kernels. Calibration inputs are already preprocessed model inputs (N, 1, H, W).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["OrtQuantConfig", "quantize_onnxruntime", "quantize_openvino", "stdout_to_stderr"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While inside, everything written to standard output goes to standard error instead: NNCF's
    progress bar (rich, on ``sys.stdout``), its logger (a handler bound to the original
    ``sys.stdout``) and anything the engines' C++ code prints to file descriptor 1. ``--json``
    keeps exactly one JSON document on stdout (docs/design.md §10)."""
    handlers = {h: h.stream for h in logging.getLogger("nncf").handlers
                if isinstance(h, logging.StreamHandler) and h.stream not in (sys.stderr, sys.__stderr__)}
    for h in handlers:
        h.setStream(sys.stderr)
    sys.stdout.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptors (an embedding host): the Python-level redirect still holds
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        for h, stream in handlers.items():
            h.setStream(stream)


@dataclass(frozen=True)
class OrtQuantConfig:
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = True
    calibration_method: str = "MinMax"  # or "Entropy", "Percentile"

    @property
    def scheme(self) -> str:
        a = "U8" if self.activation_type == "QUInt8" else "S8"
        w = "U8" if self.weight_type == "QUInt8" else "S8"
        return f"{a}{w}" + (" per-channel" if self.per_channel else "") + (" reduce_range" if self.reduce_range else "")


class _Reader:
    """ONNX Runtime calibration reader over an array of preprocessed inputs, one at a time."""

    def __init__(self, inputs: np.ndarray) -> None:
        self._inputs = inputs
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._inputs):
            return None
        item = np.ascontiguousarray(self._inputs[self._i : self._i + 1], dtype=np.float32)
        self._i += 1
        return {"input": item}

    def rewind(self) -> None:
        self._i = 0


def quantize_onnxruntime(fp32: Path, out: Path, calibration: np.ndarray, config: OrtQuantConfig = OrtQuantConfig()) -> Path:
    """Static QDQ quantization after ``quant_pre_process`` (shape inference, BN/graph folding)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Reader, CalibrationDataReader), {})(calibration)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), stdout_to_stderr():
        warnings.simplefilter("ignore")
        prepped = Path(tmp) / "prep.onnx"
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
        head = _head_nodes(prepped)
        quantize_static(
            str(prepped),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=getattr(QuantType, config.activation_type),
            weight_type=getattr(QuantType, config.weight_type),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            calibrate_method=getattr(CalibrationMethod, config.calibration_method),
            op_types_to_quantize=["Conv", "Add", "MaxPool", "GlobalAveragePool", "Relu"],
            nodes_to_exclude=head,
        )
    return Path(out)


def _head_nodes(model_path: Path) -> list[str]:
    """Names of the nodes after the CAM einsum (its spatial mean and the bias): left in float, so
    that the logits are not rounded to an 8-bit grid (the einsum itself is never quantized)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    einsum = next((n for n in graph.node if n.op_type == "Einsum"), None)
    if einsum is None:
        return []
    downstream, frontier, names = set(einsum.output), True, []
    while frontier:
        frontier = False
        for node in graph.node:
            if node.name not in names and node is not einsum and downstream.intersection(node.input):
                names.append(node.name)
                downstream.update(node.output)
                frontier = True
    return names


def quantize_openvino(fp32: Path, out_xml: Path, calibration: np.ndarray, subset_size: int = 300) -> Path:
    """NNCF post-training quantization of the ONNX model into an OpenVINO IR (``.xml`` + ``.bin``)."""
    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)
    model = ov.Core().read_model(str(fp32))
    dataset = nncf.Dataset([calibration[i : i + 1].astype(np.float32) for i in range(len(calibration))])
    with warnings.catch_warnings(), stdout_to_stderr():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=min(subset_size, len(calibration)),
            fast_bias_correction=True,
        )
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return Path(out_xml)
