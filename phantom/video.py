"""Screen recordings of a scanner console: one short clip per patient with per-frame truth.

Each view is rendered once, wider than the screen's B-mode area, and the probe's slow slide,
heel-toe tilt and pressure are a moving, shearing crop window (one ``cv2.remap`` per frame, which
also scales the B-mode area to the screen). Between views the probe lifts off for a few frames (noise floor,
``view = "transition"``); in one or two views the sonographer freezes the image (identical frames,
a FREEZE marker). Frames alternate between 1280 × 720 and 1920 × 1080 from patient to patient.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ._screen import Layout, compose_screen, layout_for
from .anatomy import VIEWS
from .patients import ImageSpec, Patient, generate_cohort
from .render import Box, noise_floor_image, render_image

__all__ = ["FPS", "FRAME_SIZES", "FrameTruth", "clip", "mjpg_recording", "mjpg_screens", "write_video"]

FPS = 12
FRAME_SIZES = ((1280, 720), (1920, 1080))
SLIDE_MARGIN_PX = 48  # columns rendered on each side of the view for the probe to slide into
TRANSITION_FRAMES = 6


@dataclass(frozen=True)
class FrameTruth:
    index: int
    view: str  # dorsal, medial, plantar, or "transition" while the probe moves between views
    image_label: int
    frozen: bool
    bmode_rect: tuple[int, int, int, int]  # screen pixels, end-exclusive

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "view": self.view, "image_label": self.image_label,
                "frozen": self.frozen, "bmode_rect": list(self.bmode_rect)}


class _ViewCanvas:
    """One view rendered wide; ``frame`` crops, squeezes and scales it onto the screen's area."""

    def __init__(self, spec: ImageSpec, native_size: tuple[int, int]):
        w, h = native_size
        self.spec = spec
        self.native_w = w
        image = render_image(spec, h, w + 2 * SLIDE_MARGIN_PX)
        self.canvas = image.bmode
        self.lesions: tuple[Box, ...] = image.lesions
        self.pixel_mm = image.pixel_mm

    def frame(self, layout: Layout, dx_px: float, squeeze: float, tilt_deg: float = 0.0) -> tuple[np.ndarray, int]:
        """The view as the screen shows it with the probe slid by ``dx_px`` (native pixels),
        pressed by ``squeeze`` and tilted by ``tilt_deg`` (deep structures shear, the skin stays)."""
        lw, lh = layout.bmode_size
        s = lw / self.native_w
        h = self.canvas.shape[0]
        xs = (np.arange(lw, dtype=np.float32) + 0.5) / s - 0.5 + SLIDE_MARGIN_PX + dx_px
        ys = (np.arange(lh, dtype=np.float32) + 0.5) / (s * squeeze) - 0.5
        shear = np.float32(np.tan(np.radians(tilt_deg)) / h)
        map_x = np.broadcast_to(xs[None, :], (lh, lw))
        map_y = ys[:, None] + (xs[None, :] - (SLIDE_MARGIN_PX + self.native_w / 2)) * (ys[:, None] * shear)
        out = cv2.remap(self.canvas, np.ascontiguousarray(map_x, dtype=np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
        label = 0
        for b in self.lesions:
            x0, x1 = s * (b.x0 - SLIDE_MARGIN_PX - dx_px), s * (b.x1 - SLIDE_MARGIN_PX - dx_px)
            y0, y1 = s * squeeze * b.y0, s * squeeze * b.y1
            inside = max(0.0, min(x1, lw) - max(x0, 0.0)) * max(0.0, min(y1, lh) - max(y0, 0.0))
            if inside >= 0.5 * (x1 - x0) * (y1 - y0):
                label = 1
        return out, label


def _pick(patient: Patient, view: str) -> ImageSpec:
    specs = [s for s in patient.images if s.view == view]
    return next((s for s in specs if s.image_label), specs[0])


def clip(
    patient: Patient,
    layout: Layout,
    seed: int,
    seconds_per_view: float = 2.0,
    views: tuple[str, ...] = VIEWS,
    freezes: bool = True,
    transitions: bool = True,
) -> Iterator[tuple[np.ndarray, FrameTruth]]:
    """Screen frames (BGR) with their truth: each view live, maybe frozen, then a probe lift."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, int(patient.patient_id[1:]), 0x71DE0]))
    native = patient.scanner.bmode_size
    n_live = max(2, int(round(seconds_per_view * FPS)))
    frozen_views = set(rng.choice(views, size=min(len(views), int(rng.integers(1, 3))), replace=False).tolist()) if freezes else set()
    index = 0
    previous: np.ndarray | None = None
    lw, lh = layout.bmode_size
    for v_i, view in enumerate(views):
        spec = _pick(patient, view)
        canvas = _ViewCanvas(spec, native)
        live_base = compose_screen(np.zeros((lh, lw), np.uint8), spec, patient.scanner, layout)
        frozen_base = compose_screen(np.zeros((lh, lw), np.uint8), spec, patient.scanner, layout, frozen=True)
        x0, y0, x1, y1 = layout.bmode_rect
        amp, period, phase = rng.uniform(10, SLIDE_MARGIN_PX - 8), rng.uniform(2.0, 4.0), rng.uniform(0, 2 * np.pi)
        tilt_amp, tilt_period = rng.uniform(1.0, 3.0), rng.uniform(2.5, 5.0)
        freeze_at = int(rng.integers(n_live // 3, max(n_live // 3 + 1, 2 * n_live // 3))) if view in frozen_views else -1
        if transitions and previous is not None:
            noise = noise_floor_image(spec, lh, lw, seed=v_i)
            for k in range(TRANSITION_FRAMES):
                a = (k + 1) / (TRANSITION_FRAMES / 2 + 1) if k < TRANSITION_FRAMES // 2 else (TRANSITION_FRAMES - k) / (TRANSITION_FRAMES / 2 + 1)
                source = previous if k < TRANSITION_FRAMES // 2 else canvas.frame(layout, amp * np.sin(phase), 1.0)[0]
                bmode = cv2.addWeighted(source, 1.0 - a, noise, a, 0.0)
                screen = live_base.copy()
                screen[y0:y1, x0:x1] = bmode[:, :, None]
                yield screen, FrameTruth(index, "transition", 0, False, layout.bmode_rect)
                index += 1
        for t in range(n_live):
            time_s = t / FPS
            dx = amp * np.sin(2 * np.pi * time_s / period + phase)
            squeeze = 1.0 + 0.012 * np.sin(2 * np.pi * time_s / 1.7 + phase)
            tilt = tilt_amp * np.sin(2 * np.pi * time_s / tilt_period + phase)
            bmode, label = canvas.frame(layout, dx, squeeze, tilt)
            screen = live_base.copy()
            screen[y0:y1, x0:x1] = bmode[:, :, None]
            yield screen, FrameTruth(index, view, label, False, layout.bmode_rect)
            index += 1
            if t == freeze_at:
                still = frozen_base.copy()
                still[y0:y1, x0:x1] = bmode[:, :, None]
                for _ in range(int(rng.integers(8, 15))):
                    yield still, FrameTruth(index, view, label, True, layout.bmode_rect)
                    index += 1
            previous = bmode


def _open_writer(path: Path, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    if writer.isOpened():
        return writer, path
    writer.release()
    path = path.with_suffix(".avi")  # OpenCV builds without an MPEG-4 encoder still write MJPG
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write video here (tried mp4v and MJPG) for {path}")
    return writer, path


def write_video(out_dir: Path, patient: Patient, patient_index: int, seed: int) -> tuple[Path, Path, int]:
    """Write DIR/video/<patient_id>.mp4 (or .avi) and its per-frame truth JSON; returns paths, frames."""
    folder = out_dir / "video"
    folder.mkdir(parents=True, exist_ok=True)
    size = FRAME_SIZES[patient_index % len(FRAME_SIZES)]
    layout = layout_for(patient.scanner, size)
    writer, path = _open_writer(folder / f"{patient.patient_id}.mp4", size)
    truths = []
    try:
        for screen, truth in clip(patient, layout, seed):
            writer.write(screen)
            truths.append(truth.to_dict())
    finally:
        writer.release()
    native_w = patient.scanner.bmode_size[0]
    first = {s.view: s for s in reversed(patient.images)}
    doc = {
        "patient_id": patient.patient_id,
        "diagnosis": patient.diagnosis,
        "video": path.name,
        "fps": FPS,
        "frame_size": list(size),
        "bmode_rect": list(layout.bmode_rect),
        "pixel_mm": {v: first[v].acquisition.depth_mm / layout.bmode_size[1] for v in first},
        "native_bmode_width": native_w,
        "frames": truths,
    }
    gt_path = folder / f"{patient.patient_id}.json"
    gt_path.write_text(json.dumps(doc, indent=1))
    return path, gt_path, len(truths)


def _mjpg(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def mjpg_screens(size: tuple[int, int] = (1920, 1080), count: int = 12, seed: int = 5) -> list[bytes]:
    """Distinct scanner screens from the phantom video generator, JPEG-encoded like an MJPG grabber."""
    patient = generate_cohort(1, seed=seed)[0]
    layout = layout_for(patient.scanner, size)
    frames = [f for f, truth in clip(patient, layout, seed, seconds_per_view=1.0, freezes=False, transitions=False)]
    step = max(1, len(frames) // count)
    return [_mjpg(f) for f in frames[::step][:count]]


def mjpg_recording(size: tuple[int, int] = (1920, 1080), seed: int = 3, seconds_per_view: float = 3.0) -> list[bytes]:
    """One phantom patient's whole screen recording (every view, freezes, probe lifts), each frame
    JPEG-encoded like an MJPG grabber's."""
    patient = generate_cohort(1, seed=seed)[0]
    return [_mjpg(f) for f, _ in clip(patient, layout_for(patient.scanner, size), seed, seconds_per_view)]
