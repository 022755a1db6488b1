"""The one verdict rule: a patient's tally of key frames → gout, no gout or indeterminate, with a
typed reason. The cart (``ExamSession``), ``evaluate``, ``calibrate``, the reference set and the
tests all decide through ``verdict``; nothing else re-implements any part of it.

The paper's vote (``decide``): an image is abnormal when its probability exceeds the bundle's
image cut-off; the patient has gouty arthritis when the fraction of abnormal key frames exceeds
the calibrated patient threshold. Around it, the cart's rules, in this order of precedence:

1. **scope** — more than the bundle's fraction of the frames the scope guard judged are out of
   scope: indeterminate, whatever else (an exam of something else gets no hint that more frames
   would give a verdict);
2. **the vote** — too few key frames, or an uncalibrated bundle: indeterminate;
3. **completeness** — moving key frames (video, cine) spanning less than ``min_span_s``, or, when
   any key frame's view is known, a protocol view without a key frame: indeterminate.

Reasons are codes with parameters (``Reason``); their words are written in one place
(``Reason.text`` for the report's ``reason`` field, ``Reason.clinician_text`` for the screen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gout_edge.manifest import DecisionSpec, ScopeSpec, TextEnum

__all__ = ["GOUT", "INDETERMINATE", "NO_GOUT", "SCOPE_REASON", "Diagnosis", "PatientDecision", "Reason", "ReasonCode",
           "Vote", "decide", "missing_coverage", "scope_refusal", "verdict"]


class Diagnosis(TextEnum):
    GOUT = "gout"
    NO_GOUT = "no gout"
    INDETERMINATE = "indeterminate"


GOUT, NO_GOUT, INDETERMINATE = Diagnosis.GOUT, Diagnosis.NO_GOUT, Diagnosis.INDETERMINATE
SCOPE_REASON = "these images do not look like the first-MTP joint scans this model was trained on"


class ReasonCode(TextEnum):
    ABOVE_THRESHOLD = "above_threshold"
    NOT_ABOVE_THRESHOLD = "not_above_threshold"
    TOO_FEW_KEY_FRAMES = "too_few_key_frames"
    NOT_CALIBRATED = "not_calibrated"
    OUT_OF_SCOPE = "out_of_scope"
    SHORT_SPAN = "short_span"
    MISSING_VIEW = "missing_view"


@dataclass(frozen=True)
class Reason:
    """Why a patient got its verdict: a code and the numbers behind it. ``str(reason)`` is
    ``text()``, so a reason reads as the sentence wherever one is printed."""

    code: ReasonCode
    key_frames: int = 0
    needed: int = 0  # TOO_FEW_KEY_FRAMES: the bundle's minimum
    fraction: float | None = None  # the abnormal fraction (so far, for the completeness reasons)
    threshold: float | None = None
    out_of_scope: int = 0  # OUT_OF_SCOPE: frames refused of ``judged``
    judged: int = 0
    span_s: float = 0.0  # SHORT_SPAN: seconds the moving key frames cover, of ``min_span_s``
    min_span_s: float = 0.0
    missing: tuple[str, ...] = ()  # MISSING_VIEW: views without a key frame, of the protocol's ``views``
    views: tuple[str, ...] = ()

    @property
    def decided(self) -> bool:
        return self.code in (ReasonCode.ABOVE_THRESHOLD, ReasonCode.NOT_ABOVE_THRESHOLD)

    def _core(self) -> str:
        c = self.code
        if c is ReasonCode.ABOVE_THRESHOLD:
            return f"abnormal fraction {self.fraction:.3f} > threshold {self.threshold:.3f}"
        if c is ReasonCode.NOT_ABOVE_THRESHOLD:
            return f"abnormal fraction {self.fraction:.3f} ≤ threshold {self.threshold:.3f}"
        if c is ReasonCode.TOO_FEW_KEY_FRAMES:
            return f"{self.key_frames} key frame(s); at least {self.needed} are needed"
        if c is ReasonCode.NOT_CALIBRATED:
            return "the bundle's patient threshold is not calibrated"
        if c is ReasonCode.OUT_OF_SCOPE:
            return (f"{SCOPE_REASON} ({self.out_of_scope} of {self.judged} frames are out of scope); "
                    "scan the first metatarsophalangeal joint, or read these images without this tool")
        if c is ReasonCode.SHORT_SPAN:
            return (f"the key frames cover only {self.span_s:.1f} s of the exam; at least {self.min_span_s:g} s over the "
                    "protocol's views are needed — scan longer")
        return f"no usable key frame of the {' or '.join(self.missing)} view; the protocol needs {', '.join(self.views)}"

    def text(self) -> str:
        """The reason as ``report.json`` and ``--json`` give it."""
        if self.code in (ReasonCode.SHORT_SPAN, ReasonCode.MISSING_VIEW) and self.fraction is not None:
            return f"{self._core()} (abnormal fraction so far {self.fraction:.3f})"
        return self._core()

    def clinician_text(self) -> str:
        """The reason for the screen and the printed page: no interim fraction, plurals right."""
        core = self._core()
        if self.code is ReasonCode.TOO_FEW_KEY_FRAMES:
            core = core.replace("key frame(s)", "key frame" if self.key_frames == 1 else "key frames")
        return core

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code.value}
        for name, default in (("key_frames", 0), ("needed", 0), ("fraction", None), ("threshold", None),
                              ("out_of_scope", 0), ("judged", 0), ("span_s", 0.0), ("min_span_s", 0.0)):
            value = getattr(self, name)
            if value != default:
                out[name] = round(value, 4) if isinstance(value, float) else value
        if self.missing:
            out["missing"], out["views"] = list(self.missing), list(self.views)
        return out


@dataclass(frozen=True)
class Vote:
    """One key frame as the verdict sees it."""

    probability: float
    timestamp_s: float = 0.0
    still: bool = True
    view: str | None = None  # the protocol view its file or tags name; None when unknown


@dataclass(frozen=True)
class PatientDecision:
    diagnosis: Diagnosis
    abnormal_fraction: float | None
    abnormal_frames: int
    key_frames: int
    threshold: float | None
    reason: Reason


def decide(probabilities: Sequence[float] | np.ndarray, decision: DecisionSpec, threshold: float | None = None) -> PatientDecision:
    """The paper's vote over the key frames' abnormal-class probabilities (rule 2 alone).

    ``threshold`` overrides the bundle's (threshold calibration tries candidates this way).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = decision.patient_threshold if threshold is None else threshold
    n = int(p.size)
    abnormal = int((p > decision.image_cutoff).sum())
    fraction = abnormal / n if n else None
    if n < decision.min_key_frames:
        return PatientDecision(INDETERMINATE, fraction, abnormal, n, t,
                               Reason(ReasonCode.TOO_FEW_KEY_FRAMES, key_frames=n, needed=decision.min_key_frames))
    if t is None:
        return PatientDecision(INDETERMINATE, fraction, abnormal, n, t, Reason(ReasonCode.NOT_CALIBRATED, key_frames=n))
    assert fraction is not None
    code = ReasonCode.ABOVE_THRESHOLD if fraction > t else ReasonCode.NOT_ABOVE_THRESHOLD
    return PatientDecision(GOUT if fraction > t else NO_GOUT, fraction, abnormal, n, t,
                           Reason(code, key_frames=n, fraction=fraction, threshold=t))


def scope_refusal(out_of_scope: int, judged: int, max_fraction: float) -> Reason | None:
    """Rule 1: the reason for no verdict when more than ``max_fraction`` of the frames the scope
    guard judged are out of scope; None otherwise."""
    if judged and out_of_scope / judged > max_fraction:
        return Reason(ReasonCode.OUT_OF_SCOPE, out_of_scope=out_of_scope, judged=judged)
    return None


def missing_coverage(votes: Sequence[Vote], decision: DecisionSpec) -> Reason | None:
    """Rule 3: what keeps the key frames from standing for the protocol; None when nothing does.
    Moving key frames (video, cine) must span ``decision.min_span_s`` seconds; when any key
    frame's view is known, every view of ``decision.views`` needs one."""
    moving = [v.timestamp_s for v in votes if not v.still]
    if moving and len(moving) == len(votes):
        span = max(moving) - min(moving)
        if span < decision.min_span_s:
            return Reason(ReasonCode.SHORT_SPAN, key_frames=len(votes), span_s=span, min_span_s=decision.min_span_s)
    seen = {v.view for v in votes if v.view in decision.views}
    missing = tuple(v for v in decision.views if v not in seen)
    if seen and missing:
        return Reason(ReasonCode.MISSING_VIEW, key_frames=len(votes), missing=missing, views=tuple(decision.views))
    return None


def verdict(votes: Sequence[Vote], decision: DecisionSpec, scope: ScopeSpec | None = None,
            scope_out: int = 0, scope_judged: int = 0) -> PatientDecision:
    """The cart's verdict for one patient: rules 1–3 over its key frames (``votes``) and the scope
    guard's count of frames it refused (``scope_out``) of those it judged (``scope_judged``)."""
    d = decide([v.probability for v in votes], decision)
    refusal = scope_refusal(scope_out, scope_judged, scope.max_out_of_scope_fraction) if scope is not None else None
    if refusal is not None:
        return PatientDecision(INDETERMINATE, d.abnormal_fraction, d.abnormal_frames, d.key_frames, d.threshold, refusal)
    if d.diagnosis is not INDETERMINATE:
        gap = missing_coverage(votes, decision)
        if gap is not None:
            gap = dataclasses.replace(gap, fraction=d.abnormal_fraction)
            return PatientDecision(INDETERMINATE, d.abnormal_fraction, d.abnormal_frames, d.key_frames, d.threshold, gap)
    return d
