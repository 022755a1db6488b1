"""How far an INT8 model strays from its FP32 parent, on held-out labelled images (numpy only).

Measured on images the quantizer never saw: image AUC of both and its drop, probability max/mean
absolute difference, agreement of image decisions at the bundle's cut-off, patient abnormal
fractions and whether patient decisions agree at *every* threshold of the paper's 0.02 grid, and
the Pearson correlation of the abnormal-class CAMs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gout_edge.calibration.stats import auc
from gout_edge.calibration.threshold import GRID
from gout_edge.edge_runtime.inference.cam_scale import cam_correlation
from gout_edge.manifest import FidelityGate  # the gate is recorded in the manifest's quantization section

__all__ = ["FidelityGate", "FidelityReport", "measure_fidelity"]



@dataclass(frozen=True)
class FidelityReport:
    images: int
    patients: int
    auc_fp32: float
    auc_int8: float
    auc_drop: float
    probability_max_abs_diff: float
    probability_mean_abs_diff: float
    image_decision_agreement: float
    patient_fraction_max_abs_diff: float
    patient_decisions_identical: bool  # at every threshold of the 0.02 grid
    cam_correlation_mean: float
    cam_correlation_min: float
    gate: FidelityGate
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return asdict(self)


def _fractions(decisions: np.ndarray, patient_ids: np.ndarray) -> dict[str, float]:
    return {pid: float(decisions[patient_ids == pid].mean()) for pid in np.unique(patient_ids)}


def measure_fidelity(
    labels: np.ndarray,
    patient_ids: np.ndarray,
    prob_fp32: np.ndarray,
    prob_int8: np.ndarray,
    cam_fp32: np.ndarray,
    cam_int8: np.ndarray,
    image_cutoff: float = 0.5,
    gate: FidelityGate = FidelityGate(),
) -> FidelityReport:
    labels = np.asarray(labels)
    patient_ids = np.asarray(patient_ids)
    a32, a8 = auc(labels, prob_fp32), auc(labels, prob_int8)
    diff = np.abs(prob_fp32.astype(np.float64) - prob_int8)
    d32, d8 = prob_fp32 > image_cutoff, prob_int8 > image_cutoff
    f32, f8 = _fractions(d32, patient_ids), _fractions(d8, patient_ids)
    frac_diff = max((abs(f32[p] - f8[p]) for p in f32), default=0.0)
    identical = all((f32[p] > t) == (f8[p] > t) for p in f32 for t in GRID)
    corr = cam_correlation(cam_fp32, cam_int8)
    drop = a32 - a8
    failures = []
    if not drop <= gate.max_auc_drop:
        failures.append(f"image AUC drop {drop:.4f} > {gate.max_auc_drop}")
    if not corr.mean() >= gate.min_cam_correlation:
        failures.append(f"mean CAM correlation {corr.mean():.4f} < {gate.min_cam_correlation}")
    return FidelityReport(
        images=len(labels),
        patients=len(f32),
        auc_fp32=a32,
        auc_int8=a8,
        auc_drop=drop,
        probability_max_abs_diff=float(diff.max()),
        probability_mean_abs_diff=float(diff.mean()),
        image_decision_agreement=float((d32 == d8).mean()),
        patient_fraction_max_abs_diff=frac_diff,
        patient_decisions_identical=identical,
        cam_correlation_mean=float(corr.mean()),
        cam_correlation_min=float(corr.min()),
        gate=gate,
        failures=tuple(failures),
    )
