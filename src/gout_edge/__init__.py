"""gout-edge: an ultrasound CNN for gouty arthritis of the first MTP joint, at the bedside.

Research software. Models trained on synthetic phantoms are not for clinical use.

The public API for integrators is re-exported here; everything else is reachable through the
subpackages ``gout_edge.export`` (torch side), ``gout_edge.edge_runtime`` (torch-free, on the
cart) and ``gout_edge.calibration`` (data, thresholds, statistics).
"""

from __future__ import annotations

from .bundle import Manifest
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

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "BundleError",
    "BundleTamperedError",
    "CaptureError",
    "CheckFailedError",
    "CheckpointError",
    "DataError",
    "GoutEdgeError",
    "InputError",
    "Manifest",
    "UsageError",
    "__version__",
]
