"""Scenes of the out-of-scope set: ultrasound of anatomy other than the first MTP joint.

Each scene function ``scene(rng, variant) -> Plan`` picks a probe, image settings and console
text and returns a painter that draws the anatomy's tissue maps on a ``Canvas`` (mm, ``z`` down
from the probe face; ``canvas.d`` is the depth along the beam). ``variant`` cycles through the
scene's views (apical four-chamber, short axis, …); the generator draws the rest.

Echogenicity follows the MTP phantoms' scale (skin ≈ 1, fat ≈ 0.07, blood and fluid ≈ 0.002);
``mu_rel`` is attenuation relative to soft tissue (fluid ≈ 0.05–0.25: posterior enhancement) and
``mu_abs`` adds nepers per mm for bone, stones and air (shadows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ._oos_ultrasound import Canvas, Probe, Settings

__all__ = ["DOPPLER_SCENES", "OTHER_SCENES", "Plan"]


@dataclass(frozen=True)
class Plan:
    kind: str
    view: str  # the sub-view drawn, in words
    probe: Probe
    settings: Settings
    preset: str
    label: str
    marker: str
    paint: Callable[[Canvas], None]
    body_part: str
    study: str
    ecg: bool = False
    doppler: bool = False
    extra: tuple[str, ...] = ()
    measurements: tuple[str, ...] = ()
    calipers: tuple[tuple[float, float], ...] = ()
    frame_rate_hz: int = 30
    beat: float = 0.0  # contraction amplitude of a beating heart in a clip


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    """Uniform between ``a`` and ``b`` (either order: derived ranges may come out reversed)."""
    return float(a + (b - a) * rng.random())


# ------------------------------------------------------------------ shared layers


def _wall(c: Canvas, rng: np.random.Generator, fat_mm: float, muscle_mm: float, peritoneum: bool = True) -> float:
    """Skin, fat and a muscle layer following the probe face; returns the depth of their bottom."""
    d = c.d
    c.fill(d < 1.6, 1.1)
    c.coherent[(d > 0.2) & (d < 0.6)] = 1.2
    fat = (d >= 1.6) & (d < fat_mm)
    c.fill(fat, 0.09 * np.exp(0.3 * c.texture(3.0)))
    c.echo[fat & c.lobules(4.0, 0.18)] = 0.6
    m = (d >= fat_mm) & (d < fat_mm + muscle_mm)
    c.fill(m, 0.14 * np.exp(0.3 * c.texture(2.0)))
    c.fibre(m, _u(rng, -6, 6), 0.8)
    c.coherent[(np.abs(d - fat_mm) < 0.5)] = 0.7
    bottom = fat_mm + muscle_mm
    if peritoneum:
        c.coherent[(np.abs(d - bottom) < 0.6)] = 1.0
        c.echo[(np.abs(d - bottom) < 1.0)] = 1.2
    return bottom


def _chest_wall(c: Canvas, rng: np.random.Generator, depth_mm: float) -> None:
    d = c.d
    c.fill(d < 1.0, 1.0)
    wall = (d >= 1.0) & (d < depth_mm)
    c.fill(wall, 0.25 * np.exp(0.5 * c.texture(2.5)))
    c.fibre(wall, 0.0, 0.7)


# ------------------------------------------------------------------ cardiac (phased array)


def _dilate(mask: np.ndarray, mm: float, c: Canvas) -> np.ndarray:
    r = max(1, int(round(mm / c.geometry.pixel_mm)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _myocardium(c: Canvas, cavities: np.ndarray, s: float) -> np.ndarray:
    """Walls about 9 mm thick around the cavities, a bright pericardium behind them; the heart's mask."""
    heart = _dilate(cavities, 9 * s, c)
    c.fill(heart, 0.3 * np.exp(0.35 * c.texture(2.5)), mu_rel=1.0)
    peri = _dilate(heart, 2.5 * s, c) & ~heart
    bright = peri & (c.d > np.float32(c.pulse[1] if c.pulse else 0) - 10 * s) & (c.texture(8.0) > -0.8)
    c.fill(bright, 1.8 * np.exp(0.3 * c.texture(2.0)))
    c.coherent[bright & ~_dilate(heart, 1.0 * s, c)] = 0.9
    return heart


def _heart_a4c(c: Canvas, rng: np.random.Generator, s: float, ox: float, two: bool) -> None:
    def P(x: float, z: float) -> tuple[float, float]:
        return ox + s * x, s * z

    blood = 0.0005
    if two:
        lv = c.ellipse(*P(3, 70), 15 * s, 42 * s, -3)
        la = c.ellipse(*P(4, 127), 17 * s, 16 * s)
        cav = lv | la
        valves = [((-10, 108), (-5, 92)), ((17, 108), (12, 95))]
        annulus = [(-11, 109), (18, 109)]
    else:
        lv = c.ellipse(*P(14, 68), 12.5 * s, 40 * s, -9)
        rv = c.ellipse(*P(-18, 75), 10.5 * s, 30 * s, 15)
        la = c.ellipse(*P(15, 124), 14 * s, 15 * s)
        ra = c.ellipse(*P(-17, 122), 12.5 * s, 14 * s)
        cav = lv | rv | la | ra
        valves = [((3, 107), (9, 91)), ((26, 107), (21, 94)), ((-8, 106), (-13, 93)), ((-28, 106), (-23, 95))]
        annulus = [(2, 108), (27, 108), (-7, 107), (-29, 107)]
    c.pulse = (ox, s * 70, 30 * s)
    _myocardium(c, cav, s)
    # the valve plane: fibrous rings between ventricles and atria, leaflets in the openings
    ring = c.band(s * 104, s * 109) & _dilate(cav, 9 * s, c)
    c.fill(ring, 0.8)
    apex_clutter = (c.d < s * 40) & cav
    c.fill(cav, blood, mu_rel=0.3)
    gaps = [(3, 26), (-28, -8)] if not two else [(-10, 17)]
    for a, b in gaps:
        c.fill(c.ellipse(*P((a + b) / 2, 106), (b - a) / 2 * s, 4 * s) & cav, blood)
    c.echo[apex_clutter] = (0.012 * np.exp(c.texture(4.0)))[apex_clutter]
    for a, b in valves:
        c.line([P(*a), P(*b)], 0.5, 0.7 * s, echo=0.9)
    for a in annulus:
        c.fill(c.ellipse(*P(*a), 2.0 * s, 2.0 * s), 0.9)


def _heart_psax(c: Canvas, rng: np.random.Generator, s: float, ox: float) -> None:
    def P(x: float, z: float) -> tuple[float, float]:
        return ox + s * x, s * z

    c.pulse = (ox + 4 * s, 62 * s, 26 * s)
    lv = c.ellipse(*P(4, 62), 19 * s, 18 * s)
    lv_outer = _dilate(lv, 10 * s, c)
    rv = c.ellipse(*P(-14, 42), 32 * s, 13 * s, 22) & ~_dilate(lv, 13 * s, c)
    _myocardium(c, lv | rv, s)
    c.fill(lv_outer, 0.3 * np.exp(0.35 * c.texture(2.5)))
    c.fill(lv | rv, 0.0005, mu_rel=0.3)
    for x, z in ((-5, 71), (13, 72)):
        c.fill(c.ellipse(*P(x, z), 4.5 * s, 3.5 * s), 0.35)


def cardiac(rng: np.random.Generator, variant: int) -> Plan:
    view = ("apical four-chamber", "parasternal short axis", "apical two-chamber")[variant % 3]
    depth = float(np.round(_u(rng, 140, 180) / 5) * 5)
    probe = Probe(str(rng.choice(["P4-2 SYN", "S5-1 ESM", "P5-1 PHX"])), "sector", _u(rng, 2.0, 3.2), depth,
                  fov_deg=_u(rng, 76, 90), radius_mm=_u(rng, 2, 6))
    settings = Settings(gain_db=_u(rng, -21, -17), dynamic_range_db=_u(rng, 55, 65), gamma=_u(rng, 1.7, 2.1),
                        tgc_fraction=_u(rng, 0.8, 0.95), noise_grey=_u(rng, 17, 23), focus_mm=_u(rng, 70, 110), looks=1)
    s = _u(rng, 0.9, 1.08) * depth / 160
    ox = _u(rng, -6, 6)

    def paint(c: Canvas) -> None:
        c.fill(np.ones(c.shape, bool), 0.004 * np.exp(1.0 * c.texture(6.0)))
        _chest_wall(c, rng, 8 * s)
        if view == "parasternal short axis":
            _heart_psax(c, rng, s * 1.25, ox)
        else:
            _heart_a4c(c, rng, s, ox, view == "apical two-chamber")

    label = {"apical four-chamber": "A4C", "parasternal short axis": "PSAX PM", "apical two-chamber": "A2C"}[view]
    return Plan("cardiac_sector", view, probe, settings, "Adult Cardiac", label, "heart", paint, "HEART",
                "ECHOCARDIOGRAM (SYNTHETIC)", ecg=True, extra=("THI", "P Med"), frame_rate_hz=int(rng.integers(45, 70)),
                beat=_u(rng, 0.08, 0.12))


# ------------------------------------------------------------------ obstetric (curvilinear)


def _fetal_head(c: Canvas, fx: float, fz: float, hx: float, hz: float, tilt: float, fluid: np.ndarray) -> list:
    c.fill(c.ellipse(fx, fz, hx + 3.5, hz + 3.5, tilt) & fluid, 0.25)
    head = c.ellipse(fx, fz, hx, hz, tilt)
    c.fill(head, 0.07 * np.exp(0.6 * c.texture(2.5)), mu_rel=1.0)
    c.fill(c.ring(fx, fz, hx, hz, 2.6, tilt), 2.2, mu_abs=0.04)
    c.edge(c.ellipse(fx, fz, hx - 1.3, hz - 1.3, tilt), 0.9, 0.5)
    a = np.radians(tilt)
    ux, uz = np.cos(a), np.sin(a)
    c.line([(fx - ux * (hx - 4), fz - uz * (hx - 4)), (fx + ux * (hx - 4), fz + uz * (hx - 4))], 0.6, 0.5, echo=0.7)
    cx, cz = fx + ux * hx * 0.38, fz + uz * hx * 0.38
    csp = c.ellipse(cx, cz, 0.12 * hx, 0.08 * hz, tilt)
    c.fill(csp, 0.003)
    c.edge(csp, 0.5, 0.4)
    for sgn in (-1, 1):
        c.fill(c.ellipse(fx - ux * 0.1 * hx - sgn * uz * 0.22 * hz, fz - uz * 0.1 * hx + sgn * ux * 0.22 * hz,
                         0.2 * hx, 0.15 * hz, tilt + 25 * sgn), 0.1)
        c.line([(fx + ux * 0.55 * hx - sgn * uz * 0.6 * hz, fz + uz * 0.55 * hx + sgn * ux * 0.6 * hz),
                (fx + ux * 0.1 * hx - sgn * uz * 0.72 * hz, fz + uz * 0.1 * hx + sgn * ux * 0.72 * hz)], 0.3, 0.4, echo=0.4)
    return [(fx - uz * hz, fz + ux * hz), (fx + uz * hz, fz - ux * hz)]


def obstetric(rng: np.random.Generator, variant: int) -> Plan:
    view = ("fetal head (biparietal)", "fetal trunk and spine", "early gestational sac")[variant % 3]
    depth = float(np.round(_u(rng, 130, 170) / 10) * 10)
    probe = Probe(str(rng.choice(["C5-1 SYN", "C6-2 PHX", "AB2-7 ESM"])), "curvilinear", _u(rng, 3.5, 5.0), depth,
                  fov_deg=_u(rng, 62, 74), radius_mm=_u(rng, 45, 60))
    settings = Settings(gain_db=_u(rng, -18, -14), dynamic_range_db=_u(rng, 58, 66), gamma=_u(rng, 1.5, 1.9),
                        tgc_fraction=_u(rng, 0.8, 0.95), noise_grey=_u(rng, 18, 24), focus_mm=_u(rng, 60, 90))
    fat = _u(rng, 9, 18)
    ox = _u(rng, -12, 12)
    tilt = _u(rng, -25, 25)
    calipers: list[tuple[float, float]] = []
    if view == "early gestational sac":
        bpd = 0.0
        meas = (f"GS {_u(rng, 1.8, 3.2):.2f}cm", f"CRL {_u(rng, 0.6, 1.8):.2f}cm",
                f"GA {int(rng.integers(7, 11))}w{int(rng.integers(0, 7))}d")
    else:
        bpd = _u(rng, 4.5, 7.5)
        meas = (f"BPD {bpd:.2f}cm", f"HC {bpd * 3.45:.1f}cm", f"GA {int(10 + bpd * 3.1)}w{int(rng.integers(0, 7))}d")

    def paint(c: Canvas) -> None:
        c.fill(np.ones(c.shape, bool), 0.18 * np.exp(0.4 * c.texture(4.0)))
        bottom = _wall(c, rng, fat, _u(rng, 5, 9))
        if view == "early gestational sac":
            bl_z = bottom + _u(rng, 16, 24)
            bladder = c.ellipse(ox * 0.5, bl_z, _u(rng, 35, 50), bl_z - bottom - 2)
            c.fill(bladder, 0.0015, mu_rel=0.6)
            c.edge(bladder, 0.6, 0.6)
            uz = bl_z + _u(rng, 36, 44)
            ang = tilt * 0.4
            uterus = c.ellipse(ox, uz, _u(rng, 48, 58), _u(rng, 26, 32), ang)
            c.fill(uterus, 0.26 * np.exp(0.3 * c.texture(2.0)))
            endo = c.ellipse(ox, uz, 32, 15, ang)
            c.fill(endo, 0.8 * np.exp(0.35 * c.texture(1.5)))
            sac = c.ellipse(ox + 3, uz, _u(rng, 12, 17), _u(rng, 8, 11), ang)
            c.fill(sac, 0.0015, mu_rel=0.3)
            c.edge(sac, 0.6, 0.8)
            c.fill(c.ring(ox - 4, uz + 2, 2.4, 2.4, 0.7), 1.6)
            c.fill(c.ellipse(ox + 6, uz + 3, 5.5, 2.6, ang + 10), 0.45)
            calipers.extend([(ox - 11, uz), (ox + 17, uz)])
            return
        front = bottom + 6
        c.fill(c.layer(bottom, front), 0.25 * np.exp(0.3 * c.texture(2.0)))
        back = c.curve(depth * _u(rng, 0.78, 0.88), bow=-_u(rng, 0.0, 0.002), slope=_u(rng, -0.15, 0.15))
        fluid = ~c.below(back) & (c.d > front)
        c.fill(fluid, 0.0015, mu_rel=0.75)
        c.fill(fluid & (c.texture(0.6) > 2.3), 0.02)
        c.fill(c.band(back, back + 8), 0.25 * np.exp(0.3 * c.texture(2.0)))
        # the placenta: a granular lens on the anterior or the posterior wall
        anterior = rng.random() < 0.5
        pc, pw, thick = _u(rng, -50, 50), _u(rng, 60, 110), _u(rng, 22, 34)
        lens = thick * np.sqrt(np.clip(1 - ((c.x[0] - pc) / pw) ** 2, 0, 1))
        if anterior:
            plac = (c.d > front) & (c.d < front + lens[None, :])
            plate = (np.abs(c.d - front - lens[None, :]) < 0.5) & (lens > 1)[None, :]
        else:
            plac = c.below(back - lens) & ~c.below(back)
            plate = c.band(back - lens - 0.2, back - lens + 0.6) & (lens > 1)[None, :]
        c.fill(plac, 0.4 * np.exp(0.25 * c.texture(1.2)), mu_rel=1.0)
        c.echo[plac & (c.texture(5.0) > 1.7)] = 0.03
        c.coherent[plate & fluid] = 0.6
        fluid &= ~plac
        top = front + (thick if anterior else 0)
        bot = back if anterior else back - thick
        fz = float(np.clip((top + np.mean(bot)) / 2 + _u(rng, -5, 5), top + 25, depth - 40))
        fx = ox
        if view == "fetal head (biparietal)":
            hx, hz = bpd * 6.0, bpd * 5.0
            calipers.extend(_fetal_head(c, fx, fz, hx, hz, tilt, fluid))
        else:
            bx, bz = _u(rng, 55, 70), _u(rng, 17, 22)
            body = c.ellipse(fx, fz, bx, bz, tilt)
            c.fill(body, 0.1 * np.exp(0.4 * c.texture(2.0)), mu_rel=1.0)
            c.edge(body, 0.7, 0.8)
            a = np.radians(tilt)
            ux, uz = np.cos(a), np.sin(a)
            nx, nz = -uz, ux
            back_side = -1 if rng.random() < 0.5 else 1
            for i in range(18):
                t = -0.85 * bx + i * (1.65 * bx / 17)
                taper = 1.0 - 0.4 * max(0.0, t / bx)
                for off in (0.55, 0.8):
                    px = fx + ux * t + nx * back_side * off * bz * taper
                    pz = fz + uz * t + nz * back_side * off * bz * taper
                    c.fill(c.ellipse(px, pz, 1.5, 1.1, tilt), 2.0, mu_abs=0.08)
            c.fill(c.ellipse(fx - ux * bx * 0.2 - nx * back_side * 7, fz - uz * bx * 0.2 - nz * back_side * 7, 8, 5, tilt),
                   0.002)
            hx0, hz0 = fx - ux * (bx + 26), fz - uz * (bx + 26)
            _fetal_head(c, hx0, hz0, 30, 24, tilt + 10, fluid)

    return Plan("obstetric", view, probe, settings, "OB 2/3 Trim" if "early" not in view else "OB 1st Trim",
                "OB " + ("BPD" if "head" in view else "SPINE SAG" if "trunk" in view else "GS SAG"), "pregnant",
                paint, "ABDOMEN", "OBSTETRIC ULTRASOUND (SYNTHETIC)", measurements=meas, calipers=tuple(calipers),
                frame_rate_hz=int(rng.integers(18, 32)))


# ------------------------------------------------------------------ abdominal (curvilinear)


def _kidney(c: Canvas, rng: np.random.Generator, kx: float, kz: float, ang: float, flow: bool = False) -> None:
    ax, az = _u(rng, 45, 55), _u(rng, 22, 27)
    kidney = c.ellipse(kx, kz, ax, az, ang)
    c.fill(kidney, 0.11 * np.exp(0.3 * c.texture(2.0)), mu_rel=0.9)
    c.edge(kidney, 1.0, 0.8)
    a = np.radians(ang)
    ux, uz = np.cos(a), np.sin(a)
    nx, nz = -uz, ux
    for i in range(7):
        t = -0.62 * ax + i * (1.24 * ax / 6)
        for sgn in (-1, 1):
            if abs(t) > 0.75 * ax:
                continue
            r = 0.62 * az * np.sqrt(max(0.0, 1 - (t / ax) ** 2))
            c.fill(c.ellipse(kx + ux * t + nx * sgn * r, kz + uz * t + nz * sgn * r, 6, 4.5, ang + 90), 0.025)
    sinus = c.ellipse(kx, kz, 0.6 * ax, 0.32 * az, ang) & (c.texture(3.0) > -1.0)
    c.fill(sinus, 1.1 * np.exp(0.4 * c.texture(1.5)))
    if flow:  # interlobar arteries and veins fanning out of the sinus, arcuate branches at the cortex
        for t in np.sort(rng.uniform(-0.65 * ax, 0.65 * ax, int(rng.integers(7, 11)))):
            w = np.sqrt(max(0.0, 1 - (t / ax) ** 2))
            for sgn in (-1, 1):
                for sign, off in ((1.0, -0.8), (-1.0, 0.8)):
                    if rng.random() < 0.25:
                        continue
                    tt = t + off + _u(rng, -2.5, 2.5)
                    start = (kx + ux * tt + nx * sgn * 0.25 * az * w, kz + uz * tt + nz * sgn * 0.25 * az * w)
                    end_r = _u(rng, 0.72, 0.86) * az * w
                    bend = _u(rng, -3, 3)
                    mid = (kx + ux * (tt + bend) + nx * sgn * 0.55 * az * w, kz + uz * (tt + bend) + nz * sgn * 0.55 * az * w)
                    end = (kx + ux * (tt + 1.5 * bend) + nx * sgn * end_r, kz + uz * (tt + 1.5 * bend) + nz * sgn * end_r)
                    peak = sign * _u(rng, 0.5, 0.95)
                    c.vessel([start, mid, end], _u(rng, 1.3, 2.1), wall=0.0, flow=peak, blood=0.01)
                    arc = [(end[0] + ux * d, end[1] + uz * d) for d in np.linspace(-4, 4, 5)]
                    c.vessel(arc, _u(rng, 1.0, 1.5), wall=0.0, flow=peak * 0.8, blood=0.01)
        hx, hz = kx - nx * 0.9 * az, kz - nz * 0.9 * az  # the hilum on the deep side
        if hz < kz:
            hx, hz = kx + nx * 0.9 * az, kz + nz * 0.9 * az
        for off, peak, dia in ((-2.6, 0.9, 4.5), (2.8, -0.7, 6.0)):
            c.vessel([(kx + ux * off, kz + uz * off), (hx + ux * off, hz + uz * off),
                      (hx + ux * off * 2, hz + 18 + uz * off)], dia, wall=0.3, flow=peak)


def abdominal(rng: np.random.Generator, variant: int, doppler: bool = False) -> Plan:
    view = ("liver with hepatic veins", "liver and gallbladder", "liver and right kidney")[variant % 3]
    if doppler:
        view = "right kidney, colour Doppler"
    depth = float(np.round(_u(rng, 150, 200) / 10) * 10)
    probe = Probe(str(rng.choice(["C5-1 SYN", "C6-2 PHX", "AB2-7 ESM"])), "curvilinear", _u(rng, 3.0, 4.5), depth,
                  fov_deg=_u(rng, 60, 72), radius_mm=_u(rng, 48, 60))
    settings = Settings(gain_db=_u(rng, -20, -16), dynamic_range_db=_u(rng, 56, 66), gamma=_u(rng, 1.4, 1.8),
                        tgc_fraction=_u(rng, 0.88, 1.0), noise_grey=_u(rng, 20, 27), focus_mm=_u(rng, 70, 110))
    fat = _u(rng, 10, 22)
    ox = _u(rng, -10, 10)
    half = np.radians(probe.fov_deg / 2)

    def paint(c: Canvas) -> None:
        liver = 0.3 * np.exp(0.15 * c.texture(2.0) + 0.1 * c.texture(8.0))
        c.fill(np.ones(c.shape, bool), liver)
        bottom = _wall(c, rng, fat, _u(rng, 8, 14))
        # the diaphragm: a bright dome deep in the image, lung mirror image beyond
        dz = depth * _u(rng, 0.84, 0.95)
        dome = c.ellipse(ox + _u(rng, -20, 20), dz + 80, 150, 80)
        below = ~dome & (c.d > dz - 40)
        c.fill(below & (c.d > bottom + 10), 0.35 * np.exp(0.4 * c.texture(3.0)))
        c.edge(dome, 1.4, 1.5)
        c.fill(c.ring(ox, dz + 80, 150, 80, 3.0) & (c.d > bottom), 1.8)
        if view == "liver with hepatic veins":
            cx, cz = ox + _u(rng, 5, 25), dz - _u(rng, 10, 20)
            ivc = c.ellipse(cx, cz, 12, 9)
            c.fill(ivc, 0.002, mu_rel=0.25)
            for ang in (_u(rng, -60, -40), _u(rng, -10, 10), _u(rng, 35, 60)):
                a = np.radians(ang)
                length = _u(rng, 70, 110)
                pts = [(cx + np.sin(a) * length * t, cz - np.cos(a) * length * t + 6 * np.sin(4 * t)) for t in np.linspace(0, 1, 6)]
                for j in range(len(pts) - 1):
                    c.vessel([pts[j], pts[j + 1]], 11 - 1.5 * j, wall=0.0)
            for _ in range(int(rng.integers(4, 7))):
                px, pz = _u(rng, -60, 60), _u(rng, bottom + 25, dz - 30)
                pv = c.ellipse(px, pz, _u(rng, 4, 9), _u(rng, 3, 6), _u(rng, 0, 180))
                c.edge(pv, 1.0, 1.0)
                c.fill(pv, 0.002, mu_rel=0.25)
        elif view == "liver and gallbladder":
            gx, gz = ox + _u(rng, -25, 25), bottom + _u(rng, 45, 70)
            ang = _u(rng, -30, 30)
            gb = c.ellipse(gx, gz, _u(rng, 28, 38), _u(rng, 11, 16), ang)
            c.fill(gb, 0.0015, mu_rel=0.05)
            c.edge(gb, 1.2, 0.9)
            if rng.random() < 0.6:
                a = np.radians(ang)
                sx, sz = gx + np.cos(a) * 12, gz + 9
                stone = c.ellipse(sx, sz, 5, 4)
                c.fill(stone & gb, 2.5, mu_abs=4.0)
                c.surface(stone, 2.0, 1.2)
            for _ in range(3):
                px, pz = _u(rng, -60, 60), _u(rng, gz + 25, dz - 20)
                pv = c.ellipse(px, pz, _u(rng, 4, 8), _u(rng, 3, 5), _u(rng, 0, 180))
                c.edge(pv, 1.0, 1.0)
                c.fill(pv, 0.002, mu_rel=0.25)
        else:
            kz = bottom + (depth - bottom) * _u(rng, 0.45, 0.6)
            _kidney(c, rng, ox + _u(rng, -10, 10), kz, _u(rng, -20, 20), flow=doppler)
            if doppler:
                c.set_colour_box(np.degrees(-half * 0.55), np.degrees(half * 0.55), bottom + 10, kz + 35)

    label = {"liver with hepatic veins": "LIVER RT SUBCOSTAL", "liver and gallbladder": "GB LONG",
             "liver and right kidney": "RT KIDNEY LONG", "right kidney, colour Doppler": "RT KIDNEY CDI"}[view]
    extra = ("CF 2.5M", "PRF 1.5k", "WF Low") if doppler else ("THI",)
    return Plan("doppler_kidney" if doppler else "abdominal", view, probe, settings, "Abdomen" if not doppler else "Renal",
                label, "torso", paint, "ABDOMEN", "ABDOMINAL ULTRASOUND (SYNTHETIC)", doppler=doppler, extra=extra,
                frame_rate_hz=int(rng.integers(14, 30)))


# ------------------------------------------------------------------ muscle (linear)


def muscle(rng: np.random.Generator, variant: int) -> Plan:
    view = ("pennate, longitudinal", "bipennate, longitudinal", "transverse")[variant % 3]
    depth = float(np.round(_u(rng, 35, 55)))
    probe = Probe(str(rng.choice(["L12-4 SYN", "L15-7 ESM", "ML6-15 PHX"])), "linear", _u(rng, 8.0, 12.0), depth,
                  width_mm=_u(rng, 38, 55))
    settings = Settings(gain_db=_u(rng, -21, -17), dynamic_range_db=_u(rng, 55, 64), gamma=_u(rng, 1.5, 1.9),
                        tgc_fraction=_u(rng, 0.85, 1.0), noise_grey=_u(rng, 22, 28), focus_mm=_u(rng, 12, 25))
    fat_mm = _u(rng, 3, 9)
    bone = rng.random() < 0.5
    alpha = _u(rng, 10, 24) * (1 if rng.random() < 0.5 else -1)

    def paint(c: Canvas) -> None:
        c.fill(c.d < 1.4, 1.1)
        c.coherent[(c.d > 0.2) & (c.d < 0.5)] = 1.2
        f = c.curve(fat_mm, amp=_u(rng, 0.3, 1.0), period=_u(rng, 25, 60), phase=_u(rng, 0, 6), slope=_u(rng, -0.05, 0.05))
        fat = c.band(1.4, f)
        c.fill(fat, 0.08 * np.exp(0.3 * c.texture(2.0)))
        c.echo[fat & c.lobules(2.0, 0.2)] = 0.6
        deep = c.curve(depth * _u(rng, 0.72, 0.85), amp=_u(rng, 0.5, 2.0), period=_u(rng, 40, 90), phase=_u(rng, 0, 6))
        belly = c.band(f + 0.8, deep)
        base = 0.11 * np.exp(0.25 * c.texture(2.0))
        c.fill(belly, base)
        for curve in (f, deep):
            c.fill(c.band(curve - 0.4, curve + 0.8), 1.4)
            c.coherent[c.band(curve, curve + 0.4)] = 0.9
        below = c.below(deep + 0.8)
        c.fill(below, 0.12 * np.exp(0.3 * c.texture(2.0)))
        if view == "transverse":  # "starry night": fascicles cut across, bright perimysium dots and septa
            c.fill(belly, 0.06 * np.exp(0.3 * c.texture(2.0)))
            dots = (c.texture(0.5) > 1.1) & belly
            c.echo[dots] = 1.0
            septa = c.lobules(6.0, 0.05) & belly
            c.echo[septa] = 0.9
        else:
            spacing = _u(rng, 1.6, 2.8)
            ta = np.tan(np.radians(alpha))
            if view == "bipennate, longitudinal":
                mid = 0.5 * (f + deep)
                apo = c.band(mid - 0.5, mid + 0.5) & belly
                c.fill(apo, 1.5)
                c.coherent[apo] = 0.8
                upper = belly & ~c.below(mid)
                lower = belly & c.below(mid)
                for m, sgn in ((upper, -1), (lower, 1)):
                    u = (c.z - sgn * c.x * ta) / spacing
                    stripe = (np.abs(u - np.round(u)) < 0.14) & m & (c.texture(3.0) > -1.2)
                    c.echo[stripe] = 0.7
                    c.fibre(m, -sgn * alpha, 0.85)
            else:
                u = (c.z - c.x * ta) / spacing
                stripe = (np.abs(u - np.round(u + 0.1 * c.texture(6.0))) < 0.13) & belly & (c.texture(3.0) > -1.2)
                c.echo[stripe] = 0.75
                c.fibre(belly, np.degrees(np.arctan(ta)), 0.85)
        if bone:
            bz = c.curve(depth * _u(rng, 0.88, 0.95), bow=_u(rng, 0.004, 0.012))
            b = c.below(bz)
            c.fill(b, 0.5, mu_abs=6.0)
            c.surface(b, 2.0, 0.5)

    label = {"pennate, longitudinal": "R QUAD LONG", "bipennate, longitudinal": "L CALF MG LONG", "transverse": "R BICEPS TRV"}[view]
    return Plan("muscle", view, probe, settings, "MSK Muscle", label, "leg", paint, "LEG", "MSK MUSCLE (SYNTHETIC)",
                frame_rate_hz=int(rng.integers(20, 40)))


# ------------------------------------------------------------------ thyroid / neck (linear)


def _neck(c: Canvas, rng: np.random.Generator, width: float, power: bool) -> None:
    """One thyroid lobe in transverse section: trachea to one side, carotid and jugular to the other."""
    c.fill(c.d < 1.2, 1.0)
    c.coherent[(c.d > 0.2) & (c.d < 0.5)] = 1.1
    c.fill(c.d >= 1.2, 0.13 * np.exp(0.3 * c.texture(2.0)))
    c.fill(c.layer(1.2, 3.0), 0.08)
    s = -1.0 if rng.random() < 0.5 else 1.0  # which side the trachea is on
    xt = s * (width / 2 - _u(rng, 3, 7))
    tz = _u(rng, 15, 18)  # top of the trachea
    xl, zl = xt - s * _u(rng, 17, 20), _u(rng, 13, 16)
    ax, az = _u(rng, 9, 11.5), _u(rng, 7, 9)
    lobe = c.ellipse(xl, zl, ax, az, s * _u(rng, 5, 20))
    isthmus = c.ellipse(xt - s * 4, tz - 4, 10, 2.8, -s * 10)
    thyroid = lobe | isthmus
    xc = xl - s * (ax + _u(rng, 3, 5))
    straps = c.ellipse((xl + xt) / 2, 5.2, 14, 2.3, s * 8) & ~thyroid
    scm = c.ellipse(xc - s * 3, 6.5, 10, 3.8, -s * 10) & ~thyroid
    c.fill(straps | scm, 0.06)
    c.fibre(scm | straps, 0.0, 0.8)
    c.edge(straps | scm, 0.25, 0.3)
    c.fill(thyroid, 0.9 * np.exp(0.2 * c.texture(0.7)), mu_rel=1.0)
    c.edge(thyroid, 0.3, 0.4)
    c.fill(c.ellipse(xl + s * 2, zl + az + 5, 9, 3.5, s * 15), 0.05)  # longus colli
    # the trachea: a bright arc of cartilage, air behind it (reverberations, no echoes)
    r = 9.0
    air = c.ellipse(xt, tz + r, r, r) | (c.below(tz + r) & (np.abs(c.x - xt) < r))
    c.fill(air, 0.003)
    c.fill(c.ring(xt, tz + r, r + 1.2, r + 1.2, 1.6) & (c.z < tz + r), 0.35)
    c.line([(xt + r * np.sin(a), tz + r - r * np.cos(a)) for a in np.linspace(-1.2, 1.2, 20)], 1.6, 0.6)
    for k in range(1, 4):
        c.line([(xt + 0.7 * r * np.sin(a), tz + r - r * np.cos(a) + 3.8 * k) for a in np.linspace(-0.9, 0.9, 12)],
               0.35 / k, 0.35)
    cca = c.ellipse(xc, zl + 3, 3.8, 3.8)
    c.edge(cca, 0.9, 0.6)
    c.fill(cca, 0.002, mu_rel=0.25)
    jv = c.ellipse(xc - s * 6, zl - 3, _u(rng, 3.5, 6), _u(rng, 1.5, 3.0), -s * 15)
    c.fill(jv, 0.002, mu_rel=0.25)
    if power:
        c.add_flow(cca, 0.9)
    if s < 0:  # the oesophagus, behind the left lobe
        oes = c.ellipse(xt - s * 11, tz + 12, 4.5, 3.5)
        c.fill(oes, 0.06)
        c.fill(c.ellipse(xt - s * 11, tz + 12, 2.0, 1.2), 1.0)
    kind = int(rng.integers(3))
    nx, nz = xl + _u(rng, -3, 3), zl + _u(rng, -1.5, 1.5)
    if kind == 0:  # a solid hypoechoic nodule with a halo
        n = c.ellipse(nx, nz, _u(rng, 3, 5), _u(rng, 2.5, 4))
        c.fill(n, 0.25 * np.exp(0.3 * c.texture(1.0)))
        c.echo[c.ring(nx, nz, 4.5, 4.0, 0.8) & thyroid] = 0.02
    elif kind == 1:  # a cyst: anechoic, posterior enhancement
        n = c.ellipse(nx, nz, _u(rng, 2.5, 4), _u(rng, 2, 3))
        c.fill(n, 0.002, mu_rel=0.05)
    if power:  # a hypervascular lobe: many small, tortuous vessels
        for _ in range(int(rng.integers(22, 34))):
            px, pz = xl + _u(rng, -ax * 0.85, ax * 0.85), zl + _u(rng, -az * 0.8, az * 0.8)
            a = _u(rng, 0, np.pi)
            length = _u(rng, 1.5, 5)
            wig = _u(rng, 0.3, 1.0)
            pts = [(px + np.cos(a) * length * t + wig * np.sin(7 * t), pz + np.sin(a) * length * t + wig * np.cos(5 * t))
                   for t in np.linspace(-1, 1, 7)]
            vessel = c.polyline_mask(pts, _u(rng, 0.6, 1.1)) & thyroid
            c.add_flow(vessel, _u(rng, 0.5, 1.0))
        c.set_colour_box(min(xl, xc) - 8 if s > 0 else xl - ax - 4, max(xl, xc) + 8 if s < 0 else xl + ax + 4, 3,
                         zl + az + 6)
        c.power_doppler = True


def thyroid(rng: np.random.Generator, variant: int, power: bool = False) -> Plan:
    depth = float(np.round(_u(rng, 35, 45)))
    probe = Probe(str(rng.choice(["L12-4 SYN", "L15-7 ESM", "L18-5 ORB"])), "linear", _u(rng, 10.0, 14.0), depth,
                  width_mm=_u(rng, 38, 48))
    settings = Settings(gain_db=_u(rng, -21, -17), dynamic_range_db=_u(rng, 56, 64), gamma=_u(rng, 1.5, 1.9),
                        tgc_fraction=_u(rng, 0.85, 1.0), noise_grey=_u(rng, 22, 28), focus_mm=_u(rng, 12, 20))

    def paint(c: Canvas) -> None:
        _neck(c, rng, probe.width_mm, power)

    extra = ("PDI", "PRF 0.8k", "WF Low") if power else ()
    return Plan("doppler_thyroid" if power else "thyroid", "thyroid, transverse" + (", power Doppler" if power else ""),
                probe, settings, "Thyroid", "THYROID TRV" if not power else "THYROID TRV PDI", "neck", paint, "NECK",
                "THYROID ULTRASOUND (SYNTHETIC)", doppler=power, extra=extra, frame_rate_hz=int(rng.integers(18, 35)))


# ------------------------------------------------------------------ breast (linear)


def breast(rng: np.random.Generator, variant: int) -> Plan:
    view = ("simple cyst", "oval solid mass", "irregular shadowing mass")[variant % 3]
    depth = float(np.round(_u(rng, 35, 50)))
    probe = Probe(str(rng.choice(["L12-4 SYN", "L15-7 ESM", "L18-5 ORB"])), "linear", _u(rng, 10.0, 14.0), depth,
                  width_mm=_u(rng, 38, 50))
    settings = Settings(gain_db=_u(rng, -21, -17), dynamic_range_db=_u(rng, 55, 64), gamma=_u(rng, 1.5, 1.9),
                        tgc_fraction=_u(rng, 0.85, 1.0), noise_grey=_u(rng, 22, 28), focus_mm=_u(rng, 12, 22))
    clock = int(rng.integers(1, 13))

    def paint(c: Canvas) -> None:
        c.fill(c.d < 2.0, 0.8)
        c.coherent[(c.d > 0.2) & (c.d < 0.5)] = 1.2
        c.coherent[(c.d > 1.8) & (c.d < 2.1)] = 0.8
        f = c.wavy(_u(rng, 6, 11), _u(rng, 1.0, 2.0), _u(rng, 6, 10))
        g = f + c.wavy(_u(rng, 9, 15), _u(rng, 1.0, 2.5), _u(rng, 8, 14))
        h = g + c.wavy(_u(rng, 3, 6), 0.8, 10)
        m = h + c.wavy(_u(rng, 6, 9), 0.6, 15)
        fat = c.band(2.0, f) | c.band(g, h)
        c.fill(c.d >= 2.0, 0.08 * np.exp(0.3 * c.texture(1.5)))
        c.echo[fat & c.lobules(1.6, 0.15)] = 0.7
        gland = c.band(f, g)
        c.fill(gland, 0.7 * np.exp(0.45 * c.texture(1.0)))
        c.echo[gland & (c.texture(2.0) > 1.4)] = 0.05
        # Cooper's ligaments: arcs from the gland up into the fat
        for _ in range(int(rng.integers(4, 8))):
            x0 = _u(rng, -probe.width_mm / 2, probe.width_mm / 2)
            wide, high = _u(rng, 8, 16), _u(rng, 2.5, 5.0)
            zf = float(np.interp(x0, c.x[0], f)) + 0.5
            pts = [(x0 + wide * t, zf - high * np.sin(np.pi * t) ** 0.7) for t in np.linspace(0, 1, 16)]
            c.line(pts, 0.4, 0.35, echo=0.9)
        pect = c.band(h, m)
        c.fill(pect, 0.12 * np.exp(0.2 * c.texture(2.0)))
        c.fibre(pect, _u(rng, -8, 8), 0.85)
        c.coherent[c.band(h, h + 0.4) | c.band(m, m + 0.4)] = 0.9
        below = c.below(m + 0.4)
        c.fill(below, 0.1)
        pleura = m + _u(rng, 7, 10)
        x0 = _u(rng, -15, 5)
        for rx in (x0, x0 + _u(rng, 20, 26)):
            rib = c.ellipse(rx, float(np.mean(m)) + 6, 8, 4.5)
            c.fill(rib, 0.05 * np.exp(0.3 * c.texture(1.0)), mu_abs=0.3)
            c.surface(rib, 1.2, 0.5)
        c.coherent[c.band(pleura, pleura + 0.4) & (c.echo < 0.08)] = 1.2
        c.fill(c.below(pleura + 0.4) & (c.echo < 0.08), 0.25 * np.exp(0.6 * c.texture(2.0)))
        lx = _u(rng, -10, 10)
        lz = float(np.interp(lx, c.x[0], (f + g) / 2))
        if view == "simple cyst":
            les = c.ellipse(lx, lz, _u(rng, 4, 7), _u(rng, 3, 5))
            c.fill(les, 0.0015, mu_rel=0.05)
            c.edge(les, 0.7, 0.4)
        elif view == "oval solid mass":
            les = c.ellipse(lx, lz, _u(rng, 6, 9), _u(rng, 3.5, 5), _u(rng, -10, 10))
            c.fill(les, 0.05 * np.exp(0.3 * c.texture(1.0)), mu_rel=0.8)
            c.edge(les, 0.5, 0.4)
        else:
            n = 14
            ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
            rad = np.where(np.arange(n) % 2 == 0, rng.uniform(5, 8, n), rng.uniform(3, 4.5, n))
            pts = [(lx + r * np.cos(a), lz + 0.8 * r * np.sin(a)) for r, a in zip(rad, ang, strict=True)]
            les = c.polygon_mask(pts)
            c.fill(les, 0.02, mu_rel=4.0)
            c.edge(les, 0.3, 0.8)

    return Plan("breast", view, probe, settings, "Breast", f"R BREAST {clock}:00 {int(rng.integers(1, 6))}CM FN", "breast",
                paint, "BREAST", "BREAST ULTRASOUND (SYNTHETIC)", frame_rate_hz=int(rng.integers(18, 35)))


# ------------------------------------------------------------------ colour Doppler


def doppler_carotid(rng: np.random.Generator, variant: int) -> Plan:
    depth = float(np.round(_u(rng, 30, 40)))
    probe = Probe(str(rng.choice(["L12-4 SYN", "L9-3 PHX", "L15-7 ESM"])), "linear", _u(rng, 6.0, 9.0), depth,
                  width_mm=_u(rng, 38, 46))
    settings = Settings(gain_db=_u(rng, -21, -17), dynamic_range_db=_u(rng, 55, 62), gamma=_u(rng, 1.5, 1.9),
                        tgc_fraction=_u(rng, 0.85, 1.0), noise_grey=_u(rng, 22, 28), focus_mm=_u(rng, 15, 22))
    steer = float(rng.choice([-20.0, 20.0]))

    def paint(c: Canvas) -> None:
        c.fill(c.d < 1.2, 1.0)
        c.coherent[(c.d > 0.2) & (c.d < 0.5)] = 1.1
        c.fill(c.d >= 1.2, 0.1 * np.exp(0.3 * c.texture(2.0)))
        scm = c.band(2.5, c.curve(_u(rng, 8, 11), amp=0.8, period=40))
        c.fill(scm, 0.1)
        c.fibre(scm, 0.0, 0.85)
        c.coherent[c.band(2.5, 2.8)] = 0.8
        cz = _u(rng, 17, 22)
        slope = _u(rng, -0.08, 0.08)
        diam = _u(rng, 6.0, 7.5)
        w = probe.width_mm
        pts = [(x, cz + slope * x) for x in np.linspace(-w * 0.7, w * 0.7, 8)]
        lumen = c.vessel(pts, diam, wall=0.0, flow=_u(rng, 0.75, 1.0) * np.sign(steer))
        off = diam / 2
        for sgn in (-1, 1):
            for extra, amp in ((0.0, 0.9), (0.8, 1.2)):
                c.line([(x, z + sgn * (off + extra)) for x, z in pts], amp, 0.4)
        c.flow[lumen] = c.flow[lumen]
        jz = cz - diam / 2 - _u(rng, 4, 6)
        jpts = [(x, jz + slope * x + 0.6 * np.sin(x / 7)) for x in np.linspace(-w * 0.7, w * 0.7, 8)]
        c.vessel(jpts, _u(rng, 5, 8), wall=0.0, flow=-_u(rng, 0.35, 0.6) * np.sign(steer))
        c.set_colour_box(-w * 0.3, w * 0.3, jz - 6, cz + diam + 4, steer)

    return Plan("doppler_carotid", "common carotid, longitudinal, colour Doppler", probe, settings, "Carotid",
                f"{'R' if rng.random() < 0.5 else 'L'} CCA LONG", "neck", paint, "NECK", "CAROTID DUPLEX (SYNTHETIC)",
                doppler=True, extra=("CF 5.0M", f"PRF {_u(rng, 3, 5):.1f}k", f"Steer {steer:+.0f}"),
                frame_rate_hz=int(rng.integers(12, 22)))


def doppler_cardiac(rng: np.random.Generator, variant: int) -> Plan:
    base = cardiac(rng, 0 if variant % 2 == 0 else 2)
    inner = base.paint

    def paint(c: Canvas) -> None:
        inner(c)
        s = base.probe.depth_mm / 160
        two = base.view == "apical two-chamber"
        mx = (3.5 if two else 15.0)
        ox = c.pulse[0] if c.pulse else 0.0
        jet = c.ellipse(ox + s * (mx - 1), s * 82, 9 * s, 26 * s, -6) & (c.echo < 0.05)
        c.add_flow(jet, 0.95)
        c.flow[jet] = np.maximum(c.flow[jet], 0.35)
        turb = np.zeros(c.shape, np.float32)
        turb[jet & (c.d > s * 88)] = 1.0
        if rng.random() < 0.6:  # mitral regurgitation: a mosaic jet back into the atrium
            mr = c.ellipse(ox + s * (mx + 1), s * 120, 6 * s, 13 * s, 8) & (c.echo < 0.05)
            c.add_flow(mr, -1.0)
            turb[mr] = 1.0
        c.turbulence = turb
        a0 = np.degrees(np.arctan2(ox + s * (mx - 16), s * 100))
        a1 = np.degrees(np.arctan2(ox + s * (mx + 16), s * 100))
        c.set_colour_box(a0, a1, s * 40, s * 140)

    return Plan("doppler_cardiac", base.view + ", colour Doppler", base.probe, base.settings, "Adult Cardiac",
                base.label + " CFM", "heart", paint, "HEART", base.study, ecg=True, doppler=True,
                extra=("CF 2.0M", f"PRF {_u(rng, 4, 6):.1f}k"), frame_rate_hz=int(rng.integers(14, 24)), beat=base.beat)


def doppler_kidney(rng: np.random.Generator, variant: int) -> Plan:
    return abdominal(rng, 2, doppler=True)


def doppler_thyroid(rng: np.random.Generator, variant: int) -> Plan:
    return thyroid(rng, variant, power=True)


OTHER_SCENES: dict[str, Callable[[np.random.Generator, int], Plan]] = {
    "cardiac_sector": cardiac,
    "obstetric": obstetric,
    "abdominal": abdominal,
    "muscle": muscle,
    "thyroid": thyroid,
    "breast": breast,
}
DOPPLER_SCENES: dict[str, Callable[[np.random.Generator, int], Plan]] = {
    "doppler_carotid": doppler_carotid,
    "doppler_cardiac": doppler_cardiac,
    "doppler_kidney": doppler_kidney,
    "doppler_thyroid": doppler_thyroid,
}
