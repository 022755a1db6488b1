"""Inference backends behind one small Protocol, in a registry that imports engines lazily.

``get_backend("onnxruntime")`` returns a ``Backend``; its module (and the engine library) is
imported only then. ``available_backends()`` lists what this device can run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from gout_edge.errors import UsageError
from gout_edge.manifest import PRECISIONS, Role

from ._base import Backend, Prediction, Session, SessionOptions

__all__ = [
    "INT8_ROLES",
    "PRECISIONS",
    "REGISTRY",
    "ROLES",
    "Backend",
    "Prediction",
    "Session",
    "SessionOptions",
    "available_backends",
    "get_backend",
    "model_role",
    "open_session",
    "precisions_offered",
    "resolve",
]

# The bundle files each engine runs, by precision, in order of preference. The one table of which
# engine reads which model file: the backends, ``resolve``, ``verify`` and ``bench`` all use it.
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "onnxruntime": {"fp32": (Role.ONNX_FP32,), "int8": (Role.ONNX_INT8,)},
    "openvino": {"fp32": (Role.ONNX_FP32,), "int8": (Role.OPENVINO_INT8, Role.ONNX_INT8)},
}
INT8_ROLES = frozenset(r for by_precision in ROLES.values() for r in by_precision["int8"])

# name → "module:factory", relative to this package
REGISTRY: dict[str, str] = {
    "onnxruntime": ".onnxruntime:OnnxRuntimeBackend",
    "openvino": ".openvino:OpenVinoBackend",
}


def get_backend(name: str) -> Backend:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(REGISTRY)}") from None
    module_name, factory = target.split(":")
    module = importlib.import_module(module_name, __package__)
    return getattr(module, factory)()


def available_backends() -> list[str]:
    return [name for name in REGISTRY if get_backend(name).is_available()]


def model_role(roles: Iterable[str], backend: str, precision: str) -> str | None:
    """The bundle file (role) that ``backend`` runs at ``precision``, of the bundle's ``roles``;
    None when it has none."""
    have = set(roles)
    return next((r for r in ROLES.get(backend, {}).get(precision, ()) if r in have), None)


def precisions_offered(roles: Iterable[str]) -> list[str]:
    """The precisions a bundle with these file roles offers: fp32, and int8 when it has an INT8 model."""
    return ["fp32"] + (["int8"] if INT8_ROLES & set(roles) else [])


def resolve(bundle, backend: str = "auto", precision: str = "auto") -> tuple[str, str]:
    """Pick the engine and precision for ``auto``.

    The rule, from measurements on 2-core AVX2 carts (docs/design.md §9): INT8 whenever the bundle
    has an INT8 model; for INT8, OpenVINO (≈ 54 ms) over ONNX Runtime (≈ 90 ms), since OpenVINO
    runs both its NNCF IR and ONNX Runtime's QDQ model with its INT8 kernels; for FP32, ONNX
    Runtime (≈ 93 ms) over OpenVINO (105–155 ms).
    """
    roles = set(bundle.manifest.roles())
    if precision == "auto":
        precision = precisions_offered(roles)[-1]
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose auto, int8 or fp32")
    if backend == "auto":
        order = ("openvino", "onnxruntime") if precision == "int8" else ("onnxruntime", "openvino")
        for name in order:
            if model_role(roles, name, precision) and get_backend(name).is_available():
                return name, precision
        raise UsageError(f"no installed backend can run this bundle at {precision}; it has: {', '.join(sorted(roles))}")
    get_backend(backend)  # validates the name
    return backend, precision


def open_session(bundle, backend: str = "onnxruntime", options: SessionOptions = SessionOptions()) -> Session:
    return get_backend(backend).open(bundle, options)
