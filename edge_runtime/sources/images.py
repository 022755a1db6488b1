"""A folder of still images: PNG, JPEG or DICOM, each file a frame (a DICOM cine: each of its frames).

Each sub-folder forms one exam (``Frame.group``, with the sub-folder's name as the patient ID —
the layout ``images/<patient>/*.png`` that ``gout-edge phantom`` writes); when there are such
sub-folders, images loose at the top of the folder (``phantom``'s ``contact_sheet.png``) are left
out with a log line saying so. A folder without sub-folders of images is one exam of its files.
Files are read in name order. A file that cannot be decoded is
skipped with a warning and listed with its reason in ``skipped``, or, with ``strict``, refuses
the exam before its first frame (every file is decoded once first); an explicitly named file that
cannot be decoded is always refused, and so is a folder in which no file can be read. PNG and
JPEG sizes are read from the header and checked against ``_guard.MAX_FRAME_PIXELS`` before
OpenCV decodes anything.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import Roi
from gout_edge.edge_runtime.imaging.views import view_named
from gout_edge.errors import InputError

from ._base import FileSource, Frame, SourceGroup, to_uint8
from ._guard import MAX_RASTER_FILE_BYTES, check_raster_size, file_error, raster_size, without_name
from .dicom import decode_frames, frame_origin, frame_view, is_dicom_file, read_dicom_file

__all__ = ["IMAGE_SUFFIXES", "ImageFolderSource", "frames_of_file", "load_image", "load_still", "read_image"]

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = RASTER_SUFFIXES + (".dcm", ".dicom")


def read_image(path: Path) -> np.ndarray:
    """One PNG or JPEG as uint8 grey or BGR (alpha dropped, 16-bit scaled); ``InputError`` naming
    the file (base name) if not. The size in the header is checked before OpenCV decodes."""
    path = Path(path)
    try:
        return _read_image(path)
    except InputError:
        raise
    except Exception as exc:  # cv2.error, MemoryError, …: one file's problem
        raise file_error("image", path, exc) from None


def _read_image(path: Path) -> np.ndarray:
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_RASTER_FILE_BYTES:
            raise InputError(
                f"image {name} is {size / 2**20:.0f} MiB, over the {MAX_RASTER_FILE_BYTES // 2**20} MiB a PNG or "
                "JPEG screen image can reasonably be; refused"
            )
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"image {name} not found") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a folder, not an image") from None
    except OSError as exc:
        raise InputError(f"image {name} cannot be read ({exc.strerror})") from None
    header = raster_size(data) if data.size else None  # reads the header only, without copying
    if header is None:
        what = "empty" if not data.size else "not a PNG or JPEG, or its header or chunk structure is damaged"
        raise InputError(f"{name} is not a readable PNG or JPEG image ({what})")
    check_raster_size(name, header[1], header[2])
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{name} is not a readable PNG or JPEG image (damaged or truncated {header[0].upper()})")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = to_uint8(image)
    return np.ascontiguousarray(image)


def load_image(path: Path | str) -> np.ndarray:
    """One image file as uint8, H×W grey or H×W×3 BGR, whatever its format: PNG and JPEG through
    ``read_image``, DICOM (by extension or preamble) through the runtime's DICOM reader — its first
    frame, decoded as the cart decodes it. The one image loader of gout-edge (index tables, the
    reference set, stills); any failure is an ``InputError`` naming the file."""
    return load_still(path)[0]


def load_still(path: Path | str) -> tuple[np.ndarray, Roi | None]:
    """``load_image`` and the B-mode region the file declares: a DICOM Sequence of Ultrasound
    Regions fitted to the image as ``scan`` fits it (None for PNG and JPEG, and for DICOM files
    declaring none that fits). ``prepare(image, roi=roi)`` then gives the model input — and the
    probability — that ``scan --dicom`` and ``scan --images`` give this still."""
    path = Path(path)
    if not is_dicom_file(path):
        return read_image(path), None
    file = read_dicom_file(path)
    assert file is not None  # strict_image: a file without an image raises
    frames = decode_frames(file)
    try:
        return next(iter(frames)), file.region.roi
    except StopIteration:
        raise InputError(f"DICOM file {path.name} holds no frame") from None
    except InputError:
        raise
    except Exception as exc:
        raise file_error("DICOM file", path, exc) from None
    finally:
        getattr(frames, "close", lambda: None)()


def frames_of_file(path: Path, rel: str, dicom: bool | None = None) -> Iterator[Frame]:
    """The frames of one image file as ``scan --images`` reads them (index 0, no group or patient:
    the caller numbers and groups them): a PNG or JPEG is one still; a DICOM file gives its frames
    with the region it declares. ``rel`` (the path under the folder scanned) is the frame's file
    and origin, and with the DICOM tags, its view (``imaging.views``)."""
    path = Path(path)
    if dicom is None:
        dicom = is_dicom_file(path)
    if dicom:
        file = read_dicom_file(path)
        assert file is not None
        still, view = file.frames == 1, frame_view(rel, file)
        for k, image in enumerate(decode_frames(file), 1):
            yield Frame(image, 0, 0.0, roi=file.region.roi, still=still, origin=frame_origin(rel, file, k),
                        file=rel, frame_number=None if still else k, view=view, pixel_mm=file.region.pixel_mm)
    else:
        yield Frame(read_image(path), 0, 0.0, still=True, origin=rel, file=rel, view=view_named(rel))


@dataclass(frozen=True)
class _Item:
    path: Path
    rel: str
    group: str
    dicom: bool


def _patient_folders_only(root: Path, items: list[_Item]) -> list[_Item]:
    """With patient sub-folders present, the images loose at the top of the folder are left out,
    with a log line (a contact sheet or an overview beside the patients' folders — what
    ``gout-edge phantom`` writes — is no patient of its own). Only a folder without sub-folders
    of images is one exam of its loose files."""
    top = [it for it in items if not it.group]
    if not top or len(top) == len(items):
        return items
    names = ", ".join(it.path.name for it in top[:3]) + (" …" if len(top) > 3 else "")
    folders = len({it.group for it in items if it.group})
    log.info("image folder %r: %d image file(s) at its top level left out (%s): it has %d sub-folder(s) of images, "
             "one per patient, and only those are scanned", root.name, len(top), names, folders)
    return [it for it in items if it.group]


class ImageFolderSource(FileSource):
    """Still images from a folder tree (or one image file), grouped by sub-folder."""

    kind = "images"

    def __init__(self, target: str | Path, *, strict: bool = False, patient: str | None = None) -> None:
        super().__init__(target, strict)
        root = self.root
        if not root.exists():
            raise InputError(f"image folder {root.name!r} not found")
        if root.is_file():
            items = [_Item(root, root.name, "", is_dicom_file(root))]
            if not (root.suffix.lower() in IMAGE_SUFFIXES or items[0].dicom):
                raise InputError(f"{root.name} is not a PNG, JPEG or DICOM image; --images takes a folder of them or one image")
        else:
            items = []
            files = sorted(q for q in root.rglob("*") if q.is_file() and not q.name.startswith("."))
            for p in files:
                suffix = p.suffix.lower()
                dicom = suffix in (".dcm", ".dicom") or (not suffix and is_dicom_file(p))
                if suffix in RASTER_SUFFIXES or dicom:
                    rel = p.relative_to(root)
                    group = rel.parent.as_posix() if rel.parent != Path(".") else ""
                    items.append(_Item(p, rel.as_posix(), group, dicom))
            if not files:
                raise InputError(f"image folder {root.name!r} is empty; --images takes a folder of PNG, JPEG or DICOM "
                                 "images (one sub-folder per patient) or one image")
            if not items:
                kinds = sorted({f.suffix.lower() or "no suffix" for f in files})
                shown = ", ".join(kinds[:5]) + (" …" if len(kinds) > 5 else "")
                raise InputError(f"image folder {root.name!r} has no images among its {len(files)} file(s) ({shown}); "
                                 "--images reads .png, .jpg, .jpeg and DICOM files (.dcm, .dicom or none)")
            items = _patient_folders_only(root, items)
        self._patients = {it.group: (it.group.split("/")[-1] if it.group else None) for it in items}
        if patient is not None:
            named = {g for g, pid in self._patients.items() if pid is not None}
            if named and not (set(self._patients) - named):
                items = [it for it in items if self._patients[it.group] == patient]
                if not items:
                    raise InputError(
                        "no sub-folder of the image folder is named after the patient given with --patient; "
                        "leave --patient out to scan every sub-folder"
                    )
            else:
                self._patients = {g: (pid or patient) for g, pid in self._patients.items()}
        self.items = items
        if strict and not root.is_file():  # every file decoded once: refused before the first frame
            for item in items:
                try:
                    for _ in self._frames_of(item):
                        pass
                except InputError as exc:
                    raise InputError(f"{exc}; refused because of --strict (leave it out to skip such files)") from None

    def groups(self) -> list[SourceGroup]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.group] = out.get(it.group, 0) + 1
        return [SourceGroup(g, self._patients[g], n, n) for g, n in out.items()]

    def _frames_of(self, item: _Item) -> Iterator[Frame]:
        return frames_of_file(item.path, item.rel, item.dicom)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        single = self.root.is_file()
        for item in self.items:
            used = 0
            try:
                for frame in self._frames_of(item):
                    if self._closed:
                        return
                    yield dataclasses.replace(frame, index=index, group=item.group, patient_id=self._patients[item.group])
                    index += 1
                    used += 1
            except InputError as exc:
                if single or self.strict:
                    raise
                name = item.path.name
                reason = without_name(str(exc), name)
                self.skip(name, reason if not used else f"{reason} (its first {used} frame(s) were used)")
        if index == 0 and self.skipped:
            raise self.nothing_read(len(self.items), "image file(s)")
        self.end_reason = "end of files"

