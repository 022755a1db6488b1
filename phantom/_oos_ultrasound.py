"""B-mode scenes of anatomy other than the first MTP joint: probe geometry, physics, scan
conversion, colour flow and the console around them (the out-of-scope set, ``out_of_scope``).

A scene paints tissue maps (diffuse echogenicity, specular amplitude, attenuation, flow) on a
Cartesian canvas in millimetres, ``z`` down from the centre of the probe face. The maps are
sampled along the probe's beams — straight down for a linear array; rays fanning out of an apex
for a curvilinear (convex) or a phased-array (sector) probe — and the same physics as the MTP
phantoms (``_physics``: speckle through the PSF, attenuation and shadowing *along each beam*,
TGC, log compression) forms the image in beam space. Scan conversion then draws the fan on the
screen: lateral speckle grows with depth and shadows fan out, as on a real sector or convex scan.
Colour Doppler is painted over the grey image inside a colour box, in the scanner's red/blue map.

Everything is a pure function of its inputs and the ``numpy`` generator passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from gout_edge.phantom import _physics as physics

from ._screen import ANALYSIS_WIDTH_PX, MARGIN_PX, Layout, _grey_bar, _logo, _text
from .anatomy import Grid, smooth_field
from .patients import SCANNERS, Scanner

__all__ = [
    "Canvas",
    "Console",
    "Probe",
    "Rendered",
    "ScanGeometry",
    "Settings",
    "compose_other_screen",
    "ecg_sweep",
    "generic_layout",
    "render_scene",
]

BLACK_GREY = 14.0  # the display's black level inside the image area (as render.BLACK_GREY)
MOTION_MARGIN = 0.08  # extra field of view rendered on each side, for the probe to move into
COLOUR_LEVELS = 256


@dataclass(frozen=True)
class Probe:
    """A transducer: ``shape`` linear, curvilinear or sector; sizes in mm, angles in degrees."""

    name: str
    shape: str
    freq_mhz: float
    depth_mm: float
    width_mm: float = 0.0  # linear: the field of view's width
    fov_deg: float = 0.0  # curvilinear / sector: the opening angle
    radius_mm: float = 0.0  # curvilinear: the face's radius; sector: the virtual apex behind the face

    @property
    def fan(self) -> bool:
        return self.shape != "linear"


@dataclass(frozen=True)
class Settings:
    """Image settings of one acquisition (as ``patients.Acquisition``)."""

    gain_db: float = -19.0
    dynamic_range_db: float = 60.0
    gamma: float = 1.6
    tgc_fraction: float = 0.9
    noise_grey: float = 24.0
    focus_mm: float = 20.0
    looks: int = 2  # frequency compounding (1: plain speckle, as cardiac presets)
    sigma_x_wl: float = 1.4  # lateral PSF width in wavelengths at the focus
    far_growth: float = 1.6  # how much wider the beam gets far from the focus


@dataclass(frozen=True)
class ScanGeometry:
    """Canvas (the maps), display (the image on screen: a crop of the canvas) and beam space."""

    probe: Probe
    pixel_mm: float  # canvas and display pixels (square)
    canvas_x0: float  # mm at the left edge of the canvas
    canvas_z0: float  # mm at the top edge of the canvas
    canvas_size: tuple[int, int]  # width, height
    display_box: tuple[int, int, int, int]  # c0, r0, c1, r1 in canvas pixels, end-exclusive
    beam_size: tuple[int, int]  # lines, samples
    beam_pixel_mm: float
    half_span: float  # fan: half the opening angle with its margin (rad); linear: half width (mm)
    margin_lines: float  # beam lines outside the nominal field of view, on each side

    @property
    def display_size(self) -> tuple[int, int]:
        c0, r0, c1, r1 = self.display_box
        return c1 - c0, r1 - r0

    def display_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """x and z (mm) of the display's pixel centres, as (1, W) and (H, 1) arrays."""
        c0, r0, c1, r1 = self.display_box
        x = self.canvas_x0 + (np.arange(c0, c1, dtype=np.float32) + 0.5) * self.pixel_mm
        z = self.canvas_z0 + (np.arange(r0, r1, dtype=np.float32) + 0.5) * self.pixel_mm
        return x[None, :], z[:, None]

    def beam_coords(self, x: np.ndarray, z: np.ndarray, dx_lines: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beam-space (column, row) of points (mm) and whether each lies in the nominal field of view."""
        p = self.probe
        lines, samples = self.beam_size
        if not p.fan:
            col = (x + self.half_span) / self.beam_pixel_mm - 0.5 + dx_lines
            row = z / self.beam_pixel_mm - 0.5
            inside = (np.abs(x) <= p.width_mm / 2) & (z >= 0) & (z <= p.depth_mm)
            return col, row, np.broadcast_to(inside, np.broadcast_shapes(col.shape, row.shape))
        r = np.sqrt(x * x + (z + p.radius_mm) ** 2)
        theta = np.arctan2(x, z + p.radius_mm)
        col = (theta + self.half_span) / (2 * self.half_span) * lines - 0.5 + dx_lines
        row = (r - p.radius_mm) / self.beam_pixel_mm - 0.5
        inside = (r >= p.radius_mm) & (r <= p.radius_mm + p.depth_mm) & (np.abs(theta) <= np.radians(p.fov_deg) / 2)
        return col, row, inside

    def beam_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """x and z (mm) of every beam-space sample (lines × samples grid, as H×W arrays)."""
        p = self.probe
        lines, samples = self.beam_size
        depth = (np.arange(samples, dtype=np.float32) + 0.5)[:, None] * self.beam_pixel_mm
        if not p.fan:
            x = (np.arange(lines, dtype=np.float32) + 0.5)[None, :] * self.beam_pixel_mm - self.half_span
            return np.broadcast_to(x, (samples, lines)), np.broadcast_to(depth, (samples, lines))
        theta = ((np.arange(lines, dtype=np.float32) + 0.5) / lines * 2 - 1)[None, :] * self.half_span
        r = p.radius_mm + depth
        return r * np.sin(theta), r * np.cos(theta) - p.radius_mm


def scan_geometry(probe: Probe, max_size: tuple[int, int]) -> ScanGeometry:
    """Fit the probe's field of view into ``max_size`` (width, height) display pixels."""
    max_w, max_h = max_size
    d, rad = probe.depth_mm, probe.radius_mm
    if not probe.fan:
        px = max(probe.width_mm / max_w, d / max_h)
        half = probe.width_mm / 2 * (1 + MOTION_MARGIN)
        cw, ch = int(np.ceil(2 * half / px)), int(np.ceil(d / px))
        w_disp = int(round(probe.width_mm / px))
        c0 = (cw - w_disp) // 2
        lines = cw
        return ScanGeometry(probe, px, -half, 0.0, (cw, ch), (c0, 0, c0 + w_disp, ch), (lines, ch), px, half,
                            (lines - w_disp) / 2)
    h = np.radians(probe.fov_deg) / 2
    r_max = rad + d
    z_top = rad * np.cos(h) - rad
    width_mm, height_mm = 2 * r_max * np.sin(h), d - z_top
    px = max(width_mm / max_w, height_mm / max_h)
    h_ext = h * (1 + MOTION_MARGIN)
    ext_half_w = r_max * np.sin(min(h_ext, np.pi / 2))
    z_top_ext = rad * np.cos(h_ext) - rad
    cw = int(np.ceil(2 * ext_half_w / px))
    ch = int(np.ceil((d - z_top_ext) / px))
    w_disp, h_disp = int(round(width_mm / px)), int(round(height_mm / px))
    c0 = (cw - w_disp) // 2
    r0 = int(round((z_top - z_top_ext) / px))
    samples = int(round(d / px))
    r_ref = rad + 0.5 * d
    lines = int(round(2 * h_ext * r_ref / px))
    return ScanGeometry(probe, px, -cw * px / 2, z_top_ext, (cw, ch), (c0, r0, c0 + w_disp, min(ch, r0 + h_disp)),
                        (lines, samples), d / samples, h_ext, lines * (1 - h / h_ext) / 2)


@dataclass
class Canvas:
    """Tissue maps on the canvas grid (float32, H×W), painted by a scene."""

    geometry: ScanGeometry
    rng: np.random.Generator
    echo: np.ndarray
    coherent: np.ndarray
    mu_rel: np.ndarray  # attenuation relative to soft tissue at the probe's frequency
    mu_abs: np.ndarray  # extra attenuation, nepers per mm (bone, air, stones)
    flow: np.ndarray  # signed flow, −1…1 of the colour scale (0: none)
    fibres: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (weight map, angle in degrees)
    colour_box: tuple[float, float, float, float, float] | None = None  # see set_colour_box
    power_doppler: bool = False
    turbulence: np.ndarray | None = None  # 0…1: mosaic (aliasing, variance) in the flow
    pulse: tuple[float, float, float] | None = None  # centre x, z and radius (mm) of a beating heart
    x: np.ndarray = field(init=False)
    z: np.ndarray = field(init=False)
    d: np.ndarray = field(init=False)  # depth along the beam (mm below the probe face)

    def __post_init__(self) -> None:
        g = self.geometry
        cw, ch = g.canvas_size
        self.x = (g.canvas_x0 + (np.arange(cw, dtype=np.float32) + 0.5) * g.pixel_mm)[None, :]
        self.z = (g.canvas_z0 + (np.arange(ch, dtype=np.float32) + 0.5) * g.pixel_mm)[:, None]
        p = g.probe
        if p.fan:
            self.d = np.sqrt(self.x * self.x + (self.z + p.radius_mm) ** 2) - p.radius_mm
        else:
            self.d = np.broadcast_to(self.z, (ch, cw))

    @classmethod
    def blank(cls, geometry: ScanGeometry, rng: np.random.Generator, echo: float = 0.3) -> Canvas:
        cw, ch = geometry.canvas_size
        return cls(geometry, rng, np.full((ch, cw), echo, np.float32), np.zeros((ch, cw), np.float32),
                   np.ones((ch, cw), np.float32), np.zeros((ch, cw), np.float32), np.zeros((ch, cw), np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        return self.echo.shape

    # -- shapes (boolean masks)
    def ellipse(self, cx: float, cz: float, ax: float, az: float, angle_deg: float = 0.0) -> np.ndarray:
        """Inside an ellipse centred at (cx, cz) mm with half-axes ax, az, rotated by ``angle_deg``."""
        mask = np.zeros(self.shape, bool)
        r = max(ax, az)
        c0, r0 = self.px(cx - r, cz - r)
        c1, r1 = self.px(cx + r, cz + r)
        c0, r0 = max(0, c0 - 1), max(0, r0 - 1)
        c1, r1 = min(self.shape[1], c1 + 2), min(self.shape[0], r1 + 2)
        if c1 <= c0 or r1 <= r0:
            return mask
        a = np.radians(angle_deg)
        dx, dz = self.x[:, c0:c1] - cx, self.z[r0:r1] - cz
        u = dx * np.cos(a) + dz * np.sin(a)
        v = -dx * np.sin(a) + dz * np.cos(a)
        mask[r0:r1, c0:c1] = (u / ax) ** 2 + (v / az) ** 2 <= 1.0
        return mask

    def ring(self, cx: float, cz: float, ax: float, az: float, thick: float, angle_deg: float = 0.0) -> np.ndarray:
        return self.ellipse(cx, cz, ax + thick / 2, az + thick / 2, angle_deg) & ~self.ellipse(
            cx, cz, max(0.1, ax - thick / 2), max(0.1, az - thick / 2), angle_deg)

    def below(self, curve: np.ndarray | float) -> np.ndarray:
        """Pixels deeper than ``curve`` (mm, per canvas column or a constant)."""
        return self.z >= np.broadcast_to(np.asarray(curve, np.float32), (self.shape[1],))[None, :]

    def band(self, top: np.ndarray | float, bottom: np.ndarray | float) -> np.ndarray:
        return self.below(top) & ~self.below(bottom)

    def layer(self, top: float, bottom: float) -> np.ndarray:
        """Between two depths along the beam: a layer parallel to the probe face."""
        return (self.d >= top) & (self.d < bottom)

    def curve(self, z0: float, amp: float = 0.0, period: float = 40.0, phase: float = 0.0, slope: float = 0.0,
              bow: float = 0.0) -> np.ndarray:
        """A depth curve z(x) (per canvas column): z0 + slope·x + bow·x² + amp·sin(2πx/period + phase)."""
        x = self.x[0]
        return (z0 + slope * x + bow * x * x + amp * np.sin(2 * np.pi * x / period + phase)).astype(np.float32)

    def wavy(self, z0: float, amp: float, scale_mm: float) -> np.ndarray:
        """A depth curve z(x) (per canvas column) that wanders by about ``amp`` mm on ``scale_mm``."""
        n = max(4, int(np.ceil(self.shape[1] * self.geometry.pixel_mm / scale_mm)) + 3)
        knots = self.rng.standard_normal(n).astype(np.float32)
        t = np.linspace(0, n - 1, self.shape[1], dtype=np.float32)
        i = np.clip(t.astype(np.int64), 0, n - 2)
        f = t - i
        w = f * f * (3 - 2 * f)
        return (z0 + amp * (knots[i] * (1 - w) + knots[i + 1] * w)).astype(np.float32)

    def px(self, x_mm: float, z_mm: float) -> tuple[int, int]:
        g = self.geometry
        return int(round((x_mm - g.canvas_x0) / g.pixel_mm)), int(round((z_mm - g.canvas_z0) / g.pixel_mm))

    def polyline_mask(self, points_mm: list[tuple[float, float]], thick_mm: float, closed: bool = False) -> np.ndarray:
        mask = np.zeros(self.shape, np.uint8)
        pts = np.array([self.px(x, z) for x, z in points_mm], np.int32)
        t = max(1, int(round(thick_mm / self.geometry.pixel_mm)))
        cv2.polylines(mask, [pts], closed, 1, t, cv2.LINE_8)
        return mask.astype(bool)

    def polygon_mask(self, points_mm: list[tuple[float, float]]) -> np.ndarray:
        mask = np.zeros(self.shape, np.uint8)
        cv2.fillPoly(mask, [np.array([self.px(x, z) for x, z in points_mm], np.int32)], 1)
        return mask.astype(bool)

    # -- textures
    def texture(self, scale_mm: float) -> np.ndarray:
        """A smooth random field (≈ unit std) with correlation length ``scale_mm``."""
        ch, cw = self.shape
        return smooth_field(self.rng, Grid(ch, cw, self.geometry.pixel_mm), scale_mm)

    def lobules(self, scale_mm: float, width: float = 0.22) -> np.ndarray:
        """Thin curved septa: the zero set of a smooth random field (fat lobules)."""
        f = self.texture(scale_mm)
        return np.abs(f) < width * float(f.std())

    # -- painting
    def fill(self, mask: np.ndarray, echo: float | np.ndarray | None = None, mu_rel: float | None = None,
             mu_abs: float | None = None) -> None:
        mask = np.broadcast_to(mask, self.shape)
        if echo is not None:
            self.echo[mask] = echo if np.isscalar(echo) else np.broadcast_to(echo, self.shape)[mask]
        if mu_rel is not None:
            self.mu_rel[mask] = mu_rel
        if mu_abs is not None:
            self.mu_abs[mask] = mu_abs

    def line(self, points_mm: list[tuple[float, float]], amplitude: float, thick_mm: float = 0.4,
             echo: float | None = None, closed: bool = False) -> np.ndarray:
        """A specular interface (coherent amplitude) along a polyline; returns its mask."""
        mask = self.polyline_mask(points_mm, thick_mm, closed)
        self.coherent[mask] = np.maximum(self.coherent[mask], amplitude)
        if echo is not None:
            self.echo[mask] = np.maximum(self.echo[mask], echo)
        return mask

    def surface(self, mask: np.ndarray, amplitude: float, thick_mm: float = 0.5) -> None:
        """A specular line along the upper boundary of ``mask`` (where the beam enters it)."""
        t = max(1, int(round(thick_mm / self.geometry.pixel_mm)))
        m = mask.astype(np.uint8)
        top = m & ~np.vstack([np.zeros((t, m.shape[1]), np.uint8), m[:-t]]).astype(bool)
        self.coherent[top.astype(bool)] = np.maximum(self.coherent[top.astype(bool)], amplitude)

    def edge(self, mask: np.ndarray, amplitude: float, thick_mm: float = 0.5) -> np.ndarray:
        """A specular wall all around ``mask`` (vessel walls, capsules); returns the wall's mask."""
        t = max(1, int(round(thick_mm / self.geometry.pixel_mm)))
        m = mask.astype(np.uint8)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * t + 1, 2 * t + 1))
        wall = (cv2.dilate(m, k) - m).astype(bool)
        if amplitude:
            varied = amplitude * np.clip(0.65 + 0.45 * self.texture(3.0), 0.15, 1.3)  # specular strength varies
            self.coherent[wall] = np.maximum(self.coherent[wall], varied[wall])
        return wall

    def vessel(self, points_mm: list[tuple[float, float]], diameter_mm: float, wall: float = 0.5,
               flow: float = 0.0, blood: float = 0.002) -> np.ndarray:
        """An anechoic tube along a polyline with bright walls and optional flow (signed, 0…1)."""
        lumen = self.polyline_mask(points_mm, diameter_mm)
        if wall:
            self.edge(lumen, wall, 0.4)
        self.fill(lumen, blood, mu_rel=0.25)
        if flow:
            self.add_flow(lumen, flow)
        return lumen

    def add_flow(self, lumen: np.ndarray, peak: float) -> None:
        """Flow in a lumen: highest on its centre line (a parabolic profile from the distance map)."""
        rows, cols = np.flatnonzero(lumen.any(axis=1)), np.flatnonzero(lumen.any(axis=0))
        if not rows.size:
            return
        r0, r1 = max(0, rows[0] - 6), min(lumen.shape[0], rows[-1] + 7)
        c0, c1 = max(0, cols[0] - 6), min(lumen.shape[1], cols[-1] + 7)
        sub = lumen[r0:r1, c0:c1]
        dist = cv2.distanceTransform(sub.astype(np.uint8), cv2.DIST_L2, 3)
        # normalise per local radius: the ridge of the distance map is the centre line
        local = cv2.dilate(dist, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
        prof = np.clip(dist / np.maximum(local, 1e-3), 0, 1) ** 0.6
        view = self.flow[r0:r1, c0:c1]
        view[sub] = (peak * prof)[sub]

    def fibre(self, mask: np.ndarray, angle_deg: float, weight: float = 0.9) -> None:
        """Scatterers elongated along ``angle_deg`` (from the horizontal) inside ``mask``."""
        self.fibres.append((mask.astype(np.float32) * weight, angle_deg))

    def set_colour_box(self, a: float, b: float, top: float, bottom: float, steer_deg: float = 0.0) -> None:
        """Colour box: linear — x from ``a`` to ``b`` mm, steered by ``steer_deg``; fan — angles
        ``a``…``b`` in degrees; ``top``…``bottom`` depth in mm."""
        self.colour_box = (a, b, top, bottom, steer_deg)


@dataclass(frozen=True, eq=False)
class Rendered:
    """A scene rendered in beam space, ready for scan conversion at any motion."""

    geometry: ScanGeometry
    beam: np.ndarray  # uint8 samples × lines
    flow: np.ndarray  # canvas flow map
    turbulence: np.ndarray | None
    colour_box: tuple[float, float, float, float, float] | None
    power_doppler: bool
    pulse: tuple[float, float, float] | None
    flow_texture: np.ndarray  # canvas-sized random field for blotchy colour
    _cache: dict = field(default_factory=dict, repr=False)

    def _base(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Beam coordinates of the display's pixels at rest and their change per unit of ``beat``."""
        if "base" not in self._cache:
            g = self.geometry
            x, z = g.display_mm()
            x = np.broadcast_to(x, (z.shape[0], x.shape[1])).astype(np.float32)
            z = np.broadcast_to(z, x.shape).astype(np.float32)
            col, row, inside = g.beam_coords(x, z)
            dcol = drow = np.zeros_like(col)
            if self.pulse is not None:
                cx, cz, radius = self.pulse
                dxm, dzm = x - cx, z - cz
                k = 1.0 + np.exp(-(dxm * dxm + dzm * dzm) / (2 * radius * radius))
                col1, row1, _ = g.beam_coords(cx + dxm * k, cz + dzm * k)
                dcol, drow = col1 - col, row1 - row
            self._cache["base"] = (col.astype(np.float32), row.astype(np.float32), np.ascontiguousarray(inside),
                                   dcol.astype(np.float32), drow.astype(np.float32))
        return self._cache["base"]

    def display(self, dx_lines: float = 0.0, squeeze: float = 1.0, beat: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(grey image, inside mask) of the display area, the probe moved by ``dx_lines`` beam
        lines, the tissue pressed by ``squeeze`` (depths × 1/squeeze) and a heart (``pulse``)
        contracted by ``beat`` (0…0.15)."""
        col, row, inside, dcol, drow = self._base()
        if dx_lines or beat:
            col = col + np.float32(dx_lines) + np.float32(beat) * dcol
        if squeeze != 1.0 or beat:
            row = row * np.float32(1.0 / squeeze) + np.float32(beat) * drow
        img = cv2.remap(self.beam, col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=int(BLACK_GREY))
        img[~inside] = 0
        return img, inside

    def _colour_base(self, inside: np.ndarray) -> tuple:
        """The colour box's pixels (flat indices) with their flow, texture and turbulence; its outline."""
        if "colour" not in self._cache:
            g = self.geometry
            c0, r0, c1, r1 = g.display_box
            box = self.box_mask() & inside
            flat = np.flatnonzero(box & (np.abs(self.flow[r0:r1, c0:c1]) > 0.02))
            flow = self.flow[r0:r1, c0:c1].ravel()[flat]
            tex = self.flow_texture[r0:r1, c0:c1].ravel()[flat]
            turb = None if self.turbulence is None else self.turbulence[r0:r1, c0:c1].ravel()[flat]
            b8 = box.astype(np.uint8)
            outline = np.flatnonzero((b8 - cv2.erode(b8, np.ones((3, 3), np.uint8))).astype(bool))
            self._cache["colour"] = (flat, flow, tex, turb, outline)
        return self._cache["colour"]

    def colour(self, grey: np.ndarray, inside: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """BGR image: ``grey`` with colour flow painted inside the colour box (flow × ``strength``)."""
        bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        if self.colour_box is None:
            return bgr
        flat, flow, tex, turb, outline = self._colour_base(inside)
        flow = flow * np.float32(strength)
        v = flow * (1.0 + 0.35 * tex)
        show = (np.abs(v) > 0.12) & (tex > -1.3)
        if self.power_doppler:
            idx = (np.clip(np.abs(v), 0, 1) * (COLOUR_LEVELS - 1)).astype(np.int32)
            colours = _power_lut()[idx]
        else:
            vv = v.copy()
            if turb is not None:  # aliasing: the fastest flow wraps to the other colour
                wrap = (np.abs(vv) > 0.85) & (turb > 0)
                vv[wrap] = vv[wrap] - np.sign(vv[wrap]) * 1.7
            idx = np.clip((vv * 0.5 + 0.5) * (COLOUR_LEVELS - 1), 0, COLOUR_LEVELS - 1).astype(np.int32)
            colours = _velocity_lut()[idx]
            if turb is not None:  # variance: the mosaic's green
                green = (turb * (0.5 + 0.5 * tex)) > 0.35
                colours[green] = (colours[green] * 0.5 + np.array([40, 200, 60])).clip(0, 255)
        out = bgr.reshape(-1, 3)
        out[flat[show]] = colours[show].astype(np.uint8)
        out[outline] = (200, 200, 200)
        return bgr

    def box_mask(self) -> np.ndarray:
        g = self.geometry
        x, z = g.display_mm()
        a, b, top, bottom, steer = self.colour_box
        if not g.probe.fan:
            xs = x - (z - top) * np.tan(np.radians(steer))
            return (xs >= a) & (xs <= b) & (z >= top) & (z <= bottom)
        r = np.sqrt(x * x + (z + g.probe.radius_mm) ** 2) - g.probe.radius_mm
        th = np.degrees(np.arctan2(x, z + g.probe.radius_mm))
        return (th >= a) & (th <= b) & (r >= top) & (r <= bottom)


@lru_cache(maxsize=1)
def _velocity_lut() -> np.ndarray:
    """BGR: −1 (away, bright cyan-blue) … 0 (black) … +1 (towards, red to yellow)."""
    t = np.linspace(-1, 1, COLOUR_LEVELS)
    lut = np.zeros((COLOUR_LEVELS, 3), np.float32)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    lut[:, 2] = 90 + 165 * np.clip(pos * 1.6, 0, 1) * (pos > 0)  # red
    lut[:, 1] = 230 * np.clip((pos - 0.55) / 0.45, 0, 1) + 200 * np.clip((neg - 0.6) / 0.4, 0, 1)  # yellow / cyan
    lut[:, 0] = (90 + 165 * np.clip(neg * 1.6, 0, 1)) * (neg > 0)  # blue
    lut[:, 2] *= pos > 0
    return lut


@lru_cache(maxsize=1)
def _power_lut() -> np.ndarray:
    """BGR: power Doppler, dark orange → yellow-white."""
    m = np.linspace(0, 1, COLOUR_LEVELS)
    return np.stack([30 + 120 * m**2, 60 + 170 * m, 170 + 85 * np.clip(2 * m, 0, 1)], axis=1).astype(np.float32)


def _oriented_kernel(length: int, angle_deg: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = length // 2
    a = np.radians(angle_deg)
    dx, dy = np.cos(a) * c, np.sin(a) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1, cv2.LINE_AA)
    return k / np.sqrt(float((k * k).sum()))


def _to_beam(canvas: Canvas, maps: list[np.ndarray]) -> list[np.ndarray]:
    g = canvas.geometry
    if not g.probe.fan:
        return [m.astype(np.float32) for m in maps]
    x, z = g.beam_mm()
    col = ((x - g.canvas_x0) / g.pixel_mm - 0.5).astype(np.float32)
    row = ((z - g.canvas_z0) / g.pixel_mm - 0.5).astype(np.float32)
    return [cv2.remap(m.astype(np.float32), col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for m in maps]


def render_scene(canvas: Canvas, settings: Settings, rng: np.random.Generator) -> Rendered:
    """Beam-space B-mode of a painted canvas: speckle, PSF, attenuation along the beams, TGC, log."""
    g, p = canvas.geometry, canvas.geometry.probe
    fibre_maps = [w for w, _ in canvas.fibres]
    echo, coherent, mu_rel, mu_abs, *fibre_b = _to_beam(canvas, [canvas.echo, canvas.coherent, canvas.mu_rel,
                                                                  canvas.mu_abs, *fibre_maps])
    samples, lines = echo.shape
    pb = g.beam_pixel_mm
    depth = ((np.arange(samples, dtype=np.float32) + 0.5) * pb)[:, None]
    mu = mu_rel * np.float32(physics.tissue_attenuation_np_per_mm(p.freq_mhz)) + mu_abs
    tg = physics.transmission(mu, pb)
    tg *= physics.tgc_gain(depth, p.freq_mhz, settings.tgc_fraction, settings.gain_db)
    noise = physics.noise_amplitude(settings.noise_grey, settings.dynamic_range_db, settings.gamma, BLACK_GREY)
    amp = np.sqrt(np.maximum(echo, 0) * tg * tg + np.float32(noise**2))
    n_re, n_im = physics.complex_noise(rng, samples, lines)
    for w, (_, angle) in zip(fibre_b, canvas.fibres, strict=True):
        length = max(3, int(round(1.2 / pb)) | 1)
        k = _oriented_kernel(length, angle)
        w = np.clip(w, 0, 1)
        keep, along = np.sqrt(1 - w), np.sqrt(w)
        n_re = keep * n_re + along * cv2.filter2D(n_re, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
        n_im = keep * n_im + along * cv2.filter2D(n_im, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
    field_re = n_re * amp + coherent * tg
    field_im = n_im * amp
    far_mm = max(8.0, 0.5 * p.depth_mm)
    far = np.clip(np.abs(depth - settings.focus_mm) / far_mm, 0.0, 1.0).astype(np.float32)
    far *= np.float32((settings.far_growth - 1.0) / 1.2)  # the wide kernel is 2.2 × the focal one
    psf = physics.psf_kernels(pb, p.freq_mhz, sigma_x_wl=settings.sigma_x_wl)
    env = physics.envelope(field_re, field_im, psf, far, looks=settings.looks)
    beam = physics.log_compress(env, settings.dynamic_range_db, settings.gamma, BLACK_GREY)
    tex = canvas.texture(1.2)
    return Rendered(g, beam, canvas.flow.copy(), None if canvas.turbulence is None else canvas.turbulence.copy(),
                    canvas.colour_box, canvas.power_doppler, canvas.pulse, tex)


# ------------------------------------------------------------------ the console


@dataclass(frozen=True)
class Console:
    """What the screen around the image says and shows."""

    scanner: Scanner  # name and accent colour (logo); probe and preset are this scene's
    patient_id: str
    date: str  # YYYY-MM-DD
    clock: str
    preset: str
    label: str  # annotation under the image ("A4C", "LIVER SAG")
    marker: str  # body marker: heart, torso, pregnant, neck, breast, leg, none
    ecg: bool = False
    doppler: bool = False
    extra: tuple[str, ...] = ()  # more settings lines
    measurements: tuple[str, ...] = ()  # a measurement box (text lines)


OTHER_VENDORS = (
    ("CARDIOSIM E9", (90, 170, 255)),
    ("VISTASYN C7", (210, 140, 230)),
    ("ORBISONIC 3", (160, 230, 255)),
)


def console_scanner(rng: np.random.Generator, probe: Probe, preset: str) -> Scanner:
    """One of the phantom carts or another fictitious vendor, with this probe and preset."""
    options = [(s.name, s.accent_bgr) for s in SCANNERS] + list(OTHER_VENDORS)
    name, accent = options[int(rng.integers(len(options)))]
    return dataclasses.replace(SCANNERS[0], name=name, accent_bgr=accent, probe=probe.name, preset=preset)


def generic_layout(frame_size: tuple[int, int], aspect: float, extra_bottom: int = 0) -> Layout:
    """Where an image of ``aspect`` (width / height) sits on a console of ``frame_size``."""
    fw, fh = frame_size
    margin = max(MARGIN_PX, int(np.ceil(16 * fw / ANALYSIS_WIDTH_PX)))
    s = 0.5 * max(1.0, fh / 768)
    k = s / 0.5
    top = 12 + 3 * int(22 * k) + margin + 6
    side = margin + int(140 * k)
    bottom = margin + int(36 * k) + extra_bottom
    avail_w, avail_h = fw - 2 * side, fh - top - bottom
    w = int(min(avail_w, avail_h * aspect))
    h = int(min(avail_h, w / aspect))
    x = (fw - w) // 2 - int(10 * k)
    y = top + max(0, (avail_h - h) // 3)
    return Layout((fw, fh), (x, y, x + w, y + h), text_scale=s, margin_px=margin)


def _cm_ruler(img: np.ndarray, layout: Layout, top_mm: float, depth_mm: float, s: float) -> None:
    """A depth scale right of the image: ticks every cm (every 5 mm when shallow), labels in cm."""
    x0, y0, x1, y1 = layout.bmode_rect
    px_per_mm = (y1 - y0) / (depth_mm - top_mm)
    x = x1 + layout.margin_px
    step = 5 if depth_mm <= 60 else 10
    cv2.line(img, (x, int(y0 - top_mm * px_per_mm) if top_mm < 0 else y0), (x, y1 - 1), (150, 150, 150), 1)
    for mm in range(0, int(depth_mm) + 1, step):
        y = int(round(y0 + (mm - top_mm) * px_per_mm))
        if y >= y1 or y < y0:
            continue
        major = mm % 10 == 0
        cv2.line(img, (x, y), (x + (10 if major else 5), y), (190, 190, 190), 1)
        if major and mm and (depth_mm <= 60 or mm % 20 == 0 or depth_mm <= 100):
            _text(img, f"{mm // 10}", (x + 14, y + 5), s * 0.9)
    _text(img, "cm", (x + 10, y1 + int(18 * s / 0.5)), s * 0.9)


def _focus_marker(img: np.ndarray, layout: Layout, top_mm: float, depth_mm: float, focus_mm: float) -> None:
    x0, y0, x1, y1 = layout.bmode_rect
    yf = int(round(y0 + (focus_mm - top_mm) * (y1 - y0) / (depth_mm - top_mm)))
    x = x1 + layout.margin_px
    tri = np.array([[x + 26, yf], [x + 36, yf - 6], [x + 36, yf + 6]], np.int32)
    cv2.polylines(img, [tri], True, (0, 200, 255), 1, cv2.LINE_AA)


def _body_marker(img: np.ndarray, kind: str, x: int, y: int, s: float, rng_angle: float) -> None:
    k = s / 0.5
    c = (150, 150, 150)
    probe_c = (0, 220, 255)

    def P(a: float, b: float) -> tuple[int, int]:
        return x + int(a * k), y + int(b * k)

    if kind == "heart":
        cv2.ellipse(img, P(30, 34), (int(20 * k), int(26 * k)), 35, 0, 360, c, 1, cv2.LINE_AA)
        cv2.line(img, P(14, 12), P(44, 56), c, 1, cv2.LINE_AA)
        cv2.line(img, P(40, 6), P(50, 18), probe_c, max(2, int(3 * k)))
    elif kind in ("torso", "pregnant"):
        cv2.ellipse(img, P(30, 10), (int(8 * k), int(8 * k)), 0, 0, 360, c, 1, cv2.LINE_AA)
        cv2.rectangle(img, P(16, 20), P(44, 66), c, 1, cv2.LINE_AA)
        if kind == "pregnant":
            cv2.ellipse(img, P(44, 48), (int(10 * k), int(13 * k)), 0, -90, 90, c, 1, cv2.LINE_AA)
            cv2.line(img, P(54, 40), P(56, 56), probe_c, max(2, int(3 * k)))
        else:
            cv2.line(img, P(26 + 10 * rng_angle, 34), P(38 + 10 * rng_angle, 42), probe_c, max(2, int(3 * k)))
    elif kind == "neck":
        cv2.ellipse(img, P(30, 14), (int(13 * k), int(14 * k)), 0, 0, 360, c, 1, cv2.LINE_AA)
        cv2.rectangle(img, P(22, 28), P(38, 50), c, 1, cv2.LINE_AA)
        cv2.line(img, P(18, 42), P(42, 42), probe_c, max(2, int(3 * k)))
    elif kind == "breast":
        cv2.circle(img, P(30, 30), int(24 * k), c, 1, cv2.LINE_AA)
        cv2.circle(img, P(30, 30), int(4 * k), c, 1, cv2.LINE_AA)
        a = np.radians(rng_angle * 360)
        px, py = 30 + 14 * np.cos(a), 30 + 14 * np.sin(a)
        cv2.line(img, P(px - 6 * np.sin(a), py + 6 * np.cos(a)), P(px + 6 * np.sin(a), py - 6 * np.cos(a)), probe_c,
                 max(2, int(3 * k)))
    elif kind == "leg":
        cv2.line(img, P(22, 2), P(26, 66), c, 1, cv2.LINE_AA)
        cv2.line(img, P(42, 2), P(36, 66), c, 1, cv2.LINE_AA)
        cv2.ellipse(img, P(31, 38), (int(5 * k), int(4 * k)), 0, 0, 360, c, 1, cv2.LINE_AA)
        cv2.line(img, P(28, 16 + 20 * rng_angle), P(36, 16 + 20 * rng_angle), probe_c, max(2, int(3 * k)))


def _ecg_y(layout: Layout) -> int:
    return layout.bmode_rect[3] + layout.margin_px + int(30 * layout.text_scale / 0.5)


def _ecg(img: np.ndarray, layout: Layout, hr: int) -> None:
    x0, _, x1, _ = layout.bmode_rect
    y = _ecg_y(layout)
    n = x1 - x0
    period = max(20, int(n * 60 / hr / 3.0))  # three seconds across the image
    t = (np.arange(n) % period) / period
    v = (0.12 * np.exp(-((t - 0.15) / 0.03) ** 2) - 0.15 * np.exp(-((t - 0.28) / 0.008) ** 2)
         + 1.0 * np.exp(-((t - 0.31) / 0.01) ** 2) - 0.25 * np.exp(-((t - 0.34) / 0.01) ** 2)
         + 0.25 * np.exp(-((t - 0.58) / 0.05) ** 2))
    amp = 22 * layout.text_scale / 0.5
    pts = np.stack([np.arange(x0, x1), (y - v * amp).astype(np.int32)], axis=1).astype(np.int32)
    cv2.polylines(img, [pts], False, (80, 220, 80), 1, cv2.LINE_AA)


def ecg_sweep(img: np.ndarray, layout: Layout, fraction: float) -> None:
    """The ECG's erase bar at ``fraction`` (0…1) of the trace, as a running trace shows it."""
    x0, _, x1, _ = layout.bmode_rect
    y = _ecg_y(layout)
    amp = 22 * layout.text_scale / 0.5
    sx = x0 + int(fraction * (x1 - x0 - 1))
    cv2.line(img, (sx, y - int(amp) - 4), (sx, y + 6), (0, 0, 0), 4)


def _colour_bar(img: np.ndarray, layout: Layout, power: bool, scale_cm_s: float) -> None:
    x0, y0, _, _ = layout.bmode_rect
    h = min(140, layout.bmode_size[1] // 2)
    xb = x0 - layout.margin_px - 26
    lut = _power_lut() if power else _velocity_lut()
    idx = np.linspace(COLOUR_LEVELS - 1, 0 if not power else 0, h).astype(np.int32)
    if power:
        idx = np.linspace(COLOUR_LEVELS - 1, 0, h).astype(np.int32)
    bar = lut[idx].astype(np.uint8)[:, None, :].repeat(8, axis=1)
    y = y0 + 4
    img[y : y + h, xb : xb + 8] = bar
    s = layout.text_scale * 0.75
    if power:
        _text(img, "PDI", (xb - 6, y - 6 + 0), s)
    else:
        _text(img, f"+{scale_cm_s:.1f}", (xb - 30, y - 4), s)
        _text(img, f"-{scale_cm_s:.1f}", (xb - 30, y + h + 14), s)
        _text(img, "cm/s", (xb - 24, y + h + 30), s)


def compose_other_screen(
    region: np.ndarray,
    layout: Layout,
    console: Console,
    top_mm: float,
    depth_mm: float,
    focus_mm: float,
    freq_mhz: float,
    rng: np.random.Generator,
    *,
    frame_rate_hz: int = 30,
    gain: float = 50,
    dr: float = 60,
) -> np.ndarray:
    """A BGR console screen around ``region`` (grey H×W or BGR H×W×3 at the layout's size).

    Nothing is drawn over the image area: a clip composes the console once and pastes each
    frame's image into a copy."""
    fw, fh = layout.frame_size
    x0, y0, x1, y1 = layout.bmode_rect
    if region.shape[:2] != (y1 - y0, x1 - x0):
        raise ValueError(f"image of shape {region.shape[:2]} does not fit the layout's area {layout.bmode_size[::-1]}")
    img = np.zeros((fh, fw, 3), np.uint8)
    img[y0:y1, x0:x1] = region[:, :, None] if region.ndim == 2 else region
    s = layout.text_scale
    k = s / 0.5
    line = int(22 * k)
    sc = console.scanner
    _logo(img, sc, 16, 12, s)
    right = fw - int(330 * k)
    _text(img, f"ID: {console.patient_id}  SYNTHETIC PHANTOM", (right, 12 + line), s)
    _text(img, f"{console.date}  {console.clock}", (right, 12 + 2 * line), s)
    _text(img, f"{sc.probe}  {freq_mhz:.1f}MHz  {sc.preset}", (16, 12 + 3 * line), s)
    _text(img, f"MI {0.6 + 0.1 * (int(freq_mhz * 10) % 7):.1f}  TIS {0.2 + 0.1 * (int(depth_mm) % 5):.1f}",
          (right, 12 + 3 * line), s)
    px = x1 + layout.margin_px + int(52 * k)
    py = y0 + line
    items = [f"G {gain:.0f}", f"DR {dr:.0f}", f"D {depth_mm / 10:.1f}cm", f"FR {frame_rate_hz}Hz",
             f"F {freq_mhz:.1f}M", *console.extra]
    for i, item in enumerate(items):
        _text(img, item, (px, py + i * line), s * 0.9)
    if console.doppler:
        _colour_bar(img, layout, "PDI" in " ".join(console.extra), 20 + 10 * float(rng.integers(1, 6)))
        _grey_bar_lower(img, layout)
    else:
        _grey_bar(img, layout)
    _cm_ruler(img, layout, top_mm, depth_mm, s)
    _focus_marker(img, layout, top_mm, depth_mm, focus_mm)
    _body_marker(img, console.marker, 18, min(fh - int(90 * k), y1 - int(60 * k)), s, float(rng.random()))
    label_y = min(fh - 12, y1 + layout.margin_px + int(8 * k))
    if console.ecg:
        ecg_y = _ecg_y(layout)
        hr = int(rng.integers(58, 96))
        _ecg(img, layout, hr)
        _text(img, f"HR {hr} bpm", (x1 + layout.margin_px + int(52 * k), ecg_y), s * 0.9, (80, 220, 80))
        label_y = min(fh - 12, ecg_y + int(26 * k))
    _text(img, console.label, (x0, label_y), s)
    if console.measurements:
        mx, my = 16, int(fh * 0.42)
        for i, m in enumerate(console.measurements):
            _text(img, m, (mx, my + i * line), s * 0.9, (90, 230, 230))
    _text(img, "SYNTHETIC - NOT FOR DIAGNOSIS", (fw - int(330 * k), fh - 14), s * 0.8, (120, 120, 120))
    return img


def _grey_bar_lower(img: np.ndarray, layout: Layout) -> None:
    """The grey bar below the colour bar (Doppler screens show both)."""
    x0, y0, _, y1 = layout.bmode_rect
    h = min(120, layout.bmode_size[1] // 3)
    ramp = np.linspace(255, 0, h).astype(np.uint8)[:, None]
    bar = np.repeat(np.repeat(ramp, 6, axis=1)[:, :, None], 3, axis=2)
    yb = y1 - h - 4
    img[yb : yb + h, x0 - layout.margin_px - 6 : x0 - layout.margin_px] = bar

