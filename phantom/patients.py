"""Phantom cohorts: patients, their scanners, views, acquisitions and planned findings.

Planning is cheap and separate from rendering: ``generate_cohort`` decides everything (diagnosis,
lesions per image, probe settings, seeds) and ``render.render_image`` turns one ``ImageSpec``
into pixels, so the same spec renders identically in every form.

The cohort follows the seed paper: about 55 % gout patients (149/260) and 45 % controls; a gout
patient meets the paper's inclusion rule (a tophus, or at least two of double contour, erosion
and aggregates) and has 10–13 images over the dorsal, medial and plantar views, 40–70 % of them
with a visible lesion; about one lesion image in six shows only a subtle variant (mild double
contour, scattered aggregates, slight synovial thickening). Controls show no lesion, but normal
images of both groups carry mimics now and then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import VIEWS, Anatomy, sample_anatomy
from .lesions import LESION_KINDS, MIMIC_KINDS, SUBTLE_KINDS, Finding, sample_lesion, sample_mimic

__all__ = [
    "Acquisition",
    "ImageSpec",
    "Patient",
    "SCANNERS",
    "Scanner",
    "generate_cohort",
    "gout_inclusion",
    "make_image_spec",
    "study_date",
]

GOUT_SHARE = 0.55
ABNORMAL_SHARE = (0.4, 0.7)
SUBTLE_SHARE = 0.2
RULE_KINDS = ("double_contour", "erosion", "aggregates")

# Where each lesion tends to be seen (relative weights over dorsal, medial, plantar).
VIEW_WEIGHTS = {
    "double_contour": (0.55, 0.3, 0.15),
    "tophus": (0.4, 0.45, 0.15),
    "aggregates": (0.4, 0.3, 0.3),
    "erosion": (0.3, 0.6, 0.1),
    "synovitis": (0.6, 0.25, 0.15),
}
MIMIC_VIEWS = {
    "cartilage_interface": ("dorsal", "medial", "plantar"),
    "tendon_anisotropy": ("dorsal", "plantar"),
    "irregular_bone": ("dorsal", "medial", "plantar"),
    "gel_shadow": ("medial",),
}
DEPTH_MM = {"dorsal": (18.0, 23.0), "medial": (16.0, 20.0), "plantar": (23.0, 28.0)}


@dataclass(frozen=True)
class Scanner:
    """A fictitious cart: its screen layout, probe and default image settings."""

    name: str
    probe: str
    preset: str
    frame_size: tuple[int, int]  # width, height of the screen image
    bmode_size: tuple[int, int]  # width, height of the B-mode area
    bmode_origin: tuple[int, int]  # x, y of the B-mode area's top-left corner on the screen
    freq_mhz: tuple[float, ...]
    dynamic_range_db: float
    gamma: float
    accent_bgr: tuple[int, int, int]


SCANNERS = (
    Scanner("SYNTHOSONIC S5", "L18-6 SYN", "MSK Foot", (1024, 768), (720, 360), (120, 112), (12.0, 14.0), 58.0, 1.8, (80, 220, 240)),
    Scanner("PHANTOVUE 7", "HL15 PHX", "Small Parts", (1024, 768), (760, 400), (96, 124), (10.0, 12.0, 13.0), 62.0, 1.9, (230, 200, 90)),
    Scanner("ECHOSIM MX", "LA13 ESM", "MSK Joint", (1024, 768), (700, 330), (150, 128), (13.0, 15.0), 55.0, 1.7, (120, 240, 120)),
)


@dataclass(frozen=True)
class Acquisition:
    """Probe settings and position for one image."""

    depth_mm: float
    freq_mhz: float
    gain_db: float
    dynamic_range_db: float
    gamma: float  # the grey map after log compression
    tilt_deg: float  # in-plane probe tilt (heel-toe); shears the anatomy
    shift_mm: float  # probe position along the joint
    focus_mm: float
    tgc_fraction: float
    noise_grey: float  # electronic noise floor, mean grey level in the B-mode area

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to render one image; ``seed`` drives its speckle and textures."""

    patient_id: str
    index: int
    view: str
    anatomy: Anatomy
    acquisition: Acquisition
    lesions: tuple[Finding, ...]
    mimics: tuple[Finding, ...]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.index:02d}_{self.view}"

    @property
    def image_label(self) -> int:
        return int(bool(self.lesions))

    @property
    def subtle(self) -> bool:
        return bool(self.lesions) and all(f.subtle for f in self.lesions)


@dataclass(frozen=True)
class Patient:
    patient_id: str
    diagnosis: str  # "gout" or "control"
    lesion_kinds: tuple[str, ...]  # what the images show, over all views
    scanner: Scanner
    images: tuple[ImageSpec, ...]
    seed: int

    @property
    def n_lesion_images(self) -> int:
        return sum(im.image_label for im in self.images)


def study_date(patient_id: str) -> str:
    """A synthetic exam date (YYYYMMDD) that is the same on every screen and file of a patient."""
    number = int("".join(c for c in patient_id if c.isdigit()) or 0)
    return f"202305{1 + (7 * number) % 27:02d}"


def gout_inclusion(kinds: set[str] | tuple[str, ...]) -> bool:
    """The seed paper's rule: a tophus, or at least two of double contour, erosion, aggregates."""
    kinds = set(kinds)
    return "tophus" in kinds or len(kinds & set(RULE_KINDS)) >= 2


def _acquisition(rng: np.random.Generator, view: str, anatomy: Anatomy, scanner: Scanner,
                 depth_mm: float, freq_mhz: float, gain_db: float, mimic_kinds: tuple[str, ...]) -> Acquisition:
    tilt = float(np.clip(rng.normal(0.0, 2.5), -5.0, 5.0))
    if "tendon_anisotropy" in mimic_kinds:
        tilt = float(rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 8.0))
    return Acquisition(
        depth_mm=depth_mm,
        freq_mhz=freq_mhz,
        gain_db=gain_db + rng.uniform(-2.0, 2.0),
        dynamic_range_db=scanner.dynamic_range_db + rng.uniform(-4.0, 4.0),
        gamma=scanner.gamma,
        tilt_deg=tilt,
        shift_mm=rng.uniform(-2.0, 2.0),
        focus_mm=anatomy.head_depth_mm + rng.uniform(-1.0, 2.0),
        tgc_fraction=rng.uniform(0.8, 1.0),
        noise_grey=rng.uniform(24.0, 30.0),
    )


def _image_seed(seed: int, patient: int, image: int) -> int:
    return int(np.random.SeedSequence([seed, patient, image]).generate_state(1)[0])


def _views_for(rng: np.random.Generator, n_images: int) -> list[str]:
    counts = {v: 3 for v in VIEWS}
    for v in rng.choice(VIEWS, size=n_images - 9):
        counts[str(v)] += 1
    return [v for v in VIEWS for _ in range(counts[v])]  # the protocol: dorsal → medial → plantar


def _gout_kinds(rng: np.random.Generator) -> set[str]:
    if rng.random() < 0.5:
        kinds = {"tophus"} | {k for k in RULE_KINDS if rng.random() < 0.4}
    else:
        n = 2 if rng.random() < 0.65 else 3
        kinds = set(rng.choice(RULE_KINDS, size=n, replace=False).tolist())
    if rng.random() < 0.5:
        kinds.add("synovitis")
    return kinds


def _pick_view_image(rng: np.random.Generator, kind: str, views: list[str], free: list[int]) -> int:
    w = np.array([VIEW_WEIGHTS[kind][VIEWS.index(views[i])] for i in free])
    return free[int(rng.choice(len(free), p=w / w.sum()))]


def _plan_lesions(rng: np.random.Generator, kinds: set[str], views: list[str]) -> dict[int, list[tuple[str, bool]]]:
    """Which images show which lesions (kind, subtle); every patient kind appears typical once."""
    n = len(views)
    n_abnormal = max(2, int(round(rng.uniform(*ABNORMAL_SHARE) * n)))
    plan: dict[int, list[tuple[str, bool]]] = {}
    free = list(range(n))
    for kind in sorted(kinds, key=lambda k: LESION_KINDS.index(k)):
        if len(plan) < n_abnormal or not plan:
            i = _pick_view_image(rng, kind, views, free)
            free.remove(i)
            plan[i] = [(kind, False)]
        else:  # more kinds than abnormal images: share an image
            i = int(rng.choice(sorted(plan)))
            plan[i].append((kind, False))
    ordered = sorted(kinds, key=lambda k: LESION_KINDS.index(k))
    subtle_pool = [k for k in ordered if k in SUBTLE_KINDS] or ["synovitis"]
    while len(plan) < n_abnormal and free:
        if rng.random() < SUBTLE_SHARE * 1.6:  # the forced typical images above dilute this
            kind = str(rng.choice(subtle_pool))
            i = _pick_view_image(rng, kind, views, free)
            plan[i] = [(kind, True)]
        else:
            k = 1 if rng.random() < 0.6 else 2
            chosen = rng.choice(ordered, size=min(k, len(ordered)), replace=False).tolist()
            i = _pick_view_image(rng, chosen[0], views, free)
            plan[i] = [(str(c), False) for c in chosen]
        free.remove(i)
    return plan


def _plan_mimics(rng: np.random.Generator, view: str, p: float) -> tuple[str, ...]:
    if rng.random() >= p:
        return ()
    options = [k for k in MIMIC_KINDS if view in MIMIC_VIEWS[k]]
    return (str(rng.choice(options)),)


def _plan_patient(index: int, diagnosis: str, seed: int) -> Patient:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0x9A71E7]))
    patient_id = f"P{index + 1:04d}"
    scanner = SCANNERS[int(rng.integers(len(SCANNERS)))]
    anatomy = {v: sample_anatomy(rng, v) for v in VIEWS}
    depth = {v: float(np.round(rng.uniform(*DEPTH_MM[v]))) for v in VIEWS}
    freq = float(rng.choice(scanner.freq_mhz))
    gain = rng.uniform(-21.0, -17.0)
    views = _views_for(rng, int(rng.integers(10, 14)))
    if diagnosis == "gout":
        kinds = _gout_kinds(rng)
        plan = _plan_lesions(rng, kinds, views)
    else:
        kinds, plan = set(), {}
    images = []
    for i, view in enumerate(views):
        lesions = tuple(sample_lesion(k, view, subtle, rng) for k, subtle in plan.get(i, []))
        mimic_kinds = _plan_mimics(rng, view, 0.12 if lesions else (0.35 if diagnosis == "control" else 0.25))
        mimics = tuple(sample_mimic(k, view, rng) for k in mimic_kinds)
        acq = _acquisition(rng, view, anatomy[view], scanner, depth[view], freq, gain, mimic_kinds)
        images.append(ImageSpec(patient_id, i + 1, view, anatomy[view], acq, lesions, mimics, _image_seed(seed, index, i)))
    shown = {f.kind for im in images for f in im.lesions}
    return Patient(patient_id, diagnosis, tuple(k for k in LESION_KINDS if k in shown), scanner, tuple(images), seed)


def generate_cohort(n_patients: int, seed: int) -> list[Patient]:
    """Plan ``n_patients`` phantom patients (about 55 % gout); cheap, renders nothing."""
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    n_gout = max(1, int(round(GOUT_SHARE * n_patients))) if n_patients > 1 else 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0407]))
    diagnoses = np.array(["gout"] * n_gout + ["control"] * (n_patients - n_gout))
    rng.shuffle(diagnoses)
    return [_plan_patient(i, str(d), seed) for i, d in enumerate(diagnoses)]


def make_image_spec(
    view: str = "dorsal",
    lesions: tuple[str, ...] = (),
    mimics: tuple[str, ...] = (),
    subtle: bool = False,
    seed: int = 0,
    **acquisition: float,
) -> ImageSpec:
    """One image with chosen findings (examples, contact sheet, tests); overrides via keywords."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EE7]))
    scanner = SCANNERS[0]
    anatomy = sample_anatomy(rng, view)
    findings = tuple(sample_lesion(k, view, subtle and k in SUBTLE_KINDS, rng) for k in lesions)
    mims = tuple(sample_mimic(k, view, rng) for k in mimics)
    acq = _acquisition(rng, view, anatomy, scanner, float(np.mean(DEPTH_MM[view])), scanner.freq_mhz[0], -19.0, mimics)
    acq = Acquisition(**{**acq.__dict__, "shift_mm": 0.0, **acquisition})
    return ImageSpec("P0000", 1, view, anatomy, acq, findings, mims, int(rng.integers(2**31)))
