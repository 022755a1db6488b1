"""``write_phantoms``: a phantom cohort on disk in the forms a cart produces, with ground truth.

Layout of ``out_dir``::

    index.csv                           patient_id,image,image_label,diagnosis,view
    ground_truth.json                   per patient and per image: lesions, boxes, B-mode area
    images/<patient_id>/<nn>_<view>.png scanner screens            (form "png")
    dicom/<patient_id>/IM<nn>_<view>.dcm, CINE.dcm                 (form "dicom")
    video/<patient_id>.mp4 + .json      console recording + truth  (form "video")

``index.csv`` lists the PNG files, or the DICOM single frames when no PNG is written.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gout_edge.edge_runtime.imaging.png import write_png
from gout_edge.errors import UsageError

from ._screen import layout_for
from .patients import Patient, generate_cohort
from .png import render_screen

__all__ = ["FORMATS", "PhantomSummary", "write_phantoms"]

FORMATS = ("png", "dicom", "video")
INDEX_HEADER = ("patient_id", "image", "image_label", "diagnosis", "view")
CINE_FRAMES = 12


@dataclass(frozen=True)
class PhantomSummary:
    out_dir: Path
    seed: int
    formats: tuple[str, ...]
    n_patients: int
    n_gout: int
    n_controls: int
    n_images: int
    n_lesion_images: int
    n_subtle_images: int
    files: Mapping[str, int] = field(default_factory=dict)
    index_csv: Path | None = None
    ground_truth: Path | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "formats": list(self.formats),
            "n_patients": self.n_patients,
            "n_gout": self.n_gout,
            "n_controls": self.n_controls,
            "n_images": self.n_images,
            "n_lesion_images": self.n_lesion_images,
            "n_subtle_images": self.n_subtle_images,
            "files": dict(self.files),
            "index_csv": None if self.index_csv is None else str(self.index_csv),
            "ground_truth": None if self.ground_truth is None else str(self.ground_truth),
        }


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = formats.split(",")
    names = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise UsageError(
            f"phantom form(s) {unknown or list(formats)} not known; expected some of {', '.join(FORMATS)}; "
            "fix: e.g. formats=('png', 'dicom')"
        )
    return names


def _patient_truth(patient: Patient) -> dict[str, object]:
    return {
        "patient_id": patient.patient_id,
        "diagnosis": patient.diagnosis,
        "lesions": list(patient.lesion_kinds),
        "scanner": patient.scanner.name,
        "n_images": len(patient.images),
        "n_lesion_images": patient.n_lesion_images,
        "images": [],
    }


def write_phantoms(
    out_dir: Path,
    n_patients: int,
    seed: int = 0,
    formats: Sequence[str] = ("png",),
    progress: Callable[[int, int], None] | None = None,
) -> PhantomSummary:
    """Plan ``n_patients`` phantom patients from ``seed`` and write them in ``formats``.

    ``progress(done, total)`` is called after each patient and form. The same seed writes the
    same bytes (PNG, DICOM, truth files).
    """
    if n_patients < 1:
        raise UsageError(f"n_patients={n_patients} is too small; expected at least 1; fix: pass n_patients=20")
    forms = _check_formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort = generate_cohort(n_patients, seed)
    total, done = n_patients * len(forms), 0
    counts = {f: 0 for f in forms}
    index_rows: list[tuple[object, ...]] = []
    truth_patients = []
    for p_i, patient in enumerate(cohort):
        truth = _patient_truth(patient)
        layout = layout_for(patient.scanner)
        screens = []
        if "png" in forms or "dicom" in forms:
            for spec in patient.images:
                screen, image, _ = render_screen(spec, patient.scanner, layout)
                png_rel = f"images/{patient.patient_id}/{spec.name}.png"
                dcm_rel = f"dicom/{patient.patient_id}/IM{spec.index:02d}_{spec.view}.dcm"
                truth["images"].append({
                    "image": png_rel if "png" in forms else None,
                    "dicom": dcm_rel if "dicom" in forms else None,
                    "view": spec.view,
                    "image_label": image.image_label,
                    "subtle": spec.subtle,
                    "lesions": [b.to_dict() for b in image.lesions],
                    "mimics": [b.to_dict() for b in image.mimics],
                    "bmode_rect": list(layout.bmode_rect),
                    "bmode_size": list(layout.bmode_size),
                    "pixel_mm": round(image.pixel_mm, 6),
                    "acquisition": spec.acquisition.to_dict(),
                })
                index_rel = png_rel if "png" in forms else dcm_rel
                index_rows.append((patient.patient_id, index_rel, image.image_label, patient.diagnosis, spec.view))
                screens.append((spec, screen, image.pixel_mm))
        if "png" in forms:
            for spec, screen, _ in screens:
                write_png(out_dir / "images" / patient.patient_id / f"{spec.name}.png", screen)
                counts["png"] += 1
            done += 1
            if progress:
                progress(done, total)
        if "dicom" in forms:
            from .dicom import write_dicom
            from .video import FPS, clip

            cine_layout = layout
            cine_spec = next((s for s in patient.images if s.view == "dorsal"), patient.images[0])
            frames = []
            for screen, _ in clip(patient, cine_layout, seed, views=(cine_spec.view,), freezes=False, transitions=False):
                frames.append(screen)
                if len(frames) == CINE_FRAMES:
                    break
            cine_mm = cine_spec.acquisition.depth_mm / cine_layout.bmode_size[1]
            paths = write_dicom(out_dir, patient, p_i, seed, screens, (cine_spec, frames, cine_mm, FPS), layout, cine_layout)
            counts["dicom"] += len(paths)
            truth["dicom_cine"] = f"dicom/{patient.patient_id}/CINE.dcm"
            done += 1
            if progress:
                progress(done, total)
        if "video" in forms:
            from .video import write_video

            video_path, gt_path, n_frames = write_video(out_dir, patient, p_i, seed)
            counts["video"] += 1
            truth["video"] = {"path": f"video/{video_path.name}", "truth": f"video/{gt_path.name}", "frames": n_frames}
            done += 1
            if progress:
                progress(done, total)
        if not screens:  # video only: the planned images still go into the truth file
            for spec in patient.images:
                truth["images"].append({"image": None, "view": spec.view, "image_label": spec.image_label,
                                        "subtle": spec.subtle, "lesions": [f.kind for f in spec.lesions],
                                        "acquisition": spec.acquisition.to_dict()})
        truth_patients.append(truth)

    index_csv = None
    if index_rows:
        index_csv = out_dir / "index.csv"
        with index_csv.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(INDEX_HEADER)
            w.writerows(index_rows)
    gt = out_dir / "ground_truth.json"
    gt.write_text(json.dumps({
        "generator": "gout-edge phantom (synthetic first-MTPJ B-mode; not patient data)",
        "seed": seed,
        "formats": list(forms),
        "box_convention": "B-mode pixels [x0, y0, x1, y1], end-exclusive; add bmode_rect[:2] for screen pixels",
        "patients": truth_patients,
    }, indent=1))
    images = [s for p in cohort for s in p.images]
    return PhantomSummary(
        out_dir=out_dir,
        seed=seed,
        formats=forms,
        n_patients=len(cohort),
        n_gout=sum(p.diagnosis == "gout" for p in cohort),
        n_controls=sum(p.diagnosis == "control" for p in cohort),
        n_images=len(images),
        n_lesion_images=sum(s.image_label for s in images),
        n_subtle_images=sum(s.subtle for s in images),
        files=counts,
        index_csv=index_csv,
        ground_truth=gt,
    )
