"""Stand-ins for the expensive parts of an exam: a scorer whose probability the test sets."""

from __future__ import annotations

import numpy as np

from gout_edge.edge_runtime.inference.scoring import FrameScore


class OracleScorer:
    """A stand-in backend: the probability is whatever the test set in ``next``; counts calls."""

    backend, precision = "oracle", "fp32"
    guard = None  # judges no scope

    def __init__(self, cutoff: float = 0.5) -> None:
        self.next = 0.1
        self.calls = 0
        self.cutoff = cutoff

    def score_prepared(self, frames):
        self.calls += len(frames)
        cam = np.zeros((6, 14), np.float32)
        cam[2, 3] = 1.0
        return [FrameScore(self.next, self.next > self.cutoff, cam, f.roi, f.blank, f.colour) for f in frames]
