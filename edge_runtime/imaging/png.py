"""The one PNG writer of gout-edge: the runtime's reports and the phantom generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gout_edge._io import atomic_write_bytes

__all__ = ["write_png"]


def write_png(path: Path, image: np.ndarray) -> Path:
    """An image as PNG, atomically (the folder is made if needed)."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise OSError(f"could not encode {Path(path).name} as PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.tobytes())
