"""gout-edge: an ultrasound CNN for gouty arthritis of the first MTP joint, at the bedside.

Research software. Models trained on synthetic phantoms are not for clinical use.

The public API for integrators who embed gout-edge in a cart's own software::

    from gout_edge import ExamSession, Frame, Scorer, open_bundle, open_source

    bundle = open_bundle()                     # the demo bundle; every file's hash checked
    scorer = Scorer(bundle)                    # INT8 on the fastest engine the device has
    scorer.score([image])[0].probability       # one image → probability of a gout lesion (+ .cam)

    with ExamSession.start(bundle, scorer, patient="123") as session:    # scans/<session id>/
        for frame in open_source("dicom", "STUDY/"):     # or bare images: session.feed(image)
            session.feed(frame)
    print(session.result().diagnosis)          # "gout", "no gout" or "indeterminate"

- ``open_bundle(path=None, public_key=None)`` → ``Bundle``: the manifest and its files, hashes
  (and the signature, when a public key is configured) checked;
- ``Scorer(bundle, backend="auto", precision="auto")``: images → ``FrameScore`` (probability,
  image decision, CAM, region, blank/colour flags);
- ``ExamSession``: one patient's exam fed frame by frame, journalled, with the paper's vote and
  a report when it closes (``run_exam`` in ``gout_edge.edge_runtime.exam.driver`` drives sessions from
  a source);
- ``Frame`` and ``open_source(kind, target)``: frame sources (``v4l2``, ``video``, ``images``,
  ``dicom``).

The names are imported on first use, so ``import gout_edge`` stays light. The subpackages are
``gout_edge.edge_runtime`` (torch-free, on the cart, in layers: docs/design.md §2),
``gout_edge.calibration`` (labelled data, thresholds, statistics), ``gout_edge.phantom`` (the
simulator), ``gout_edge.export`` and ``gout_edge.training`` (torch side); errors all derive from
``GoutEdgeError`` (``gout_edge.errors``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._telemetry import block_third_party_telemetry
from ._version import __version__
from .errors import (
    BackendUnavailableError,
    BundleError,
    BundleTamperedError,
    CaptureError,
    CheckFailedError,
    CheckpointError,
    DataError,
    GoutEdgeError,
    InputError,
    UsageError,
)

block_third_party_telemetry()  # before anything imports OpenVINO or NNCF (gout_edge._telemetry)

if TYPE_CHECKING:
    from gout_edge.edge_runtime.exam.session import ExamSession
    from gout_edge.edge_runtime.inference.loading import Bundle, open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer
    from gout_edge.edge_runtime.sources import Frame, open_source


# public name → module that defines it (imported on first use)
_LAZY = {
    "Bundle": "gout_edge.edge_runtime.inference.loading",
    "open_bundle": "gout_edge.edge_runtime.inference.loading",
    "Scorer": "gout_edge.edge_runtime.inference.scoring",
    "ExamSession": "gout_edge.edge_runtime.exam.session",
    "Frame": "gout_edge.edge_runtime.sources",
    "open_source": "gout_edge.edge_runtime.sources",
}

__all__ = [
    "BackendUnavailableError",
    "Bundle",
    "BundleError",
    "BundleTamperedError",
    "CaptureError",
    "CheckFailedError",
    "CheckpointError",
    "DataError",
    "ExamSession",
    "Frame",
    "GoutEdgeError",
    "InputError",
    "Scorer",
    "UsageError",
    "__version__",
    "open_bundle",
    "open_source",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gout_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
