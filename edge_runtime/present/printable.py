"""``report.pdf``: the exam on paper, as a vector PDF (docs/design.md §13).

Text is text — set in DejaVu Sans (the face of the pictures) or, where the system has no DejaVu,
in Bitstream Vera, which ReportLab ships; either is embedded as a subset with its Unicode map, so
the page can be searched and copied and prints the same on any printer. The key frames' CAM
overlays are images (lossless); the fraction scale and the probability chart are drawn as
vectors. One page, A4 (the default) or US Letter: the verdict and its reason with the
not-for-clinical-use statement beside it, patient, exam and bundle, the abnormal fraction against
the threshold, the key frames with the highest probability (their captions as text), every key
frame's probability, the frames not counted, the small print and a block for the reviewer's
signature. Should an exam ever need more room, the page breaks before a section and each page
says "page N of M".

ReportLab (BSD licence, pure Python) writes the file; why it and not another writer: §13.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from gout_edge._io import atomic_write_bytes
from gout_edge._version import __version__
from gout_edge.edge_runtime.pipeline.results import PatientResult
from gout_edge.errors import UsageError
from gout_edge.manifest import CamScale

from ._draw import font_file
from .report import (
    RESEARCH_USE,
    RESEARCH_USE_MORE,
    ExamIdentity,
    ExcludedFrames,
    Tile,
    _exclusion_examples,
    below_cutoff,
    chart_labels,
    example_caption,
    exclusion_lines,
    footer_lines,
    identity_rows,
    key_number,
    overlay_body,
    source_label,
    tiles_heading,
    tiles_note,
    why_line,
)

__all__ = ["PAPER_ENV", "PAPERS", "paper_name", "write_report_pdf"]

PAPER_ENV = "GOUT_EDGE_PAPER"  # the default paper size where no option names one
PAPERS = {"a4": (595.276, 841.89), "letter": (612.0, 792.0)}  # points (1/72 inch), portrait

RGB = tuple[float, float, float]
INK: RGB = (0.12, 0.12, 0.12)
MUTED: RGB = (0.40, 0.40, 0.40)
RULE: RGB = (0.82, 0.82, 0.82)
RED: RGB = (0.72, 0.12, 0.12)
GREEN: RGB = (0.18, 0.50, 0.20)
VERDICT: dict[str, RGB] = {"gout": (0.78, 0.16, 0.16), "no gout": (0.16, 0.55, 0.24), "indeterminate": (0.86, 0.51, 0.0)}
SANS, BOLD = "GoutEdgeSans", "GoutEdgeSans-Bold"
_FALLBACK = str.maketrans({"≥": ">=", "≤": "<=", "→": "->", "µ": "u"})


def paper_name(paper: str | None = None) -> str:
    """``a4`` or ``letter``: ``paper``, else ``$GOUT_EDGE_PAPER``, else ``a4``. Anything else is a
    usage error naming the value and where it came from."""
    where = "--paper"
    if paper is None:
        paper, where = os.environ.get(PAPER_ENV) or "a4", PAPER_ENV
    name = str(paper).strip().lower().replace("us-letter", "letter").replace("us letter", "letter")
    if name not in PAPERS:
        raise UsageError(f"{where} {paper!r} is not a paper size this report knows; expected a4 or letter "
                         f"(A4 is the default; set {PAPER_ENV}=letter for US Letter)")
    return name


@lru_cache(maxsize=1)
def _fonts() -> bool:
    """Register the embedded faces once; True when they are DejaVu (every symbol), False for Vera."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold = font_file(False), font_file(True)
    dejavu = bool(regular and bold)
    pdfmetrics.registerFont(TTFont(SANS, regular if dejavu else "Vera.ttf"))
    pdfmetrics.registerFont(TTFont(BOLD, bold if dejavu else "VeraBd.ttf"))
    return dejavu


def _t(text: str) -> str:
    return text if _fonts() else text.translate(_FALLBACK)


def _width(text: str, size: float, bold: bool = False) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return float(stringWidth(_t(text), BOLD if bold else SANS, size))


def _wrap(text: str, size: float, width: float, bold: bool = False) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` pt; a word longer than a line (a
    file name, a hash) is broken inside it. Nothing is cut."""
    lines: list[str] = []
    line = ""
    for word in _t(text).split():
        while _width(word, size, bold) > width and len(word) > 1:
            if line:
                lines.append(line)
                line = ""
            cut = len(word)
            while cut > 1 and _width(word[:cut], size, bold) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}" if line else word
        if line and _width(candidate, size, bold) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


class _Page:
    """A top-down cursor over ReportLab's bottom-up canvas: ``y`` is the distance from the top edge."""

    def __init__(self, canvas: object, size: tuple[float, float], margin: float, dry: bool = False) -> None:
        self.c = canvas
        self.dry = dry  # a trial layout: pictures are measured, not embedded
        self.w, self.h = size
        self.m = margin
        self.y = margin
        self.number = 1

    @property
    def left(self) -> float:
        return self.m

    @property
    def width(self) -> float:
        return self.w - 2 * self.m

    @property
    def room(self) -> float:
        return self.h - self.m - 22 - self.y  # above the page footer

    def text(self, x: float, y: float, text: str, size: float, colour: RGB = INK, *, bold: bool = False,
             align: str = "left") -> float:
        """One line with its top at ``y``; returns its width."""
        c = self.c
        c.setFillColorRGB(*colour)
        c.setFont(BOLD if bold else SANS, size)
        s = _t(text)
        baseline = self.h - y - size * 0.8
        if align == "right":
            c.drawRightString(x, baseline, s)
        elif align == "centre":
            c.drawCentredString(x, baseline, s)
        else:
            c.drawString(x, baseline, s)
        return _width(s, size, bold)

    def lines(self, x: float, y: float, lines: Sequence[str], size: float, colour: RGB = INK, *, bold: bool = False,
              leading: float = 1.25) -> float:
        """Lines from ``y`` down; returns the height used."""
        for i, line in enumerate(lines):
            self.text(x, y + i * size * leading, line, size, colour, bold=bold)
        return len(lines) * size * leading

    def rect(self, x: float, y: float, w: float, h: float, fill: RGB | None = None, stroke: RGB | None = None,
             line_width: float = 0.6) -> None:
        c = self.c
        if fill is not None:
            c.setFillColorRGB(*fill)
        if stroke is not None:
            c.setStrokeColorRGB(*stroke)
            c.setLineWidth(line_width)
        c.rect(x, self.h - y - h, w, h, fill=int(fill is not None), stroke=int(stroke is not None))

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: RGB = RULE, width: float = 0.6,
             dash: tuple[float, float] | None = None) -> None:
        c = self.c
        c.setStrokeColorRGB(*colour)
        c.setLineWidth(width)
        c.setDash(*dash) if dash else c.setDash()
        c.line(x0, self.h - y0, x1, self.h - y1)
        c.setDash()

    def image(self, bgr: np.ndarray, x: float, y: float, w: float) -> float:
        """A BGR picture ``w`` pt wide, top at ``y`` (lossless); returns its height in pt."""
        from PIL import Image
        from reportlab.lib.utils import ImageReader

        h = w * bgr.shape[0] / bgr.shape[1]
        if self.dry:
            return h
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
        self.c.drawImage(ImageReader(Image.fromarray(rgb)), x, self.h - y - h, width=w, height=h)
        return h


def _page_frame(p: _Page, result: PatientResult, pages: int) -> None:
    """The running head and foot of each page."""
    head = "gout-edge · ultrasound exam of the first MTP joint"
    p.text(p.left, p.m - 20, head, 10.5, INK, bold=True)
    when = (result.ended_at or result.started_at or "").replace("T", " ")[:19]
    p.text(p.left + p.width, p.m - 19, f"report of {when}" if when else "", 8.5, MUTED, align="right")
    foot = p.h - p.m + 6
    p.line(p.left, foot - 4, p.left + p.width, foot - 4)
    p.text(p.left, foot, RESEARCH_USE, 7.5, RED, bold=True)
    p.text(p.left + p.width, foot, f"gout-edge {__version__} · exam {result.session_id} · page {p.number} of {pages}",
           7.5, MUTED, align="right")


def _verdict(p: _Page, result: PatientResult) -> None:
    gap = 10.0
    box_w = p.width * 0.6
    side_w = p.width - box_w - gap
    why = _wrap(why_line(result), 10.5, box_w - 20)
    use_title = _wrap(RESEARCH_USE.upper().rstrip("."), 10, side_w - 16, bold=True)
    use_more = _wrap(RESEARCH_USE_MORE + " This result is not a diagnosis.", 8.5, side_w - 16)
    box_h = 8 + 11 + 28 + len(why) * 10.5 * 1.25 + 8
    side_h = 10 + len(use_title) * 10 * 1.25 + 4 + len(use_more) * 8.5 * 1.3 + 10
    h = max(box_h, side_h)
    y = p.y
    colour = VERDICT.get(result.diagnosis, VERDICT["indeterminate"])
    p.rect(p.left, y, box_w, h, fill=colour)
    p.text(p.left + 10, y + 8, "Verdict", 9, (1, 1, 1))
    p.text(p.left + 10, y + 19, result.diagnosis.upper(), 24, (1, 1, 1), bold=True)
    p.lines(p.left + 10, y + 47, why, 10.5, (1, 1, 1))
    x = p.left + box_w + gap
    p.rect(x, y, side_w, h, fill=(1.0, 0.95, 0.95), stroke=RED, line_width=1.2)
    used = p.lines(x + 8, y + 10, use_title, 10, RED, bold=True)
    p.lines(x + 8, y + 14 + used, use_more, 8.5, INK, leading=1.3)
    p.y = y + h + 12


def _identity(p: _Page, result: PatientResult, identity: ExamIdentity) -> None:
    b = result.bundle
    rows = identity_rows(result, identity)
    if result.ended_at:
        rows.insert(next(i for i, (n, _) in enumerate(rows) if n == "Started") + 1,
                    ("Ended", result.ended_at.replace("T", " ")[:19]))
    rows.append(("Bundle", b.identity or "unknown"))
    if b.backend:
        rows.append(("Engine", f"{b.backend} {b.precision or ''}".strip()))
    col_w = (p.width - 12) / 2
    label_w = 48.0
    half = (len(rows) + 1) // 2
    heights = [0.0, 0.0]
    for i, (name, value) in enumerate(rows):
        col = 0 if i < half else 1
        x = p.left + col * (col_w + 12)
        y = p.y + heights[col]
        p.text(x, y + 0.5, name, 8.5, MUTED)
        lines = _wrap(value, 9.5, col_w - label_w, bold=name == "Patient")
        heights[col] += p.lines(x + label_w, y, lines, 9.5, INK, bold=name == "Patient", leading=1.3) + 2
    p.y += max(heights) + 8


def _heading(p: _Page, title: str, note: str = "") -> None:
    p.line(p.left, p.y, p.left + p.width, p.y)
    p.y += 5
    p.text(p.left, p.y, title, 10.5, INK, bold=True)
    p.y += 14
    if note:
        p.y += p.lines(p.left, p.y, _wrap(note, 8, p.width), 8, MUTED) + 2


def _fraction(p: _Page, result: PatientResult) -> None:
    f, t = result.abnormal_fraction, result.threshold
    if f is None:
        words = "none (no key frames)"
    else:
        words = f"{f:.2f}, {result.abnormal_key_frames} of {result.key_frames} abnormal"
    words += f"; threshold {t:.2f}" if t is not None else "; threshold not calibrated: no verdict possible"
    if f is not None and t is not None and result.diagnosis in ("gout", "no gout"):
        words += ": above it, gout" if f > t else ": not above it, no gout"
    elif f is not None:
        words += " — no verdict: see why above"  # the fraction alone decides nothing here
    p.line(p.left, p.y, p.left + p.width, p.y)
    p.y += 5
    w = p.text(p.left, p.y, "Abnormal fraction of key frames", 10.5, INK, bold=True) + 8
    if len(_wrap(words, 9, p.width - w)) == 1:  # beside the title, else under it
        p.text(p.left + w, p.y + 1.2, words, 9, INK)
        p.y += 14
    else:
        p.y += 14 + p.lines(p.left, p.y + 14, _wrap(words, 9, p.width), 9, INK)
    left, right = p.left + 6, p.left + p.width - 6
    top, bar_h = p.y + 8, 11.0

    def x(v: float) -> float:
        return left + v * (right - left)

    if t is not None:
        p.rect(left, top, x(t) - left, bar_h, fill=(0.80, 0.91, 0.80))
        p.rect(x(t), top, right - x(t), bar_h, fill=(0.94, 0.80, 0.80))
        p.text((left + x(t)) / 2, top + 1.8, "no gout", 7.5, GREEN, align="centre")
        p.text((x(t) + right) / 2, top + 1.8, "gout", 7.5, RED, align="centre")
    else:
        p.rect(left, top, right - left, bar_h, fill=(0.9, 0.9, 0.9))
    p.rect(left, top, right - left, bar_h, stroke=MUTED)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        p.line(x(v), top + bar_h, x(v), top + bar_h + 3, MUTED)
        if t is None or abs(x(v) - x(t)) > 40:
            p.text(x(v), top + bar_h + 4, f"{v:g}", 7.5, MUTED, align="centre")
    if t is not None:
        p.line(x(t), top - 3, x(t), top + bar_h + 3, INK, 1.6)
        p.text(x(t), top + bar_h + 4, f"threshold {t:.2f}", 7.5, INK, bold=True, align="centre")
    if f is not None:
        colour = RED if (t is not None and f > t) else GREEN if t is not None else INK
        fx = x(f)
        c = p.c
        c.setFillColorRGB(*colour)
        path = c.beginPath()
        path.moveTo(fx - 4.5, p.h - (top - 8))
        path.lineTo(fx + 4.5, p.h - (top - 8))
        path.lineTo(fx, p.h - top)
        path.close()
        c.drawPath(path, fill=1, stroke=0)
        p.line(fx, top, fx, top + bar_h, colour, 1.6)
    p.y = top + bar_h + 18


def _key_frames(p: _Page, result: PatientResult, tiles: Sequence[Tile], scale: CamScale | None,
                new_page: Callable[[], None], size: float = 1.0) -> None:
    """The tiles in three columns, ``size`` of the full width (smaller when the page is short)."""
    if not tiles:
        return
    cols, gap = 3, 8.0
    cell = (p.width - gap * (cols - 1)) / cols * size
    left = p.left + (p.width - cols * cell - (cols - 1) * gap) / 2
    px = int(round(cell / 72 * 200))  # 200 dpi on paper
    bodies = [overlay_body(t, scale, px, cutoff=result.image_cutoff) for t in tiles]
    captions = []
    for t in tiles:
        below = below_cutoff(t, result.image_cutoff)
        first = f"Key frame {key_number(t.key_index)} · p = {t.probability:.2f}"
        where = source_label(t.origin, t.timestamp_s, t.still, t.view, file=t.file, frame_number=t.frame_number)
        second = f"{'below' if below else 'above'} the cut-off" + (f" · {where}" if where else "")
        captions.append((first, below, _wrap(second, 7.5, cell)))
    note = tiles_note(result)
    heading_h = 19 + len(_wrap(note, 8, p.width)) * 10 + 2
    for r in range(0, len(tiles), cols):
        row = range(r, min(r + cols, len(tiles)))
        img_h = max(cell * bodies[i].shape[0] / bodies[i].shape[1] for i in row)
        cap_h = max(11 + len(captions[i][2]) * 9.4 for i in row)
        need = img_h + cap_h + 8 + (heading_h if r == 0 else 0)
        if need > p.room:
            new_page()
        if r == 0:
            _heading(p, tiles_heading(result, tiles), note)
        for k, i in enumerate(row):
            x = left + k * (cell + gap)
            p.image(bodies[i], x, p.y, cell)
            first, below, second = captions[i]
            y = p.y + img_h + 3
            p.text(x, y, first, 8.5, GREEN if below else RED, bold=True)
            p.lines(x, y + 11, second, 7.5, MUTED)
        p.y += img_h + cap_h + 8


def _chart(p: _Page, result: PatientResult, tiles: Sequence[Tile]) -> None:
    cut = result.image_cutoff
    _heading(p, "Every key frame's probability",
             f"{result.key_frames} key frames voted; red: above the image cut-off {cut:.2f} (dashed), counted as "
             "abnormal; bold: the key frames shown above")
    left, right = p.left + 22, p.left + p.width - 4
    top, bottom = p.y + 10, p.y + 50

    def y(v: float) -> float:
        return bottom - v * (bottom - top)

    for v in (0.0, 0.5, 1.0):
        p.line(left - 3, y(v), right, y(v))
        p.text(left - 5, y(v) - 3.5, f"{v:g}", 7, MUTED, align="right")
    p.text(p.left, y(1.0) - 4, "p", 8, MUTED)
    probs = [k.probability for k in result.key_frame_list]
    shown = {t.key_index for t in tiles}
    n = len(probs)
    if n:
        step = (right - left) / n
        bar = max(0.6, min(12.0, step * 0.7))
        labelled = set(chart_labels(n, step, _width("0", 6.5)))
        for i, prob in enumerate(probs):
            cx = left + (i + 0.5) * step
            p.rect(cx - bar / 2, y(prob), bar, bottom - y(prob), fill=RED if prob > cut else GREEN)
            if i in labelled:
                p.text(cx, bottom + 2, str(i + 1), 6.5, MUTED, align="centre")
            if i in shown:
                p.text(cx, y(prob) - 9, str(i + 1), 7, INK, bold=True, align="centre")
    else:
        p.text((left + right) / 2, top + 12, "no key frames", 8.5, MUTED, align="centre")
    p.line(left, y(cut), right, y(cut), INK, 0.9, dash=(3, 2))
    p.text(left, bottom + 11, "key frame number, in exam order", 7, MUTED)
    p.y = bottom + 21


def _excluded(p: _Page, result: PatientResult, excluded: ExcludedFrames | None, new_page: Callable[[], None]) -> None:
    """The frames not counted, by reason, and examples: beside the list when there is room, else under it."""
    lines = exclusion_lines(result, excluded) or ["none: every frame was usable"]
    examples = _exclusion_examples(result, excluded)
    thumb_w, gap = 72.0, 8.0
    thumb_h = thumb_w * 9 / 16
    text_w = max(_width(line, 9) for line in lines) + 16
    beside = max(0, int((p.width - text_w + gap) // (thumb_w + gap)))
    if beside >= min(2, len(examples)):
        shown, text_room = examples[:beside], p.width - len(examples[:beside]) * (thumb_w + gap)
    else:
        shown, text_room = examples[: int((p.width + gap) // (thumb_w + gap))], p.width
    wrapped = [_wrap(line, 9, text_room - 12) for line in lines]
    captions = [_wrap(example_caption(r, e), 7, thumb_w) for r, e in shown]
    pictures_h = thumb_h + 3 + max((len(c) for c in captions), default=0) * 8.8 if shown else 0.0
    text_h = sum(len(w) for w in wrapped) * 9 * 1.28
    need = 19 + (max(text_h, pictures_h) if shown and beside else text_h + pictures_h + 4)
    if need > p.room:
        new_page()
    _heading(p, "Frames not counted")
    top = p.y
    for w in wrapped:
        p.text(p.left + 2, p.y, "•", 9, INK)
        p.y += p.lines(p.left + 12, p.y, w, 9, INK, leading=1.28)
    if shown:
        x0, y0 = (p.left + p.width - len(shown) * (thumb_w + gap) + gap, top) if beside else (p.left, p.y + 4)
        bottom = y0
        for i, ((_, e), caption) in enumerate(zip(shown, captions, strict=True)):
            x = x0 + i * (thumb_w + gap)
            th = e.thumbnail
            h = p.image(th[: max(1, int(round(th.shape[1] * 9 / 16)))], x, y0, thumb_w)
            p.rect(x, y0, thumb_w, h, stroke=RULE)
            bottom = max(bottom, y0 + h + 3 + p.lines(x, y0 + h + 3, caption, 7, MUTED, leading=1.25))
        p.y = max(p.y, bottom)
    p.y += 8


def _small_print(p: _Page, result: PatientResult, scale: CamScale | None, new_page: Callable[[], None]) -> None:
    wrapped = [_wrap(line, 7, p.width) for line in footer_lines(result, scale)]
    if sum(len(w) for w in wrapped) * 8.75 + 8 > p.room:
        new_page()
    p.line(p.left, p.y, p.left + p.width, p.y)
    p.y += 5
    for w in wrapped:
        p.y += p.lines(p.left, p.y, w, 7, MUTED)


def _signature(p: _Page, new_page: Callable[[], None]) -> None:
    h = 40.0
    if h + 10 > p.room:
        new_page()
    y = max(p.y + 10, p.h - p.m - 22 - h)  # at the foot of the last page
    p.rect(p.left, y, p.width, h, stroke=MUTED)
    p.text(p.left + 8, y + 5, "Reviewed by a clinician", 9, INK, bold=True)
    fields = (("Name", 0.0, 0.42), ("Signature", 0.45, 0.75), ("Date", 0.78, 1.0))
    for name, a, b in fields:
        x0, x1 = p.left + 8 + a * (p.width - 16), p.left + 8 + b * (p.width - 16)
        p.text(x0, y + 17, name, 8, MUTED)
        p.line(x0, y + 34, x1, y + 34, INK, 0.6)
    p.y = y + h


def _draw(canvas: object, size: tuple[float, float], result: PatientResult, tiles: Sequence[Tile], *,
          scale: CamScale | None, excluded: ExcludedFrames | None, identity: ExamIdentity, pages: int,
          tile_size: float = 1.0, dry: bool = False) -> int:
    p = _Page(canvas, size, 36.0, dry)
    p.y = p.m + 6

    def new_page() -> None:
        _page_frame(p, result, pages)
        p.c.showPage()
        p.number += 1
        p.y = p.m + 6

    _verdict(p, result)
    _identity(p, result, identity)
    _fraction(p, result)
    _key_frames(p, result, tiles, scale, new_page, tile_size)
    if p.room < 110:
        new_page()
    _chart(p, result, tiles)
    _excluded(p, result, excluded, new_page)
    _small_print(p, result, scale, new_page)
    _signature(p, new_page)
    _page_frame(p, result, pages)
    p.c.showPage()
    return p.number


def report_pdf_bytes(result: PatientResult, tiles: Sequence[Tile], *, scale: CamScale | None = None,
                     excluded: ExcludedFrames | None = None, identity: ExamIdentity | None = None,
                     paper: str | None = None) -> bytes:
    """The printable report as PDF bytes (``paper``: ``a4`` or ``letter``; None: ``$GOUT_EDGE_PAPER``
    or A4)."""
    from reportlab.pdfgen.canvas import Canvas

    size = PAPERS[paper_name(paper)]
    _fonts()
    identity = identity or ExamIdentity(result.patient_id)

    def render(pages: int, shown: Sequence[Tile], tile_size: float, dry: bool = False) -> tuple[bytes, int]:
        buf = io.BytesIO()
        c = Canvas(buf, pagesize=size, invariant=1, pageCompression=1, initialFontName=SANS, initialFontSize=9)
        c.setTitle(f"gout-edge exam report {result.session_id}")  # no patient identifier in the metadata
        c.setSubject("Ultrasound exam of the first MTP joint: " + RESEARCH_USE)
        c.setCreator(f"gout-edge {__version__}")
        c.setAuthor("gout-edge")
        used = _draw(c, size, result, shown, scale=scale, excluded=excluded, identity=identity, pages=pages,
                     tile_size=tile_size, dry=dry)
        c.save()
        return buf.getvalue(), used

    # One page when it can be had (US Letter is 50 pt shorter than A4): the key frames a little
    # smaller, then only the first row of them; else every page full size, "page N of M".
    plans = [(tiles, s) for s in (1.0, 0.93, 0.86, 0.8, 0.74)] + ([(tiles[:3], 1.0)] if len(tiles) > 3 else [])
    for shown, tile_size in plans:
        if render(1, shown, tile_size, dry=True)[1] == 1:
            return render(1, shown, tile_size)[0]
    return render(render(1, tiles, 1.0, dry=True)[1], tiles, 1.0)[0]


def write_report_pdf(path: Path, result: PatientResult, tiles: Sequence[Tile], *, scale: CamScale | None = None,
                     excluded: ExcludedFrames | None = None, identity: ExamIdentity | None = None,
                     paper: str | None = None) -> Path:
    """``report.pdf``, atomically (the folder is made if needed)."""
    data = report_pdf_bytes(result, tiles, scale=scale, excluded=excluded, identity=identity, paper=paper)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, data)
