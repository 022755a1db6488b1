"""The exam's pictures, drawn with OpenCV (the cart's base install has no plotting library):
CAM overlays of key frames and ``summary.png`` — the verdict, the most abnormal key frames and
every key frame's probability."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gout_edge._io import atomic_write_bytes

from .results import PatientResult

__all__ = ["OVERLAY_MAX_WIDTH", "ascii_text", "fit_width", "label", "render_summary", "write_png"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX

_ASCII = str.maketrans({"≤": "<=", "≥": ">=", "→": "->", "–": "-", "—": "-", "…": "...", "·": "|", "×": "x"})

OVERLAY_MAX_WIDTH = 1024  # overlay PNGs are scaled down to this width at most



def write_png(path: Path, image: np.ndarray) -> Path:
    """An image as PNG, atomically (the folder is made if needed): the one PNG writer of the
    runtime's reports and the phantom generator."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise OSError(f"could not encode {path.name} as PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.tobytes())


def ascii_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def fit_width(image: np.ndarray, max_width: int = OVERLAY_MAX_WIDTH) -> np.ndarray:
    if image.shape[1] <= max_width:
        return image
    h = max(1, round(image.shape[0] * max_width / image.shape[1]))
    return cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)


def label(image: np.ndarray, text: str) -> np.ndarray:
    text = ascii_text(text)
    out = image.copy()
    scale = max(0.5, image.shape[1] / 1400)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h + 5), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_summary(result: PatientResult, tiles: list[tuple[int, float, np.ndarray]], width: int = 1200) -> np.ndarray:
    """One image: the verdict, the most abnormal key frames with their CAM, and every key frame's probability."""
    colour = {"gout": (40, 40, 220), "no gout": (60, 170, 60)}.get(result.diagnosis, (0, 170, 230))
    fraction = "n/a" if result.abnormal_fraction is None else f"{result.abnormal_fraction:.2f}"
    threshold = "not calibrated" if result.threshold is None else f"{result.threshold:.2f}"
    header = np.full((130, width, 3), 24, np.uint8)
    cv2.putText(header, result.diagnosis.upper(), (16, 52), _FONT, 1.5, colour, 3, cv2.LINE_AA)
    lines = (
        f"abnormal fraction {fraction} (threshold {threshold}) over {result.key_frames} key frames "
        f"({result.abnormal_key_frames} abnormal); {result.reason}",
        f"session {result.session_id} | frames seen {result.frames_seen}, scored {result.frames_scored}, "
        f"dropped {result.dropped} | ended by {result.ended_by}",
        f"{result.bundle.get('identity', '')} | research software, not for clinical use",
    )
    for i, line in enumerate(lines):
        cv2.putText(header, ascii_text(line)[:150], (16, 80 + 18 * i), _FONT, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    cols = 3
    tile_w = width // cols
    rows = []
    for r in range(0, len(tiles), cols):
        cells = []
        for key, p, img in tiles[r : r + cols]:
            h = max(1, round(img.shape[0] * tile_w / img.shape[1]))
            cells.append(label(cv2.resize(img, (tile_w, h), interpolation=cv2.INTER_AREA), f"key {key}  p={p:.2f}"))
        tile_h = max(c.shape[0] for c in cells)
        row = np.zeros((tile_h, width, 3), np.uint8)
        for i, c in enumerate(cells):
            row[: c.shape[0], i * tile_w : i * tile_w + c.shape[1]] = c
        rows.append(row)
    chart = _probability_chart(result, width)
    return np.vstack([header, *rows, chart])


def _probability_chart(result: PatientResult, width: int, height: int = 120) -> np.ndarray:
    chart = np.full((height, width, 3), 16, np.uint8)
    top, bottom, left, right = 10, height - 20, 40, width - 10

    def y(p: float) -> int:
        return int(round(bottom - p * (bottom - top)))

    cv2.line(chart, (left, y(result.image_cutoff)), (right, y(result.image_cutoff)), (0, 170, 230), 1)
    cv2.putText(chart, "p", (8, top + 10), _FONT, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(chart, "key frames", (left, height - 4), _FONT, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    probs = [k.probability for k in result.key_frame_list]
    n = len(probs)
    for i, p in enumerate(probs):
        x = left + int((i + 0.5) * (right - left) / max(n, 1))
        c = (40, 40, 220) if p > result.image_cutoff else (60, 170, 60)
        cv2.line(chart, (x, bottom), (x, y(p)), c, max(1, min(8, (right - left) // max(n, 1) - 1)))
    return chart

