"""The one latency loop: calls timed round-robin, so that noise on a shared machine hits them alike.

``bench`` times the bedside path stage by stage with its own loop (it needs every stage's
boundary); everything else that measures latency — the verify latency check, the CAM overhead,
the choice between INT8 candidates at export — uses ``interleaved_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["interleaved_ms"]


def interleaved_ms(calls: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds per call for each named call: ``warmup`` untimed rounds, then ``repeats`` timed
    rounds, each round calling every call once, the first caller rotating from round to round."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        k = i % len(names) if names else 0
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times
