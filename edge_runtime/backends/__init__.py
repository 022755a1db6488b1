"""Inference backends behind one small Protocol, in a registry that imports engines lazily.

``get_backend("onnxruntime")`` returns a ``Backend``; its module (and the engine library) is
imported only then. ``available_backends()`` lists what this device can run.
"""

from __future__ import annotations

import importlib

from gout_edge.errors import UsageError

from ._base import Backend, Prediction, Session, SessionOptions

__all__ = ["Backend", "Prediction", "Session", "SessionOptions", "available_backends", "get_backend", "open_session", "REGISTRY"]

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


def open_session(bundle, backend: str = "onnxruntime", options: SessionOptions = SessionOptions()) -> Session:
    return get_backend(backend).open(bundle, options)
