"""Frame → model input, in numpy and OpenCV (docs/design.md §6).

One implementation serves export (calibration and reference outputs), training and the bedside:
find the B-mode region (a DICOM ultrasound region when the caller has one, otherwise threshold +
morphology), crop it, resize to the model's input and standardize each image. Console overlays
outside the region are dropped; blank (no-signal) and colour (Doppler) frames are flagged so that
they stay out of the vote.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gout_edge.errors import InputError
from gout_edge.manifest import InputSpec, PreprocessSpec

__all__ = [
    "MIN_SIDE",
    "PreparedFrame",
    "Roi",
    "check_image",
    "colour_blobs",
    "crop_to_tensor",
    "find_roi",
    "grid_sample",
    "is_doppler",
    "prepare",
    "standardize",
    "to_gray",
]

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
BLANK_STD = 2.0  # grey levels: a region flatter than this carries no ultrasound signal
COLOUR_CHROMA = 40  # max-min over B, G, R above which a pixel counts as coloured
COLOUR_FRACTION = 0.005  # share of the region in colour blobs that marks a Doppler frame
COLOUR_STRIDE = 4  # the colour test samples every 4th pixel of the region in each direction
COLOUR_BLOB_PX = 3  # opening kernel on that grid (12 px on the frame): thinner marks are not flow


@dataclass(frozen=True)
class Roi:
    """A rectangle in frame pixels, end-exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def clip(self, height: int, width: int) -> Roi:
        return Roi(max(0, self.x0), max(0, self.y0), min(width, self.x1), min(height, self.y1))

    def is_plausible(self, height: int, width: int, min_fraction: float) -> bool:
        return (
            self.width >= 16
            and self.height >= 16
            and self.width * self.height >= min_fraction * height * width
        )


@dataclass(frozen=True)
class PreparedFrame:
    """A model input (``tensor``: float32, shape (1, H, W)) and what was learnt on the way."""

    tensor: np.ndarray
    roi: Roi
    blank: bool
    colour: bool

    @property
    def usable(self) -> bool:
        return not (self.blank or self.colour)


MIN_SIDE = 16  # px: the smallest side of an image the runtime reads (docs/design.md §8)


def check_image(image: object, where: str = "image") -> np.ndarray:
    """``image`` as given to the API (``Scorer.score``, ``ExamSession.feed``) when it is one: a
    numpy array H×W (grey) or H×W×1/3/4 (BGR, BGRA) of numbers, at least 16 px a side. Anything
    else — ``None`` above all, which ``cv2.imread`` returns for a file it cannot find or read —
    is an ``InputError`` (exit 3) saying what was given, what is expected and what to do."""
    if image is None:
        raise InputError(f"{where} is None, not an image: cv2.imread gives None for a file that is missing or "
                         "unreadable — check the path and the working folder (gout-edge phantom --out DIR writes "
                         "phantom screens to try)")
    if not isinstance(image, np.ndarray):
        raise InputError(f"{where} is a {type(image).__name__}, not an image; expected a numpy array (H×W grey or "
                         "H×W×3 BGR, as cv2.imread gives)")
    shape_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    if not shape_ok or image.dtype.kind not in "uif" or image.dtype == np.float16:
        raise InputError(f"{where} of shape {image.shape} and type {image.dtype} is not an image; expected H×W grey or "
                         "H×W×3 BGR numbers (uint8 as cv2.imread gives)")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError(f"{where} of {image.shape[1]}×{image.shape[0]} px is too small; expected at least "
                         f"{MIN_SIDE} px a side (a scanner screen)")
    return image


def to_gray(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the grey image (uint8, H×W) and the BGR image if the frame had colour channels."""
    if frame.ndim == 2:
        gray, bgr = frame, None
    elif frame.ndim == 3 and frame.shape[2] == 1:
        gray, bgr = frame[:, :, 0], None
    elif frame.ndim == 3 and frame.shape[2] in (3, 4):
        bgr = frame[:, :, :3]
        gray = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)
    else:
        raise InputError(
            f"a frame of shape {frame.shape} is not an image; expected H×W grey or H×W×3 BGR"
        )
    if gray.dtype != np.uint8:
        gray = _to_uint8(gray)
    return gray, bgr


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((image - lo) * scale).astype(np.uint8)


def find_roi(gray: np.ndarray, spec: PreprocessSpec = PreprocessSpec()) -> Roi | None:
    """Find the B-mode area of a scanner image by threshold and morphology; ``None`` if there is none.

    Speckle is bright or textured everywhere inside the B-mode area (even in shadows the noise
    floor lifts it above the black screen); text, rulers and markers are thin and vanish under a
    morphological opening. The largest remaining component's box is the region.
    """
    h, w = gray.shape
    scale = min(1.0, spec.roi_analysis_width / w)
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    smooth = cv2.blur(small, (5, 5))
    mask = (smooth > spec.roi_threshold).astype(np.uint8)
    k = spec.roi_morph_kernel
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = labels == best
    # Trim ragged edges: keep rows/columns at least half filled inside the component's box.
    x, y, bw, bh = stats[best, :4]
    box = comp[y : y + bh, x : x + bw]
    rows = np.flatnonzero(box.mean(axis=1) >= 0.5)
    cols = np.flatnonzero(box.mean(axis=0) >= 0.5)
    if rows.size and cols.size:
        y, bh = y + rows[0], rows[-1] - rows[0] + 1
        x, bw = x + cols[0], cols[-1] - cols[0] + 1
    inv = 1.0 / scale
    roi = Roi(
        int(np.floor(x * inv)), int(np.floor(y * inv)),
        int(np.ceil((x + bw) * inv)), int(np.ceil((y + bh) * inv)),
    ).clip(h, w)
    return roi if roi.is_plausible(h, w, spec.roi_min_area_fraction) else None


def grid_sample(region: np.ndarray, stride: int) -> np.ndarray:
    """``region[::stride, ::stride, :3]`` as a contiguous array, the same values, gathered by
    OpenCV's nearest-neighbour resize at an exact integer ratio (5× faster than numpy's strided
    copy of 3-byte pixels)."""
    rows = region[::stride]
    h, w = rows.shape[:2]
    n = w // stride
    if stride == 1 or n == 0 or h == 0:
        return np.ascontiguousarray(rows[:, ::stride, :3])
    sample = cv2.resize(rows[:, : n * stride], (n, h), interpolation=cv2.INTER_NEAREST)
    if sample.ndim == 2:  # OpenCV drops a single channel
        sample = sample[:, :, None]
    if w % stride:  # the last column of samples, past the whole blocks
        sample = np.concatenate([sample, rows[:, n * stride : n * stride + 1]], axis=1)
    return np.ascontiguousarray(sample[:, :, :3])


def colour_blobs(sample: np.ndarray) -> bool:
    """The Doppler test on a BGR sample of a region already on the ``COLOUR_STRIDE`` grid."""
    if sample.size == 0:
        return False
    b, g, r = cv2.split(np.ascontiguousarray(sample[:, :, :3]))
    chroma = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
    mask = (chroma > COLOUR_CHROMA).view(np.uint8)  # numpy: cv2.compare misreads a scalar on tiny arrays
    if cv2.countNonZero(mask) <= COLOUR_FRACTION * mask.size:  # too few coloured pixels even before opening
        return False
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (COLOUR_BLOB_PX, COLOUR_BLOB_PX))
    blobs = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    return cv2.countNonZero(blobs) > COLOUR_FRACTION * mask.size


def is_doppler(region: np.ndarray) -> bool:
    """Whether a BGR B-mode region carries colour flow (Doppler): coloured pixels (max − min over
    B, G, R above ``COLOUR_CHROMA``) that form blobs — what survives a morphological opening of
    ``COLOUR_BLOB_PX`` on the sampled grid — over more than ``COLOUR_FRACTION`` of the region.
    Coloured marks a scanner draws on a grey image (arrows, calipers, depth markers, text, lines)
    are thin and vanish under the opening; flow boxes are filled areas and stay. The region is
    sampled every ``COLOUR_STRIDE`` pixels in each direction."""
    if region.ndim != 3 or region.shape[2] < 3:
        return False
    return colour_blobs(grid_sample(region, COLOUR_STRIDE))


def standardize(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-image standardization of a uint8 image: (float32 model input (1, H, W) with zero mean
    and unit standard deviation, the image's standard deviation in grey levels).

    One pass for the statistics (``cv2.meanStdDev``, double precision) and one multiply-add into
    the output: no float copy of the image, no second pass for the deviation."""
    mean, std = cv2.meanStdDev(image)
    m, sd = float(mean[0, 0]), float(std[0, 0])
    inv = 1.0 / max(sd, 1e-3)
    out = np.empty((1, *image.shape[:2]), np.float32)
    np.multiply(image, np.float32(inv), out=out[0], dtype=np.float32)
    out -= np.float32(m * inv)
    return out, sd


def prepare(
    frame: np.ndarray,
    input_spec: InputSpec = InputSpec(),
    spec: PreprocessSpec = PreprocessSpec(),
    roi: Roi | None = None,
) -> PreparedFrame:
    """Frame (grey or BGR, any size) → standardized model input of shape (1, H, W).

    ``roi`` skips detection (a cached region, or a DICOM ultrasound region); it is clipped to the
    frame and ignored when implausible. A frame with no B-mode region at all (a no-signal screen
    with only console overlays) is prepared from the whole frame and flagged blank.
    """
    gray, bgr = to_gray(frame)
    h, w = gray.shape
    if roi is not None:
        roi = roi.clip(h, w)
        if not roi.is_plausible(h, w, spec.roi_min_area_fraction):
            roi = None
    no_region = False
    if roi is None:
        roi = find_roi(gray, spec)
        if roi is None:
            roi, no_region = Roi(0, 0, w, h), True
    crop = gray[roi.y0 : roi.y1, roi.x0 : roi.x1]
    size = (input_spec.width, input_spec.height)
    resized = cv2.resize(crop, size, interpolation=_INTERPOLATION[spec.interpolation])
    tensor, sd = standardize(resized)
    blank = no_region or sd < BLANK_STD
    colour = bgr is not None and is_doppler(bgr[roi.y0 : roi.y1, roi.x0 : roi.x1])
    return PreparedFrame(tensor=tensor, roi=roi, blank=blank, colour=colour)


def crop_to_tensor(image: np.ndarray, roi: Roi, input_spec: InputSpec = InputSpec(),
                   spec: PreprocessSpec = PreprocessSpec()) -> tuple[np.ndarray, float] | None:
    """The model input of ``roi`` in one pass from the frame: crop (a view), grey conversion of
    the crop only (BGR, BGRA or the first channel), resize, standardize — no full-size grey frame, no
    copy of the crop. (tensor, standard deviation in grey levels), equal to what ``prepare(image,
    roi=roi)`` gives; ``None`` where that would not use ``roi`` as given (an implausible region,
    a non-uint8 frame), so the caller falls back to ``prepare``."""
    h, w = image.shape[:2]
    if image.dtype != np.uint8 or not roi.is_plausible(h, w, spec.roi_min_area_fraction) or roi.clip(h, w) != roi:
        return None
    crop = image[roi.y0 : roi.y1, roi.x0 : roi.x1]
    if crop.ndim == 3 and crop.shape[2] in (3, 4):
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY if crop.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    elif crop.ndim == 3 and crop.shape[2] == 1:
        grey = crop[:, :, 0]
    elif crop.ndim == 2:
        grey = crop
    else:
        return None
    resized = cv2.resize(grey, (input_spec.width, input_spec.height), interpolation=_INTERPOLATION[spec.interpolation])
    return standardize(resized)
