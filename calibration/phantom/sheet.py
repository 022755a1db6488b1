"""A labelled contact sheet: one row per lesion, subtle variant and mimic, plus normal joints."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gout_edge.edge_runtime.report import write_png

from .patients import make_image_spec
from .render import render_image

__all__ = ["SHEET_ROWS", "contact_sheet"]

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
