"""Text and shapes for the exam's pictures (legend, summary, printable page), drawn with Pillow.

The cart's base install has Pillow but no plotting library, and OpenCV's Hershey fonts are hard
to read at small sizes. Text is set in DejaVu Sans when the system has it (Debian's
``fonts-dejavu-core``), else in Pillow's built-in scalable font (ASCII and a few symbols; ``≥``,
``–`` and ``×`` are written as ``>=``, ``-`` and ``x`` there). Images travel as BGR ``uint8``
numpy arrays, as everywhere else in the runtime; a ``Canvas`` is the one place where they meet
Pillow's RGB.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Canvas", "font", "font_file", "text_width", "wrap"]

BGR = tuple[int, int, int]

_FALLBACK = str.maketrans({"≥": ">=", "≤": "<=", "–": "-", "—": "-", "×": "x", "→": "->", "µ": "u"})


@lru_cache(maxsize=2)
def _family(bold: bool) -> str | None:
    for name in (("DejaVuSans-Bold.ttf",) if bold else ("DejaVuSans.ttf",)):
        try:
            ImageFont.truetype(name, 12)
            return name
        except OSError:
            continue
    return None


@lru_cache(maxsize=2)
def font_file(bold: bool = False) -> str | None:
    """The path of the TrueType file the pictures are set in (DejaVu Sans), or None when only
    Pillow's own font is at hand: the printable report embeds the same face."""
    name = _family(bold)
    if name is None:
        return None
    return str(getattr(ImageFont.truetype(name, 12), "path", "") or "") or None


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> Any:
    """A scalable font of ``size`` px: DejaVu Sans (bold) when installed, else Pillow's own."""
    size = max(6, int(size))
    name = _family(bold)
    if name is not None:
        return ImageFont.truetype(name, size)
    return ImageFont.load_default(size=size)


def _printable(text: str, size: int, bold: bool) -> str:
    return text if _family(bold) is not None else text.translate(_FALLBACK)


def text_width(text: str, size: int, bold: bool = False) -> int:
    return int(round(font(size, bold).getlength(_printable(text, size, bold))))


def wrap(text: str, size: int, max_width: float, *, max_lines: int = 3, bold: bool = False) -> list[str]:
    """``text`` broken at spaces into lines at most ``max_width`` px wide, ``max_lines`` at most
    (what does not fit is left on the last line, which ``Canvas.text`` then cuts with an ellipsis);
    a word longer than a line (a file name) is broken inside it rather than cut."""
    s = _printable(text, size, bold)
    f = font(size, bold)
    lines: list[str] = []
    words = s.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        if f.getlength(line) > max_width and len(lines) < max_lines - 1:  # a long name: break it inside
            cut = len(line)
            while cut > 1 and f.getlength(line[:cut]) > max_width:
                cut -= 1
            words.insert(0, line[cut:])
            line = line[:cut]
        else:
            while words and f.getlength(line + " " + words[0]) <= max_width:
                line += " " + words.pop(0)
        lines.append(line)
    if words:
        lines[-1] = lines[-1] + " " + " ".join(words)
    return lines


def _rgb(colour: BGR) -> tuple[int, int, int]:
    b, g, r = colour
    return (int(r), int(g), int(b))


class Canvas:
    """A drawing surface of ``width`` × ``height`` filled with ``background`` (BGR)."""

    def __init__(self, width: int, height: int, background: BGR = (255, 255, 255)) -> None:
        self.image = Image.new("RGB", (int(width), int(height)), _rgb(background))
        self.draw = ImageDraw.Draw(self.image)

    @classmethod
    def of(cls, bgr: np.ndarray) -> Canvas:
        """A canvas holding a copy of a BGR (or grey) image."""
        c = cls.__new__(cls)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
        c.image = Image.fromarray(rgb)
        c.draw = ImageDraw.Draw(c.image)
        return c

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def text(self, xy: tuple[float, float], text: str, size: int, colour: BGR = (0, 0, 0), *, bold: bool = False,
             anchor: str = "la", max_width: int | None = None, halo: BGR | None = None) -> int:
        """Draw ``text`` (anchor as in Pillow: ``la`` left/ascender, ``ra`` right, ``mm`` middle);
        cut with an ellipsis to ``max_width`` px; ``halo``: an outline of that colour that keeps it
        legible over lines. Returns the width drawn."""
        s = _printable(text, size, bold)
        f = font(size, bold)
        if max_width is not None and f.getlength(s) > max_width:
            while s and f.getlength(s + "…") > max_width:
                s = s[:-1]
            s = s.rstrip() + "…"
        self.draw.text((float(xy[0]), float(xy[1])), s, font=f, fill=_rgb(colour), anchor=anchor,
                       stroke_width=0 if halo is None else max(2, size // 7),
                       stroke_fill=None if halo is None else _rgb(halo))
        return int(round(f.getlength(s)))

    def paragraph(self, xy: tuple[float, float], text: str, size: int, colour: BGR = (0, 0, 0), *, max_width: int,
                  max_lines: int = 3, bold: bool = False, leading: float = 1.3) -> int:
        """``text`` wrapped at word boundaries to ``max_width`` px, at most ``max_lines`` lines (the
        last one cut with an ellipsis). Returns the height used."""
        lines = wrap(text, size, max_width, max_lines=max_lines, bold=bold)
        y = float(xy[1])
        for line in lines:
            self.text((xy[0], y), line, size, colour, bold=bold, max_width=max_width)
            y += size * leading
        return int(round(y - float(xy[1])))

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: BGR | None = None, outline: BGR | None = None,
             width: int = 1) -> None:
        self.draw.rectangle((x0, y0, x1, y1), fill=None if fill is None else _rgb(fill),
                            outline=None if outline is None else _rgb(outline), width=width)

    def line(self, points: list[tuple[float, float]], colour: BGR, width: int = 1) -> None:
        self.draw.line(points, fill=_rgb(colour), width=width)

    def polygon(self, points: list[tuple[float, float]], fill: BGR) -> None:
        self.draw.polygon(points, fill=_rgb(fill))

    def paste(self, bgr: np.ndarray, xy: tuple[int, int]) -> None:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
        self.image.paste(Image.fromarray(rgb), (int(xy[0]), int(xy[1])))

    def bgr(self) -> np.ndarray:
        return cv2.cvtColor(np.asarray(self.image), cv2.COLOR_RGB2BGR)
