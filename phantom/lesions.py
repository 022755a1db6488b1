"""Gout lesions (OMERACT definitions) and the normal findings that mimic them.

A ``Finding`` is a planned lesion or mimic with its size and strength; it acts on an image in two
steps: ``geometry_deltas`` reshapes the joint (an erosion notches the bone, synovitis and tophi
lift the capsule, a gel wedge lifts the probe), then ``paint`` writes echogenicity, specular
amplitude and attenuation into the tissue maps and returns the finding's box in millimetres.

Lesions (``notes/ultrasound.md``):

- double contour: hyperechoic band over the superficial margin of the cartilage, no angle factor;
  regular or irregular, continuous or intermittent;
- tophus: circumscribed, inhomogeneous hyper-/hypoechoic aggregate, posterior shadow, sometimes
  an anechoic halo;
- aggregates: hyperechoic foci ("snowstorm" in an effusion), occasionally shadowing;
- erosion: a notch in the bone surface whose floor lets echoes through;
- synovitis: thickened hypoechoic synovium that distends the recess (subtle when slight).

Mimics (the seed paper's false positives): the cartilage interface sign (a thin line bright only
when the beam is perpendicular, over a film of fluid), tendon anisotropy, irregular bone
(osteophytes, wavy cortex) and coupling-gel pseudo-shadows in the upper corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import INTERFACE_POWER, Anatomy, Geometry, Grid, TissueMaps, draw_curve

__all__ = [
    "LESION_KINDS",
    "MIMIC_KINDS",
    "SUBTLE_KINDS",
    "Finding",
    "geometry_deltas",
    "paint",
    "sample_lesion",
    "sample_mimic",
]

LESION_KINDS = ("double_contour", "tophus", "aggregates", "erosion", "synovitis")
SUBTLE_KINDS = ("double_contour", "aggregates", "synovitis")  # mild DC, scattered foci, slight thickening
MIMIC_KINDS = ("cartilage_interface", "tendon_anisotropy", "irregular_bone", "gel_shadow")

BoxMm = tuple[float, float, float, float]  # x0, z0, x1, z1 in image millimetres


@dataclass(frozen=True)
class Finding:
    """A planned lesion or mimic; ``x_mm`` is relative to the metatarsal head apex."""

    kind: str
    subtle: bool
    x_mm: float
    width_mm: float
    height_mm: float
    strength: float  # echogenicity of the bright part (power), or a depth/attenuation for shapes
    coverage: float = 1.0  # share of the extent that shows (intermittent double contour)
    rim_mm: float = 0.0  # anechoic halo of a tophus
    shadow_np_per_mm: float = 0.0  # extra attenuation (tophus, shadowing aggregates, gel corner)
    seed: int = 0

    @property
    def is_lesion(self) -> bool:
        return self.kind in LESION_KINDS


# ---------------------------------------------------------------- sampling


def sample_lesion(kind: str, view: str, subtle: bool, rng: np.random.Generator) -> Finding:
    """Size, place and strength of one lesion; ``subtle`` only for ``SUBTLE_KINDS``."""
    u = rng.uniform
    seed = int(rng.integers(2**31))
    if subtle and kind not in SUBTLE_KINDS:
        raise ValueError(f"{kind} has no subtle variant; subtle kinds are {SUBTLE_KINDS}")
    if kind == "double_contour":
        if subtle:  # mild: thin, faint, intermittent
            return Finding(kind, True, u(0.0, 3.0), u(3.0, 5.0), u(0.15, 0.25), u(1.2, 2.2), coverage=u(0.5, 0.75), seed=seed)
        return Finding(kind, False, u(0.5, 3.0), u(6.0, 10.0), u(0.25, 0.45), u(4.0, 8.0),
                       coverage=1.0 if u() < 0.7 else u(0.7, 0.85), seed=seed)
    if kind == "tophus":
        x = {"dorsal": u(-6.0, -1.0), "medial": u(-4.0, 2.0), "plantar": u(3.0, 6.0)}[view]
        return Finding(kind, False, x, u(4.0, 8.0), u(2.5, 4.5), u(5.0, 10.0),
                       rim_mm=u(0.35, 0.7) if u() < 0.56 else 0.0, shadow_np_per_mm=u(0.8, 1.5), seed=seed)
    if kind == "aggregates":
        if subtle:  # a few scattered faint foci
            return Finding(kind, True, u(-3.0, 4.0), u(4.0, 8.0), u(0.8, 1.8), u(2.0, 4.0), seed=seed)
        return Finding(kind, False, u(-4.0, 5.0), u(3.5, 6.5), u(1.5, 2.8), u(6.0, 14.0),
                       shadow_np_per_mm=u(0.5, 1.5) if u() < 0.3 else 0.0, seed=seed)
    if kind == "erosion":
        x = {"dorsal": u(-5.0, 1.0), "medial": u(-3.0, 3.0), "plantar": u(-5.0, -2.0)}[view]
        return Finding(kind, False, x, u(2.2, 4.0), u(1.2, 2.2), 1.0, seed=seed)
    if kind == "synovitis":
        x = u(-7.0, -4.0) if u() < 0.6 else u(4.0, 6.0)
        if subtle:
            return Finding(kind, True, x, u(5.0, 8.0), u(0.8, 1.3), 0.1, seed=seed)
        return Finding(kind, False, x, u(6.0, 10.0), u(1.6, 3.0), 0.05, seed=seed)
    raise ValueError(f"lesion kind {kind!r} is not one of {LESION_KINDS}")


def sample_mimic(kind: str, view: str, rng: np.random.Generator) -> Finding:
    u = rng.uniform
    seed = int(rng.integers(2**31))
    if kind == "cartilage_interface":
        return Finding(kind, False, 0.0, 0.0, u(0.25, 0.5), u(1.8, 2.6), seed=seed)
    if kind == "tendon_anisotropy":
        return Finding(kind, False, 0.0, 0.0, 0.0, u(90.0, 140.0), seed=seed)
    if kind == "irregular_bone":
        return Finding(kind, False, u(-6.0, -2.0), u(1.2, 2.2), u(0.5, 1.1), 1.0, seed=seed)
    if kind == "gel_shadow":
        side = float(rng.choice([-1.0, 1.0, 0.0]))  # left, right or both corners
        return Finding(kind, False, side, u(5.0, 9.0), u(2.0, 3.5), 1.0, shadow_np_per_mm=u(0.3, 0.6), seed=seed)
    raise ValueError(f"mimic kind {kind!r} is not one of {MIMIC_KINDS}")


# ---------------------------------------------------------------- geometry


def _bump(u: np.ndarray, centre: float, width: float, power: float = 4.0) -> np.ndarray:
    return np.exp(-np.abs((u - centre) / (0.5 * width)) ** power)


def _smooth_1d(rng: np.random.Generator, n: int, scale_px: float) -> np.ndarray:
    """Smooth 1-D noise with unit std and correlation length ``scale_px``."""
    k = max(2, int(np.ceil(n / max(scale_px, 1.0))) + 2)
    low = rng.standard_normal(k)
    out = np.interp(np.linspace(0, k - 1, n), np.arange(k), low)
    return (out - out.mean()) / max(out.std(), 1e-6)


def geometry_deltas(
    findings: tuple[Finding, ...], a: Anatomy, grid: Grid, shift_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column bone, recess and gel deltas (mm) of the findings that change the joint's shape."""
    x = grid.x_mm
    u = x - shift_mm
    bone = np.zeros_like(x)
    recess = np.zeros_like(x)
    gel = np.zeros_like(x)
    for f in findings:
        c = a.head_x_mm + f.x_mm
        if f.kind == "erosion":
            rng = np.random.default_rng(f.seed)
            floor = 0.12 * _smooth_1d(rng, x.size, 0.4 / grid.pixel_mm)
            bone += (f.height_mm + floor) * _bump(u, c, f.width_mm, 3.0)
            recess += 0.3 * f.height_mm * _bump(u, c, f.width_mm * 2.0)
        elif f.kind == "irregular_bone":
            rng = np.random.default_rng(f.seed)
            spur = np.clip(1.0 - np.abs(u - c) / (0.5 * f.width_mm), 0.0, None) ** 1.3
            wavy = 0.15 * _smooth_1d(rng, x.size, 0.8 / grid.pixel_mm) * _bump(u, c, 4.0 * f.width_mm, 2.0)
            bone += -f.height_mm * spur + wavy
        elif f.kind == "synovitis":
            recess += f.height_mm * _bump(u, c, f.width_mm)
        elif f.kind == "tophus":
            recess += 0.75 * f.height_mm * _bump(u, c, f.width_mm * 1.3)
        elif f.kind == "aggregates" and not f.subtle:
            recess += 0.6 * f.height_mm * _bump(u, c, f.width_mm * 1.2)
        elif f.kind == "cartilage_interface":
            recess += f.height_mm * _bump(u, a.head_x_mm, 14.0)
        elif f.kind == "gel_shadow":
            half = grid.width_px * grid.pixel_mm / 2
            for side in ((-1.0, 1.0) if f.x_mm == 0.0 else (f.x_mm,)):
                t = np.clip((side * x - (half - f.width_mm)) / f.width_mm, 0.0, 1.0)
                gel += f.height_mm * t**1.6
    return bone, recess, gel


# ---------------------------------------------------------------- painting


def _window(g: Geometry, x0: float, z0: float, x1: float, z1: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Pixel slices covering a box in mm, with the box's x (1×w) and z (h×1) coordinates."""
    grid = g.grid
    c0 = int(np.clip(np.floor(grid.x_px(x0)), 0, grid.width_px))
    c1 = int(np.clip(np.ceil(grid.x_px(x1)) + 1, 0, grid.width_px))
    r0 = int(np.clip(np.floor(grid.z_px(z0)), 0, grid.height_px))
    r1 = int(np.clip(np.ceil(grid.z_px(z1)) + 1, 0, grid.height_px))
    rows, cols = slice(r0, r1), slice(c0, c1)
    return rows, cols, grid.x_mm[None, cols], grid.z_mm[rows, None]


def _double_contour(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    grid = g.grid
    x = grid.x_mm
    c = g.head_x_mm + f.x_mm
    on = g.cartilage & (np.abs(x - c) <= f.width_mm / 2)
    if on.sum() * grid.pixel_mm < 0.5 * f.width_mm and g.cartilage.any():
        # Mostly off the visible cartilage (a sesamoid hides it): move onto the visible cap.
        cart = np.flatnonzero(g.cartilage)
        run = max(np.split(cart, np.flatnonzero(np.diff(cart) > 1) + 1), key=len)
        c = float(np.clip(c, x[run[0]] + f.width_mm / 2, max(x[run[0]] + f.width_mm / 2, x[run[-1]] - f.width_mm / 2)))
        on = g.cartilage & (np.abs(x - c) <= f.width_mm / 2)
    if f.coverage < 1.0:
        gaps = _smooth_1d(rng, x.size, 1.2 / grid.pixel_mm)
        on &= gaps >= np.quantile(gaps[on], 1.0 - f.coverage) if on.any() else False
    if not on.any():
        return None
    thick = f.height_mm * np.clip(0.75 + 0.35 * _smooth_1d(rng, x.size, 0.8 / grid.pixel_mm), 0.4, 1.5)
    top = g.cartilage_top - thick
    cols = np.flatnonzero(on)
    rows, cs, xw, zw = _window(g, x[cols[0]], top[on].min(), x[cols[-1]], g.cartilage_top[on].max())
    band = (zw >= top[None, cs]) & (zw < g.cartilage_top[None, cs]) & on[None, cs]
    grain = rng.uniform(0.5, 1.5, band.shape).astype(np.float32)
    m.echo[rows, cs] = np.where(band, f.strength * grain, m.echo[rows, cs])
    # The crystal layer reflects at every angle: no cos^n factor on its specular line.
    draw_curve(m.coherent, grid, top + 0.4 * thick, np.where(on, 0.55 * np.sqrt(f.strength), 0.0), rows=1)
    return (x[cols[0]] - 0.2, float(top[on].min()) - 0.2, x[cols[-1]] + 0.2, float(g.cartilage_top[on].max()) + 0.2)


def _tophus(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    cx = g.head_x_mm + f.x_mm
    floor = min(g.at(g.bone, cx), g.at(g.cartilage_top, cx))
    a, b = f.width_mm / 2, f.height_mm / 2
    cz = floor - b - 0.1
    pad = f.rim_mm + 0.3
    rows, cols, xw, zw = _window(g, cx - a - pad, cz - b - pad, cx + a + pad, cz + b + pad)
    dx, dz = (xw - cx) / a, (zw - cz) / b
    theta = np.arctan2(dz, dx)
    lobes = 1.0 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6.28)) + 0.08 * np.sin(5 * theta + rng.uniform(0, 6.28))
    d = np.sqrt(dx**2 + dz**2) / lobes
    above_bone = zw < g.bone[None, cols] - 0.05
    inside = (d < 1.0) & above_bone
    rim = (d >= 1.0) & (d < 1.0 + f.rim_mm / b) & above_bone
    # Inhomogeneous: hyperechoic clumps ("wet sugar") with hypoechoic pockets.
    h, w = inside.shape
    low = rng.standard_normal((max(2, h // 8 + 2), max(2, w // 8 + 2))).astype(np.float32)
    tex = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    tex /= max(float(tex.std()), 1e-3)
    clumps = np.where(tex > -0.4, f.strength * np.clip(0.6 + 0.6 * tex, 0.2, 2.0), 0.04)
    echo = m.echo[rows, cols]
    echo[inside] = clumps[inside]
    echo[rim] = 0.01
    sparkle = inside & (rng.random(inside.shape) < 0.03)
    m.coherent[rows, cols][sparkle] = np.sqrt(f.strength) * 0.9
    # Crystal clumps absorb: the shadow starts in the deeper half and dims what lies beneath.
    m.mu[rows, cols][inside & (dz > 0.0)] += f.shadow_np_per_mm
    z0 = cz - b * 1.2 - f.rim_mm
    z1 = min(cz + b * 1.2 + f.rim_mm, float(np.max(g.bone[cols])))
    return (cx - a * 1.2 - f.rim_mm, z0, cx + a * 1.2 + f.rim_mm, z1)


def _aggregates(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    grid = g.grid
    cx = g.head_x_mm + f.x_mm
    n = int(rng.integers(3, 7)) if f.subtle else int(rng.integers(10, 24))
    xs = cx + rng.uniform(-0.5, 0.5, n) * f.width_mm
    floor = np.minimum(np.interp(xs, grid.x_mm, g.cartilage_top), np.interp(xs, grid.x_mm, g.bone))
    zs = floor - rng.uniform(0.2, f.height_mm, n)
    zs = np.maximum(zs, np.interp(xs, grid.x_mm, g.capsule_top) + 0.1)
    if not f.subtle:  # the foci float in an effusion: a snowstorm
        rows, cols, xw, zw = _window(g, xs.min() - 0.4, zs.min() - 0.3, xs.max() + 0.4, floor.max())
        fluid = (zw > g.capsule_bottom[None, cols] + 0.05) & (zw < g.cartilage_top[None, cols])
        fluid &= np.abs(xw - cx) < 0.5 * f.width_mm + 0.3
        m.echo[rows, cols][fluid] = 0.02
        m.mu[rows, cols][fluid] *= 0.2
    radius = rng.uniform(0.12, 0.28, n) * (0.8 if f.subtle else 1.0)
    for xi, zi, ri in zip(xs, zs, radius, strict=True):
        rows, cols, xw, zw = _window(g, xi - ri, zi - ri, xi + ri, zi + ri)
        spot = ((xw - xi) ** 2 + (zw - zi) ** 2) <= ri**2
        if not spot.any():
            spot = np.zeros_like(spot)
            spot[spot.shape[0] // 2, spot.shape[1] // 2] = True
        power = f.strength * rng.uniform(0.6, 1.4)
        m.echo[rows, cols][spot] = power
        m.coherent[rows, cols][spot] = 0.6 * np.sqrt(power)
        if f.shadow_np_per_mm and rng.random() < 0.5:
            m.mu[rows, cols][spot] += f.shadow_np_per_mm / max(ri, 0.1)
    r = radius.max() + 0.15
    return (float(xs.min()) - r, float(zs.min()) - r, float(xs.max()) + r, float(zs.max()) + r)


def _erosion(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    grid = g.grid
    notch = g.bone - g.bone_undisturbed
    on = notch > 0.15 * f.height_mm
    if not on.any():
        return None
    cols_i = np.flatnonzero(on)
    x0, x1 = grid.x_mm[cols_i[0]], grid.x_mm[cols_i[-1]]
    rows, cols, xw, zw = _window(g, x0, g.bone_undisturbed[on].min(), x1, g.bone[on].max() + 1.2)
    inside = (zw >= g.bone_undisturbed[None, cols]) & (zw < g.bone[None, cols]) & on[None, cols]
    m.echo[rows, cols][inside] = rng.uniform(0.04, 0.12)  # pannus / synovium fills the notch
    # The floor lets echoes through: a weaker, irregular cortex with partial transmission.
    below = (zw >= g.bone[None, cols]) & (zw < g.bone[None, cols] + 1.0) & on[None, cols]
    m.mu[rows, cols][below] = 0.35
    m.coherent[rows, cols][below] *= 0.5
    m.echo[rows, cols][below] *= 0.35
    return (x0 - 0.2, float(g.bone_undisturbed[on].min()) - 0.3, x1 + 0.2, float(g.bone[on].max()) + 0.4)


def _synovitis(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    grid = g.grid
    x = grid.x_mm
    c = g.head_x_mm + f.x_mm
    on = _bump(x - g.shift_mm, c - g.shift_mm, f.width_mm) > 0.3
    if not on.any():
        return None
    deep = np.minimum(np.minimum(g.cartilage_top, g.bone), g.capsule_bottom + f.height_mm + 1.2)
    cols_i = np.flatnonzero(on)
    rows, cols, xw, zw = _window(g, x[cols_i[0]], g.capsule_bottom[on].min(), x[cols_i[-1]], deep[on].max())
    region = (zw >= g.capsule_bottom[None, cols]) & (zw < deep[None, cols]) & on[None, cols]
    m.echo[rows, cols][region] *= f.strength / 0.25  # hypoechoic against the normal recess
    m.mu[rows, cols][region] *= 0.6
    return (x[cols_i[0]], float(g.capsule_bottom[on].min()) - 0.2, x[cols_i[-1]], float(deep[on].max()) + 0.1)


def _cartilage_interface(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    """A fluid film over the cartilage and a strong, strictly angle-dependent interface echo."""
    grid = g.grid
    on = g.cartilage
    if not on.any():
        return None
    cols_i = np.flatnonzero(on)
    top = g.cartilage_top
    rows, cols, xw, zw = _window(g, grid.x_mm[cols_i[0]], (top[on] - f.height_mm).min(), grid.x_mm[cols_i[-1]], top[on].max())
    film = (zw >= top[None, cols] - f.height_mm) & (zw < top[None, cols]) & on[None, cols]
    m.echo[rows, cols][film] = 0.01
    amp = np.where(on, f.strength * g.cos_incidence(top) ** INTERFACE_POWER, 0.0)
    draw_curve(m.coherent, grid, top, amp, rows=1)
    bright = amp > 0.5 * f.strength
    if not bright.any():
        return None
    b = np.flatnonzero(bright)
    return (grid.x_mm[b[0]] - 0.2, float(top[bright].min()) - 0.4, grid.x_mm[b[-1]] + 0.2, float(top[bright].max()) + 0.3)


def _tendon_anisotropy(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> list[BoxMm]:
    """Applied through ``tissue_maps(anisotropy_power=f.strength)``; here only the dark segment's box."""
    mid = 0.5 * (g.tendon_top + g.tendon_bottom)
    dark = (g.cos_incidence(mid) ** f.strength < 0.35) & (g.tendon_bottom - g.tendon_top > 0.3)
    x = g.grid.x_mm
    boxes = []
    d = np.flatnonzero(dark)
    for run in np.split(d, np.flatnonzero(np.diff(d) > 1) + 1) if d.size else []:
        if run.size * g.grid.pixel_mm >= 1.0:  # a dark segment at least 1 mm long
            boxes.append((x[run[0]], float(g.tendon_top[run].min()) - 0.2, x[run[-1]], float(g.tendon_bottom[run].max()) + 0.2))
    return boxes


def _irregular_bone(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> BoxMm | None:
    lift = g.bone_undisturbed - g.bone
    on = lift > 0.15 * f.height_mm
    if not on.any():
        return None
    d = np.flatnonzero(on)
    x = g.grid.x_mm
    return (x[d[0]] - 0.3, float(g.bone[on].min()) - 0.3, x[d[-1]] + 0.3, float(g.bone_undisturbed[on].max()) + 0.4)


def _gel_shadow(m: TissueMaps, g: Geometry, f: Finding, rng: np.random.Generator) -> list[BoxMm]:
    """Air caught in a thick gel wedge at a corner: the columns beneath lose their echoes."""
    grid = g.grid
    x = grid.x_mm
    wedge = g.skin_top - g.anatomy.gel_mm - g.anatomy.skin_curvature_per_mm * x**2
    on = wedge > 0.3
    if not on.any():
        return []
    rows = slice(0, int(np.ceil(grid.z_px(float(g.skin_top[on].max())))))
    z = grid.z_mm[rows, None]
    gel = (z < g.skin_top[None, :]) & on[None, :]
    m.mu[rows][gel] = f.shadow_np_per_mm
    d = np.flatnonzero(on)
    depth = grid.height_px * grid.pixel_mm
    boxes = []
    for part in np.split(d, np.flatnonzero(np.diff(d) > 1) + 1):
        boxes.append((x[part[0]], 0.0, x[part[-1]], min(depth, float(g.skin_top[part].max()) + 0.35 * depth)))
    return boxes  # one per corner


_PAINTERS = {
    "double_contour": _double_contour,
    "tophus": _tophus,
    "aggregates": _aggregates,
    "erosion": _erosion,
    "synovitis": _synovitis,
    "cartilage_interface": _cartilage_interface,
    "tendon_anisotropy": _tendon_anisotropy,
    "irregular_bone": _irregular_bone,
    "gel_shadow": _gel_shadow,
}

# Paint order: shapes and backgrounds first, bright foci last.
_ORDER = ("gel_shadow", "irregular_bone", "cartilage_interface", "synovitis", "erosion", "tophus",
          "double_contour", "aggregates", "tendon_anisotropy")


def paint(findings: tuple[Finding, ...], m: TissueMaps, g: Geometry) -> list[tuple[Finding, list[BoxMm]]]:
    """Write the findings into the maps; each comes back with its boxes (mm; none if not visible)."""
    out = []
    for f in sorted(findings, key=lambda f: _ORDER.index(f.kind)):
        rng = np.random.default_rng(f.seed)
        box = _PAINTERS[f.kind](m, g, f, rng)
        boxes = box if isinstance(box, list) else ([] if box is None else [box])
        out.append((f, boxes))
    return out
