"""The index table of labelled images (the paper's "index table", docs/design.md §10).

The table is a CSV with the header ``patient_id,image,image_label,diagnosis,view``:

- ``image``: path relative to the CSV (PNG, JPEG or DICOM);
- ``image_label``: ``1`` (lesion visible) or ``0`` (none);
- ``diagnosis``: ``gout`` or ``control``, the same on every row of a patient;
- ``view``: ``dorsal``, ``medial``, ``plantar`` or empty.

``read_index`` checks the whole table and raises one ``IndexTableError`` (a ``DataError``) that
lists every problem with the line number an editor shows (the header is line 1); nothing is
skipped silently. Messages and logs name rows by line number, never by patient identifier.

This module is torch-free. Images are read with the runtime's one loader,
``gout_edge.edge_runtime.sources.images.load_image``.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gout_edge.errors import DataError

__all__ = [
    "COLUMNS",
    "DIAGNOSES",
    "IMAGE_SUFFIXES",
    "VIEWS",
    "IndexProblem",
    "IndexRow",
    "IndexTable",
    "IndexTableError",
    "PatientRecord",
    "read_index",
]

log = logging.getLogger(__name__)

COLUMNS = ("patient_id", "image", "image_label", "diagnosis", "view")
DIAGNOSES = ("gout", "control")
VIEWS = ("dorsal", "medial", "plantar")
LABELS = {"0": 0, "1": 1}
MAX_PROBLEMS_SHOWN = 50  # in the message; ``IndexTableError.problems`` keeps every one
DICOM_SUFFIXES = (".dcm", ".dicom", "")  # DICOM files often carry no extension
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg") + DICOM_SUFFIXES


@dataclass(frozen=True)
class IndexRow:
    """One image of the table. ``line`` is its line number in the CSV (the header is line 1)."""

    line: int
    patient_id: str
    image: Path  # absolute
    image_label: int  # 1 = lesion visible, 0 = none
    diagnosis: str  # "gout" | "control"
    view: str | None  # "dorsal" | "medial" | "plantar" | None


@dataclass(frozen=True)
class PatientRecord:
    """One patient: the diagnosis and the positions of the patient's rows in ``IndexTable.rows``."""

    patient_id: str
    diagnosis: str
    rows: tuple[int, ...]

    @property
    def gout(self) -> bool:
        return self.diagnosis == "gout"

    @property
    def label(self) -> int:
        """1 for gout, 0 for control."""
        return int(self.gout)


@dataclass(frozen=True)
class IndexProblem:
    """One thing wrong with the table, at a line (1 = the header) and, where known, a column."""

    line: int
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class IndexTableError(DataError):
    """An index table with one or more problems; ``problems`` lists each, in line order."""

    def __init__(self, path: Path, problems: Sequence[IndexProblem]) -> None:
        self.path = Path(path)
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        n = len(self.problems)
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        lines = "\n".join(f"  {p}" for p in shown)
        if n > len(shown):
            lines += f"\n  … and {n - len(shown)} more"
        super().__init__(
            f"index table {self.path} has {n} problem{'s' if n != 1 else ''}:\n{lines}\n"
            f"The table needs the header {','.join(COLUMNS)}; image_label 1 or 0; diagnosis "
            f"{' or '.join(DIAGNOSES)} (the same for all rows of a patient); view "
            f"{', '.join(VIEWS)} or empty; each image once, as a path relative to the table."
        )


@dataclass(frozen=True)
class IndexTable:
    """A checked index table: ``rows`` in file order, image paths absolute."""

    path: Path
    rows: tuple[IndexRow, ...]
    sha256: str = ""  # of the CSV file's bytes, to tie results to the table they came from

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def root(self) -> Path:
        """The folder the image paths are relative to."""
        return self.path.parent

    @property
    def labels(self) -> np.ndarray:
        """``image_label`` of every row (int64, 1 = lesion)."""
        return np.fromiter((r.image_label for r in self.rows), dtype=np.int64, count=len(self.rows))

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """The patient of every row."""
        return tuple(r.patient_id for r in self.rows)

    def patients(self) -> tuple[PatientRecord, ...]:
        """One record per patient, in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(self.rows):
            groups.setdefault(row.patient_id, []).append(i)
        return tuple(
            PatientRecord(pid, self.rows[idx[0]].diagnosis, tuple(idx)) for pid, idx in groups.items()
        )

    def relative(self, row: IndexRow) -> str:
        """A row's image path relative to the table's folder (as POSIX), for reports."""
        try:
            return row.image.relative_to(self.root).as_posix()
        except ValueError:
            return str(row.image)

    def select(self, patient_ids: Iterable[str]) -> IndexTable:
        """The rows of the given patients, in file order."""
        keep = set(patient_ids)
        return IndexTable(self.path, tuple(r for r in self.rows if r.patient_id in keep), self.sha256)

    def subset(self, indices: Iterable[int]) -> IndexTable:
        """The rows at ``indices`` (positions in ``rows``), in that order."""
        return IndexTable(self.path, tuple(self.rows[i] for i in indices), self.sha256)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_index(path: Path | str, *, check_files: bool = True) -> IndexTable:
    """Read and check an index table; raise ``IndexTableError`` listing every problem.

    ``check_files=False`` skips the existence check of the images (for tables written before
    their images).
    """
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"index table {path} not found; pass the CSV made for your images") from None
    except OSError as exc:
        raise DataError(f"index table {path} cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"index table {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    path = path.resolve()
    root = path.parent
    problems: list[IndexProblem] = []

    reader = csv.reader(text.splitlines(keepends=True))
    header: list[str] | None = None
    for record in reader:
        if record:
            header = [h.strip().lower() for h in record]
            header_line = reader.line_num
            break
    if header is None:
        raise IndexTableError(path, [IndexProblem(1, "the table is empty (no header, no rows)")])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        found = ",".join(header) if any(header) else "nothing"
        problems.append(IndexProblem(
            header_line, f"missing column(s) {', '.join(missing)} (the header has {found})"
        ))
    dup_cols = sorted({c for c in header if c and header.count(c) > 1})
    if dup_cols:
        problems.append(IndexProblem(header_line, f"column(s) {', '.join(dup_cols)} appear twice"))
    if problems:  # without the columns, every row would repeat the same complaint
        raise IndexTableError(path, problems)
    col = {name: header.index(name) for name in COLUMNS}

    rows: list[IndexRow] = []
    seen_image: dict[Path, int] = {}
    diagnoses: dict[str, dict[str, list[int]]] = {}  # patient → diagnosis → lines
    for record in reader:
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line separates nothing and holds nothing
        if len(record) != len(header):
            problems.append(IndexProblem(
                line, f"has {len(record)} field(s), the header has {len(header)}"
            ))
            if len(record) < len(header):
                continue
        field = {name: record[i].strip() for name, i in col.items()}
        ok = True

        pid = field["patient_id"]
        if not pid:
            problems.append(IndexProblem(line, "is empty", "patient_id"))
            ok = False

        image: Path | None = None
        if not field["image"]:
            problems.append(IndexProblem(line, "is empty", "image"))
            ok = False
        elif any(ord(c) < 32 for c in field["image"]) or len(field["image"]) > 4096:
            problems.append(IndexProblem(
                line, "holds a control character or is over 4096 characters long; give a plain relative path",
                "image",
            ))
            ok = False
        else:
            try:
                image = (root / field["image"]).resolve()
            except (OSError, ValueError, RuntimeError) as exc:  # a symlink loop, a name the OS refuses
                problems.append(IndexProblem(line, f"{field['image']!r} is not a usable path ({type(exc).__name__})",
                                             "image"))
                image, ok = None, False
        if image is not None:
            suffix = image.suffix.lower()
            if suffix not in IMAGE_SUFFIXES:
                problems.append(IndexProblem(
                    line, f"{field['image']!r} is not PNG, JPEG or DICOM "
                    f"(expected {', '.join(s for s in IMAGE_SUFFIXES if s)} or no extension)", "image",
                ))
                ok = False
            elif check_files and not _is_file(image):
                problems.append(IndexProblem(
                    line, f"{field['image']!r} not found (looked for {image})", "image"
                ))
                ok = False
            if image in seen_image:
                problems.append(IndexProblem(
                    line, f"{field['image']!r} is already listed on line {seen_image[image]} "
                    "(duplicate row)", "image",
                ))
                ok = False
            else:
                seen_image[image] = line

        label = LABELS.get(field["image_label"])
        if label is None:
            problems.append(IndexProblem(
                line, f"{field['image_label']!r} is not a label; use 1 (lesion) or 0 (none)",
                "image_label",
            ))
            ok = False

        dx = field["diagnosis"].lower()
        if dx not in DIAGNOSES:
            problems.append(IndexProblem(
                line, f"{field['diagnosis']!r} is not a diagnosis; use gout or control", "diagnosis"
            ))
            ok = False
        elif pid:
            diagnoses.setdefault(pid, {}).setdefault(dx, []).append(line)

        view = field["view"].lower() or None
        if view is not None and view not in VIEWS:
            problems.append(IndexProblem(
                line, f"{field['view']!r} is not a view; use dorsal, medial, plantar or leave empty",
                "view",
            ))
            ok = False

        if ok:
            assert image is not None and label is not None
            rows.append(IndexRow(line, pid, image, label, dx, view))

    for by_dx in diagnoses.values():
        if len(by_dx) > 1:
            first = min(lines[0] for lines in by_dx.values())
            parts = "; ".join(
                f"{dx} on line(s) {', '.join(map(str, lines))}" for dx, lines in sorted(by_dx.items())
            )
            problems.append(IndexProblem(
                first, f"one patient has two diagnoses: {parts}; a patient is gout or control",
                "diagnosis",
            ))
    if not problems and not rows:
        problems.append(IndexProblem(header_line, "the table has a header but no rows"))
    if problems:
        raise IndexTableError(path, problems)
    table = IndexTable(path, tuple(rows), hashlib.sha256(raw).hexdigest())
    log.debug("index table %s: %d images of %d patients", path, len(rows), len(table.patients()))
    return table
