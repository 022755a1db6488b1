"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

import importlib.util

import numpy as np

from gout_edge.edge_runtime.inference.backends import ROLES, model_role
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.errors import BackendUnavailableError, BundleError

from ._base import Prediction, SessionOptions, output_names, softmax_abnormal


class OnnxRuntimeSession:
    backend = "onnxruntime"

    def __init__(self, bundle: Bundle, options: SessionOptions) -> None:
        import onnxruntime as ort

        role = model_role(bundle.manifest.roles(), "onnxruntime", options.precision)
        if role is None:
            raise BundleError(
                f"precision {options.precision!r} needs a file with role "
                f"{' or '.join(ROLES['onnxruntime'].get(options.precision, ('?',)))}, "
                f"which the bundle does not have (it has: {', '.join(bundle.manifest.roles())})"
            )
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: on a 2-core cart the capture thread (and any
        # other engine) needs those cycles. Measured beside OpenVINO in `gout-edge bench`: ORT INT8
        # inference 29–31 → 19 ms, and OpenVINO FP32 after it 85 → 55 ms.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        self.precision = options.precision
        # The checked bytes, not the path: a file swapped on disk after open_bundle is never run.
        self._session = ort.InferenceSession(bundle.model_bytes(role), so, providers=["CPUExecutionProvider"])
        self._outputs = output_names(bundle.manifest.outputs)
        self._abnormal = bundle.manifest.model.abnormal_index

    def run(self, batch: np.ndarray) -> Prediction:
        logits, cam, *features = self._session.run(self._outputs, {"input": np.ascontiguousarray(batch, dtype=np.float32)})
        return softmax_abnormal(logits, cam, self._abnormal, features[0] if features else None)

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def is_available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def open(self, bundle: Bundle, options: SessionOptions) -> OnnxRuntimeSession:
        if not self.is_available():
            raise BackendUnavailableError("onnxruntime is not installed; install it with `pip install onnxruntime`")
        return OnnxRuntimeSession(bundle, options)
