"""Scanner screens as PNG files (lossless screen grabs) and the screen rendering they share."""

from __future__ import annotations

import numpy as np

from ._screen import Layout, compose_screen, layout_for
from .patients import ImageSpec, Scanner
from .render import PhantomImage, render_image

__all__ = ["render_screen"]


def render_screen(spec: ImageSpec, scanner: Scanner, layout: Layout | None = None) -> tuple[np.ndarray, PhantomImage, Layout]:
    """The B-mode image at the layout's size inside the scanner's screen (BGR)."""
    layout = layout or layout_for(scanner)
    w, h = layout.bmode_size
    image = render_image(spec, h, w)
    return compose_screen(image.bmode, spec, scanner, layout), image, layout
