"""The paper's patient decision: the fraction of abnormal key frames against the bundle's threshold.

An image is abnormal when its probability exceeds the bundle's image cut-off; the patient has
gouty arthritis when the abnormal fraction exceeds the calibrated patient threshold. Too few key
frames — or a bundle whose threshold was never calibrated — give "indeterminate", never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gout_edge.bundle import DecisionSpec

__all__ = ["GOUT", "INDETERMINATE", "NO_GOUT", "SCOPE_REASON", "PatientDecision", "decide", "missing_coverage",
           "scope_refusal", "view_of"]

GOUT, NO_GOUT, INDETERMINATE = "gout", "no gout", "indeterminate"
SCOPE_REASON = "these images do not look like the first-MTP joint scans this model was trained on"


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


def scope_refusal(out_of_scope: int, judged: int, max_fraction: float) -> str | None:
    """The clinician's reason for no verdict when more than ``max_fraction`` of the frames the scope
    guard judged are out of scope; None otherwise. It outranks every other reason: an exam of
    something else gets no verdict and no hint that more frames would give one."""
    if judged and out_of_scope / judged > max_fraction:
        return (f"{SCOPE_REASON} ({out_of_scope} of {judged} frames are out of scope); "
                "scan the first metatarsophalangeal joint, or read these images without this tool")
    return None


def view_of(origin: str, views: Sequence[str]) -> str | None:
    """The protocol view a frame's origin names (``IM03_medial.dcm``, ``dorsal/2.png``), if any."""
    words = set(re.split(r"[^a-z]+", origin.lower()))
    found = [v for v in views if v in words]
    return found[0] if len(found) == 1 else None


def missing_coverage(timestamps_s: Sequence[float], stills: Sequence[bool], origins: Sequence[str],
                     decision: DecisionSpec) -> str | None:
    """What keeps the key frames from standing for the protocol, in words a clinician reads; None
    when nothing does. Moving key frames (video, cine) must span ``decision.min_span_s`` seconds;
    when any key frame's view is known, every view of ``decision.views`` needs one."""
    moving = [t for t, still in zip(timestamps_s, stills, strict=True) if not still]
    if moving and len(moving) == len(timestamps_s):
        span = max(moving) - min(moving)
        if span < decision.min_span_s:
            return (f"the key frames cover only {span:.1f} s of the exam; at least {decision.min_span_s:g} s over the "
                    "protocol's views are needed — scan longer")
    seen = {view_of(o, decision.views) for o in origins} - {None}
    missing = [v for v in decision.views if v not in seen]
    if seen and missing:
        return (f"no usable key frame of the {' or '.join(missing)} view; the protocol needs "
                f"{', '.join(decision.views)}")
    return None
