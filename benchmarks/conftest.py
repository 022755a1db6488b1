"""Shared fixtures for the benchmark suites (pytest-benchmark; not part of the default test run).

    pytest benchmarks/ --benchmark-json bench.json

Benchmarks run on the demo bundle shipped in the package (3 stages, 320 × 700, FP32 + INT8). Each
suite pairs a baseline with a candidate and also asserts that the candidate's result equals the
baseline's within the stated tolerance — a faster wrong answer is a failure.
"""

from __future__ import annotations

import numpy as np
import pytest

from gout_edge.edge_runtime.inference.loading import open_bundle


@pytest.fixture(scope="session")
def bundle():
    return open_bundle()  # the demo bundle


@pytest.fixture(scope="session")
def screens():
    """A few 1920 × 1080 scanner screens (BGR) from the phantom video generator."""
    from gout_edge.phantom import generate_cohort
    from gout_edge.phantom._screen import layout_for
    from gout_edge.phantom.video import clip

    patient = generate_cohort(2, seed=3)[1]
    layout = layout_for(patient.scanner, (1920, 1080))
    frames = [frame for frame, _ in clip(patient, layout, seed=3, seconds_per_view=0.5)]
    return frames[:: max(1, len(frames) // 8)][:8]


@pytest.fixture(scope="session")
def inputs(bundle, screens):
    """The screens as model inputs (N, 1, H, W), through the runtime's preprocessing."""
    from gout_edge.edge_runtime.imaging.preprocess import prepare

    m = bundle.manifest
    return np.stack([prepare(s, m.input, m.preprocess).tensor for s in screens])
