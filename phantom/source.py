"""The phantom screen recording as a demo source: ``gout-edge scan --demo``.

One synthetic patient's console video (dorsal, medial and plantar views, freezes, probe lifts) is
written to a temporary folder and played through the runtime's ``VideoSource``, paced
at its frame rate by default so that the demo exercises the live path (capture thread, dropped
frames) as a cart would. ``truth`` holds the per-frame ground truth and the diagnosis.
Synthetic data; not patient data.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gout_edge.edge_runtime.sources import Frame
from gout_edge.edge_runtime.sources.video import VideoSource

from .patients import generate_cohort
from .video import write_video

__all__ = ["PhantomSource"]


class PhantomSource:
    """Frames of phantom patient ``patient_index`` of the cohort drawn from ``seed``."""

    kind = "phantom"

    def __init__(self, seed: int = 0, patient_index: int = 0, *, realtime: bool = True,
                 patient: str | None = None, workdir: str | Path | None = None) -> None:
        self._tmp = None if workdir is not None else tempfile.mkdtemp(prefix="gout-edge-demo-")
        folder = Path(workdir) if workdir is not None else Path(self._tmp)  # type: ignore[arg-type]
        cohort = generate_cohort(patient_index + 1, seed)
        phantom = cohort[patient_index]
        path, truth_path, _ = write_video(folder, phantom, patient_index, seed)
        self.path = path
        self.truth: dict[str, Any] = json.loads(truth_path.read_text())
        self.diagnosis: str = phantom.diagnosis
        self._video = VideoSource(path, realtime=realtime, patient=patient or phantom.patient_id)
        self.live = self._video.live
        self.lost = False
        self.complete = True
        self.end_reason: str | None = None
        self.skipped: tuple = ()
        self.read_ahead = self._video.read_ahead

    def defer_decoding(self) -> None:
        return None

    def __iter__(self) -> Iterator[Frame]:
        yield from self._video
        self.end_reason = self._video.end_reason

    def close(self) -> None:
        self._video.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
