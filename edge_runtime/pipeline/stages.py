"""The cart's pipeline, spelled in one place (docs/design.md §7) — as a Holoscan app's
``compose()`` reads source → preprocess → inference → postprocess → view::

    pipeline = compose(bundle, scorer)          # region → preparation → dedupe → scorer → gates → key frames
    tally = Tally()
    for frame in source:                        # sources/: Frame with its view, file, frame number
        outcome = pipeline(frame)               # FrameOutcome: probability, CAM, exclusion, key frame
        tally.add(outcome)                      # counters and the key frames' votes
    decision = tally.decide(bundle.manifest)    # verdict.verdict: the one rule

Each stage is a small object with one job:

- **region** (``stream.RoiTracker``): the B-mode region, cached while the screen layout holds;
- **preparation** (``stream.FramePreparer``): region → model input, with the blank and colour flags;
- **dedupe** (``stream.KeyFrameSelector.observe``): a frame that repeats the last checked one
  repeats its outcome and is not scored again;
- **scorer** (``FrameScorer``, i.e. ``inference.scoring.Scorer``): probability, CAM, scope distance;
- **gates** (``Gates``): blank, colour (Doppler) and out-of-scope frames never vote;
- **key frames** (``stream.KeyFrameSelector.is_key``): usable, contrasted, settled, distinct.

``ExamSession`` (the journal, the report), ``evaluate`` and ``calibrate`` (labelled tables), the
benchmarks and the tests all run frames through ``compose``; none re-assembles the stages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gout_edge.edge_runtime.imaging.preprocess import PreparedFrame, Roi
from gout_edge.edge_runtime.inference.scoring import FrameScore
from gout_edge.edge_runtime.sources._base import Frame
from gout_edge.manifest import Manifest, TextEnum

from .stream import FramePreparer, KeyFrameSelector, RoiTracker, StreamSpec, contrast
from .verdict import PatientDecision, Vote, verdict

__all__ = ["Exclusion", "FrameOutcome", "FrameScorer", "Gates", "Pipeline", "Tally", "compose"]


class Exclusion(TextEnum):
    """Why a frame does not vote (the gates), as the journal, the report and the SR count it."""

    BLANK = "blank"
    COLOUR = "colour"
    SCOPE = "scope"


class FrameScorer(Protocol):
    """What the pipeline needs from ``inference.scoring.Scorer`` (a fake with these members works
    in tests). ``guard``: the scope guard, or None when the scorer judges no scope."""

    backend: str
    precision: str
    guard: Any

    def score_prepared(self, frames: list[PreparedFrame]) -> list[FrameScore]: ...


@dataclass(frozen=True)
class FrameOutcome:
    """What the pipeline made of one frame. A duplicate repeats the outcome of the frame it
    repeats (``scored`` False: the model did not run on it)."""

    frame: Frame
    roi: Roi
    roi_detected: bool  # the region was (re-)detected on this frame
    duplicate: bool
    scored: bool
    probability: float | None  # None for frames that do not vote
    abnormal: bool | None
    cam: np.ndarray | None = field(repr=False)
    scope_distance: float | None  # None: not judged (blank, no guard)
    scope_refused: bool  # the guard refused it (colour frames included)
    exclusion: Exclusion | None
    key: bool

    @property
    def usable(self) -> bool:
        return self.exclusion is None


class Gates:
    """Blank, colour and out-of-scope frames never vote. Colour frames are still scored when a
    scope guard judges them: a Doppler exam of another organ must end with the scope reason, not
    with "too few key frames"."""

    def __init__(self, guarded: bool) -> None:
        self.guarded = guarded

    def needs_score(self, prepared: PreparedFrame) -> bool:
        return not prepared.blank and (not prepared.colour or self.guarded)

    @staticmethod
    def exclusion(prepared: PreparedFrame, score: FrameScore | None) -> Exclusion | None:
        if prepared.blank:
            return Exclusion.BLANK
        if prepared.colour:
            return Exclusion.COLOUR
        if score is not None and score.out_of_scope:
            return Exclusion.SCOPE
        return None


class Pipeline:
    """region → preparation → dedupe → scorer → gates → key frames, for one exam's frames (the
    region cache and the key-frame memory are per exam: one ``Pipeline`` per patient)."""

    def __init__(self, region: RoiTracker, preparation: FramePreparer, keys: KeyFrameSelector, scorer: FrameScorer,
                 gates: Gates) -> None:
        self.region = region
        self.preparation = preparation
        self.keys = keys
        self.scorer = scorer
        self.gates = gates
        self._last: FrameOutcome | None = None

    def __call__(self, frame: Frame) -> FrameOutcome:
        image = frame.image
        roi, detected = self.region.locate(image, frame.roi, still=frame.still)
        prepared = self.preparation(image, roi, frame.colour_sample)
        roi = prepared.roi
        thumb = self.keys.thumbnail(prepared.tensor)
        duplicate, motion = self.keys.observe(thumb)
        if duplicate and self._last is not None:
            return dataclasses.replace(self._last, frame=frame, roi=roi, roi_detected=detected, duplicate=True,
                                       scored=False, key=False)
        score = self.scorer.score_prepared([prepared])[0] if self.gates.needs_score(prepared) else None
        exclusion = self.gates.exclusion(prepared, score)
        votes = exclusion is None and score is not None
        key = bool(votes and self.keys.is_key(thumb, True, contrast(image, roi), frame.still, motion))
        outcome = FrameOutcome(
            frame=frame, roi=roi, roi_detected=detected, duplicate=False, scored=score is not None,
            probability=score.probability if votes else None, abnormal=bool(score.abnormal) if votes else None,
            cam=score.cam if votes else None, scope_distance=None if score is None else score.scope_distance,
            scope_refused=bool(score is not None and score.out_of_scope), exclusion=exclusion, key=key,
        )
        self._last = outcome
        return outcome


def compose(manifest: Manifest, scorer: FrameScorer, stream: StreamSpec = StreamSpec()) -> Pipeline:
    """The pipeline for one exam with ``manifest``'s input and preprocessing, scored by ``scorer``."""
    return Pipeline(
        region=RoiTracker(manifest.preprocess, stream),
        preparation=FramePreparer(manifest.input, manifest.preprocess),
        keys=KeyFrameSelector(stream),
        scorer=scorer,
        gates=Gates(guarded=scorer.guard is not None),
    )


@dataclass
class Tally:
    """One exam's counts and key-frame votes, from its ``FrameOutcome``s; ``decide`` is the verdict."""

    frames_seen: int = 0
    frames_scored: int = 0
    duplicates: int = 0
    blank_frames: int = 0
    colour_frames: int = 0
    out_of_scope_frames: int = 0
    scope_judged: int = 0
    scope_refused: int = 0
    usable_scored: int = 0  # distinct frames that could vote: key frames and the ones passed over
    abnormal_key_frames: int = 0
    votes: list[Vote] = field(default_factory=list)

    def add(self, o: FrameOutcome) -> None:
        self.frames_seen += 1
        if o.duplicate:
            self.duplicates += 1
            return
        self.frames_scored += o.scored
        if o.scored and o.scope_distance is not None:
            self.scope_judged += 1
            self.scope_refused += o.scope_refused
        self.blank_frames += o.exclusion is Exclusion.BLANK
        self.colour_frames += o.exclusion is Exclusion.COLOUR
        self.out_of_scope_frames += o.exclusion is Exclusion.SCOPE
        self.usable_scored += o.usable
        if o.key:
            assert o.probability is not None
            self.votes.append(Vote(o.probability, o.frame.timestamp_s, o.frame.still, o.frame.view))
            self.abnormal_key_frames += bool(o.abnormal)

    @property
    def key_frames(self) -> int:
        return len(self.votes)

    @property
    def not_key_frames(self) -> int:
        return self.usable_scored - len(self.votes)

    def decide(self, manifest: Manifest) -> PatientDecision:
        return verdict(self.votes, manifest.decision, manifest.scope, self.scope_refused, self.scope_judged)
