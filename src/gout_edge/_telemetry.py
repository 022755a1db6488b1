"""Third-party usage counting off by default (README "Files outside the working folder").

OpenVINO's model converter and NNCF, as soon as they are imported, instantiate the
``openvino_telemetry`` package: it writes a client ID and a usage counter under ``~/intel/`` and,
while no consent file says otherwise, counts itself consented. Both libraries fall back to a
do-nothing stub when that package cannot be imported, and ``off`` uses that fallback: the package
is marked as absent for this process (``sys.modules[name] = None``), before gout-edge imports
either library. Nothing is written to ``~/intel/`` and nothing is sent; other programs on the
machine are not affected. ``GOUT_EDGE_THIRD_PARTY_TELEMETRY=on`` leaves it to the libraries'
own settings (``opt_in_out --opt_in`` / ``--opt_out``). An application that imported OpenVINO
before gout-edge has already started it: this cannot undo that.
"""

from __future__ import annotations

import os
import sys

__all__ = ["TELEMETRY_ENV", "TELEMETRY_PACKAGES", "third_party_telemetry_blocked", "block_third_party_telemetry"]

TELEMETRY_ENV = "GOUT_EDGE_THIRD_PARTY_TELEMETRY"
TELEMETRY_PACKAGES = ("openvino_telemetry",)


def third_party_telemetry_blocked() -> bool:
    """True unless ``$GOUT_EDGE_THIRD_PARTY_TELEMETRY`` is ``on``, ``1``, ``yes`` or ``true``."""
    return os.environ.get(TELEMETRY_ENV, "").strip().lower() not in ("on", "1", "yes", "true")


def block_third_party_telemetry() -> bool:
    """Mark the telemetry packages absent for this process (unless allowed, or already imported);
    True when they are off."""
    if not third_party_telemetry_blocked():
        return False
    for name in TELEMETRY_PACKAGES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError: the libraries' stub
    return all(sys.modules.get(name) is None for name in TELEMETRY_PACKAGES)
