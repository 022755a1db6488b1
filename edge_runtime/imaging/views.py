"""The protocol views a frame's file name or DICOM tags name (docs/design.md §7): one word list
and one rule, used by the sources when they make a ``Frame`` and by nothing downstream — a frame
carries its view as a field (``Frame.view``), never in a string to be parsed back."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["PROTOCOL_VIEWS", "view_named", "views_named"]

PROTOCOL_VIEWS = ("dorsal", "medial", "plantar")  # the first-MTP protocol (DecisionSpec.views' default)


def views_named(text: str, views: Sequence[str] = PROTOCOL_VIEWS) -> list[str]:
    """The views ``text`` names as whole words (``IM03_medial.dcm``, ``dorsal/2.png``), in ``views`` order."""
    words = set(re.split(r"[^a-z]+", text.lower()))
    return [v for v in views if v in words]


def view_named(*texts: str | None, also: Iterable[str | None] = ()) -> str | None:
    """The one view that ``texts`` (a path, a tag value) and ``also`` (views already known, e.g.
    from DICOM tags) name together; None when they name none or more than one."""
    found = {v for t in texts if t for v in views_named(t)} | {v for v in also if v}
    return found.pop() if len(found) == 1 else None
