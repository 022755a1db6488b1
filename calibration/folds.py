"""Patient-level cross-validation folds, stratified by diagnosis (the paper's five-fold protocol).

Images of one patient never straddle folds. The split depends only on the set of patients, their
diagnoses, ``k`` and ``seed`` — not on the order in which patients are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gout_edge.errors import DataError, UsageError

__all__ = ["fold_of", "patient_folds"]


def patient_folds(
    patient_ids: Sequence[str], diagnoses: Sequence[str], k: int, seed: int = 0
) -> tuple[tuple[str, ...], ...]:
    """Split patients into ``k`` folds, stratified by diagnosis; returns the patient ids per fold.

    ``patient_ids`` and ``diagnoses`` run in parallel (one entry per patient, or per image: a
    repeated id must repeat its diagnosis). Within each diagnosis the patients are shuffled with
    ``seed`` and dealt round-robin; the deal continues across diagnoses, so fold sizes differ by at
    most one overall and by at most one within each diagnosis.
    """
    if k < 2:
        raise UsageError(f"cross-validation needs at least 2 folds, got {k}")
    if len(patient_ids) != len(diagnoses):
        raise ValueError("patient_ids and diagnoses must have the same length")
    diagnosis_of: dict[str, str] = {}
    for pid, dx in zip(patient_ids, diagnoses, strict=True):
        if diagnosis_of.setdefault(pid, dx) != dx:
            raise DataError("a patient is listed with two different diagnoses; fix the index table")
    if len(diagnosis_of) < k:
        raise DataError(
            f"{len(diagnosis_of)} patient(s) cannot fill {k} folds; use fewer folds or more patients"
        )
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    slot = 0
    for dx in sorted(set(diagnosis_of.values())):
        members = sorted(pid for pid, d in diagnosis_of.items() if d == dx)
        for i in rng.permutation(len(members)):
            folds[slot % k].append(members[i])
            slot += 1
    return tuple(tuple(sorted(f)) for f in folds)


def fold_of(folds: Sequence[Sequence[str]]) -> dict[str, int]:
    """Patient id → index of its fold."""
    return {pid: i for i, fold in enumerate(folds) for pid in fold}
