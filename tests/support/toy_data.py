"""A tiny labelled data set of scanner-like PNG frames, written by numpy + OpenCV, for tests that
need an index table without the cost of the phantom generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PATIENTS = 8
IMAGES_PER_PATIENT = 6


def make_toy_dataset(root: Path, seed: int = 0) -> Path:
    """8 patients × 6 PNG frames: a grey speckle rectangle on a black screen with a text
    overlay; lesion images carry a bright blob. Half the patients have gout (4 lesion images
    of 6), the other half are controls (one has a single lesion image)."""
    rng = np.random.default_rng(seed)
    lines = ["patient_id,image,image_label,diagnosis,view"]
    views = ("dorsal", "medial", "plantar")
    for p in range(PATIENTS):
        gout = p % 2 == 0
        labels = [1, 1, 0, 1, 0, 1] if gout else ([0] * 5 + [1] if p == 3 else [0] * 6)
        for i, label in enumerate(labels):
            frame = np.zeros((120, 240), np.uint8)
            speckle = cv2.GaussianBlur(rng.normal(90, 30, (90, 200)).clip(0, 255), (0, 0), 1.2)
            frame[15:105, 20:220] = speckle.astype(np.uint8)
            if label:
                cx, cy = int(rng.integers(50, 190)), int(rng.integers(35, 85))
                cv2.circle(frame, (cx, cy), 9, 235, -1)
            cv2.putText(frame, "US 12MHz", (2, 10), cv2.FONT_HERSHEY_PLAIN, 0.7, 255, 1)
            name = f"img/p{p}_{i}.png"
            (root / "img").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), frame)
            dx = "gout" if gout else "control"
            lines.append(f"P{p:03d},{name},{label},{dx},{views[i % 3] if i < 3 else ''}")
    csv = root / "index.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv
