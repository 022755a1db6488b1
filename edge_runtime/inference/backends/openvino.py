"""OpenVINO backend (CPU plugin): LATENCY hint, thread control, compiled-model cache on disk.

INT8 runs the NNCF IR (role ``openvino-int8``, weights ``openvino-int8-bin``) when the bundle has
one, else ONNX Runtime's QDQ model (``onnx-int8``), which OpenVINO executes as INT8 directly.
FP32 compiles the ONNX FP32 graph. Models are read from the bundle's checked bytes
(``Bundle.model_bytes``), never from their paths.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from gout_edge.edge_runtime.inference.backends import ROLES, model_role
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.errors import BackendUnavailableError, BundleError
from gout_edge.manifest import Role

from ._base import Prediction, SessionOptions, output_names, softmax_abnormal

CACHE_ENV = "GOUT_EDGE_OPENVINO_CACHE"  # a folder, or "off"


def default_cache_dir() -> Path | None:
    """Where OpenVINO keeps compiled models between runs (a cold start in ~1 s instead of ~3 s):
    ``$GOUT_EDGE_OPENVINO_CACHE`` (``off``: no cache, nothing written), else
    ``$XDG_CACHE_HOME/gout-edge/openvino`` (default ``~/.cache/gout-edge/openvino``). The one
    folder outside the working folder that a scan writes to, besides crash files (README)."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in ("off", "none", "0", "no"):
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gout-edge" / "openvino"


class OpenVinoSession:
    backend = "openvino"

    def __init__(self, bundle: Bundle, options: SessionOptions) -> None:
        import openvino as ov

        roles = ROLES["openvino"].get(options.precision, ())
        role = model_role(bundle.manifest.roles(), "openvino", options.precision)
        if role is None:
            raise BundleError(
                f"precision {options.precision!r} needs a file with role {' or '.join(roles) or '?'}, which the "
                f"bundle does not have (it has: {', '.join(bundle.manifest.roles())})"
            )
        core = ov.Core()
        cache = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
        try:
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache)})
        except OSError:
            pass  # a read-only home: compile without the cache
        # f32 for the layers left in float: CPUs with AVX-512 BF16 or AMX would otherwise run bf16.
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        # The checked bytes, not the paths: a file swapped on disk after open_bundle is never run.
        # IR: the XML as text with the weights as a tensor over the checked bytes (no copy);
        # ONNX: the model bytes.
        if role == Role.OPENVINO_INT8:
            weights = np.frombuffer(bundle.model_bytes(Role.OPENVINO_INT8_BIN), np.uint8)
            model = core.read_model(bundle.model_bytes(role).decode("utf-8"), ov.Tensor(weights))
        else:
            model = core.read_model(bundle.model_bytes(role))
        self.role = role
        self.precision = options.precision
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._outputs = [self._compiled.output(name) for name in output_names(bundle.manifest.outputs)]
        self._abnormal = bundle.manifest.model.abnormal_index

    def run(self, batch: np.ndarray) -> Prediction:
        result = self._request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        logits, cam, *features = (np.array(result[o]) for o in self._outputs)
        return softmax_abnormal(logits, cam, self._abnormal, features[0] if features else None)

    def close(self) -> None:
        self._request = None
        self._compiled = None


class OpenVinoBackend:
    name = "openvino"

    def is_available(self) -> bool:
        return importlib.util.find_spec("openvino") is not None

    def open(self, bundle: Bundle, options: SessionOptions) -> OpenVinoSession:
        if not self.is_available():
            raise BackendUnavailableError("openvino is not installed; install it with `pip install openvino`")
        return OpenVinoSession(bundle, options)
