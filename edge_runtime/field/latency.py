"""End-to-end latency on a bundle's reference frames, and what to say when a latency budget is missed.

``end_to_end_ms`` is the latency that ``verify`` checks (raw reference frame → ROI → preprocess →
inference with CAM, batch 1), timed with the one latency loop (``inference.timing.interleaved_ms``).
When a bundle misses its budget, ``latency_hint`` names where this CPU stands (VNNI or not:
``device.int8_class``) and times the bedside engine of every *other* shipped bundle on this device
the same way, so that the hint says which one meets the budget here — measured, not guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gout_edge.edge_runtime.inference.backends import resolve
from gout_edge.edge_runtime.inference.device import has_vnni, int8_class, isa_cap
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.edge_runtime.inference.scoring import Scorer
from gout_edge.edge_runtime.inference.shipped import Shipped, shipped_bundles
from gout_edge.edge_runtime.inference.timing import interleaved_ms
from gout_edge.errors import GoutEdgeError

from .reference_inputs import ReferenceFrame, load_reference_frames

__all__ = ["HINT_FRAMES", "LatencyHint", "ShippedTiming", "end_to_end_ms", "latency_hint", "time_shipped"]

HINT_FRAMES = 30
"""Frames timed per other shipped bundle for the hint (after 3 untimed ones): seconds, not minutes."""


def end_to_end_ms(bundle, frames: Sequence[ReferenceFrame], backend: str, precision: str, n: int,
                  threads: int | None = None, warmup: int = 3) -> list[float]:
    """Milliseconds per frame for ``n`` frames (cycling through ``frames``), raw frame → ROI →
    preprocess → inference with CAM, batch 1, on one engine."""
    scorer = Scorer(bundle, backend, precision, threads)
    cycle = itertools.cycle(frames)

    def one_frame() -> None:
        frame = next(cycle)
        scorer.score_prepared([scorer.prepare(frame.image, frame.roi)])

    try:
        return interleaved_ms({"end_to_end": one_frame}, repeats=n, warmup=warmup)["end_to_end"]
    finally:
        scorer.close()


@dataclass(frozen=True)
class ShippedTiming:
    """A shipped bundle's bedside engine timed on this device (``error``: why it could not be)."""

    name: Shipped
    path: Path
    engine: str = ""
    frames: int = 0
    p50_ms: float | None = None
    budget_p50_ms: float | None = None
    error: str = ""

    @property
    def within(self) -> bool:
        return self.p50_ms is not None and self.budget_p50_ms is not None and self.p50_ms <= self.budget_p50_ms

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name.value, "path": str(self.path), "engine": self.engine, "frames": self.frames,
                "p50_ms": self.p50_ms, "budget_p50_ms": self.budget_p50_ms, "within_budget": self.within,
                "error": self.error}


def time_shipped(name: Shipped, path: Path, frames: int = HINT_FRAMES, threads: int | None = None) -> ShippedTiming:
    """Time the shipped bundle at ``path``'s bedside engine (``backends.resolve``) end to end on its
    own reference frames; a bundle that cannot be opened or run gives a timing with ``error``."""
    try:
        bundle = open_bundle(path)
        backend, precision = resolve(bundle)
        times = end_to_end_ms(bundle, load_reference_frames(bundle), backend, precision, frames, threads)
    except GoutEdgeError as exc:
        return ShippedTiming(name, Path(path), error=str(exc))
    return ShippedTiming(name, Path(path), f"{backend} {precision}", frames, round(float(np.percentile(times, 50)), 1),
                         bundle.manifest.budgets.end_to_end_p50_ms)


@dataclass(frozen=True)
class LatencyHint:
    """What to tell someone whose bundle missed a latency budget here: where this CPU stands
    (``cpu``, naming VNNI) and how the other shipped bundles did on it (``timings``)."""

    cpu: str
    timings: tuple[ShippedTiming, ...] = ()
    note: str = ""  # e.g. that the bundle made for this CPU class is not installed

    def text(self, command: str) -> str:
        """Sentences for people; ``command``: the one to rerun with the bundle that meets the budget."""
        out = [self.cpu[:1].upper() + self.cpu[1:] + "."]
        within = [t for t in self.timings if t.within]
        for t in within:
            out.append(f"The {t.name} bundle measured {t.p50_ms:.1f} ms p50 here ({t.engine}, {t.frames} frames): within "
                       f"the {t.budget_p50_ms:g} ms budget — gout-edge {command} --bundle {t.path}")
        if self.timings and not within:
            measured = "; ".join(
                f"the {t.name} bundle {t.error}" if t.error else
                f"the {t.name} bundle measured {t.p50_ms:.1f} ms p50 here ({t.engine}), over the {t.budget_p50_ms:g} ms budget"
                for t in self.timings)
            out.append(f"No other shipped bundle meets the budget on this device: {measured}.")
        if self.note:
            out.append(self.note)
        return " ".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "shipped": [t.to_dict() for t in self.timings], "note": self.note}


def latency_hint(current: Path | str, features: Sequence[str], shipped: Mapping[Shipped, Path] | None = None,
                 frames: int = HINT_FRAMES, threads: int | None = None) -> LatencyHint:
    """The hint for the bundle at ``current`` that missed a latency budget on a CPU with these
    features: ``int8_class`` and, when ``current`` is one of the ``shipped`` bundles (default:
    those installed), every other one of them timed here. A bundle of one's own gets no shipped
    alternative: the shipped ones are other models."""
    shipped = shipped_bundles() if shipped is None else shipped
    here = Path(current).resolve()
    paths = {name: Path(path).resolve() for name, path in shipped.items()}
    is_shipped = here in paths.values()
    others = [(name, path) for name, path in paths.items() if path != here] if is_shipped else []
    note = ""
    if is_shipped and Shipped.COMPACT not in paths and not has_vnni(features, isa_cap()):
        note = "The compact bundle, made for carts without VNNI, is not installed with this copy of gout-edge."
    return LatencyHint(int8_class(features), tuple(time_shipped(name, path, frames, threads) for name, path in others),
                       note)
