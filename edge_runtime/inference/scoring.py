"""Frames → abnormal probability and CAM, through one backend session: the runtime's scoring path.

``Scorer`` is what scan, calibrate, evaluate, bench and verify share: the bundle's preprocessing
(``prepare``), the chosen engine and precision, batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import PreparedFrame, Roi, check_image, prepare
from gout_edge.errors import InputError

from .backends import SessionOptions, open_session, resolve
from .loading import Bundle
from .scope_guard import ScopeGuard

__all__ = ["FrameScore", "Scorer"]


@dataclass(frozen=True)
class FrameScore:
    """One image's score: the abnormal-class probability and decision at the bundle's image
    cut-off, its CAM, the B-mode region used, the blank/colour flags and, with a scope guard, its
    distance from the in-scope images and whether that makes it out of scope."""

    probability: float
    abnormal: bool
    cam: np.ndarray  # abnormal-class CAM, (h, w), on the model-input grid
    roi: Roi
    blank: bool
    colour: bool
    scope_distance: float | None = None  # None: the bundle has no scope guard
    out_of_scope: bool = False

    @property
    def usable(self) -> bool:
        """Blank, colour (Doppler) and out-of-scope frames stay out of the vote."""
        return not (self.blank or self.colour or self.out_of_scope)


class Scorer:
    """Images → ``FrameScore``: the bundle's preprocessing, then one inference session.

    ``backend`` and ``precision`` default to ``auto`` (INT8 when the bundle has it, on the
    fastest engine installed; see ``backends.resolve``). ``score(images)`` takes raw uint8
    screens (grey or BGR; the B-mode region is found in each); ``prepare`` + ``score_prepared``
    split the two steps for callers that batch or time them. ``close()`` frees the engine. With a
    bundle that carries a scope guard, every score says whether the frame is out of scope.
    """

    def __init__(
        self,
        bundle: Bundle,
        backend: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.bundle = bundle
        self.backend, self.precision = resolve(bundle, backend, precision)
        self.session = open_session(bundle, self.backend, SessionOptions(self.precision, threads, cache_dir))
        self._cutoff = bundle.manifest.decision.image_cutoff
        self.guard = ScopeGuard.of(bundle)

    def prepare(self, frame: np.ndarray, roi: Roi | None = None, where: str = "the image") -> PreparedFrame:
        m = self.bundle.manifest
        return prepare(check_image(frame, where), m.input, m.preprocess, roi)

    def score_prepared(self, frames: Sequence[PreparedFrame]) -> list[FrameScore]:
        if not frames:
            return []
        pred = self.session.run(np.stack([f.tensor for f in frames]))
        distances: list[float | None] = [None] * len(frames)
        if self.guard is not None and pred.features is not None:
            distances = self.guard.distance(pred.features).tolist()
        threshold = None if self.guard is None else self.guard.spec.threshold
        return [
            FrameScore(float(p), bool(p > self._cutoff), cam, f.roi, f.blank, f.colour, d,
                       d is not None and threshold is not None and d > threshold)
            for p, cam, f, d in zip(pred.probability, pred.cam, frames, distances, strict=True)
        ]

    def score(self, frames: Sequence[np.ndarray], batch: int = 8) -> list[FrameScore]:
        """One score per image; an image that is none (``None``, a wrong shape) is an ``InputError``
        naming its place in ``frames``. A single array is taken for one image, not a sequence."""
        if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) and not (frames.ndim == 3 and frames.shape[2] > 4):
            frames = [frames]
        if frames is None or isinstance(frames, (str, bytes)):
            raise InputError(f"Scorer.score takes a list of images (numpy arrays), not {type(frames).__name__}")
        out: list[FrameScore] = []
        for i in range(0, len(frames), batch):
            out.extend(self.score_prepared([self.prepare(f, where=f"image {i + k} given to Scorer.score")
                                            for k, f in enumerate(frames[i : i + batch])]))
        return out

    def close(self) -> None:
        self.session.close()
