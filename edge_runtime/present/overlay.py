"""Render a class activation map over the image region it explains (OpenCV, no torch).

One colour scale per bundle (docs/design.md §13): the abnormal-class CAM is mapped through the
bundle's ``CamScale`` — values at or below ``lo`` transparent, at or above ``hi`` the hottest
colour — so a frame the model finds normal stays nearly clear and a lesion the model is sure of
glows, and two overlays can be compared. The scale comes from the manifest's ``cam`` section
(fitted at export on the INT8 calibration images: ``fit_cam_scale``); a bundle without one gets
a scale derived once from its reference set's expected CAMs when a session opens it
(``cam_scale_for``), never from the frame being drawn. Only with neither is each map scaled to
itself, and the legend then says so.

The colour is laid over the B-mode image with an opacity that grows with the value, up to
``ALPHA_MAX``, so the anatomy under the hottest spot still shows. ``cam_legend`` draws the colour
bar with its values, which every displayed overlay carries beside it (``with_legend``).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from gout_edge.manifest import CamScale

from ._draw import Canvas

__all__ = ["ALPHA_MAX", "CamScale", "cam_heatmap", "cam_legend", "overlay_cam", "with_legend"]


ALPHA_MAX = 0.45  # opacity of the hottest colour: the speckle under it stays visible
CLEAR_BELOW = 0.12  # fraction of the scale under which the map is not drawn at all
_COLORMAP = cv2.COLORMAP_TURBO
_LEGEND_GREY = 110  # the tissue grey the legend's colour bar is shown over


# ------------------------------------------------------------------------------------ the overlay


def _values(cam: np.ndarray, scale: CamScale | None) -> np.ndarray:
    """The CAM as a fraction of the scale, in [0, 1] (float32, on the CAM grid)."""
    c = np.asarray(cam, np.float32)
    if scale is None:  # no bundle scale: this map alone, as Grad-CAM displays it
        c = np.maximum(c, 0.0)
        peak = float(c.max()) if c.size else 0.0
        return c / peak if peak > 0 else c
    return np.clip((c - scale.lo) / (scale.hi - scale.lo), 0.0, 1.0)


def cam_heatmap(cam: np.ndarray, height: int, width: int, scale: CamScale | None = None) -> np.ndarray:
    """The CAM as a fraction of ``scale`` (per image without one), bilinearly resized to
    (height, width), float32 in [0, 1]."""
    return cv2.resize(_values(cam, scale), (width, height), interpolation=cv2.INTER_LINEAR)


def _opacity(v: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * np.clip((v - CLEAR_BELOW) / (1.0 - CLEAR_BELOW), 0.0, 1.0)


@lru_cache(maxsize=8)
def _luts(alpha: float) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Per value 0…255: the colour times its opacity (one table per channel, B, G, R), 255 × (1 −
    opacity), and the plain colours (256, 3). One-channel tables: OpenCV applies them fastest."""
    v = np.arange(256, dtype=np.float64) / 255.0
    colour = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], _COLORMAP)[:, 0].astype(np.float64)
    a = _opacity(v, alpha)
    pre = np.rint(colour * a[:, None]).astype(np.uint8)
    keep = np.rint(255.0 * (1.0 - a)).astype(np.uint8)
    return tuple(np.ascontiguousarray(pre[:, i]) for i in range(3)), keep, colour.astype(np.uint8)


def overlay_cam(image: np.ndarray, cam: np.ndarray, scale: CamScale | None = None, alpha: float = ALPHA_MAX) -> np.ndarray:
    """Lay the CAM over ``image`` (grey or BGR uint8, the region the CAM explains) on ``scale``:
    clear below ``CLEAR_BELOW`` of the scale, then TURBO colours growing to ``alpha`` opacity.
    Returns a new BGR uint8 image (``image`` is not changed)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else np.ascontiguousarray(image[:, :, :3])
    h, w = bgr.shape[:2]
    if h == 0 or w == 0:
        return bgr.copy()
    v8 = cv2.resize(np.rint(_values(cam, scale) * 255.0).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    pre, keep, _ = _luts(float(alpha))
    k = cv2.LUT(v8, keep)
    colour = cv2.merge([cv2.LUT(v8, t) for t in pre])
    return cv2.add(cv2.multiply(bgr, cv2.merge((k, k, k)), scale=1.0 / 255.0), colour)


# ------------------------------------------------------------------------------------ the legend


def _tick(value: float, span: float) -> str:
    return f"{value:.0f}" if span >= 10 else f"{value:.1f}" if span >= 1 else f"{value:.2f}"


@lru_cache(maxsize=32)
def _legend(scale: CamScale | None, height: int, dark: bool) -> np.ndarray:
    height = max(90, int(height))
    size = int(np.clip(height / 22, 11, 22))
    width = int(max(5.6 * size, 64))
    bg = (24, 24, 24) if dark else (255, 255, 255)
    ink = (235, 235, 235) if dark else (20, 20, 20)
    c = Canvas(width, height, bg)
    pad = max(4, size // 2)
    c.text((pad, pad), "CAM", size, ink, bold=True)
    c.text((pad, pad + 1.25 * size), "fixed scale" if scale is not None else "per image!", int(size * 0.8),
           ink if scale is not None else (0, 140, 255))
    top, bottom = int(pad + 2.7 * size), height - pad - size // 2
    bar_w = max(10, size)
    x0 = pad
    if bottom - top >= 20:
        _, _, colours = _luts(ALPHA_MAX)
        n = bottom - top
        v = np.linspace(1.0, 0.0, n)
        a = _opacity(v, ALPHA_MAX)[:, None]
        rows = colours[np.rint(v * 255).astype(int)].astype(np.float64) * a + _LEGEND_GREY * (1 - a)
        bar = np.repeat(np.rint(rows).astype(np.uint8)[:, None, :], bar_w, axis=1)
        c.paste(bar, (x0, top))
        c.rect(x0 - 1, top - 1, x0 + bar_w, bottom, outline=ink)
        lo, hi = (0.0, 1.0) if scale is None else (scale.lo, scale.hi)
        span = hi - lo
        for frac, value in ((0.0, hi), (0.5, (lo + hi) / 2), (1.0, lo)):
            y = top + frac * (n - 1)
            c.line([(x0 + bar_w, y), (x0 + bar_w + 4, y)], ink, 1)
            label = _tick(value, span) + ("+" if frac == 0.0 and scale is not None else "")
            c.text((x0 + bar_w + 6, y), label, int(size * 0.85), ink, anchor="lm")
    return c.bgr()


def cam_legend(scale: CamScale | None, height: int, dark: bool = False) -> np.ndarray:
    """The colour bar of ``scale`` with its values (BGR), ``height`` px tall (at least 90): the
    hottest value at the top, as each colour appears over mid-grey tissue."""
    return _legend(scale, int(height), bool(dark)).copy()


def with_legend(overlay: np.ndarray, scale: CamScale | None, dark: bool = False) -> np.ndarray:
    """``overlay`` with the legend of ``scale`` beside it, on the right."""
    h = overlay.shape[0]
    legend = _legend(scale, max(h, 90), bool(dark))
    if legend.shape[0] > h:  # a very short image: pad it to the legend's height
        pad = np.full((legend.shape[0] - h, overlay.shape[1], 3), 24 if dark else 255, np.uint8)
        overlay = np.vstack([overlay, pad])
    return np.hstack([overlay, legend])
