"""INT8 models for a bundle, chosen by measurement and gated on fidelity to FP32 (issue 4).

Calibration and fidelity images come from an index table (or freshly generated phantoms), are
split by patient into two disjoint halves, and pass through exactly the runtime's ``prepare()``.
ONNX Runtime candidates (U8S8 per-channel with reduce_range, S8S8 per-channel) are timed
interleaved against FP32 on this machine; the fastest one that passes the gate is kept. OpenVINO
INT8 is an NNCF IR. Every model is evaluated through the runtime's own backends.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gout_edge._io import to_json
from gout_edge.calibration.dataset import load_cache
from gout_edge.calibration.folds import patient_folds
from gout_edge.calibration.index import IndexTable
from gout_edge.edge_runtime.inference.backends import SessionOptions, open_session
from gout_edge.edge_runtime.inference.cam_scale import fit_cam_scale
from gout_edge.edge_runtime.inference.loading import Bundle
from gout_edge.edge_runtime.inference.timing import interleaved_ms
from gout_edge.manifest import CamScale, FileEntry, InputSpec, Manifest, PreprocessSpec, Quantization, Role

from .fidelity import FidelityGate, FidelityReport, measure_fidelity
from .quantize import OrtQuantConfig, quantize_onnxruntime, quantize_openvino

__all__ = ["Int8Result", "LabelledInputs", "build_int8", "calibration_cam_scale", "labelled_inputs"]

log = logging.getLogger(__name__)

ORT_INT8 = "model.int8.onnx"
OV_INT8 = "model.int8.xml"
ORT_CANDIDATES = (
    OrtQuantConfig("QUInt8", "QInt8", per_channel=True, reduce_range=True),
    OrtQuantConfig("QInt8", "QInt8", per_channel=True, reduce_range=False),
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabelledInputs:
    """Preprocessed images (N, 1, H, W) with labels and patient ids, split by patient."""

    calibration: np.ndarray
    calibration_labels: np.ndarray
    fidelity: np.ndarray
    fidelity_labels: np.ndarray
    fidelity_patients: np.ndarray
    summary: dict


@dataclass(frozen=True)
class Int8Result:
    files: tuple[FileEntry, ...]
    quantization: Quantization
    failures: tuple[str, ...]


def labelled_inputs(
    table: IndexTable,
    input_spec: InputSpec,
    preprocess: PreprocessSpec,
    seed: int = 0,
    max_calibration_images: int = 160,
    max_fidelity_images: int = 320,
    source: str = "index table",
) -> LabelledInputs:
    """Split ``table`` by patient (stratified halves) and prepare both halves like the runtime."""
    patients = table.patients()
    halves = patient_folds([p.patient_id for p in patients], [p.diagnosis for p in patients], 2, seed)
    rng = np.random.default_rng([seed, 8])
    calib_rows = [i for p in patients if p.patient_id in halves[0] for i in p.rows]
    if len(calib_rows) > max_calibration_images:
        calib_rows = sorted(rng.choice(calib_rows, max_calibration_images, replace=False).tolist())
    fid_rows: list[int] = []
    for pid in halves[1]:  # whole patients, so that patient decisions can be compared
        rows = next(p.rows for p in patients if p.patient_id == pid)
        if fid_rows and len(fid_rows) + len(rows) > max_fidelity_images:
            break
        fid_rows.extend(rows)
    calib_table = table.subset(calib_rows)
    calib = load_cache(calib_table, input_spec, preprocess).images[:, None]
    fid_table = table.subset(fid_rows)
    fid = load_cache(fid_table, input_spec, preprocess).images[:, None]
    return LabelledInputs(
        calibration=calib,
        calibration_labels=calib_table.labels,
        fidelity=fid,
        fidelity_labels=fid_table.labels,
        fidelity_patients=np.asarray([r.patient_id for r in fid_table.rows]),
        summary={
            "source": source,
            "index_sha256": table.sha256,
            "split": f"patients split into two stratified halves (seed {seed}); disjoint by patient",
            "calibration_images": len(calib_rows),
            "calibration_patients": len(halves[0]),
            "fidelity_images": len(fid_rows),
            "fidelity_patients": len({r.patient_id for r in fid_table.rows}),
            "preprocessing": "gout_edge.edge_runtime.imaging.preprocess.prepare, as on the cart",
        },
    )


def _predict(bundle: Bundle, backend: str, precision: str, inputs: np.ndarray, threads: int | None, batch: int = 8):
    session = open_session(bundle, backend, SessionOptions(precision=precision, threads=threads))
    probs, cams = [], []
    for i in range(0, len(inputs), batch):
        pred = session.run(inputs[i : i + batch].astype(np.float32))
        probs.append(pred.probability)
        cams.append(pred.cam)
    return session, np.concatenate(probs), np.concatenate(cams)


def calibration_cam_scale(bundle_dir: Path, manifest: Manifest, data: LabelledInputs, threads: int | None = None) -> CamScale:
    """The bundle's CAM display scale (docs/design.md §13), fitted on the FP32 model's abnormal-class
    CAMs of the INT8 calibration images (``edge_runtime.inference.cam_scale.fit_cam_scale``)."""
    session, _, cams = _predict(Bundle(Path(bundle_dir), manifest), "onnxruntime", "fp32", data.calibration, threads)
    session.close()
    source = data.summary.get("source", "index table")
    return fit_cam_scale(cams, f"{len(cams)} INT8 calibration images ({source}), FP32 model")


def _latencies_ms(sessions: dict[str, object], sample: np.ndarray, repeats: int = 12) -> dict[str, float]:
    """Median batch-1 latency per session, measured interleaved (round-robin) after a warm-up."""
    x = sample[:1].astype(np.float32)
    times = interleaved_ms({name: functools.partial(s.run, x) for name, s in sessions.items()}, repeats)
    return {name: float(np.median(v)) for name, v in times.items()}


def build_int8(
    bundle_dir: Path,
    manifest: Manifest,
    data: LabelledInputs,
    entry: Callable[[str, str], FileEntry],
    gate: FidelityGate = FidelityGate(),
    threads: int | None = None,
    progress: Progress = lambda msg: None,
) -> Int8Result:
    """Quantize the bundle's FP32 ONNX both ways, measure, choose, and describe what was done."""
    root = Path(bundle_dir)
    fp32 = root / manifest.file(Role.ONNX_FP32).path
    cutoff = manifest.decision.image_cutoff
    fid = data.fidelity

    def with_files(*entries: FileEntry) -> Bundle:
        return Bundle(root, dataclasses.replace(manifest, files=manifest.files + entries))

    progress("FP32 reference outputs")
    ref_session, p32, c32 = _predict(with_files(), "onnxruntime", "fp32", fid, threads)

    def fidelity(p8: np.ndarray, c8: np.ndarray) -> FidelityReport:
        return measure_fidelity(data.fidelity_labels, data.fidelity_patients, p32, p8, c32, c8, cutoff, gate)

    candidates = []
    sessions: dict[str, object] = {"onnxruntime fp32": ref_session}
    for i, config in enumerate(ORT_CANDIDATES):
        progress(f"ONNX Runtime {config.scheme}")
        name = f"model.int8.candidate{i}.onnx"
        quantize_onnxruntime(fp32, root / name, data.calibration, config)
        session, p8, c8 = _predict(with_files(entry(name, Role.ONNX_INT8)), "onnxruntime", "int8", fid, threads)
        sessions[config.scheme] = session
        candidates.append({"file": name, "scheme": config.scheme, "config": dataclasses.asdict(config), "fidelity": fidelity(p8, c8)})

    progress("OpenVINO NNCF")
    quantize_openvino(fp32, root / OV_INT8, data.calibration)
    ov_files = (entry(OV_INT8, Role.OPENVINO_INT8), entry(OV_INT8.replace(".xml", ".bin"), Role.OPENVINO_INT8_BIN))
    ov_session, pov, cov = _predict(with_files(*ov_files), "openvino", "int8", fid, threads)
    sessions["openvino nncf"] = ov_session
    ov_fidelity = fidelity(pov, cov)

    progress("latency, interleaved")
    latency = _latencies_ms(sessions, fid)
    for c in candidates:
        c["latency_ms"] = latency[c["scheme"]]
    passing = [c for c in candidates if c["fidelity"].passed]
    chosen = min(passing or candidates, key=lambda c: c["latency_ms"])
    for c in candidates:
        if c is not chosen:
            (root / c["file"]).unlink()
    (root / chosen["file"]).rename(root / ORT_INT8)
    timings = ", ".join("{}: {:.1f} ms".format(c["scheme"], c["latency_ms"]) for c in candidates)
    why = (
        f"fastest of the candidates that pass the fidelity gate on this machine ({timings}; "
        f"FP32 {latency['onnxruntime fp32']:.1f} ms; batch 1, median, interleaved)"
    )
    failures = tuple(f"onnxruntime int8: {f}" for f in chosen["fidelity"].failures) + tuple(
        f"openvino int8: {f}" for f in ov_fidelity.failures
    )
    quantization = Quantization(
        calibration=to_json(data.summary),
        gate=gate,
        passed=not failures,
        onnxruntime=to_json({
            "file": ORT_INT8,
            "method": "onnxruntime.quantization.quantize_static, QDQ, after quant_pre_process",
            "scheme": chosen["scheme"],
            "chosen_because": why,
            "latency_ms": chosen["latency_ms"],
            "fidelity": chosen["fidelity"].to_dict(),
            "candidates": [
                {"scheme": c["scheme"], "latency_ms": c["latency_ms"], "fidelity": c["fidelity"].to_dict()} for c in candidates
            ],
        }),
        openvino=to_json({
            "file": OV_INT8,
            "method": "nncf.quantize(preset=PERFORMANCE, fast_bias_correction=True) on the FP32 ONNX",
            "latency_ms": latency["openvino nncf"],
            "fidelity": ov_fidelity.to_dict(),
        }),
        fp32_latency_ms=latency["onnxruntime fp32"],
    )
    files = (entry(ORT_INT8, Role.ONNX_INT8), *ov_files)
    return Int8Result(files, quantization, failures)
