"""Text from outside is data, never layout (docs/design.md §12).

Every value that comes from a DICOM header, a file name or the command line passes through here
before it reaches a picture, a PDF, a log line or a DICOM object:

- ``clean_line``: one line of plain text. Control characters (C0, DEL, C1 — line feeds, carriage
  returns and tabs included), the format characters that reorder or hide text (bidirectional
  overrides and isolates, zero-width spaces, the byte-order mark), line and paragraph separators
  and lone surrogates become spaces; runs of spaces collapse; the value is cut, with an
  ellipsis, to a length. Pillow's text layout, a log line and a DICOM value all take it as is.
- ``dicom_value``: a value for one DICOM element of a given VR, within that VR's character
  repertoire and length (PS3.5 §6.2): no backslash in a single value (it separates values), no
  control character, LO/SH/PN/CS/AE cut to their length (in bytes, as written: UTF-8 when the
  text needs it), CS upper-case, DA and TM only when they are a date or a time, PN with at most
  five components per group.
- ``clean_uid``: a UID as PS3.5 §9.1 allows (digits and dots, no leading zero in a component,
  at most 64 characters), or a replacement derived from the invalid value — the same invalid
  value always gets the same replacement, so the results of one study keep filing together — and
  whether it was replaced.

None of these functions logs anything: callers record *which* attribute was replaced, never its
value.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

__all__ = ["VR_MAX_BYTES", "clean_line", "clean_uid", "dicom_value", "is_valid_uid"]

# characters that are layout, not text: control (Cc), line/paragraph separators (Zl, Zp),
# surrogates (Cs) and the format characters (Cf: bidi overrides, zero-width, BOM)
_LAYOUT_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"}  # private use (Co) is text: a site's own glyphs
_SPACES = re.compile(r"\s+")
ELLIPSIS = "…"

# longest value of each text VR in bytes as written (PS3.5 Table 6.2-1); PN: per component group
VR_MAX_BYTES = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "LT": 10240, "PN": 64,
                "SH": 16, "ST": 1024, "TM": 16, "UI": 64, "UT": 1 << 20, "UC": 1 << 20}
_CS = re.compile(r"[^A-Z0-9 _]")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_AS = re.compile(r"^[0-9]{3}[DWMY]$")


def _is_layout(ch: str) -> bool:
    return unicodedata.category(ch) in _LAYOUT_CATEGORIES


def clean_line(value: object, max_chars: int | None = None, *, ellipsis: bool = True) -> str:
    """``value`` as one line of plain text (``None`` → ""): layout characters become spaces, runs of
    whitespace one space, the ends stripped; cut to ``max_chars`` characters (the last one an
    ellipsis when ``ellipsis``)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if any(_is_layout(ch) for ch in text):
        text = "".join(" " if _is_layout(ch) else ch for ch in text)
    text = _SPACES.sub(" ", text).strip()
    if max_chars is not None and len(text) > max_chars:
        keep = max(0, max_chars - 1) if ellipsis else max_chars
        text = text[:keep].rstrip() + (ELLIPSIS if ellipsis and max_chars > 0 else "")
    return text


def _fits(text: str, max_bytes: int) -> str:
    """``text`` cut so that it takes at most ``max_bytes`` bytes in the character set it needs
    (Latin-1 when every character fits, else UTF-8)."""
    text = text[:max_bytes]
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    while len(text.encode("utf-8")) > max_bytes:
        text = text[:-1]
    return text


def _date(text: str) -> str:
    digits = text.replace("-", "").replace(".", "").strip()
    try:
        datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        return ""
    return digits


def _time(text: str) -> str:
    t = text.replace(":", "").strip()
    main, _, fraction = t.partition(".")
    if not (main.isdigit() and len(main) in (2, 4, 6)) or (fraction and not fraction.isdigit()):
        return ""
    hh, mm, ss = int(main[:2]), int(main[2:4] or 0), int(main[4:6] or 0)
    if hh > 23 or mm > 59 or ss > 60:
        return ""
    return (main + (f".{fraction[:6]}" if fraction else ""))[:16]


def _person_name(text: str) -> str:
    groups = text.split("=")[:3]
    out = []
    for group in groups:
        parts = [p.strip() for p in group.split("^")]
        if len(parts) > 5:  # family^given^middle^prefix^suffix: the rest joins the last
            parts = parts[:4] + [" ".join(parts[4:])]
        out.append(_fits("^".join(parts).rstrip("^"), VR_MAX_BYTES["PN"]).rstrip("^"))
    return "=".join(out).rstrip("=")


def dicom_value(value: object, vr: str) -> str:
    """``value`` made valid for one element of ``vr`` (an empty string when nothing valid is left;
    UIDs: ``clean_uid``)."""
    vr = vr.upper()
    if vr == "UI":
        return clean_uid(value)[0] if clean_line(value) else ""
    text = clean_line(value, ellipsis=False)
    if vr not in ("LT", "ST", "UT"):
        text = text.replace("\\", "/")  # a backslash would split the value in two
    if vr == "DA":
        return _date(text)
    if vr == "TM":
        return _time(text)
    if vr == "AS":
        return text.upper() if _AS.match(text.upper()) else ""
    if vr == "CS":
        return _CS.sub("_", text.upper())[: VR_MAX_BYTES["CS"]].strip()
    if vr == "PN":
        return _person_name(text)
    if vr == "AE":
        return _fits(text.encode("ascii", "replace").decode("ascii"), VR_MAX_BYTES["AE"]).strip()
    limit = VR_MAX_BYTES.get(vr)
    return text if limit is None else _fits(text, limit).strip()


def is_valid_uid(value: object) -> bool:
    """Whether ``value`` is a UID as PS3.5 §9.1 allows: digits and dots, no empty component, no
    leading zero in a component of more than one digit, at most 64 characters."""
    text = "" if value is None else str(value)
    return 0 < len(text) <= 64 and bool(_UID.match(text))


def clean_uid(value: object) -> tuple[str, bool]:
    """(a valid UID, whether it was replaced). Trailing NULs and spaces (the padding of a UI value)
    are not an error. An invalid one is replaced by a UID derived from it (pydicom's root and a
    hash of the value), the same one every time."""
    text = "" if value is None else str(value).rstrip("\x00 ").strip()
    if is_valid_uid(text):
        return text, False
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["gout-edge replaced an invalid UID", text])), True
