"""The paper's patient decision: the fraction of abnormal key frames against the bundle's threshold.

An image is abnormal when its probability exceeds the bundle's image cut-off; the patient has
gouty arthritis when the abnormal fraction exceeds the calibrated patient threshold. Too few key
frames — or a bundle whose threshold was never calibrated — give "indeterminate", never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gout_edge.bundle import DecisionSpec

__all__ = ["GOUT", "INDETERMINATE", "NO_GOUT", "PatientDecision", "decide"]

GOUT, NO_GOUT, INDETERMINATE = "gout", "no gout", "indeterminate"


@dataclass(frozen=True)
class PatientDecision:
    diagnosis: str
    abnormal_fraction: float | None
    abnormal_frames: int
    key_frames: int
    threshold: float | None
    reason: str


def decide(probabilities: Sequence[float] | np.ndarray, decision: DecisionSpec, threshold: float | None = None) -> PatientDecision:
    """Vote over the key frames' abnormal-class probabilities.

    ``threshold`` overrides the bundle's (threshold calibration tries candidates this way).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = decision.patient_threshold if threshold is None else threshold
    n = int(p.size)
    abnormal = int((p > decision.image_cutoff).sum())
    fraction = abnormal / n if n else None
    if n < decision.min_key_frames:
        return PatientDecision(INDETERMINATE, fraction, abnormal, n, t, f"{n} key frame(s); at least {decision.min_key_frames} are needed")
    if t is None:
        return PatientDecision(INDETERMINATE, fraction, abnormal, n, t, "the bundle's patient threshold is not calibrated")
    assert fraction is not None
    if fraction > t:
        return PatientDecision(GOUT, fraction, abnormal, n, t, f"abnormal fraction {fraction:.3f} > threshold {t:.3f}")
    return PatientDecision(NO_GOUT, fraction, abnormal, n, t, f"abnormal fraction {fraction:.3f} ≤ threshold {t:.3f}")
