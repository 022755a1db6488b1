"""The scope guard on the cart (docs/design.md §14): does this frame look, to this network, like
the first-MTP images it was fitted on?

The graph's ``features`` output (the pooled last feature map) is compared with what the exporter
recorded of in-scope images (``export.scope_fit`` fits it; the arrays live in the bundle file with
role ``scope-guard``, hashed like every other file, read with ``allow_pickle=False``):

``mahalanobis`` — class-conditional means with one shared, shrunk covariance (Lee et al. 2018):
    the distance to the nearest class mean in the whitened space; arrays ``means`` (K, C) and
    ``whiten`` (C, C), with ``whiten.T @ whiten`` the inverse covariance.
``knn`` — the cosine distance to the k-th nearest of the fitted images' L2-normalised features
    (Sun et al. 2022); array ``bank`` (N, C).

A frame is out of scope when its distance exceeds the manifest's threshold. What the guard does not
promise: it knows only what the network's features separate; an image far from everything seen
in training is refused, one that merely resembles an MTP scan is not.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from gout_edge.errors import BundleError
from gout_edge.manifest import SCOPE_ROLE, ScopeSpec

from .loading import Bundle

__all__ = ["ScopeGuard", "scope_distances"]

_ARRAYS = {"mahalanobis": ("means", "whiten"), "knn": ("bank",)}


def scope_distances(method: str, arrays: dict[str, np.ndarray], features: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances (N,) of pooled features (N, C) to the fitted in-scope images; one implementation,
    used by the cart and by the exporter that fits and compares the methods."""
    f = np.asarray(features, np.float32).reshape(len(features), -1)
    if method == "mahalanobis":
        means, whiten = arrays["means"], arrays["whiten"]
        d2 = np.stack([np.square((f - m) @ whiten.T).sum(axis=1) for m in means])
        return np.sqrt(d2.min(axis=0)).astype(np.float32)
    if method == "knn":
        bank = arrays["bank"].astype(np.float32)
        unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        sims = unit @ bank.T
        kth = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k]
        return (1.0 - kth).astype(np.float32)
    raise ValueError(f"unknown scope method {method!r}")


@dataclass(frozen=True)
class ScopeGuard:
    """The bundle's guard: ``distance(features)`` and ``out_of_scope(distances)``."""

    spec: ScopeSpec
    arrays: dict[str, np.ndarray]

    @classmethod
    def of(cls, bundle: Bundle) -> ScopeGuard | None:
        """The guard of ``bundle`` from its checked bytes; None when the bundle has none."""
        spec = bundle.manifest.scope
        if spec is None:
            return None
        try:
            with np.load(io.BytesIO(bundle.model_bytes(SCOPE_ROLE)), allow_pickle=False) as z:
                arrays = {name: np.asarray(z[name], np.float32) for name in _ARRAYS[spec.method]}
        except (KeyError, ValueError, OSError) as exc:
            raise BundleError(f"the scope guard {spec.file} cannot be read ({exc}); re-export the bundle") from None
        width = next(iter(arrays.values())).shape[-1]
        if any(a.ndim != 2 or a.shape[-1] != width for a in arrays.values()) or (
            spec.method == "mahalanobis" and arrays["whiten"].shape != (width, width)
        ) or (spec.method == "knn" and len(arrays["bank"]) < spec.k):
            shapes = {name: a.shape for name, a in arrays.items()}
            raise BundleError(f"the scope guard {spec.file} holds arrays of shapes {shapes}, which do not fit "
                              f"method {spec.method!r} (k={spec.k}); re-export the bundle")
        return cls(spec, arrays)

    def distance(self, features: np.ndarray) -> np.ndarray:
        return scope_distances(self.spec.method, self.arrays, features, self.spec.k)

    def out_of_scope(self, distances: np.ndarray) -> np.ndarray:
        return np.asarray(distances) > self.spec.threshold
