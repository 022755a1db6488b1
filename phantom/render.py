"""One ``ImageSpec`` → one B-mode image (uint8) with its ground-truth boxes."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gout_edge.phantom import _physics as physics

from .anatomy import Geometry, Grid, build_geometry, tissue_maps
from .lesions import Finding, geometry_deltas, paint
from .patients import ImageSpec

__all__ = ["Box", "PhantomImage", "image_geometry", "noise_floor_image", "render_image"]

COMPOUND_LOOKS = 2  # frequency compounding, as MSK presets do
FAR_FIELD_MM = 10.0  # the lateral beam reaches its far-field width this far from the focus
BLACK_GREY = 14.0  # display black level inside the B-mode area (shadows stay above the screen)


@dataclass(frozen=True)
class Box:
    """A finding's box in B-mode pixels, end-exclusive (like ``preprocess.Roi``)."""

    kind: str
    subtle: bool
    x0: int
    y0: int
    x1: int
    y1: int

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "subtle": self.subtle, "box": [self.x0, self.y0, self.x1, self.y1]}

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.kind, self.subtle, self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)


@dataclass(frozen=True)
class PhantomImage:
    spec: ImageSpec
    bmode: np.ndarray  # uint8, H×W
    lesions: tuple[Box, ...]
    mimics: tuple[Box, ...]
    pixel_mm: float

    @property
    def image_label(self) -> int:
        return int(bool(self.lesions))


def _to_pixels(f: Finding, box_mm: tuple[float, float, float, float], grid: Grid) -> Box | None:
    x0, z0, x1, z1 = box_mm
    bx0 = int(np.clip(np.floor(grid.x_px(x0)), 0, grid.width_px))
    bx1 = int(np.clip(np.ceil(grid.x_px(x1)), 0, grid.width_px))
    by0 = int(np.clip(np.floor(grid.z_px(z0)), 0, grid.height_px))
    by1 = int(np.clip(np.ceil(grid.z_px(z1)), 0, grid.height_px))
    full = max(1e-6, (grid.x_px(x1) - grid.x_px(x0)) * (grid.z_px(z1) - grid.z_px(z0)))
    if bx1 - bx0 < 2 or by1 - by0 < 2 or (bx1 - bx0) * (by1 - by0) < 0.4 * full:
        return None  # mostly outside the field of view
    return Box(f.kind, f.subtle, bx0, by0, bx1, by1)


def image_geometry(spec: ImageSpec, height_px: int = 320, width_px: int = 700) -> Geometry:
    """The depth curves (skin, tendon, capsule, cartilage, bone) of a spec at a size, in mm."""
    acq = spec.acquisition
    grid = Grid(height_px, width_px, acq.depth_mm / height_px)
    bone_d, recess_d, gel_d = geometry_deltas(spec.lesions + spec.mimics, spec.anatomy, grid, acq.shift_mm)
    return build_geometry(spec.anatomy, grid, acq.shift_mm, acq.tilt_deg, bone_d, recess_d, gel_d)


def render_image(spec: ImageSpec, height_px: int = 320, width_px: int = 700) -> PhantomImage:
    """Render a B-mode image of ``height_px`` rows over the spec's depth (square pixels).

    A wider image shows more of the joint at the same scale. The result is a pure function of
    the spec and the size: the same spec gives identical pixels.
    """
    acq = spec.acquisition
    geometry = image_geometry(spec, height_px, width_px)
    grid = geometry.grid
    rng = np.random.default_rng(spec.seed)
    findings = spec.lesions + spec.mimics
    anisotropy = next((f.strength for f in spec.mimics if f.kind == "tendon_anisotropy"), None)
    maps = tissue_maps(geometry, rng, acq.freq_mhz, **({"anisotropy_power": anisotropy} if anisotropy else {}))
    painted = paint(findings, maps, geometry)

    z = grid.z_mm[:, None]
    tg = physics.transmission(maps.mu, grid.pixel_mm)
    tg *= physics.tgc_gain(z, acq.freq_mhz, acq.tgc_fraction, acq.gain_db)
    noise = physics.noise_amplitude(acq.noise_grey, acq.dynamic_range_db, acq.gamma, BLACK_GREY)
    amp = np.sqrt(maps.echo * tg * tg + np.float32(noise**2))
    n_re, n_im = physics.complex_noise(rng, height_px, width_px)
    if maps.fibre.any():  # tendon fibrils: scatterers elongated along the fibres
        n_re, n_im = _fibrillar(n_re, n_im, maps.fibre, grid.pixel_mm)
    field_re = n_re * amp + maps.coherent * tg
    field_im = n_im * amp
    far = np.clip(np.abs(z - acq.focus_mm) / FAR_FIELD_MM, 0.0, 1.0).astype(np.float32)
    psf = physics.psf_kernels(grid.pixel_mm, acq.freq_mhz)
    env = physics.envelope(field_re, field_im, psf, far, looks=COMPOUND_LOOKS)
    bmode = physics.log_compress(env, acq.dynamic_range_db, acq.gamma, BLACK_GREY)

    lesions, mimics = [], []
    for f, boxes in painted:
        for b in boxes:
            px = _to_pixels(f, b, grid)
            if px is not None:
                (lesions if f.is_lesion else mimics).append(px)
    return PhantomImage(spec, bmode, tuple(lesions), tuple(mimics), grid.pixel_mm)


def _fibrillar(n_re: np.ndarray, n_im: np.ndarray, fibre: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    length = max(3, int(round(0.9 / pixel_mm)) | 1)
    k = np.ones((1, length), np.float32) / np.sqrt(length)
    rows = np.flatnonzero(fibre.any(axis=1))
    sl = slice(rows[0], rows[-1] + 1)
    w = np.sqrt(fibre[sl])
    keep = np.sqrt(1.0 - fibre[sl])
    for n in (n_re, n_im):
        along = cv2.filter2D(n[sl], cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
        n[sl] = keep * n[sl] + w * along
    return n_re, n_im


def noise_floor_image(spec: ImageSpec, height_px: int, width_px: int, seed: int = 0) -> np.ndarray:
    """What the scanner shows with the probe lifted off: the electronic noise floor alone."""
    acq = spec.acquisition
    grid = Grid(height_px, width_px, acq.depth_mm / height_px)
    rng = np.random.default_rng([spec.seed, seed, 0x1F7])
    noise = np.float32(physics.noise_amplitude(acq.noise_grey, acq.dynamic_range_db, acq.gamma, BLACK_GREY))
    n_re, n_im = physics.complex_noise(rng, height_px, width_px)
    env = physics.envelope(n_re * noise, n_im * noise, physics.psf_kernels(grid.pixel_mm, acq.freq_mhz), looks=COMPOUND_LOOKS)
    return physics.log_compress(env, acq.dynamic_range_db, acq.gamma, BLACK_GREY)
