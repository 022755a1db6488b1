"""Labelled contact sheets: one row per lesion, subtle variant and mimic, plus normal joints
(``contact_sheet``); and rows of screens of any kind (``rows_sheet``, the out-of-scope set)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.png import write_png

from .patients import make_image_spec
from .render import render_image

__all__ = ["SHEET_ROWS", "contact_sheet", "rows_sheet"]

# (row label, [(view, lesions, mimics, subtle, acquisition overrides), ...])
SHEET_ROWS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...], bool, dict], ...]], ...] = (
    ("normal", tuple((v, (), (), False, {"tilt_deg": 0.0}) for v in ("dorsal", "medial", "plantar"))),
    ("double contour", tuple((v, ("double_contour",), (), False, {}) for v in ("dorsal", "dorsal", "medial"))),
    ("tophus", tuple((v, ("tophus",), (), False, {}) for v in ("dorsal", "medial", "plantar"))),
    ("aggregates", tuple((v, ("aggregates",), (), False, {}) for v in ("dorsal", "medial", "plantar"))),
    ("erosion", tuple((v, ("erosion",), (), False, {}) for v in ("medial", "dorsal", "medial"))),
    ("subtle: mild DC, scattered\naggregates, slight synovitis", (
        ("dorsal", ("double_contour",), (), True, {}),
        ("dorsal", ("aggregates",), (), True, {}),
        ("dorsal", ("synovitis",), (), True, {}),
    )),
    ("mimic: cartilage\ninterface sign", tuple((v, (), ("cartilage_interface",), False, {"tilt_deg": t}) for v, t in (("dorsal", 0.0), ("dorsal", 0.0), ("dorsal", 9.0)))),
    ("mimic: tendon\nanisotropy", tuple((v, (), ("tendon_anisotropy",), False, {}) for v in ("dorsal", "dorsal", "plantar"))),
    ("mimic: irregular bone", tuple((v, (), ("irregular_bone",), False, {}) for v in ("dorsal", "medial", "plantar"))),
    ("mimic: gel shadow", tuple((v, (), ("gel_shadow",), False, {}) for v in ("medial", "medial", "medial"))),
)

LESION_BGR = (60, 60, 255)
MIMIC_BGR = (255, 200, 60)


def contact_sheet(path: Path, seed: int = 0, height_px: int = 320, width_px: int = 700, scale: float = 0.75) -> Path:
    """Render ``SHEET_ROWS`` (three examples each) into one labelled PNG at ``path``."""
    path = Path(path)
    tile_w, tile_h = int(width_px * scale), int(height_px * scale)
    label_w, gap = 260, 6
    rows = []
    for r, (label, examples) in enumerate(SHEET_ROWS):
        tiles = []
        for c, (view, lesions, mimics, subtle, overrides) in enumerate(examples):
            spec = make_image_spec(view, lesions, mimics, subtle, seed=seed * 1000 + r * 10 + c, **overrides)
            img = render_image(spec, height_px, width_px)
            tile = cv2.cvtColor(cv2.resize(img.bmode, (tile_w, tile_h), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
            for boxes, colour in ((img.lesions, LESION_BGR), (img.mimics, MIMIC_BGR)):
                for b in boxes:
                    p0 = (int(b.x0 * scale), int(b.y0 * scale))
                    p1 = (int(b.x1 * scale) - 1, int(b.y1 * scale) - 1)
                    cv2.rectangle(tile, p0, p1, colour, 1)
            cv2.putText(tile, f"{view} tilt {spec.acquisition.tilt_deg:+.0f}", (4, tile_h - 6),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (200, 200, 200), 1, cv2.LINE_AA)
            tiles.append(tile)
            tiles.append(np.zeros((tile_h, gap, 3), np.uint8))
        panel = np.zeros((tile_h, label_w, 3), np.uint8)
        for i, line in enumerate(label.split("\n")):
            cv2.putText(panel, line, (8, 28 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.hstack([panel, *tiles]))
        rows.append(np.zeros((gap, rows[-1].shape[1], 3), np.uint8))
    sheet = np.vstack(rows)
    legend = np.zeros((30, sheet.shape[1], 3), np.uint8)
    cv2.putText(legend, "red: lesion box   blue: mimic box   synthetic phantom, not patient data", (8, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (220, 220, 220), 1, cv2.LINE_AA)
    sheet = np.vstack([legend, sheet])
    return write_png(path, sheet)


def rows_sheet(
    path: Path,
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    tile_width: int = 256,
    label_width: int = 150,
    legend: str = "",
    palette: bool = False,
) -> Path:
    """Screens of any size in labelled rows: ``rows`` = (row label, [(caption, grey or BGR image), …]).

    Each screen is scaled to ``tile_width`` and letterboxed to a 4:3 tile with its caption below.
    ``palette`` writes an 8-bit palette PNG (about a third of the size; for the documentation).
    """
    path = Path(path)
    tile_h = tile_width * 3 // 4
    cap_h, gap = 20, 6
    width = label_width + max(len(tiles) for _, tiles in rows) * (tile_width + gap)
    blocks = []
    if legend:
        bar = np.zeros((28, width, 3), np.uint8)
        cv2.putText(bar, legend, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220, 220, 220), 1, cv2.LINE_AA)
        blocks.append(bar)
    for label, tiles in rows:
        row = np.zeros((tile_h + cap_h, width, 3), np.uint8)
        for i, line in enumerate(label.split("\n")):
            cv2.putText(row, line, (8, 24 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        for j, (caption, image) in enumerate(tiles):
            img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]
            h, w = img.shape[:2]
            s = min(tile_width / w, tile_h / h)
            small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            x = label_width + j * (tile_width + gap)
            oy, ox = (tile_h - small.shape[0]) // 2, (tile_width - small.shape[1]) // 2
            row[oy : oy + small.shape[0], x + ox : x + ox + small.shape[1]] = small
            cv2.rectangle(row, (x, 0), (x + tile_width - 1, tile_h - 1), (70, 70, 70), 1)
            cv2.putText(row, caption, (x + 4, tile_h + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
        blocks.append(row)
        blocks.append(np.zeros((gap, width, 3), np.uint8))
    sheet = np.vstack(blocks)
    if not palette:
        return write_png(path, sheet)
    from PIL import Image

    from gout_edge._io import atomic_write

    quantized = Image.fromarray(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: quantized.save(tmp, format="PNG", optimize=True))
