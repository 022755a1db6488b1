"""The exam's pictures, drawn with OpenCV and Pillow (the cart's base install has no plotting
library): a CAM overlay PNG for each of the most abnormal key frames, ``summary.png`` and the
one-page printable ``report.pdf`` (docs/design.md §13).

The summary is made to be read in ten seconds: the verdict and one line of why; the abnormal
fraction on a labelled 0…1 scale against the threshold; the most abnormal key frames with their
CAM on the bundle's fixed scale, each saying where it came from (file, or time in the exam, and
the view when known); every key frame's probability against the image cut-off; the frames left
out of the vote counted by reason with examples; and who and what the exam was. Patient identity
is drawn on the pictures (they are the patient's report) and never written to a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.text import clean_line
from gout_edge.edge_runtime.pipeline.results import PatientResult
from gout_edge.edge_runtime.pipeline.verdict import ReasonCode
from gout_edge.manifest import CamScale

from ._draw import Canvas, text_width, wrap
from .overlay import cam_legend, overlay_cam, with_legend

__all__ = [
    "EXCLUSION_REASONS",
    "OVERLAY_MAX_WIDTH",
    "PDF_NAME",
    "RESEARCH_USE",
    "ExamIdentity",
    "ExcludedFrames",
    "Tile",
    "ascii_text",
    "below_cutoff",
    "fit_width",
    "identity_line",
    "key_number",
    "label",
    "overlay_body",
    "overlay_name",
    "render_overlay",
    "render_summary",
    "source_label",
    "why_line",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX

_ASCII = str.maketrans({"≤": "<=", "≥": ">=", "→": "->", "–": "-", "—": "-", "…": "...", "·": "|", "×": "x"})

OVERLAY_MAX_WIDTH = 1024  # overlay PNGs are scaled down to this width at most
PDF_NAME = "report.pdf"

# Why a frame is not counted, in the clinician's words (the keys are ExcludedFrames' reasons).
EXCLUSION_REASONS: dict[str, str] = {
    "blank": "no signal (probe lifted, blank screen)",
    "colour": "colour Doppler",
    "scope": "out of scope (unlike the first-MTP scans this model knows)",
    "duplicate": "repeat(s) of an earlier frame (scored once)",
}

# colours (BGR)
INK = (30, 30, 30)
MUTED = (110, 110, 110)
RULE = (215, 215, 215)
VERDICT_COLOURS = {"gout": (40, 40, 200), "no gout": (60, 140, 40), "indeterminate": (0, 130, 220)}
ABNORMAL, NORMAL = (50, 50, 210), (70, 160, 60)


def ascii_text(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def fit_width(image: np.ndarray, max_width: int = OVERLAY_MAX_WIDTH) -> np.ndarray:
    if image.shape[1] <= max_width:
        return image
    h = max(1, round(image.shape[0] * max_width / image.shape[1]))
    return cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (BGR) with ``text`` in white on a darkened band at its top left."""
    size = max(13, int(round(28 * max(0.5, image.shape[1] / 1400))))
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    band = out[: size + 14, : min(out.shape[1], text_width(text, size) + 16)]
    band[:] = (band * 0.25).astype(np.uint8)
    c = Canvas.of(out)
    c.text((8, 6), text, size, (255, 255, 255), max_width=out.shape[1] - 16)
    return c.bgr()


# ------------------------------------------------------------------------------------ the pieces


def _clock(seconds: float) -> str:
    """``m:ss.s``; "–" for a time that is no finite number (sources check times as they enter, §8)."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return "–"
    if seconds != seconds or abs(seconds) == float("inf"):
        return "–"
    m, s = divmod(max(0.0, seconds), 60.0)
    return f"{int(m)}:{s:04.1f}"


def source_label(origin: str, timestamp_s: float, still: bool, view: str | None = None, short: bool = False,
                 file: str = "", frame_number: int | None = None) -> str:
    """Where a frame came from, for a caption: the file (stills, DICOM), or the time in the exam
    and the frame (video, capture, cine); and its view when known. ``short``: the time alone for
    moving frames. ``file`` and ``frame_number`` (``Frame``'s fields) name the file when given,
    else ``origin`` does."""
    name = (f"{Path(file).name} frame {frame_number}" if frame_number else Path(file).name) if file \
        else Path(origin).name if origin else ""
    if still and name:
        text = name
    else:
        text = f"at {_clock(timestamp_s)}" + (f" ({name})" if name and not short else "")
    return f"{text} · {view} view" if view else text


@dataclass(frozen=True)
class Tile:
    """A key frame as the report shows it: its region, CAM and where it came from."""

    key_index: int | None  # None: a frame that is not a key frame
    probability: float
    crop: np.ndarray  # the B-mode region, grey or BGR uint8
    cam: np.ndarray  # abnormal-class CAM on the model grid
    origin: str = ""
    timestamp_s: float = 0.0
    still: bool = False
    abnormal: bool | None = None  # above the image cut-off (None: compare with 0.5)
    view: str | None = None
    file: str = ""
    frame_number: int | None = None


@dataclass
class _Example:
    frame_index: int
    timestamp_s: float
    origin: str
    still: bool
    thumbnail: np.ndarray
    view: str | None = None
    file: str = ""
    frame_number: int | None = None


class ExcludedFrames:
    """Frames left out of the vote, by reason (``EXCLUSION_REASONS``' keys, or any other a gate
    adds), with the first and the latest of each kept as examples for the summary (the first as a
    small picture at once, the latest as a reference to its frame)."""

    def __init__(self, width: int = 240) -> None:
        self.width = width
        self.counts: dict[str, int] = {}
        self._first: dict[str, _Example] = {}
        self._latest: dict[str, Any] = {}

    def _example(self, frame: Any, thumbnail: bool = True) -> _Example:
        image = frame.image
        if thumbnail:
            h = max(1, round(image.shape[0] * self.width / image.shape[1]))
            image = cv2.resize(image, (self.width, h), interpolation=cv2.INTER_AREA)
        return _Example(frame.index, frame.timestamp_s, frame.origin, frame.still, image, frame.view, frame.file,
                        frame.frame_number)

    def observe(self, frame: Any, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if reason not in self._first:
            self._first[reason] = self._example(frame)
        else:
            self._latest[reason] = frame

    def examples(self, reason: str) -> list[_Example]:
        """The first and the latest frame left out for ``reason`` (fewer when there were fewer)."""
        out = [self._first[reason]] if reason in self._first else []
        if reason in self._latest:
            out.append(self._example(self._latest[reason]))
        return out


@dataclass(frozen=True)
class ExamIdentity:
    """Who and what the exam was, as the pictures show it (never logged)."""

    patient_id: str | None = None
    patient_name: str = ""
    study: str = ""  # DICOM study date, description, accession
    source: str = ""  # the kind of input: video, dicom, images, phantom …

    @classmethod
    def of(cls, patient_id: str | None, study: Any = None, source: str = "") -> ExamIdentity:
        """From the command line's patient and the source's study: every value one clean line of
        text (``imaging.text.clean_line``: a line feed in a header is data, never layout)."""
        patient_id = clean_line(patient_id, 128) or None
        source = clean_line(source, 64)
        if study is None or getattr(study, "new", True):
            return cls(patient_id, source=source)
        date = clean_line(getattr(study, "study_date", ""), 32)
        date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else date
        accession = clean_line(getattr(study, "accession_number", ""), 64)
        parts = [p for p in (date, clean_line(getattr(study, "study_description", ""), 128),
                             f"accession {accession}" if accession else "") if p]
        name = clean_line(str(getattr(study, "patient_name", "") or "").replace("^", " "), 128)
        return cls(patient_id or clean_line(getattr(study, "patient_id", ""), 128) or None, name, " · ".join(parts),
                   source)


def why_line(result: PatientResult) -> str:
    """The verdict's reason in one line a clinician reads (the words: ``Reason.clinician_text``)."""
    f, t = result.abnormal_fraction, result.threshold
    n, a = result.key_frames, result.abnormal_key_frames
    if result.diagnosis == "gout" and f is not None and t is not None:
        return f"{a} of {n} key frames abnormal: fraction {f:.2f} is above the threshold {t:.2f}"
    if result.diagnosis == "no gout" and f is not None and t is not None:
        return f"{a} of {n} key frames abnormal: fraction {f:.2f} is not above the threshold {t:.2f}"
    reason = result.reason.clinician_text()
    left_out = result.blank_frames + result.colour_frames + result.out_of_scope_frames
    if result.frames_seen and left_out >= result.frames_seen / 3 and result.reason.code is not ReasonCode.OUT_OF_SCOPE:
        parts = [f"{result.blank_frames} without signal" if result.blank_frames else "",
                 f"{result.colour_frames} colour Doppler" if result.colour_frames else "",
                 f"{result.out_of_scope_frames} out of scope" if result.out_of_scope_frames else ""]
        reason += f"; {left_out} of {result.frames_seen} frames were not usable ({', '.join(p for p in parts if p)})"
    return "No verdict: " + reason[:1].lower() + reason[1:]


# ------------------------------------------------------------------------------------ overlays


def key_number(key_index: int | None) -> int | None:
    """A key frame's number as people read it, from 1 (``key_index`` counts from 0 in the journal and
    JSON): tiles, captions, the chart, overlay file names and the PDF all use it."""
    return None if key_index is None else key_index + 1


def below_cutoff(tile: Tile, cutoff: float | None = None) -> bool:
    """True when the tile's frame is not counted as abnormal (at or below the image cut-off)."""
    if tile.abnormal is not None:
        return not tile.abnormal
    return not tile.probability > (0.5 if cutoff is None else cutoff)


def _no_cam_panel(width: int, height: int) -> np.ndarray:
    """What stands where the legend would be when no CAM is drawn (a frame below the cut-off)."""
    c = Canvas(width, max(90, height), (236, 236, 236))
    size = int(np.clip(width / 4.2, 10, 22))
    c.paragraph((max(3, size // 3), max(4, size // 2)), "no CAM", size, MUTED,
                max_width=width - 2 * max(3, size // 3), max_lines=2, leading=1.2)
    return c.bgr()


def overlay_body(tile: Tile, scale: CamScale | None, width: int = OVERLAY_MAX_WIDTH, *,
                 cutoff: float | None = None) -> np.ndarray:
    """A key frame's region with its CAM on ``scale`` and the legend beside it, ``width`` px wide at
    most (the region is never enlarged). A frame at or below the image cut-off is not counted as
    abnormal, and its CAM — the model's strongest evidence in a frame it finds normal — would still
    read as a lesion: it is not drawn; a band on the image and a panel in the legend's place say so
    (docs/design.md §13)."""
    crop = tile.crop
    legend_w = cam_legend(scale, max(90, round(crop.shape[0] * min(1.0, width / crop.shape[1])))).shape[1]
    region = fit_width(crop, max(32, width - legend_w))
    if not below_cutoff(tile, cutoff):
        return with_legend(overlay_cam(region, tile.cam, scale), scale)
    image = cv2.cvtColor(region, cv2.COLOR_GRAY2BGR) if region.ndim == 2 else region[:, :, :3].copy()
    limit = f"{cutoff:.2f}" if cutoff is not None else "0.50"
    image = _band(image, f"below the cut-off {limit}: no CAM")
    panel = _no_cam_panel(legend_w, image.shape[0])
    if panel.shape[0] > image.shape[0]:
        pad = np.full((panel.shape[0] - image.shape[0], image.shape[1], 3), 255, np.uint8)
        image = np.vstack([image, pad])
    return np.hstack([image, panel])


def _band(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (BGR) with ``text`` in white on a darkened band across its top, wrapped to its width."""
    size = int(np.clip(image.shape[1] / 20, 11, 26))
    lines = wrap(text, size, image.shape[1] - 12, max_lines=3)
    h = min(image.shape[0], int(len(lines) * size * 1.2 + size * 0.6))
    out = image.copy()
    out[:h] = (out[:h] * 0.3).astype(np.uint8)
    c = Canvas.of(out)
    y = size * 0.3
    for line in lines:
        c.text((6, y), line, size, (255, 255, 255), max_width=image.shape[1] - 12)
        y += size * 1.2
    return c.bgr()


def identity_line(identity: ExamIdentity | None, session_id: str, started_at: str = "") -> str:
    """Who and which exam, for a picture that may travel alone (an overlay PNG): patient, name,
    session and start. Drawn on pictures only, never logged."""
    identity = identity or ExamIdentity()
    parts = [f"Patient {identity.patient_id or 'not given'}"]
    if identity.patient_name:
        parts.append(identity.patient_name)
    parts.append(f"exam {session_id}")
    if started_at:
        parts.append(started_at.replace("T", " ")[:16])
    return " · ".join(parts)


def render_overlay(tile: Tile, scale: CamScale | None, width: int = OVERLAY_MAX_WIDTH, *, cutoff: float | None = None,
                   header: str = "") -> np.ndarray:
    """One key frame's region with its CAM on ``scale``, the legend beside it and a caption above
    (key frame number from 1, probability and whether it is above the cut-off, source; wrapped,
    never cut), ``width`` px wide at most. ``header``: a line above it all (the patient and exam,
    for an overlay written as a file of its own)."""
    body = overlay_body(tile, scale, width, cutoff=cutoff)
    w = body.shape[1]
    size = int(np.clip(w / 30, 13, 26))
    below = below_cutoff(tile, cutoff)
    where = source_label(tile.origin, tile.timestamp_s, tile.still, tile.view, file=tile.file,
                         frame_number=tile.frame_number)
    line_h = int(size * 1.3)
    where_lines = wrap(where, int(size * 0.9), w - 8, max_lines=2) if where else []
    head_lines = wrap(header, int(size * 0.85), w - 8, max_lines=2) if header else []
    head_h = int(len(head_lines) * size * 1.15 + size * 0.5) if head_lines else 0
    cap = Canvas(w, head_h + int(size * 0.3) + line_h + int(len(where_lines) * size * 1.1) + int(size * 0.3),
                 (255, 255, 255))
    if head_lines:
        cap.rect(0, 0, w, head_h - int(size * 0.2), fill=(242, 242, 242))
        y = size * 0.2
        for line in head_lines:
            cap.text((4, y), line, int(size * 0.85), INK, bold=True, max_width=w - 8)
            y += size * 1.15
    y = head_h + size * 0.3
    x = 4
    number = key_number(tile.key_index)
    if number is not None:
        x += 12 + cap.text((x, y), f"key frame {number}", size, INK, bold=True)
    x += 12 + cap.text((x, y), f"p = {tile.probability:.2f}", size, NORMAL if below else ABNORMAL, bold=True)
    limit = f"{cutoff:.2f}" if cutoff is not None else "0.50"
    cap.text((x, y + size * 0.1), f"{'below' if below else 'above'} the cut-off {limit}", int(size * 0.85), MUTED,
             max_width=w - x - 4)
    y += line_h
    for line in where_lines:
        cap.text((4, y), line, int(size * 0.9), MUTED, max_width=w - 8)
        y += size * 1.1
    return np.vstack([cap.bgr(), body])


# ------------------------------------------------------------------------------------ words shared by the summary and the PDF

RESEARCH_USE = "Research software: not for clinical use."
RESEARCH_USE_MORE = "A model trained on synthetic phantoms; a clinician reads the images."


def identity_rows(result: PatientResult, identity: ExamIdentity) -> list[tuple[str, str]]:
    """Patient and exam as (label, value) rows, the patient first."""
    rows = [("Patient", clean_line(identity.patient_id, 128) or "not given")]
    if identity.patient_name:
        rows.append(("Name", clean_line(identity.patient_name, 128)))
    rows.append(("Exam", clean_line(result.session_id, 64)))
    rows.append(("Started", clean_line((result.started_at or "").replace("T", " ")[:19])))
    if identity.study:
        rows.append(("Study", clean_line(identity.study, 200)))
    if identity.source:
        rows.append(("Source", clean_line(identity.source, 64)))
    return rows


def tiles_heading(result: PatientResult, tiles: Sequence[Tile]) -> str:
    """What the tiles are: the key frames with the highest probability, of how many."""
    n = len(tiles)
    if n >= result.key_frames:
        return f"All {n} key frame{'s' if n != 1 else ''}, highest probability first"
    return f"The {n} key frames with the highest probability (of {result.key_frames})"


def tiles_note(result: PatientResult) -> str:
    return (f"CAM over the region on this model's fixed scale: warmer = more evidence of a lesion. Frames at or below "
            f"the image cut-off {result.image_cutoff:.2f} are not counted as abnormal: their CAM is not drawn")


def exclusion_lines(result: PatientResult, excluded: ExcludedFrames | None) -> list[str]:
    """The frames not counted, one line per reason with its count."""
    counts = [("blank", result.blank_frames), ("colour", result.colour_frames), ("scope", result.out_of_scope_frames),
              ("duplicate", result.duplicates)]
    extra = [(r, n) for r, n in (excluded.counts.items() if excluded else ()) if r not in EXCLUSION_REASONS]
    lines = [f"{n} {EXCLUSION_REASONS.get(r, r)}" for r, n in counts + extra if n]
    if result.not_key_frames:
        lines.append(f"{result.not_key_frames} scored but not key frames (probe moving, or like a recent key frame)")
    return lines


def _exclusion_examples(result: PatientResult, excluded: ExcludedFrames | None) -> list[tuple[str, _Example]]:
    reasons = ["blank", "colour", "scope", "duplicate"] + [r for r in (excluded.counts if excluded else {})
                                                           if r not in EXCLUSION_REASONS]
    return [(r, e) for r in reasons for e in (excluded.examples(r) if excluded else [])]


def example_caption(reason: str, e: _Example) -> str:
    short = {"blank": "no signal", "colour": "colour Doppler", "scope": "out of scope", "duplicate": "repeat"}.get(reason,
                                                                                                                 reason)
    where = source_label(e.origin, e.timestamp_s, e.still, e.view, short=True, file=e.file, frame_number=e.frame_number)
    return f"{short}, {where}"


def footer_lines(result: PatientResult, scale: CamScale | None) -> list[str]:
    """Frame counts, model, threshold source, CAM scale: the small print, whole (wrapped, never cut)."""
    b = result.bundle
    return [
        f"Frames: {result.frames_seen} seen, {result.frames_scored} scored, {result.key_frames} key frames voted, "
        f"{result.dropped} dropped while the model was busy · ended by {result.ended_by}"
        + ("" if result.complete else " (incomplete)"),
        f"Model: {b.identity} on {b.backend or '?'} {b.precision or ''} · threshold: "
        f"{result.threshold_source}",
        "CAM colour scale: " + (f"{scale.lo:.3g} to {scale.hi:.3g}, fixed for this model ({scale.fitted_on})" if scale
                                else "per image (this model has no fixed scale): colours are not comparable"),
    ]


def chart_labels(n: int, room: float, digit_width: float) -> list[int]:
    """Which of ``n`` bars (0-based) get their number under the axis when each has ``room`` px and
    a digit is ``digit_width`` px: every bar when they fit, else every 2nd, 5th, 10th … (and the first)."""
    if n == 0:
        return []
    need = (len(str(n)) + 1) * digit_width
    for every in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000, 5000):
        if room * every >= need:
            break
    return [i for i in range(n) if i == 0 or (i + 1) % every == 0]


# ------------------------------------------------------------------------------------ the summary


def _s(width: int) -> float:
    return width / 1200.0


def _header(result: PatientResult, identity: ExamIdentity, width: int) -> np.ndarray:
    k = _s(width)
    colour = VERDICT_COLOURS.get(result.diagnosis, VERDICT_COLOURS["indeterminate"])
    split = int(width * 0.64)
    box_w = split - int(16 * k)
    why_size, use_size = int(18 * k), int(15 * k)
    why = wrap(why_line(result), why_size, box_w - int(40 * k), max_lines=4)
    use = wrap(RESEARCH_USE + " " + RESEARCH_USE_MORE, use_size, box_w - int(40 * k), max_lines=2, bold=True)
    why_top = int(102 * k)
    use_top = why_top + int(len(why) * why_size * 1.22) + int(8 * k)
    box_h = use_top + int(len(use) * use_size * 1.25) + int(12 * k)
    rows = identity_rows(result, identity)
    size = int(19 * k)
    value_w = width - split - int(96 * k) - int(6 * k)
    heights = [max(1, len(wrap(v, size, value_w, max_lines=2, bold=n == "Patient"))) for n, v in rows]
    h = max(box_h, int(6 * k) + sum(int(size * 1.35) * n for n in heights)) + int(14 * k)
    c = Canvas(width, h)
    c.rect(0, 0, box_w, box_h, fill=colour)
    c.text((int(22 * k), int(14 * k)), "Verdict", int(20 * k), (255, 255, 255))
    c.text((int(22 * k), int(40 * k)), result.diagnosis.upper(), int(54 * k), (255, 255, 255), bold=True)
    y = why_top
    for line in why:
        c.text((int(22 * k), y), line, why_size, (255, 255, 255), max_width=box_w - int(40 * k))
        y += why_size * 1.22
    c.line([(int(22 * k), use_top - int(4 * k)), (box_w - int(22 * k), use_top - int(4 * k))], (255, 255, 255), 1)
    y = use_top
    for line in use:
        c.text((int(22 * k), y), line, use_size, (255, 255, 255), bold=True, max_width=box_w - int(40 * k))
        y += use_size * 1.25
    x, y = split + int(6 * k), int(6 * k)
    for (name, value), n in zip(rows, heights, strict=True):
        c.text((x, y), name, size, MUTED)
        c.paragraph((x + int(90 * k), y), value, size, INK, bold=name == "Patient", max_width=value_w, max_lines=2,
                    leading=1.35)
        y += int(size * 1.35) * n
    return c.bgr()


def _fraction_scale(result: PatientResult, width: int) -> np.ndarray:
    """The abnormal fraction on a labelled 0…1 scale, the threshold marked."""
    k = _s(width)
    h = int(128 * k)
    c = Canvas(width, h)
    size = int(19 * k)
    c.text((int(22 * k), int(6 * k)), "Abnormal fraction of key frames", size, INK, bold=True)
    left, right = int(30 * k), width - int(30 * k)
    top, bar_h = int(58 * k), int(22 * k)

    def x(v: float) -> float:
        return left + v * (right - left)

    t = result.threshold
    zones = []
    if t is not None:
        c.rect(left, top, x(t), top + bar_h, fill=(200, 232, 200))
        c.rect(x(t), top, right, top + bar_h, fill=(205, 205, 240))
        zones = [((x(t) / 2 + left / 2, top + bar_h / 2), "no gout", NORMAL, (200, 232, 200)),
                 (((x(t) + right) / 2, top + bar_h / 2), "gout", ABNORMAL, (205, 205, 240))]
    else:
        c.rect(left, top, right, top + bar_h, fill=(230, 230, 230))
        zones = [(((left + right) / 2, top + bar_h / 2), "threshold not calibrated: no verdict possible", MUTED,
                  (230, 230, 230))]
    c.rect(left, top, right, top + bar_h, outline=MUTED)
    t_label = f"threshold {t:.2f}" if t is not None else ""
    t_left = x(t) - text_width(t_label, int(15 * k), True) / 2 if t is not None else 0.0
    t_left = min(max(t_left, left), right - text_width(t_label, int(15 * k), True))
    t_right = t_left + text_width(t_label, int(15 * k), True)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        c.line([(x(v), top + bar_h), (x(v), top + bar_h + int(6 * k))], MUTED, 1)
        if t is None or not (t_left - int(24 * k) < x(v) < t_right + int(24 * k)):
            c.text((x(v), top + bar_h + int(8 * k)), f"{v:g}", int(15 * k), MUTED, anchor="ma")
    if t is not None:
        c.line([(x(t), top - int(6 * k)), (x(t), top + bar_h + int(6 * k))], INK, max(2, int(3 * k)))
        c.text((t_left, top + bar_h + int(8 * k)), t_label, int(15 * k), INK, bold=True)
    f = result.abnormal_fraction
    if f is not None:
        fx = x(f)
        colour = ABNORMAL if (t is not None and f > t) else NORMAL if t is not None else INK
        r = int(9 * k)
        c.polygon([(fx - r, top - 2 * r), (fx + r, top - 2 * r), (fx, top)], colour)
        c.line([(fx, top), (fx, top + bar_h)], colour, max(2, int(3 * k)))
        text = f"this exam {f:.2f}  ({result.abnormal_key_frames} of {result.key_frames} key frames abnormal)"
        right_side = f > 0.6
        c.text((fx + (-1.6 * r if right_side else 1.6 * r), top - int(3 * k)), text, int(16 * k), colour, bold=True,
               anchor="rs" if right_side else "ls")
    else:
        c.text((right, int(6 * k)), "no key frames: no fraction", int(16 * k), MUTED, anchor="ra")
    for xy, label_text, colour, fill in zones:  # on top of the markers, legible across them
        c.text(xy, label_text, int(15 * k), colour, anchor="mm", halo=fill)
    return c.bgr()


def _heading(text: str, width: int, note: str = "") -> np.ndarray:
    """A rule, a bold title and a note after it, or under it when it does not fit beside (wrapped)."""
    k = _s(width)
    size, note_size = int(19 * k), int(15 * k)
    left, right = int(22 * k), width - int(22 * k)
    title_w = text_width(text, size, True)
    beside = note and title_w + int(12 * k) + text_width(note, note_size) <= right - left
    lines = [] if not note or beside else wrap(note, note_size, right - left, max_lines=3)
    c = Canvas(width, int(40 * k) + int(len(lines) * note_size * 1.3))
    c.line([(left, int(4 * k)), (right, int(4 * k))], RULE, 1)
    c.text((left, int(12 * k)), text, size, INK, bold=True, max_width=right - left)
    if beside:
        c.text((left + title_w + int(12 * k), int(14 * k)), note, note_size, MUTED)
    y = int(12 * k) + size * 1.35
    for line in lines:
        c.text((left, y), line, note_size, MUTED, max_width=right - left)
        y += note_size * 1.3
    return c.bgr()


def _tiles(tiles: Sequence[Tile], scale: CamScale | None, width: int, cutoff: float | None = None) -> list[np.ndarray]:
    k = _s(width)
    cols = 3
    gap = int(12 * k)
    cell = (width - int(44 * k) - gap * (cols - 1)) // cols
    rows = []
    for r in range(0, len(tiles), cols):
        cells = [render_overlay(t, scale, width=cell, cutoff=cutoff) for t in tiles[r : r + cols]]
        h = max(c.shape[0] for c in cells)
        row = Canvas(width, h + gap)
        for i, c in enumerate(cells):
            row.paste(c, (int(22 * k) + i * (cell + gap), 0))
        rows.append(row.bgr())
    return rows


def _probability_chart(result: PatientResult, width: int, shown: Sequence[int] = ()) -> np.ndarray:
    """Every key frame's probability, in exam order, against the image cut-off; the bars numbered as
    the key frames are (from 1), the numbers of the tiles shown above in bold over their bars."""
    k = _s(width)
    h = int(214 * k)
    c = Canvas(width, h)
    left, right, top, bottom = int(76 * k), width - int(30 * k), int(30 * k), h - int(58 * k)
    size = int(15 * k)

    def y(p: float) -> float:
        return bottom - p * (bottom - top)

    for p in (0.0, 0.5, 1.0):
        c.line([(left - int(5 * k), y(p)), (right, y(p))], RULE, 1)
        c.text((left - int(9 * k), y(p)), f"{p:g}", size, MUTED, anchor="rm")
    c.text((int(22 * k), top), "p", size + 2, MUTED, anchor="lm")
    probs = [kf.probability for kf in result.key_frame_list]
    n = len(probs)
    shown_set = set(shown)
    if n:
        step = (right - left) / n
        bar = max(1.0, min(22 * k, step * 0.7))
        labelled = set(chart_labels(n, step, text_width("0", int(13 * k))))
        for i, p in enumerate(probs):
            cx = left + (i + 0.5) * step
            colour = ABNORMAL if p > result.image_cutoff else NORMAL
            c.rect(cx - bar / 2, y(p), cx + bar / 2, bottom, fill=colour)
            if i in labelled:
                c.text((cx, bottom + int(5 * k)), str(i + 1), int(13 * k), MUTED, anchor="ma")
            if i in shown_set:
                c.text((cx, y(p) - int(3 * k)), str(i + 1), int(14 * k), INK, bold=True, anchor="md")
    else:
        c.text(((left + right) / 2, top + (bottom - top) / 4), "no key frames", size, MUTED, anchor="mm")
    cut = y(result.image_cutoff)
    for x0 in range(left, right, int(14 * k) or 1):  # dashed: the cut-off
        c.line([(x0, cut), (min(x0 + int(8 * k), right), cut)], INK, max(1, int(2 * k)))
    c.text((left, bottom + int(26 * k)), "key frame number, in exam order" + ("; bold: shown above" if shown_set else ""),
           size, MUTED)
    return c.bgr()


def _excluded(result: PatientResult, excluded: ExcludedFrames | None, width: int) -> np.ndarray:
    """The frames not counted, by reason, with examples."""
    k = _s(width)
    size = int(17 * k)
    lines = exclusion_lines(result, excluded)
    examples = _exclusion_examples(result, excluded)
    thumb_w = int(200 * k)
    thumb_h = int(thumb_w * 9 / 16)
    gap = int(12 * k)
    examples = examples[: max(1, (width - int(44 * k) + gap) // (thumb_w + gap))]
    cap_size = int(14 * k)
    captions = [wrap(example_caption(r, e), cap_size, thumb_w, max_lines=2) for r, e in examples]
    cap_h = int(max((len(c) for c in captions), default=0) * cap_size * 1.25)
    line_h = int(size * 1.4)
    h = int(8 * k) + line_h * max(1, len(lines)) + (thumb_h + int(10 * k) + cap_h if examples else 0) + int(8 * k)
    c = Canvas(width, h)
    y = int(4 * k)
    if not lines:
        c.text((int(22 * k), y), "none: every frame was usable", size, MUTED)
    for line in lines:
        c.text((int(30 * k), y), "•  " + line, size, INK, max_width=width - int(52 * k))
        y += line_h
    if examples:
        y += int(6 * k)
        for i, ((_, e), caption) in enumerate(zip(examples, captions, strict=True)):
            x = int(22 * k) + i * (thumb_w + gap)
            th = e.thumbnail
            th = cv2.resize(th, (thumb_w, max(1, round(th.shape[0] * thumb_w / th.shape[1]))), interpolation=cv2.INTER_AREA)
            th = th[:thumb_h]
            c.paste(th if th.ndim == 3 else cv2.cvtColor(th, cv2.COLOR_GRAY2BGR), (x, y))
            c.rect(x, y, x + thumb_w - 1, y + th.shape[0] - 1, outline=RULE)
            ty = y + th.shape[0] + int(4 * k)
            for line in caption:
                c.text((x, ty), line, cap_size, MUTED, max_width=thumb_w)
                ty += cap_size * 1.25
    return c.bgr()


def _footer(result: PatientResult, scale: CamScale | None, width: int) -> np.ndarray:
    k = _s(width)
    size = int(14 * k)
    room = width - int(44 * k)
    wrapped = [wrap(line, size, room, max_lines=4) for line in footer_lines(result, scale)]
    wrapped.append(wrap(RESEARCH_USE + " " + RESEARCH_USE_MORE, size, room, max_lines=2, bold=True))
    step = int(size * 1.45)
    c = Canvas(width, int(12 * k) + step * sum(len(w) for w in wrapped) + int(8 * k))
    c.line([(int(22 * k), int(4 * k)), (width - int(22 * k), int(4 * k))], RULE, 1)
    y = int(12 * k)
    for i, lines in enumerate(wrapped):
        last = i == len(wrapped) - 1
        for line in lines:
            c.text((int(22 * k), y), line, size, ABNORMAL if last else MUTED, bold=last, max_width=room)
            y += step
    return c.bgr()


def render_summary(result: PatientResult, tiles: Sequence[Tile], *, scale: CamScale | None = None,
                   excluded: ExcludedFrames | None = None, identity: ExamIdentity | None = None,
                   width: int = 1200) -> np.ndarray:
    """``summary.png``: verdict and why (with the research-use line), patient and exam, the fraction
    against the threshold, the key frames with the highest probability with their CAM, every key
    frame's probability, the frames not counted. BGR uint8, ``width`` wide (text scales with it);
    key frames are numbered from 1 throughout."""
    identity = identity or ExamIdentity(result.patient_id)
    parts = [_header(result, identity, width), _fraction_scale(result, width)]
    if tiles:
        parts.append(_heading(tiles_heading(result, tiles), width, tiles_note(result)))
        parts += _tiles(tiles, scale, width, result.image_cutoff)
    parts.append(_heading("Every key frame's probability", width,
                          f"{result.key_frames} key frames voted; red: above the image cut-off "
                          f"{result.image_cutoff:.2f} (dashed), counted as abnormal"))
    parts.append(_probability_chart(result, width, [t.key_index for t in tiles if t.key_index is not None]))
    parts.append(_heading("Frames not counted", width))
    parts.append(_excluded(result, excluded, width))
    parts.append(_footer(result, scale, width))
    return np.vstack(parts)


def overlay_name(rank: int, tile: Tile) -> str:
    """``overlay_NN_keyKKKK.png``: its rank (1 = the highest probability) and its key frame number
    (from 1, as the summary and the PDF number it)."""
    return f"overlay_{rank:02d}_key{key_number(tile.key_index) or 0:04d}.png"
