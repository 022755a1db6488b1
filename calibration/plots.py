"""Report figures drawn with OpenCV (always installed), so reports need no plotting library.

``line_plot`` draws curves on [0, 1]-style axes (the threshold–accuracy curve of the paper's
Figure S1, ROC curves); ``confusion_plot`` draws 2 × 2 confusion matrices side by side. PNGs are
written atomically (temporary file + rename). OpenCV's fonts are ASCII-only: text is reduced to
ASCII before drawing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["PALETTE", "Series", "VLine", "confusion_plot", "line_plot", "write_png"]

Colour = tuple[int, int, int]  # BGR
PALETTE: tuple[Colour, ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)
BLACK, GREY, LIGHT, WHITE = (0, 0, 0), (110, 110, 110), (225, 225, 225), (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    colour: Colour = PALETTE[0]
    thickness: int = 2
    dashed: bool = False
    step: bool = False  # draw as a step function (value held until the next x)


@dataclass(frozen=True)
class VLine:
    x: float
    label: str
    colour: Colour = (30, 30, 30)
    dashed: bool = True


def _ascii(text: str) -> str:
    return text.replace("±", "+/-").replace("≤", "<=").replace("≥", ">=").replace("–", "-").replace("—", "-") \
        .encode("ascii", "replace").decode("ascii")


def write_png(path: Path, image: np.ndarray) -> Path:
    """Encode ``image`` as PNG and write it atomically."""
    path = Path(path)
    ok, data = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"could not encode {path.name} as PNG")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _text(img, text, org, scale=0.45, colour=BLACK, thickness=1, anchor="left") -> None:
    text = _ascii(text)
    (w, h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    if anchor == "centre":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, text, (int(x), int(y)), FONT, scale, colour, thickness, cv2.LINE_AA)


def _polyline(img, pts: np.ndarray, colour, thickness, dashed) -> None:
    pts = np.round(pts).astype(np.int32)
    if not dashed:
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, thickness, cv2.LINE_AA)
        return
    dash, gap = 8.0, 6.0
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        length = float(np.hypot(*(b - a)))
        pos = 0.0
        while pos < length:
            end = min(pos + dash, length)
            p0 = a + (b - a) * (pos / length)
            p1 = a + (b - a) * (end / length)
            cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, thickness, cv2.LINE_AA)
            pos += dash + gap


def line_plot(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
    vlines: Sequence[VLine] = (),
    diagonal: bool = False,
    tick_step: float = 0.1,
    y_tick_step: float | None = None,  # default: tick_step
    size: tuple[int, int] = (900, 640),
    notes: Sequence[str] = (),
) -> Path:
    """Curves on linear axes, with a legend in the lower right; written to ``path`` (PNG)."""
    width, height = size
    left, right, top, bottom = 78, 24, 48, 64
    img = np.full((height, width, 3), 255, np.uint8)
    (x0, x1), (y0, y1) = x_range, y_range
    pw, ph = width - left - right, height - top - bottom

    def px(x, y):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return np.stack([left + (x - x0) / (x1 - x0) * pw, top + (1 - (y - y0) / (y1 - y0)) * ph], axis=-1)

    n_ticks = int(round((x1 - x0) / tick_step))
    for i in range(n_ticks + 1):
        v = x0 + i * tick_step
        (gx, _), = px([v], [y0])
        cv2.line(img, (int(gx), top), (int(gx), top + ph), LIGHT, 1)
        _text(img, f"{v:.1f}", (gx, top + ph + 18), 0.42, GREY, anchor="centre")
    y_step = tick_step if y_tick_step is None else y_tick_step
    n_ticks = int(round((y1 - y0) / y_step))
    for i in range(n_ticks + 1):
        v = y0 + i * y_step
        (_, gy), = px([x0], [v])
        cv2.line(img, (left, int(gy)), (left + pw, int(gy)), LIGHT, 1)
        _text(img, f"{v:.1f}", (left - 8, gy + 5), 0.42, GREY, anchor="right")
    cv2.rectangle(img, (left, top), (left + pw, top + ph), BLACK, 1)
    if diagonal:
        _polyline(img, px([x0, x1], [y0, y1]), GREY, 1, True)

    for s in series:
        x = np.asarray(s.x, dtype=np.float64)
        y = np.asarray(s.y, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if x.size == 0:
            continue
        if s.step and x.size > 1:
            x = np.repeat(x, 2)[1:]
            y = np.repeat(y, 2)[:-1]
        _polyline(img, px(x, y), s.colour, s.thickness, s.dashed)
    for v in vlines:
        _polyline(img, px([v.x, v.x], [y0, y1]), v.colour, 2, v.dashed)
        (vx, _), = px([v.x], [y1])
        _text(img, v.label, (vx + 5, top + 16), 0.45, v.colour)

    _text(img, title, (width / 2, 30), 0.6, BLACK, 1, anchor="centre")
    _text(img, x_label, (left + pw / 2, height - 18), 0.5, BLACK, anchor="centre")
    (tw, th), _ = cv2.getTextSize(_ascii(y_label), FONT, 0.5, 1)
    label = np.full((th + 10, tw + 4, 3), 255, np.uint8)
    _text(label, y_label, (2, th + 3), 0.5, BLACK)
    label = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ly = int(top + ph / 2 - label.shape[0] / 2)
    if 0 <= ly and ly + label.shape[0] <= height and label.shape[1] < left:
        img[ly:ly + label.shape[0], 4:4 + label.shape[1]] = label

    entries = [(s.label, s.colour, s.dashed, s.thickness) for s in series if s.label]
    entries += [(v.label, v.colour, v.dashed, 2) for v in vlines if v.label]
    lines = [_ascii(n) for n in notes]
    if entries or lines:
        row = 20
        box_w = max([cv2.getTextSize(_ascii(e[0]), FONT, 0.45, 1)[0][0] + 48 for e in entries]
                    + [cv2.getTextSize(n, FONT, 0.45, 1)[0][0] + 14 for n in lines])
        box_h = row * (len(entries) + len(lines)) + 8
        bx1, by1 = left + pw - 10, top + ph - 10
        bx0, by0 = bx1 - box_w, by1 - box_h
        cv2.rectangle(img, (bx0, by0), (bx1, by1), WHITE, -1)
        cv2.rectangle(img, (bx0, by0), (bx1, by1), GREY, 1)
        y = by0 + 18
        for name, colour, dashed, thick in entries:
            _polyline(img, np.array([[bx0 + 8, y - 5], [bx0 + 38, y - 5]], float), colour, thick, dashed)
            _text(img, name, (bx0 + 44, y), 0.45)
            y += row
        for n in lines:
            _text(img, n, (bx0 + 8, y), 0.45, GREY)
            y += row
    return write_png(path, img)


def confusion_plot(path: Path, panels: Sequence[tuple], class_names: tuple[str, str] = ("normal", "abnormal")) -> Path:
    """2 × 2 matrices (rows: truth, columns: prediction), one panel per ``(title, counts)`` or
    ``(title, counts, (negative name, positive name))``."""
    cell, pad, head = 120, 40, 80
    panel_w = 2 * cell + 2 * pad + 60
    width, height = panel_w * max(1, len(panels)), head + 2 * cell + 70
    img = np.full((height, width, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        title, c = panel[0], panel[1]
        names = panel[2] if len(panel) > 2 else class_names
        ox = k * panel_w + pad + 60
        oy = head
        counts = np.array([[c.tn, c.fp], [c.fn, c.tp]], dtype=np.int64)
        row_tot = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, row_tot, out=np.zeros(counts.shape, float), where=row_tot > 0)
        _text(img, title, (ox + cell, 28), 0.55, BLACK, anchor="centre")
        _text(img, "predicted", (ox + cell, head - 30), 0.45, GREY, anchor="centre")
        for j, name in enumerate(names):
            _text(img, name, (ox + j * cell + cell / 2, head - 8), 0.45, BLACK, anchor="centre")
            _text(img, name, (ox - 6, oy + j * cell + cell / 2 + 5), 0.45, BLACK, anchor="right")
        for i in range(2):
            for j in range(2):
                shade = int(255 - 110 * share[i, j])
                colour = (255, shade, shade) if i == j else (shade, shade, 255)
                p0 = (ox + j * cell, oy + i * cell)
                cv2.rectangle(img, p0, (p0[0] + cell, p0[1] + cell), colour, -1)
                cv2.rectangle(img, p0, (p0[0] + cell, p0[1] + cell), GREY, 1)
                _text(img, str(counts[i, j]), (p0[0] + cell / 2, p0[1] + cell / 2), 0.7, BLACK, 2, "centre")
                _text(img, f"{100 * share[i, j]:.1f}% of row", (p0[0] + cell / 2, p0[1] + cell / 2 + 24), 0.4, BLACK, anchor="centre")
        _text(img, f"truth (rows); n = {c.total}", (ox + cell, oy + 2 * cell + 28), 0.45, GREY, anchor="centre")
    return write_png(path, img)
