"""The backend interface: ``Backend.open(bundle, …) → Session``; ``Session.run(batch) → Prediction``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gout_edge.edge_runtime.inference.loading import Bundle

__all__ = ["Backend", "Prediction", "Session", "SessionOptions", "output_names", "softmax_abnormal"]

@dataclass(frozen=True)
class SessionOptions:
    precision: str = "fp32"
    threads: int | None = None  # None: the engine's default (all physical cores)
    cache_dir: str | None = None


@dataclass(frozen=True)
class Prediction:
    """Outputs for a batch: abnormal-class probability (N,), its CAM (N, h, w), raw logits (N, 2)
    and, when the graph has them (``OutputSpec.features``), the pooled features (N, C)."""

    probability: np.ndarray
    cam: np.ndarray
    logits: np.ndarray
    features: np.ndarray | None = None


class Session(Protocol):
    backend: str
    precision: str

    def run(self, batch: np.ndarray) -> Prediction:
        """``batch``: float32, shape (N, 1, H, W), already preprocessed."""

    def close(self) -> None: ...


class Backend(Protocol):
    name: str

    def is_available(self) -> bool: ...

    def open(self, bundle: Bundle, options: SessionOptions) -> Session: ...


def output_names(outputs) -> list[str]:
    """The graph outputs a session fetches, in order: logits, CAM and, when present, features."""
    return [outputs.logits, outputs.cam] + ([outputs.features] if outputs.features else [])


def softmax_abnormal(logits: np.ndarray, cam: np.ndarray, abnormal_index: int,
                     features: np.ndarray | None = None) -> Prediction:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return Prediction(
        probability=p[:, abnormal_index].astype(np.float32),
        cam=np.ascontiguousarray(cam[:, abnormal_index]),
        logits=logits,
        features=None if features is None else np.asarray(features, np.float32),
    )
