"""Synthetic B-mode phantoms of the first metatarsophalangeal joint, with ground truth.

There is no public gout ultrasound data set, so this package simulates one: a longitudinal scan
of the first MTPJ (dorsal, medial, plantar views) built from tissue maps, Rayleigh speckle through
a point-spread function, attenuation, shadowing and log compression (``_physics``), with the
OMERACT lesions of gout and the normal findings that mimic them (``lesions``), planned per phantom
patient by the seed paper's inclusion rule (``patients``), and written in the forms a cart
produces: PNG screens + index table, DICOM (single frames and a cine) and screen video.

    from gout_edge.phantom import generate_cohort, render_image, write_phantoms

    cohort = generate_cohort(20, seed=0)           # planning only, cheap
    image = render_image(cohort[0].images[0])      # image.bmode: uint8 320 × 700, image.lesions
    write_phantoms(Path("phantoms"), 20, seed=0, formats=("png", "dicom", "video"))

``out_of_scope`` builds the opposite: screens the model was not made for (other anatomy, colour
Doppler, near-miss MTP phantoms, non-ultrasound images) to test a scope guard on
(``generate_out_of_scope``, ``write_out_of_scope``).

Everything is deterministic for a seed. Not patient data; not for clinical use.
"""

from .anatomy import VIEWS, Anatomy
from .lesions import LESION_KINDS, MIMIC_KINDS, SUBTLE_KINDS, Finding
from .out_of_scope import (
    OUT_OF_SCOPE_CATEGORIES,
    OutOfScopeImage,
    OutOfScopeSummary,
    generate_out_of_scope,
    out_of_scope_sheet,
    write_out_of_scope,
)
from .patients import Acquisition, ImageSpec, Patient, Scanner, generate_cohort, gout_inclusion, make_image_spec
from .render import Box, PhantomImage, render_image
from .sheet import contact_sheet
from .writer import FORMATS, PhantomSummary, write_phantoms

__all__ = [
    "FORMATS",
    "LESION_KINDS",
    "MIMIC_KINDS",
    "OUT_OF_SCOPE_CATEGORIES",
    "SUBTLE_KINDS",
    "VIEWS",
    "Acquisition",
    "Anatomy",
    "Box",
    "Finding",
    "ImageSpec",
    "OutOfScopeImage",
    "OutOfScopeSummary",
    "Patient",
    "PhantomImage",
    "PhantomSummary",
    "Scanner",
    "contact_sheet",
    "generate_cohort",
    "generate_out_of_scope",
    "gout_inclusion",
    "make_image_spec",
    "out_of_scope_sheet",
    "render_image",
    "write_out_of_scope",
    "write_phantoms",
]
