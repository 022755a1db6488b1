"""Labelled images → model inputs, through the runtime's ``prepare()`` (torch-free).

Shared by training, INT8 calibration, threshold calibration and evaluation, so that every one of
them sees exactly what the cart will feed the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gout_edge.calibration.index import IndexTable
from gout_edge.edge_runtime.imaging.preprocess import prepare
from gout_edge.edge_runtime.sources import reason_of
from gout_edge.edge_runtime.sources.images import load_still
from gout_edge.errors import DataError, InputError
from gout_edge.manifest import InputSpec, PreprocessSpec

__all__ = ["ImageCache", "load_cache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageCache:
    """Prepared images of a table, in its row order."""

    images: np.ndarray  # (N, H, W) float16, standardized
    blank: np.ndarray  # (N,) bool
    colour: np.ndarray  # (N,) bool


def load_cache(
    table: IndexTable,
    input_spec: InputSpec = InputSpec(),
    preprocess: PreprocessSpec = PreprocessSpec(),
    progress: Callable[[int, int], None] | None = None,
) -> ImageCache:
    """Every image of ``table`` through ``prepare()`` once, kept as float16 (N, H, W).

    Unreadable images are collected and reported together in one ``DataError`` by line number;
    whatever goes wrong with one image is that image's problem (docs/design.md §8).
    """
    n = len(table)
    images = np.empty((n, input_spec.height, input_spec.width), np.float16)
    blank = np.zeros(n, bool)
    colour = np.zeros(n, bool)
    problems: list[str] = []
    for i, row in enumerate(table.rows):
        try:
            image, roi = load_still(row.image)  # a DICOM still's declared region, as scan uses it
            frame = prepare(image, input_spec, preprocess, roi)
        except InputError as exc:  # an image that cannot be read or prepared
            problems.append(f"  line {row.line}: {exc}")
            continue
        except Exception as exc:  # one image's problem, whatever raised it: reported with the others
            problems.append(f"  line {row.line}: {row.image.name} could not be prepared ({reason_of(exc, row.image)})")
            continue
        images[i] = frame.tensor[0]
        blank[i], colour[i] = frame.blank, frame.colour
        if progress is not None:
            progress(i + 1, n)
    if problems:
        raise DataError(
            f"{len(problems)} image(s) of {table.path} could not be used:\n" + "\n".join(problems)
        )
    if blank.any() or colour.any():
        log.warning(
            "%d blank and %d colour (Doppler) image(s) in the table; they are trained on as "
            "labelled, but the cart leaves such frames out of the vote",
            int(blank.sum()), int(colour.sum()),
        )
    return ImageCache(images, blank, colour)
