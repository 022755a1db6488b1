"""A fictitious scanner console around the B-mode area: text, depth ruler, logo, body marker.

Everything drawn here stays at least ``Layout.margin_px`` away from the B-mode area and is thin
(text, ticks) or small (logo, body marker), so that ``edge_runtime.imaging.preprocess.find_roi``
(threshold + morphology on a 480-pixel-wide copy, largest component) recovers the area: the
margin grows with the screen width so that it stays wider than the morphology kernel there. Identifiers are synthetic: "P0007", never a
name.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .patients import ImageSpec, Scanner, study_date

__all__ = ["Layout", "compose_screen", "layout_for"]

MARGIN_PX = 30  # clear black between the B-mode area and any overlay, at 1024 pixels wide
ANALYSIS_WIDTH_PX = 480  # find_roi's working width (PreprocessSpec.roi_analysis_width)
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_BGR = (215, 215, 215)
VIEW_TEXT = {"dorsal": "DORSAL LONG", "medial": "MEDIAL LONG", "plantar": "PLANTAR LONG"}


@dataclass(frozen=True)
class Layout:
    """Where the B-mode area sits on a screen of ``frame_size`` (end-exclusive rectangle)."""

    frame_size: tuple[int, int]  # width, height
    bmode_rect: tuple[int, int, int, int]  # x0, y0, x1, y1
    text_scale: float = 0.5
    margin_px: int = MARGIN_PX

    @property
    def bmode_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.bmode_rect
        return x1 - x0, y1 - y0


def layout_for(scanner: Scanner, frame_size: tuple[int, int] | None = None) -> Layout:
    """The scanner's own screen, or the B-mode area scaled and centred on another screen size."""
    if frame_size is None or tuple(frame_size) == scanner.frame_size:
        (x, y), (w, h) = scanner.bmode_origin, scanner.bmode_size
        return Layout(scanner.frame_size, (x, y, x + w, y + h))
    fw, fh = frame_size
    margin = max(MARGIN_PX, int(np.ceil(16 * fw / ANALYSIS_WIDTH_PX)))
    text_scale = 0.5 * max(1.0, fh / 768)
    k = text_scale / 0.5
    top = 12 + 3 * int(22 * k) + margin + 6  # three text lines above the area
    side = margin + int(140 * k)  # grey bar / body marker left, ruler and settings right
    scale = min((fw - 2 * side) / scanner.bmode_size[0], (fh - top - margin - int(40 * k)) / scanner.bmode_size[1])
    w, h = int(scanner.bmode_size[0] * scale), int(scanner.bmode_size[1] * scale)
    x, y = (fw - w) // 2 - int(20 * k), max(top, (fh - h) // 2 - 10)
    return Layout((fw, fh), (x, y, x + w, y + h), text_scale=text_scale, margin_px=margin)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour=TEXT_BGR, thickness: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _logo(img: np.ndarray, scanner: Scanner, x: int, y: int, s: float) -> None:
    r = int(11 * s / 0.5)
    cv2.circle(img, (x + r, y + r), r, scanner.accent_bgr, -1, cv2.LINE_AA)
    cv2.circle(img, (x + r, y + r), int(r * 0.55), (0, 0, 0), -1, cv2.LINE_AA)
    _text(img, scanner.name, (x + 2 * r + 8, y + int(1.4 * r)), s * 1.3, scanner.accent_bgr, 2)


def _ruler(img: np.ndarray, layout: Layout, depth_mm: float, focus_mm: float, s: float) -> None:
    x0, y0, x1, y1 = layout.bmode_rect
    px_per_mm = (y1 - y0) / depth_mm
    x = x1 + layout.margin_px
    cv2.line(img, (x, y0), (x, y1 - 1), (150, 150, 150), 1)
    for mm in range(0, int(depth_mm) + 1):
        y = int(round(y0 + mm * px_per_mm))
        if y >= y1:
            break
        major = mm % 5 == 0
        cv2.line(img, (x, y), (x + (9 if major else 4), y), (190, 190, 190), 1)
        if mm % 10 == 0 and mm:
            _text(img, f"{mm // 10}", (x + 14, y + 5), s * 0.9)
    yf = int(round(y0 + focus_mm * px_per_mm))
    tri = np.array([[x + 26, yf], [x + 36, yf - 6], [x + 36, yf + 6]], np.int32)
    cv2.polylines(img, [tri], True, (0, 200, 255), 1, cv2.LINE_AA)
    _text(img, "cm", (x + 10, y1 + 18), s * 0.9)


def _grey_bar(img: np.ndarray, layout: Layout) -> None:
    x0, y0, _, _ = layout.bmode_rect
    h = min(160, layout.bmode_size[1])
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
    bar = np.repeat(np.repeat(ramp, 6, axis=1)[:, :, None], 3, axis=2)
    img[y0 : y0 + h, x0 - layout.margin_px - 6 : x0 - layout.margin_px] = bar


def _body_marker(img: np.ndarray, view: str, x: int, y: int, s: float) -> None:
    """A foot outline with the probe drawn where this view was taken."""
    k = s / 0.5
    c = (150, 150, 150)
    cv2.ellipse(img, (x + int(30 * k), y + int(34 * k)), (int(16 * k), int(30 * k)), 0, 0, 360, c, 1, cv2.LINE_AA)
    for i, dx in enumerate((-10, -3, 3, 8, 12)):
        cv2.circle(img, (x + int((30 + dx) * k), y + int((2 + abs(i - 1) * 2) * k)), int((5 if i == 0 else 3) * k), c, 1, cv2.LINE_AA)
    probe = {
        "dorsal": ((18, 14), (18, 30)),
        "medial": ((12, 12), (12, 28)),
        "plantar": ((26, 12), (26, 28)),
    }[view]
    (ax, ay), (bx, by) = probe
    cv2.line(img, (x + int(ax * k), y + int(ay * k)), (x + int(bx * k), y + int(by * k)), (0, 220, 255), max(2, int(3 * k)))


def compose_screen(
    bmode: np.ndarray,
    spec: ImageSpec,
    scanner: Scanner,
    layout: Layout,
    *,
    frozen: bool = False,
    frame_rate_hz: int = 32,
    clock: str = "10:32:05",
) -> np.ndarray:
    """The B-mode image (already at the layout's size) inside a BGR scanner screen."""
    fw, fh = layout.frame_size
    x0, y0, x1, y1 = layout.bmode_rect
    if bmode.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"B-mode of shape {bmode.shape} does not fit the layout's area {layout.bmode_size[::-1]}")
    img = np.zeros((fh, fw, 3), np.uint8)
    img[y0:y1, x0:x1] = bmode[:, :, None]
    s = layout.text_scale
    acq = spec.acquisition
    line = int(22 * s / 0.5)
    _logo(img, scanner, 16, 12, s)
    right = fw - int(330 * s / 0.5)
    _text(img, f"ID: {spec.patient_id}  SYNTHETIC PHANTOM", (right, 12 + line), s)
    date = study_date(spec.patient_id)
    _text(img, f"{date[:4]}-{date[4:6]}-{date[6:]}  {clock}", (right, 12 + 2 * line), s)
    _text(img, f"{scanner.probe}  {acq.freq_mhz:.0f}MHz  {scanner.preset}", (16, 12 + 3 * line), s)
    _text(img, f"MI 0.{7 + int(acq.freq_mhz) % 3}  TIS 0.{1 + int(acq.depth_mm) % 2}", (right, 12 + 3 * line), s)
    # Settings column right of the depth ruler.
    px = x1 + layout.margin_px + int(50 * s / 0.5)
    py = y0 + line
    for i, item in enumerate((
        f"G {acq.gain_db + 70:.0f}",
        f"DR {acq.dynamic_range_db:.0f}",
        f"D {acq.depth_mm / 10:.1f}cm",
        f"FR {frame_rate_hz}Hz",
        f"F {acq.freq_mhz:.0f}M",
    )):
        _text(img, item, (px, py + i * line), s * 0.9)
    _grey_bar(img, layout)
    _ruler(img, layout, acq.depth_mm, acq.focus_mm, s)
    _body_marker(img, spec.view, 18, min(fh - int(90 * s / 0.5), y1 - int(60 * s / 0.5)), s)
    _text(img, f"R MTP1 {VIEW_TEXT[spec.view]}", (x0, min(fh - 12, y1 + layout.margin_px + int(8 * s / 0.5))), s)
    _text(img, "SYNTHETIC - NOT FOR DIAGNOSIS", (fw - int(330 * s / 0.5), fh - 14), s * 0.8, (120, 120, 120))
    if frozen:
        _text(img, "FREEZE", (16, 12 + 2 * line), s * 1.1, (0, 220, 255), 2)
    return img
