"""Tissue maps of a longitudinal first-MTPJ scan (dorsal, medial, plantar), in millimetres.

The scan is drawn as layers bounded by depth curves z(x), one value per image column: gel, skin,
subcutaneous tissue, tendon (extensor hallucis longus dorsally, the collateral ligament medially,
flexor hallucis longus plantarly), capsule (plantar plate plantarly), synovial recess, hyaline
cartilage over the metatarsal head, bone cortex and the bone beneath it. Image left is proximal:
the metatarsal shaft rises into the rounded head, the joint space is a V-shaped notch, the
proximal phalanx continues to the right; a sesamoid sits under the head in the plantar view.

Probe tilt shears every deep curve about the metatarsal head (the skin stays on the probe), so the
angle between the beam and each surface — and with it anisotropy and specular brightness — follows
from the curve's slope in the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["VIEWS", "Anatomy", "Geometry", "Grid", "TissueMaps", "build_geometry", "sample_anatomy", "tissue_maps"]

VIEWS = ("dorsal", "medial", "plantar")

# Layer indices, top to bottom. Each is bounded above by the matching Geometry curve.
GEL, SKIN, SUBCUT, TENDON, PARATENON, CAPSULE, RECESS, CARTILAGE, CORTEX, BONE = range(10)
N_LAYERS = 10

#: Diffuse echogenicity (scattered power; skin ≈ 1) and attenuation relative to soft tissue.
ECHO = np.array([0.0, 1.5, 0.07, 0.9, 0.12, 0.9, 0.35, 0.006, 2.5, 0.5], dtype=np.float32)
ATTEN_REL = np.array([0.05, 1.2, 0.9, 1.4, 0.9, 1.2, 0.9, 0.3, 1.0, 1.0], dtype=np.float32)
BONE_MU_NP_PER_MM = 6.0  # ≈ complete reflection/absorption within half a millimetre
CORTEX_MM = 0.2
TENDON_ANISOTROPY_POWER = 40.0  # cos^n: isoechoic within ≈ 7°, hypoechoic beyond
INTERFACE_POWER = 60.0  # the cartilage surface is bright only when perpendicular to the beam


@dataclass(frozen=True)
class Anatomy:
    """One patient's joint as seen from one side; all sizes in mm, x relative to the probe centre."""

    view: str
    gel_mm: float
    skin_curvature_per_mm: float  # skin sag z = c·x² (convex medial toe; gel fills the corners)
    skin_mm: float
    head_depth_mm: float  # apex of the metatarsal head below the probe face
    head_radius_mm: float
    head_x_mm: float
    joint_angle_deg: float  # where on the head's circle the joint space starts
    cartilage_angle_deg: float  # where the cartilage cap starts on the proximal side
    shaft_drop_mm: float
    gap_mm: float
    gap_depth_mm: float
    phalanx_rise_mm: float
    cartilage_mm: float
    recess_mm: float
    capsule_mm: float
    tendon_mm: float
    septa_per_mm: float
    sesamoid_x_mm: float | None = None


def sample_anatomy(rng: np.random.Generator, view: str) -> Anatomy:
    """A plausible joint for one view; a patient keeps the same anatomy across images of a view."""
    u = rng.uniform
    common = dict(
        view=view,
        head_radius_mm=u(7.0, 9.5),
        head_x_mm=u(-7.0, -2.5),
        joint_angle_deg=u(48.0, 60.0),
        cartilage_angle_deg=u(35.0, 50.0),
        shaft_drop_mm=u(1.2, 2.4),
        gap_mm=u(1.4, 2.4),
        gap_depth_mm=u(1.5, 3.0),
        phalanx_rise_mm=u(1.0, 2.2),
        cartilage_mm=u(0.45, 0.8),
    )
    if view == "dorsal":
        return Anatomy(
            gel_mm=u(0.1, 0.4), skin_curvature_per_mm=u(0.0, 0.002), skin_mm=u(1.0, 1.5),
            head_depth_mm=u(6.5, 9.0), recess_mm=u(1.2, 2.4), capsule_mm=u(0.25, 0.4),
            tendon_mm=u(1.6, 2.4), septa_per_mm=u(0.6, 1.2), **common,
        )
    if view == "medial":
        return Anatomy(
            gel_mm=u(0.2, 0.6), skin_curvature_per_mm=u(0.002, 0.005), skin_mm=u(1.0, 1.4),
            head_depth_mm=u(5.5, 7.5), recess_mm=u(0.8, 1.6), capsule_mm=u(0.3, 0.45),
            tendon_mm=u(0.9, 1.3), septa_per_mm=u(0.5, 1.0), **common,
        )
    if view == "plantar":
        return Anatomy(
            gel_mm=u(0.1, 0.4), skin_curvature_per_mm=u(0.0, 0.0015), skin_mm=u(1.5, 2.1),
            head_depth_mm=u(10.0, 12.5), recess_mm=u(0.8, 1.4), capsule_mm=u(1.2, 1.8),
            tendon_mm=u(2.0, 2.8), septa_per_mm=u(1.4, 2.2),
            sesamoid_x_mm=common["head_x_mm"] + u(-1.5, 1.5), **common,
        )
    raise ValueError(f"view {view!r} is not one of {VIEWS}")


@dataclass(frozen=True)
class Grid:
    """Square pixels: depth ``pixel_mm × height_px`` below the probe face, x centred on the probe."""

    height_px: int
    width_px: int
    pixel_mm: float

    @property
    def x_mm(self) -> np.ndarray:
        return ((np.arange(self.width_px) + 0.5) - self.width_px / 2) * self.pixel_mm

    @property
    def z_mm(self) -> np.ndarray:
        return (np.arange(self.height_px) + 0.5) * self.pixel_mm

    def x_px(self, x_mm: float) -> float:
        return x_mm / self.pixel_mm + self.width_px / 2

    def z_px(self, z_mm: float) -> float:
        return z_mm / self.pixel_mm


@dataclass(frozen=True)
class Geometry:
    """Depth curves (mm, one value per column) of one rendered image and the landmarks used by lesions."""

    grid: Grid
    anatomy: Anatomy
    shift_mm: float
    tilt_deg: float
    skin_top: np.ndarray
    skin_bottom: np.ndarray
    tendon_top: np.ndarray
    tendon_bottom: np.ndarray
    capsule_top: np.ndarray
    capsule_bottom: np.ndarray
    cartilage_top: np.ndarray
    bone: np.ndarray
    bone_undisturbed: np.ndarray  # before erosions and osteophytes
    cartilage: np.ndarray  # bool per column: cartilage cap present
    head_x_mm: float  # image x of the metatarsal head apex
    joint_x_mm: float  # image x where the joint space starts
    phalanx_x_mm: float  # image x where the phalanx begins

    def slope(self, curve: np.ndarray) -> np.ndarray:
        """dz/dx of a curve; the beam runs straight down, so the incidence angle is atan(slope)."""
        return np.gradient(curve, self.grid.pixel_mm)

    def cos_incidence(self, curve: np.ndarray) -> np.ndarray:
        return 1.0 / np.sqrt(1.0 + self.slope(curve) ** 2)

    def at(self, curve: np.ndarray, x_mm: float) -> float:
        return float(np.interp(x_mm, self.grid.x_mm, curve))


def _softmin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    m = np.minimum(a, b)
    return m - k * np.log(np.exp(-(a - m) / k) + np.exp(-(b - m) / k))


def _smooth(curve: np.ndarray, sigma_mm: float, pixel_mm: float) -> np.ndarray:
    sigma = max(0.5, sigma_mm / pixel_mm)
    half = int(3 * sigma)
    t = np.arange(-half, half + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(curve, half, mode="edge")
    return np.convolve(padded, k, mode="valid")


def build_geometry(
    a: Anatomy,
    grid: Grid,
    shift_mm: float = 0.0,
    tilt_deg: float = 0.0,
    bone_delta_mm: np.ndarray | None = None,
    recess_delta_mm: np.ndarray | None = None,
    gel_delta_mm: np.ndarray | None = None,
) -> Geometry:
    """Depth curves for one image.

    Findings reshape it through per-column deltas (mm): ``bone_delta_mm`` (erosions, osteophytes;
    positive = deeper), ``recess_delta_mm`` (synovitis, tophus, effusion lift the capsule) and
    ``gel_delta_mm`` (a thick gel wedge lifts the probe off the skin in a corner).
    """
    x = grid.x_mm
    u = x - shift_mm  # anatomy coordinate
    px = grid.pixel_mm
    r = a.head_radius_mm
    du = u - a.head_x_mm
    sin_j, cos_j = np.sin(np.radians(a.joint_angle_deg)), np.cos(np.radians(a.joint_angle_deg))
    u_joint = a.head_x_mm + r * sin_j
    u_phalanx = u_joint + a.gap_mm
    z_joint = a.head_depth_mm + r * (1.0 - cos_j)

    circle = a.head_depth_mm + r - np.sqrt(np.clip(r**2 - du**2, 0.0, None))
    shaft = a.head_depth_mm + a.shaft_drop_mm + 0.06 * np.clip(a.head_x_mm - u, 0.0, None)
    metatarsal = _softmin(circle, shaft, 0.5)
    neck_u = a.head_x_mm - r * 0.75
    metatarsal += 0.4 * np.exp(-(((u - neck_u) / 1.5) ** 2))  # the dorsal sulcus of the neck

    z_phalanx = z_joint - a.phalanx_rise_mm
    phalanx = z_phalanx + (a.phalanx_rise_mm + 0.3) * np.exp(-np.clip(u - u_phalanx, 0.0, None) / 1.6)
    phalanx += 0.03 * np.clip(u - u_phalanx, 0.0, None)
    t = np.clip((u - u_joint) / a.gap_mm, 0.0, 1.0)
    z_phalanx_start = z_phalanx + a.phalanx_rise_mm + 0.3
    v_notch = (1 - t) * z_joint + t * z_phalanx_start + a.gap_depth_mm * np.sin(np.pi * t) ** 0.8
    bone = np.where(u <= u_joint, metatarsal, np.where(u < u_phalanx, v_notch, phalanx))
    bridge = np.where((u > u_joint) & (u < u_phalanx), (1 - t) * z_joint + t * z_phalanx_start, bone)

    if a.sesamoid_x_mm is not None:  # plantar: the medial sesamoid under the head
        half_w, half_h = 3.2, 1.3
        ds = (u - a.sesamoid_x_mm) / half_w
        top = a.head_depth_mm - 2 * half_h - 0.2 + half_h * (1 - np.sqrt(np.clip(1 - ds**2, 0.0, None)))
        sesamoid = np.where(np.abs(ds) < 1, top, np.inf)
        bone = np.minimum(bone, sesamoid)
        bridge = np.minimum(bridge, sesamoid)

    # Cartilage cap on the metatarsal head, thin at both ends; hidden under a sesamoid.
    u_cart0 = a.head_x_mm - r * np.sin(np.radians(a.cartilage_angle_deg))
    tc = np.clip((u - u_cart0) / (u_joint - u_cart0), 0.0, 1.0)
    cart_mm = a.cartilage_mm * np.sin(np.pi * tc) ** 0.3 * ((u > u_cart0) & (u < u_joint))
    cart_mm = np.where(bone < metatarsal - 0.05, 0.0, cart_mm)

    skin_top = a.gel_mm + a.skin_curvature_per_mm * x**2
    follow = 0.8 * (skin_top - a.gel_mm)  # deep structures follow the convex skin
    shear = (x - (a.head_x_mm + shift_mm)) * np.tan(np.radians(tilt_deg))

    bone_undisturbed = bone + follow + shear
    if bone_delta_mm is not None:
        bone = bone + bone_delta_mm
    bone = bone + follow + shear
    bridge = _smooth(bridge, 1.2, px) + follow + shear
    cartilage_top = bone - cart_mm

    recess = 0.35 + a.recess_mm * np.exp(-(((u - neck_u - 1.0) / 3.0) ** 2))
    recess += 0.6 * a.recess_mm * np.exp(-(((u - u_joint - 0.5 * a.gap_mm) / 2.0) ** 2))
    if recess_delta_mm is not None:
        recess = recess + recess_delta_mm
    capsule_bottom = _smooth(np.minimum(bridge - cart_mm, cartilage_top) - recess, 1.0, px)
    capsule_top = capsule_bottom - a.capsule_mm
    tendon_bottom = _smooth(capsule_top, 1.8, px) - 0.25
    tendon_top = tendon_bottom - a.tendon_mm * (1.0 + 0.08 * np.sin(u / 6.0))
    if gel_delta_mm is not None:
        skin_top = skin_top + gel_delta_mm
    skin_bottom = skin_top + a.skin_mm

    # Keep the layers ordered (a thick lesion can push everything up to the skin).
    curves = np.stack([skin_top, skin_bottom, tendon_top, tendon_bottom, capsule_top, capsule_bottom, cartilage_top, bone])
    min_gap = np.array([0, a.skin_mm, 0.3, a.tendon_mm * 0.5, 0.1, a.capsule_mm * 0.5, 0.0, 0.0])[:, None]
    for i in range(1, 4):  # top-down: skin, subcut ≥ 0.3 mm, tendon
        curves[i] = np.maximum(curves[i], curves[i - 1] + min_gap[i])
    for i in range(6, 3, -1):  # bottom-up: nothing deeper than the bone
        curves[i] = np.minimum(curves[i], curves[i + 1])
    curves = np.maximum.accumulate(curves, axis=0)
    skin_top, skin_bottom, tendon_top, tendon_bottom, capsule_top, capsule_bottom, cartilage_top, bone = curves

    return Geometry(
        grid=grid, anatomy=a, shift_mm=shift_mm, tilt_deg=tilt_deg,
        skin_top=skin_top, skin_bottom=skin_bottom, tendon_top=tendon_top, tendon_bottom=tendon_bottom,
        capsule_top=capsule_top, capsule_bottom=capsule_bottom, cartilage_top=cartilage_top, bone=bone,
        bone_undisturbed=bone_undisturbed, cartilage=cart_mm > 0.05,
        head_x_mm=a.head_x_mm + shift_mm, joint_x_mm=u_joint + shift_mm, phalanx_x_mm=u_phalanx + shift_mm,
    )


@dataclass
class TissueMaps:
    """Per-pixel inputs of the physics (float32, H×W): mutable while lesions are painted."""

    echo: np.ndarray  # diffuse scattered power
    coherent: np.ndarray  # specular amplitude (angle factor applied)
    mu: np.ndarray  # attenuation, nepers per mm
    fibre: np.ndarray  # 0…1: scatterers elongated along the fibres (tendon)
    label: np.ndarray  # uint8 layer index


def smooth_field(rng: np.random.Generator, grid: Grid, scale_mm: float) -> np.ndarray:
    """A smooth Gaussian random field (≈ unit std) with correlation length ``scale_mm``."""
    h = max(2, int(np.ceil(grid.height_px * grid.pixel_mm / scale_mm)) + 2)
    w = max(2, int(np.ceil(grid.width_px * grid.pixel_mm / scale_mm)) + 2)
    low = rng.standard_normal((h, w)).astype(np.float32)
    return cv2.resize(low, (grid.width_px, grid.height_px), interpolation=cv2.INTER_CUBIC)


def draw_curve(image: np.ndarray, grid: Grid, curve_mm: np.ndarray, values: np.ndarray | float, rows: int = 2) -> None:
    """Write ``values`` (per column) into ``rows`` pixels at depth ``curve_mm`` (specular lines)."""
    r0 = np.floor(curve_mm / grid.pixel_mm).astype(np.int64)
    cols = np.arange(grid.width_px)
    vals = np.broadcast_to(np.asarray(values, dtype=np.float32), (grid.width_px,))
    for k in range(rows):
        r = r0 + k
        ok = (r >= 0) & (r < grid.height_px)
        image[r[ok], cols[ok]] = np.maximum(image[r[ok], cols[ok]], vals[ok])


def tissue_maps(g: Geometry, rng: np.random.Generator, freq_mhz: float, interface_gain: float = 0.7,
                anisotropy_power: float = TENDON_ANISOTROPY_POWER) -> TissueMaps:
    """Echogenicity, specular amplitude and attenuation of the normal joint for one image."""
    grid, a = g.grid, g.anatomy
    z = grid.z_mm[:, None].astype(np.float32)
    px = grid.pixel_mm
    bounds = [g.skin_top, g.skin_bottom, g.tendon_top, g.tendon_bottom, g.capsule_top,
              g.capsule_bottom, g.cartilage_top, g.bone, g.bone + CORTEX_MM]
    label = np.zeros((grid.height_px, grid.width_px), dtype=np.uint8)
    for b in bounds:
        label += z >= b[None, :].astype(np.float32)

    # Per-layer, per-column values: anisotropy and angle-dependent bone brightness live here.
    echo_lut = np.repeat(ECHO[:, None], grid.width_px, axis=1)
    cos_tendon = g.cos_incidence(0.5 * (g.tendon_top + g.tendon_bottom))
    floor = 0.2 if anisotropy_power <= TENDON_ANISOTROPY_POWER else 0.04
    echo_lut[TENDON] *= floor + (1.0 - floor) * cos_tendon**anisotropy_power
    cos_capsule = g.cos_incidence(g.capsule_top)
    echo_lut[CAPSULE] *= 0.35 + 0.65 * cos_capsule**10
    cos_bone = g.cos_incidence(g.bone)
    echo_lut[CORTEX] *= 0.15 + 0.85 * cos_bone**4
    in_gap = (grid.x_mm > g.joint_x_mm - 0.5) & (grid.x_mm < g.phalanx_x_mm + 0.5)
    echo_lut[RECESS] = np.where(in_gap, 0.09, echo_lut[RECESS])
    if a.view == "plantar":
        echo_lut[CAPSULE] *= 1.3  # the plantar plate: fibrocartilage
    echo = np.take_along_axis(echo_lut, label.astype(np.intp), axis=0)

    # Texture: lobulated fat with septa, fibrillar tendon, mottled fat pad.
    field = smooth_field(rng, grid, 1.2)
    echo *= np.exp(0.35 * field)
    # Fat lobules: the zero set of a smooth random field is a labyrinth of thin curved septa.
    lobules = smooth_field(rng, grid, 1.4 / a.septa_per_mm)
    septa = np.abs(lobules) < 0.22 * float(lobules.std())
    fat = (label == SUBCUT) | (label == PARATENON)
    echo[septa & fat] = 0.7
    fibre = (label == TENDON).astype(np.float32)
    t_rows = slice(int(max(0, g.tendon_top.min() / px - 1)), int(min(grid.height_px, g.tendon_bottom.max() / px + 2)))
    ut = (z[t_rows] - g.tendon_top[None, :]) / np.maximum(g.tendon_bottom - g.tendon_top, 1e-3)[None, :]
    fib_lut = np.clip(0.3 + 1.2 * np.abs(rng.standard_normal(48)).astype(np.float32) ** 2, 0.15, 3.5)
    fib_lut = np.convolve(np.repeat(fib_lut, 4), np.ones(2) / 2, mode="same").astype(np.float32)
    idx = np.clip((ut * (fib_lut.size - 1)).astype(np.int64), 0, fib_lut.size - 1)
    echo[t_rows] *= np.where(fibre[t_rows] > 0, fib_lut[idx], 1.0)

    # Specular lines: skin entry, tendon sheath, capsule, cartilage surface, bone cortex.
    coherent = np.zeros_like(echo)
    draw_curve(coherent, grid, g.skin_top, 1.6 * g.cos_incidence(g.skin_top) ** 4)
    draw_curve(coherent, grid, g.tendon_top, 0.8 * cos_tendon**20, rows=1)
    draw_curve(coherent, grid, g.tendon_bottom, 0.7 * cos_tendon**20, rows=1)
    draw_curve(coherent, grid, g.capsule_top, 0.6 * cos_capsule**10, rows=1)
    cos_cart = g.cos_incidence(g.cartilage_top)
    draw_curve(coherent, grid, g.cartilage_top, np.where(g.cartilage, interface_gain * cos_cart**INTERFACE_POWER, 0.0), rows=1)
    draw_curve(coherent, grid, g.bone, 2.0 * (0.1 + 0.9 * cos_bone**3), rows=2)

    mu0 = (0.6 * freq_mhz / 8.686 / 10.0)
    mu_lut = ATTEN_REL * mu0
    mu = mu_lut[label]
    mu[label >= CORTEX] = BONE_MU_NP_PER_MM
    return TissueMaps(echo=echo, coherent=coherent, mu=mu.astype(np.float32), fibre=fibre, label=label)
