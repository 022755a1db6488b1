"""Frame gates that are right: a grey B-mode screen with coloured annotations (arrows, calipers,
depth marks, text) is scored; colour flow inside the region (Doppler) is not — whichever way the
frame is prepared (``prepare`` or the streaming ``FramePreparer``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.screens import screen

from gout_edge.edge_runtime.imaging.preprocess import Roi, is_doppler, prepare
from gout_edge.edge_runtime.pipeline.stream import FramePreparer
from gout_edge.manifest import InputSpec, PreprocessSpec

RECT = (40, 30, 600, 440)  # the B-mode rectangle of the test screens (x0, y0, x1, y1)


def _grey_screen(seed: int = 0) -> np.ndarray:
    return cv2.cvtColor(screen(480, 640, RECT, seed=seed), cv2.COLOR_GRAY2BGR)


def _annotated(seed: int = 0) -> np.ndarray:
    """Marks a scanner draws on a grey image, inside the B-mode region, in several colours."""
    img = _grey_screen(seed)
    green, yellow, cyan = (60, 220, 60), (40, 230, 230), (230, 220, 40)
    cv2.arrowedLine(img, (150, 120), (300, 240), green, 2, tipLength=0.08)
    cv2.arrowedLine(img, (500, 380), (380, 300), yellow, 2, tipLength=0.08)
    for x in (200, 420):  # calipers
        cv2.drawMarker(img, (x, 330), cyan, cv2.MARKER_CROSS, 14, 2)
    cv2.line(img, (200, 330), (420, 330), cyan, 1)
    cv2.putText(img, "D 1.24 cm  MTP1 DORSAL", (60, 420), cv2.FONT_HERSHEY_SIMPLEX, 0.7, green, 2)
    for y in range(40, 440, 40):  # a depth scale along the edge
        cv2.line(img, (44, y), (60, y), yellow, 2)
    return img


def _doppler(seed: int = 0) -> np.ndarray:
    """Colour flow inside the region: filled red and blue blobs, as a colour box shows them."""
    img = _grey_screen(seed)
    cv2.ellipse(img, (300, 220), (40, 18), 20, 0, 360, (40, 40, 220), -1)
    cv2.ellipse(img, (360, 260), (30, 12), -10, 0, 360, (220, 80, 30), -1)
    return img


@pytest.mark.parametrize("make, doppler", [(_grey_screen, False), (_annotated, False), (_doppler, True)])
def test_colour_means_flow_inside_the_region(make, doppler):
    x0, y0, x1, y1 = RECT
    image = make()
    assert is_doppler(image[y0:y1, x0:x1]) is doppler
    spec, inputs = PreprocessSpec(), InputSpec()
    whole = prepare(image, inputs, spec)
    streamed = FramePreparer(inputs, spec)(image, Roi(*RECT))
    assert whole.colour is doppler and streamed.colour is doppler
    assert whole.usable is (not doppler)


def test_a_single_small_flow_spot_is_not_enough_but_a_colour_box_is():
    x0, y0, x1, y1 = RECT
    img = _grey_screen()
    cv2.circle(img, (300, 220), 5, (40, 40, 220), -1)  # a speck: below the flow-area share
    assert not is_doppler(img[y0:y1, x0:x1])
    cv2.rectangle(img, (250, 180), (350, 260), (200, 60, 30), -1)  # a filled colour box
    assert is_doppler(img[y0:y1, x0:x1])


def test_annotations_outside_the_region_never_count():
    img = _grey_screen()
    cv2.putText(img, "GOUT-EDGE 12.5 MHz", (10, 470), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
    cv2.rectangle(img, (610, 0), (639, 479), (0, 0, 255), -1)  # a coloured toolbar
    assert not prepare(img, InputSpec(), PreprocessSpec(), Roi(*RECT)).colour


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 3, 3), (4, 4, 3)])
def test_tiny_colour_images_are_prepared_not_crashed(shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert prepare(frame, InputSpec(), PreprocessSpec()).blank
