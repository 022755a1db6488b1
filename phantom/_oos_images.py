"""Images that are not ultrasound, for the out-of-scope set: photographs of natural scenes and
textures, scanned text documents, chest radiographs and computer screenshots.

Each generator ``kind(rng, variant) -> (image, note)`` returns a uint8 image (BGR, or grey where
the real thing usually is: a scanner's greyscale page, a radiograph) and a sentence on what it
shows. The images are smooth where photographs are smooth and flat where screens are flat; none
has speckle. Pure functions of the generator and the variant.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["NON_ULTRASOUND"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo "
    "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
    "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum"
).split()


def _field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field (≈ unit std) with about ``cells`` cells across the longer side."""
    gh, gw = max(2, int(cells * h / max(h, w)) + 2), max(2, int(cells * w / max(h, w)) + 2)
    low = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)


def _fractal(rng: np.random.Generator, h: int, w: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    for o in range(octaves):
        out += _field(rng, h, w, base * 2**o) / 1.7**o
    return out / float(out.std() + 1e-6)


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float, blur: float) -> np.ndarray:
    f = img.astype(np.float32)
    if blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), blur)
    f += np.float32(noise) * rng.standard_normal(f.shape, dtype=np.float32)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def _size(rng: np.random.Generator, options: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    return options[int(rng.integers(len(options)))]


# ------------------------------------------------------------------ photographs


def photo(rng: np.random.Generator, variant: int) -> tuple[np.ndarray, str]:
    w, h = _size(rng, ((1024, 768), (1280, 960), (800, 600), (1200, 800)))
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    kind = variant % 3
    if kind == 0:  # a landscape: sky, hills, a meadow, trees
        horizon = rng.uniform(0.42, 0.62)
        sky_top = np.array([rng.uniform(140, 200), rng.uniform(80, 120), rng.uniform(30, 60)], np.float32)  # BGR
        sky_low = np.array([rng.uniform(220, 250), rng.uniform(200, 230), rng.uniform(170, 210)], np.float32)
        t = np.clip(y / horizon, 0, 1)[..., None]
        img = sky_top * (1 - t) + sky_low * t + np.zeros((h, w, 3), np.float32)
        clouds = np.clip(_fractal(rng, h, w, 5, 3) - 0.6, 0, None)[..., None] * (y < horizon)[..., None]
        img += clouds * 45
        hills = (horizon - 0.08 * (1 + _field(rng, 1, w, 6)[0]) * rng.uniform(0.5, 1.0))[None, :]
        far = (y > hills) & (y <= horizon + 0.02)
        img[far] = (np.array([rng.uniform(110, 140), rng.uniform(120, 150), rng.uniform(90, 120)]) + 12 * _fractal(rng, h, w)[far][:, None])
        ground = y > horizon + 0.02 + 0.01 * _field(rng, 1, w, 12)[0][None, :]
        grass = np.array([rng.uniform(40, 70), rng.uniform(120, 160), rng.uniform(70, 110)], np.float32)
        tex = _fractal(rng, h, w, 6, 6)
        shade = (0.75 + 0.35 * y)[..., None]
        g_img = (grass + 25 * tex[..., None] * np.array([0.6, 1.0, 0.8])) * shade
        img = np.where(ground[..., None], g_img, img)
        for _ in range(int(rng.integers(4, 12))):
            cx, cy = int(rng.uniform(0, w)), int((horizon + 0.02) * h)
            rx, ry = int(rng.uniform(15, 60)), int(rng.uniform(30, 110))
            col = (rng.uniform(20, 40), rng.uniform(60, 90), rng.uniform(30, 50))
            cv2.ellipse(img, (cx, cy - ry // 2), (rx, ry), 0, 0, 360, col, -1, cv2.LINE_AA)
        note = "photograph-like landscape: sky gradient, clouds, hills, meadow and trees"
    elif kind == 1:  # an indoor scene out of focus: warm gradient, bokeh, an object
        a = np.array([rng.uniform(30, 80), rng.uniform(60, 110), rng.uniform(110, 170)], np.float32)
        b = np.array([rng.uniform(120, 180), rng.uniform(150, 200), rng.uniform(180, 240)], np.float32)
        t = np.clip(0.6 * x + 0.4 * y + 0.1 * _field(rng, h, w, 3), 0, 1)[..., None]
        img = a * (1 - t) + b * t
        bokeh = np.zeros((h, w, 3), np.float32)
        for _ in range(int(rng.integers(10, 30))):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h * 0.7)))
            r = int(rng.uniform(10, 60))
            col = tuple(float(v) for v in rng.uniform(60, 160, 3))
            cv2.circle(bokeh, c, r, col, -1, cv2.LINE_AA)
        img += cv2.GaussianBlur(bokeh, (0, 0), 6) * 0.6
        # a mug on a table
        table = y > rng.uniform(0.6, 0.75)
        img = np.where(table[..., None], np.array([rng.uniform(40, 70), rng.uniform(70, 100), rng.uniform(110, 150)]) * (0.8 + 0.3 * y[..., None]) + 10 * _fractal(rng, h, w, 5, 8)[..., None], img)
        mx, my = int(rng.uniform(0.3, 0.7) * w), int(np.argmax(table[:, 0]) if table[:, 0].any() else h * 0.7)
        mw, mh = int(w * 0.12), int(h * 0.22)
        mug = np.zeros((h, w), np.uint8)
        cv2.rectangle(mug, (mx - mw, my - mh), (mx + mw, my + 10), 1, -1)
        shade = np.clip(1.0 - np.abs((x * w - mx) / mw), 0, 1)
        colour = rng.uniform(60, 230, 3).astype(np.float32)
        img = np.where(mug[..., None] > 0, colour * (0.55 + 0.5 * shade[..., None]), img)
        cv2.ellipse(img, (mx + mw + 12, my - mh // 2), (22, 34), 0, -90, 90, tuple(float(v) * 0.8 for v in colour), 9, cv2.LINE_AA)
        note = "photograph-like indoor scene out of focus: colour gradient, bokeh, a mug on a table"
    else:  # a natural texture close up: wood grain, or stone
        if rng.random() < 0.5:
            warp = _fractal(rng, h, w, 4, 3) * rng.uniform(6, 14)
            rings = np.sin((x * w * rng.uniform(0.02, 0.05) + warp + 0.3 * _field(rng, h, w, 40)) * 2 * np.pi * 0.25)
            base = np.array([rng.uniform(40, 70), rng.uniform(90, 120), rng.uniform(140, 180)], np.float32)
            img = base * (0.75 + 0.2 * rings[..., None] + 0.05 * _fractal(rng, h, w, 6, 20)[..., None])
            note = "photograph-like texture: wood grain"
        else:
            tex = _fractal(rng, h, w, 6, 5)
            cells = _field(rng, h, w, 18)
            base = np.array([rng.uniform(100, 150), rng.uniform(110, 160), rng.uniform(120, 170)], np.float32)
            img = base * (0.8 + 0.12 * tex[..., None]) + 25 * np.tanh(2 * cells)[..., None] * np.array([0.9, 1.0, 1.1])
            note = "photograph-like texture: pebbles and stone"
    return _finish(img, rng, rng.uniform(1.5, 3.5), rng.uniform(0.5, 1.2)), note


# ------------------------------------------------------------------ scanned documents


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, size=n))


def document(rng: np.random.Generator, variant: int) -> tuple[np.ndarray, str]:
    w, h = _size(rng, ((850, 1100), (827, 1169), (1100, 850), (1240, 1754)))
    k = w / 850 if w < h else h / 850
    page = np.clip(245.0 + 4 * _field(rng, h, w, 3), 0, 255).astype(np.uint8)  # text is drawn on 8 bits
    ink = 25
    m = int(70 * k)
    ypos = int(90 * k)
    s = 0.55 * k
    line_h = int(24 * k)
    kind = variant % 3
    title = ("REFERRAL LETTER", "REQUEST FORM", "LABORATORY REPORT")[kind]
    cv2.putText(page, title, (m, ypos), FONT, 1.0 * k, ink, max(2, int(2 * k)), cv2.LINE_AA)
    ypos += int(16 * k)
    cv2.line(page, (m, ypos), (w - m, ypos), ink, max(1, int(k)))
    ypos += int(40 * k)
    for label in ("Ref:", "Date:", "Dept:"):
        cv2.putText(page, f"{label} {_words(rng, 2)} {int(rng.integers(100, 999))}", (m, ypos), FONT, s, ink, 1, cv2.LINE_AA)
        ypos += line_h
    ypos += line_h
    if kind == 0:
        while ypos < h - 4 * m:
            for _ in range(int(rng.integers(3, 7))):
                text = _words(rng, int(rng.integers(9, 13)))
                cv2.putText(page, text, (m, ypos), FONT, s, ink, 1, cv2.LINE_AA)
                ypos += line_h
            ypos += line_h
        sx, sy = m + 20, h - 2 * m
        pts = np.array([[sx + i * 4, sy + int(12 * np.sin(i * 0.7) * k + rng.normal(0, 2))] for i in range(40)], np.int32)
        cv2.polylines(page, [pts], False, 40, 2, cv2.LINE_AA)
        note = "scanned text document: a letter with paragraphs and a signature"
    elif kind == 1:
        rows, cols = int(rng.integers(8, 14)), int(rng.integers(3, 5))
        cw, rh = (w - 2 * m) // cols, int(34 * k)
        for r in range(rows + 1):
            cv2.line(page, (m, ypos + r * rh), (m + cols * cw, ypos + r * rh), ink, 1)
        for c in range(cols + 1):
            cv2.line(page, (m + c * cw, ypos), (m + c * cw, ypos + rows * rh), ink, 1)
        for r in range(rows):
            for c in range(cols):
                if rng.random() < 0.75:
                    cv2.putText(page, _words(rng, 2)[: max(4, cw // int(11 * k))], (m + c * cw + 6, ypos + r * rh + int(23 * k)),
                                FONT, s * 0.9, ink, 1, cv2.LINE_AA)
                if c == cols - 1 and rng.random() < 0.5:
                    cv2.rectangle(page, (m + c * cw + cw - int(26 * k), ypos + r * rh + 8),
                                  (m + c * cw + cw - 10, ypos + r * rh + rh - 8), ink, 1)
        ypos += rows * rh + 2 * line_h
        while ypos < h - 2 * m:
            cv2.putText(page, _words(rng, int(rng.integers(8, 12))), (m, ypos), FONT, s, ink, 1, cv2.LINE_AA)
            ypos += line_h
        note = "scanned text document: a form with a table and tick boxes"
    else:
        while ypos < h - 2 * m:
            cv2.putText(page, _words(rng, 2).upper(), (m, ypos), FONT, s, ink, 1, cv2.LINE_AA)
            cv2.putText(page, f"{rng.uniform(0.1, 400):.1f}", (int(w * 0.5), ypos), FONT, s, ink, 1, cv2.LINE_AA)
            cv2.putText(page, str(rng.choice(["mmol/L", "g/L", "U/L", "umol/L", "%"])), (int(w * 0.65), ypos), FONT, s, ink, 1,
                        cv2.LINE_AA)
            cv2.putText(page, f"{rng.uniform(0.1, 50):.1f} - {rng.uniform(50, 500):.0f}", (int(w * 0.8), ypos), FONT, s * 0.9,
                        ink, 1, cv2.LINE_AA)
            ypos += line_h
        note = "scanned text document: a laboratory report in columns"
    cv2.putText(page, f"Page 1 of {int(rng.integers(1, 4))}", (w // 2 - int(40 * k), h - int(30 * k)), FONT, s * 0.8, ink, 1,
                cv2.LINE_AA)
    # scanning: a slight rotation, the scanner lid's shadow at one edge, blur and noise
    angle = rng.uniform(-1.5, 1.5)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    page = cv2.warpAffine(page, rot, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=200).astype(np.float32)
    edge = np.clip(1 - np.arange(w, dtype=np.float32) / (18 * k), 0, 1)[None, :]
    page *= 1 - 0.5 * (edge if rng.random() < 0.5 else edge[:, ::-1])
    img = _finish(page, rng, rng.uniform(2, 4), rng.uniform(0.4, 0.9))
    if rng.random() < 0.5:
        tint = np.array([rng.uniform(0.88, 0.95), rng.uniform(0.95, 1.0), 1.0], np.float32)
        img = np.clip(img[..., None].astype(np.float32) * tint, 0, 255).astype(np.uint8)
        note += " (colour scan)"
    return img, note


# ------------------------------------------------------------------ chest radiographs


def xray(rng: np.random.Generator, variant: int) -> tuple[np.ndarray, str]:
    w, h = _size(rng, ((1024, 1024), (880, 1024), (1024, 1240), (768, 900)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = rng.uniform(-0.03, 0.03)
    u, v = (xx - w / 2) / (w / 2) - cx, yy / h  # u: −1…1 about the spine, v: 0 (top) … 1
    dens = np.zeros((h, w), np.float32)  # radio-opacity: high = white
    half = 0.86 - 0.5 * np.clip(0.16 - v, 0, None) ** 1.0 * 3  # the chest wall, narrowing to the shoulders
    body = (np.abs(u) < half) & (v > 0.02)
    dens[body] = 0.5
    dens[(np.abs(u) < 0.2) & (v < 0.16)] = 0.58  # neck
    lung_top, lung_bot = rng.uniform(0.12, 0.17), rng.uniform(0.7, 0.78)
    lungs = np.zeros((h, w), np.float32)
    for sgn in (-1, 1):
        inner, outer = 0.1 + (0.06 if sgn > 0 else 0.0), rng.uniform(0.74, 0.8)
        dome = lung_bot + (0.03 if sgn > 0 else 0.0) - 0.07 * np.clip((outer - np.abs(u)) / (outer - inner), 0, 1) ** 0.5
        apex = lung_top + 0.1 * ((np.abs(u) - (inner + outer) / 2) / ((outer - inner) / 2)) ** 2
        shape = (sgn * u > inner) & (sgn * u < outer) & (v > apex) & (v < dome)
        lungs[shape] = 1.0
    lungs = cv2.GaussianBlur(lungs, (0, 0), w * 0.012)
    heart = (((u - 0.14) / 0.32) ** 2 + ((v - lung_bot + 0.14) / 0.16) ** 2 <= 1).astype(np.float32)
    heart = cv2.GaussianBlur(heart, (0, 0), w * 0.01)
    lungs *= 1.0 - 0.75 * heart
    dens -= 0.36 * lungs
    medi = cv2.GaussianBlur(((np.abs(u) < 0.11) & (v > 0.05) & (v < lung_bot)).astype(np.float32), (0, 0), w * 0.008)
    dens += 0.1 * medi + 0.05 * heart
    trachea = cv2.GaussianBlur(((np.abs(u) < 0.035) & (v > 0.02) & (v < 0.3)).astype(np.float32), (0, 0), w * 0.004)
    dens -= 0.1 * trachea
    dens += ((np.abs(u) < 0.06) * (0.04 + 0.03 * np.sin(v * 2 * np.pi * 24) ** 2)).astype(np.float32)  # vertebrae
    dens[(v > lung_bot + 0.04) & body] = np.maximum(dens[(v > lung_bot + 0.04) & body], 0.56)
    ribs = np.zeros((h, w), np.float32)
    th = max(5, int(w * 0.016))
    xs = np.linspace(0, 1, 40)
    for sgn in (-1, 1):
        for i in range(10):
            y0 = lung_top + 0.015 + i * (lung_bot - lung_top) / 10.5
            width = 0.5 + 0.3 * np.sin(np.pi * min(1.0, (i + 2) / 9))
            pts = [((0.5 + cx / 2 + sgn * (0.04 + t * width) / 2) * w,
                    (y0 - 0.035 * np.sin(np.pi * t * 0.9) + 0.09 * t**3) * h) for t in xs]
            cv2.polylines(ribs, [np.array(pts, np.int32)], False, 1.0, th, cv2.LINE_8)
    for sgn in (-1, 1):  # clavicles and the heads of the humeri
        p0 = (int((0.5 + cx / 2 + sgn * 0.05) * w), int(0.17 * h))
        p1 = (int((0.5 + cx / 2 + sgn * 0.4) * w), int(0.11 * h))
        cv2.line(ribs, p0, p1, 1.4, int(th * 1.5), cv2.LINE_8)
        cv2.circle(ribs, (int((0.5 + sgn * 0.47) * w), int(0.15 * h)), int(0.075 * w), 1.0, -1, cv2.LINE_8)
    dens += 0.12 * cv2.GaussianBlur(ribs, (0, 0), 2.0)
    vessels = np.zeros((h, w), np.float32)
    for sgn in (-1, 1):
        for _ in range(16):
            a = rng.uniform(-1.1, 1.1)
            x0, y0 = (0.5 + (cx + sgn * 0.1) / 2) * w, rng.uniform(0.38, 0.5) * h
            length = rng.uniform(0.15, 0.35)
            pts = [(x0 + sgn * t * np.cos(a) * length * w, y0 + t * np.sin(a) * length * h) for t in np.linspace(0, 1, 6)]
            cv2.polylines(vessels, [np.array(pts, np.int32)], False, 1.0, 3, cv2.LINE_8)
    dens += 0.07 * cv2.GaussianBlur(vessels, (0, 0), 2.5) * lungs
    if variant % 3 == 2:  # ECG electrodes and leads, as on a ward film
        for _ in range(3):
            p = (int(rng.uniform(0.25, 0.75) * w), int(rng.uniform(0.3, 0.8) * h))
            cv2.circle(dens, p, int(0.012 * w), 1.0, -1, cv2.LINE_8)
            cv2.line(dens, p, (int(rng.uniform(0.0, 1.0) * w), h - 1), 0.95, 2, cv2.LINE_8)
    dens = cv2.GaussianBlur(dens, (0, 0), 1.2) + 0.025 * _fractal(rng, h, w, 5, 8)
    grey = 255 * np.clip(dens * rng.uniform(1.15, 1.35), 0, 1) ** rng.uniform(0.9, 1.3)
    collimation = int(rng.uniform(0.0, 0.04) * w)
    if collimation:
        grey[:, :collimation] = 230
        grey[:, w - collimation :] = 230
    img = _finish(grey, rng, rng.uniform(1.5, 3.0), 0.5)
    marker = "R" if rng.random() < 0.8 else "L"
    cv2.putText(img, marker, (int(0.06 * w), int(0.08 * h)), FONT, 1.6 * w / 1024, 250, 3, cv2.LINE_AA)
    return img, "chest-radiograph-like grey image (PA view): lungs, heart, ribs, clavicles" + (", ECG leads" if variant % 3 == 2 else "")


# ------------------------------------------------------------------ screenshots


def _button(img: np.ndarray, x: int, y: int, w: int, h: int, colour: tuple, text: str, s: float) -> None:
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
    cv2.rectangle(img, (x, y), (x + w, y + h), tuple(max(0, c - 40) for c in colour), 1)
    cv2.putText(img, text, (x + 8, y + int(h * 0.68)), FONT, s, (30, 30, 30) if sum(colour) > 380 else (240, 240, 240), 1, cv2.LINE_AA)


def screenshot(rng: np.random.Generator, variant: int) -> tuple[np.ndarray, str]:
    w, h = _size(rng, ((1280, 720), (1920, 1080), (1366, 768), (1024, 768)))
    k = h / 768
    s = 0.5 * k
    kind = variant % 4
    if kind == 3:  # a grabber with no signal
        colour = (120, 40, 10) if rng.random() < 0.5 else (0, 0, 0)
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = colour
        cv2.putText(img, "NO SIGNAL", (w // 2 - int(120 * k), h // 2), FONT, 1.4 * k, (230, 230, 230), 2, cv2.LINE_AA)
        cv2.putText(img, "HDMI 1", (w // 2 - int(40 * k), h // 2 + int(40 * k)), FONT, 0.8 * k, (200, 200, 200), 1, cv2.LINE_AA)
        return img, "screenshot-like image: a video input with no signal"
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    a, b = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    img = (a * (1 - yy) + b * yy + np.zeros((h, w, 3))).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    bar = int(40 * k)
    img[h - bar :] = (40, 36, 32)
    for i in range(int(rng.integers(5, 9))):
        cx = int(60 * k + i * 52 * k)
        cv2.rectangle(img, (cx, h - bar + int(8 * k)), (cx + int(26 * k), h - int(8 * k)),
                      tuple(int(v) for v in rng.integers(80, 255, 3)), -1)
    cv2.putText(img, f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(0, 60)):02d}", (w - int(80 * k), h - int(14 * k)), FONT,
                s, (235, 235, 235), 1, cv2.LINE_AA)
    for i in range(int(rng.integers(3, 7))):  # desktop icons
        y0 = int(30 * k + i * 90 * k)
        cv2.rectangle(img, (int(30 * k), y0), (int(78 * k), y0 + int(44 * k)), tuple(int(v) for v in rng.integers(60, 255, 3)), -1)
        cv2.putText(img, _words(rng, 1)[:9], (int(22 * k), y0 + int(64 * k)), FONT, s * 0.8, (250, 250, 250), 1, cv2.LINE_AA)
    if kind == 0:
        return img, "screenshot-like image: an empty desktop with icons and a task bar"
    x0, y0 = int(rng.uniform(0.1, 0.2) * w), int(rng.uniform(0.06, 0.12) * h)
    x1, y1 = int(rng.uniform(0.8, 0.95) * w), int(rng.uniform(0.8, 0.88) * h)
    img[y0:y1, x0:x1] = (250, 250, 250)
    title = int(30 * k)
    accent = tuple(int(v) for v in rng.integers(60, 220, 3))
    img[y0 : y0 + title, x0:x1] = accent
    cv2.putText(img, f"{_words(rng, 2).title()} - Viewer", (x0 + 10, y0 + int(21 * k)), FONT, s, (255, 255, 255), 1, cv2.LINE_AA)
    for i, c in enumerate(((80, 80, 230), (80, 200, 240), (80, 200, 80))):
        cv2.circle(img, (x1 - int((20 + 22 * i) * k), y0 + title // 2), int(7 * k), c, -1, cv2.LINE_AA)
    my = y0 + title
    img[my : my + int(26 * k), x0:x1] = (238, 238, 238)
    for i, item in enumerate(("File", "Edit", "View", "Tools", "Help")):
        cv2.putText(img, item, (x0 + 12 + int(i * 62 * k), my + int(18 * k)), FONT, s * 0.9, (40, 40, 40), 1, cv2.LINE_AA)
    ty = my + int(26 * k)
    for i in range(int(rng.integers(4, 8))):
        _button(img, x0 + 8 + int(i * 92 * k), ty + int(6 * k), int(84 * k), int(28 * k), (225, 225, 225), _words(rng, 1)[:8], s * 0.8)
    cy = ty + int(44 * k)
    side = x0 + int(200 * k)
    img[cy:y1, x0:side] = (244, 240, 236)
    for i in range((y1 - cy) // int(26 * k) - 1):
        cv2.putText(img, _words(rng, 2).title(), (x0 + 14, cy + int((i + 1) * 26 * k)), FONT, s * 0.85, (60, 60, 60), 1, cv2.LINE_AA)
    if kind == 1:
        for i in range((y1 - cy) // int(24 * k) - 2):
            cv2.putText(img, _words(rng, int(rng.integers(6, 12))), (side + 20, cy + int((i + 1.5) * 24 * k)), FONT, s * 0.9,
                        (30, 30, 30), 1, cv2.LINE_AA)
        note = "screenshot-like image: a document viewer window on a desktop"
    else:
        cols, rh = int(rng.integers(5, 9)), int(24 * k)
        cw = (x1 - side - 20) // cols
        img[cy : cy + rh, side : x1] = (210, 225, 240)
        for r in range((y1 - cy) // rh):
            yl = cy + r * rh
            cv2.line(img, (side, yl), (x1, yl), (200, 200, 200), 1)
            for c in range(cols):
                txt = _words(rng, 1)[:7] if r == 0 or c == 0 else f"{rng.uniform(0, 999):.1f}"
                cv2.putText(img, txt, (side + 6 + c * cw, yl + int(17 * k)), FONT, s * 0.8, (30, 30, 30), 1, cv2.LINE_AA)
        for c in range(cols + 1):
            cv2.line(img, (side + c * cw, cy), (side + c * cw, y1), (200, 200, 200), 1)
        note = "screenshot-like image: a spreadsheet window on a desktop"
    return img, note


NON_ULTRASOUND: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, str]]] = {
    "photo": photo,
    "document": document,
    "xray": xray,
    "screenshot": screenshot,
}
