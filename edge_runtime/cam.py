"""Render a class activation map over the image region it explains (OpenCV, no torch)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["cam_correlation", "cam_heatmap", "overlay_cam"]


def cam_heatmap(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """ReLU, min-max to [0, 1] and bilinear resize to (height, width), as Grad-CAM displays it."""
    c = np.maximum(cam.astype(np.float32), 0.0)
    peak = float(c.max())
    c = c / peak if peak > 0 else c
    return cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR)


def overlay_cam(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a JET-coloured CAM over ``image`` (grey or BGR uint8); returns BGR uint8."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else np.ascontiguousarray(image[:, :, :3])
    heat = cam_heatmap(cam, bgr.shape[0], bgr.shape[1])
    colour = cv2.applyColorMap(cv2.convertScaleAbs(heat, alpha=255.0), cv2.COLORMAP_JET)
    weight = cv2.multiply(heat, alpha)  # transparent where the map is cold
    return cv2.blendLinear(colour, bgr, weight, cv2.subtract(1.0, weight))


def cam_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image Pearson correlation of two CAM stacks (N, h, w); 1 where either is flat."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return np.where(denom > 0, (x * y).sum(axis=1) / np.maximum(denom, 1e-30), 1.0)
