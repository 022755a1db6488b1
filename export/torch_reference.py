"""torch eager FP32 as a scorer: the reference ``gout-edge bench`` compares the edge engines with."""

from __future__ import annotations

import numpy as np
import torch

from gout_edge.edge_runtime.imaging.preprocess import PreparedFrame
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.inference.scoring import FrameScore

from .model import GoutResNet, WithCam

__all__ = ["NAME", "TorchEagerScorer"]

NAME = "torch eager fp32"


class TorchEagerScorer:
    """torch eager FP32 on the bundle's architecture (random weights: latency does not depend on them)."""

    backend, precision = "torch", "fp32"

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self._model = WithCam(GoutResNet(bundle.manifest.model.blocks, width=bundle.manifest.model.widths[0])).eval()

    def score_prepared(self, frames: list[PreparedFrame]) -> list[FrameScore]:
        with torch.inference_mode():
            logits, cam, _ = self._model(torch.from_numpy(np.stack([f.tensor for f in frames])))
        p = float(torch.softmax(logits, 1)[0, 1])
        f = frames[0]
        return [FrameScore(p, p > 0.5, cam[0, 1].numpy(), f.roi, f.blank, f.colour)]
