"""Frames → abnormal probability and CAM, through one backend session: the runtime's scoring path.

``Scorer`` is what scan, calibrate, evaluate, bench and verify share: the bundle's preprocessing
(``prepare``), the chosen engine and precision, batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .backends import SessionOptions, open_session, resolve
from .bundle import Bundle
from .preprocess import PreparedFrame, Roi, prepare

__all__ = ["FrameScore", "Scorer"]


@dataclass(frozen=True)
class FrameScore:
    """One image's score: the abnormal-class probability and decision at the bundle's image
    cut-off, its CAM, the B-mode region used, and the blank/colour flags."""

    probability: float
    abnormal: bool
    cam: np.ndarray  # abnormal-class CAM, (h, w), on the model-input grid
    roi: Roi
    blank: bool
    colour: bool

    @property
    def usable(self) -> bool:
        """Blank and colour (Doppler) frames stay out of the vote."""
        return not (self.blank or self.colour)


class Scorer:
    """Images → ``FrameScore``: the bundle's preprocessing, then one inference session.

    ``backend`` and ``precision`` default to ``auto`` (INT8 when the bundle has it, on the
    fastest engine installed; see ``backends.resolve``). ``score(images)`` takes raw uint8
    screens (grey or BGR; the B-mode region is found in each); ``prepare`` + ``score_prepared``
    split the two steps for callers that batch or time them. ``close()`` frees the engine.
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

    def prepare(self, frame: np.ndarray, roi: Roi | None = None) -> PreparedFrame:
        m = self.bundle.manifest
        return prepare(frame, m.input, m.preprocess, roi)

    def score_prepared(self, frames: Sequence[PreparedFrame]) -> list[FrameScore]:
        if not frames:
            return []
        pred = self.session.run(np.stack([f.tensor for f in frames]))
        return [
            FrameScore(float(p), bool(p > self._cutoff), cam, f.roi, f.blank, f.colour)
            for p, cam, f in zip(pred.probability, pred.cam, frames, strict=True)
        ]

    def score(self, frames: Sequence[np.ndarray], batch: int = 8) -> list[FrameScore]:
        out: list[FrameScore] = []
        for i in range(0, len(frames), batch):
            out.extend(self.score_prepared([self.prepare(f) for f in frames[i : i + batch]]))
        return out

    def close(self) -> None:
        self.session.close()
