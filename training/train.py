"""The paper's training protocol (model owner's side, needs torch).

Patients are split into ``folds`` folds stratified by diagnosis; for each fold a ``GoutResNet`` is
trained on the other folds (translation augmentation, AdamW, cosine schedule, cross-entropy) and
scored on the held-out fold: image AUC, accuracy, sensitivity and specificity at p = 0.5, and
each patient's fraction of abnormal images. Then, with ``final``, one model is trained on all
patients. ``folds=0`` skips cross-validation (only the final model, e.g. for the demo bundle).

Every image goes through the runtime's ``prepare()`` exactly once and is cached in memory as
float16, so what the network learns from is what the cart will feed it.

Output layout (``OUT``)::

    config.json                  the settings that must match to resume
    fold{k}/model.safetensors    weights (metadata: arch, blocks, seed, epoch, stage)
    fold{k}/metrics.json         held-out metrics and predictions; marks the stage complete
    fold{k}/state.pt             while a stage runs: resumable state, loads with weights_only=True
    final/model.safetensors, final/metrics.json
    summary.json                 per-fold metrics, mean ± sd, out-of-fold predictions per image

A rerun skips complete stages and continues an interrupted one from its last finished epoch, and
ends with the same weights as an uninterrupted run (on the same device and thread count).

**Distillation** (``teacher``: a bundle; docs/design.md §9b): a compact student (``width`` < 64
channels and/or a smaller ``input_spec``) learns from the teacher's soft targets as well as the
labels. The teacher's FP32 ONNX model scores every image once, through the runtime at the
teacher's own input size (``OUT/teacher.npz``, reused by a rerun); the loss is
``(1 − α)·CE(labels) + α·T²·KL(teacher_T ‖ student_T)`` with temperature ``T``, two classes, so
the teacher's logit difference is ``logit(p)``, for every image, blank or out of scope too (the
gates decide what votes at the bedside, not what the teacher thinks).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gout_edge._io import atomic_write, atomic_write_json, sha256_file, to_json
from gout_edge.calibration.dataset import ImageCache, load_cache
from gout_edge.calibration.folds import patient_folds
from gout_edge.calibration.index import IndexTable, read_index
from gout_edge.calibration.stats import auc, confusion, mean_sd
from gout_edge.errors import (
    BackendUnavailableError,
    CheckFailedError,
    CheckpointError,
    UsageError,
)
from gout_edge.export.checkpoint import load_checkpoint
from gout_edge.export.model import PAPER_WIDTH, SUPPORTED_BLOCKS, SUPPORTED_WIDTHS, GoutResNet
from gout_edge.manifest import MANIFEST_NAME, InputSpec, PreprocessSpec

__all__ = [
    "ARCH",
    "FoldMetrics",
    "ProgressFn",
    "TrainConfig",
    "TrainResult",
    "translate",
    "train",
]

log = logging.getLogger(__name__)

ARCH = "gout-resnet"
FINAL = "final"
SUMMARY_FORMAT = "gout-edge-train-summary"
IMAGE_CUTOFF = 0.5  # an image is abnormal when p(abnormal) > 0.5, i.e. the argmax
_FINAL_STAGE_ID = 1_000_003  # seeds the final model the same whether or not CV ran
_METRIC_NAMES = ("auc", "accuracy", "sensitivity", "specificity")

ProgressFn = Callable[[str, int, int, int, int, float], None]
"""``progress(stage, epoch, epochs, step, steps, loss)``; ``epoch`` and ``step`` count from 1.

Stage ``"preprocess"`` reports images prepared (epoch 1 of 1, loss ``nan``); then ``"fold1"`` …
and ``"final"`` report training steps with the batch loss.
"""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. ``folds=0`` trains only the final model."""

    data: Path
    out: Path
    blocks: int = 3
    folds: int = 5
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    translate_fraction: float = 0.1  # random shifts up to ±10 % of height and width, zero fill
    class_weighted: bool = True  # cross-entropy weighted by inverse class frequency
    threads: int | None = None  # torch.set_num_threads for the run; None leaves torch's default
    final: bool = True
    max_images: int | None = None  # train on whole patients up to this many images (smoke runs)
    device: str = "cpu"
    input_spec: InputSpec = field(default_factory=InputSpec)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    init: Path | None = None  # start from these weights (fine-tuning, e.g. after a lower-resolution run)
    width: int = PAPER_WIDTH  # channels of the stem and first stage; fewer: a compact student
    teacher: Path | None = None  # a bundle whose FP32 model gives soft targets (distillation)
    distill_weight: float = 0.7  # α: the soft targets' share of the loss
    temperature: float = 4.0  # T: softens both distributions in the distillation term

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        if self.blocks not in SUPPORTED_BLOCKS:
            raise UsageError(f"--blocks {self.blocks} is not supported; choose one of {SUPPORTED_BLOCKS}")
        if self.folds == 1 or self.folds < 0:
            raise UsageError(
                f"--folds {self.folds}: use 2 or more for cross-validation, or 0 to train only the "
                "final model"
            )
        if self.folds == 0 and not self.final:
            raise UsageError("--folds 0 with no final model leaves nothing to train")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UsageError(f"the learning rate must be positive, got {self.lr}")
        if not 0 <= self.translate_fraction < 0.5:
            raise UsageError(f"translate_fraction must be in [0, 0.5), got {self.translate_fraction}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")
        if self.max_images is not None and self.max_images < 1:
            raise UsageError(f"max_images must be at least 1, got {self.max_images}")
        if self.width not in SUPPORTED_WIDTHS:
            raise UsageError(f"--width {self.width} is not supported; choose one of {SUPPORTED_WIDTHS}")
        if self.teacher is not None:
            object.__setattr__(self, "teacher", Path(self.teacher))
        if not 0 <= self.distill_weight <= 1:
            raise UsageError(f"--distill-weight {self.distill_weight} must be in [0, 1]")
        if not self.temperature >= 1:
            raise UsageError(f"--temperature {self.temperature} must be 1 or more")

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one."""
        keep = (
            "blocks", "folds", "epochs", "batch_size", "lr", "weight_decay", "seed",
            "translate_fraction", "class_weighted", "max_images", "width",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keep}
        out["init"] = None if self.init is None else sha256_file(Path(self.init))
        if self.teacher is not None:  # the teacher's signed identity: its manifest's bytes
            out["teacher"] = {"manifest_sha256": sha256_file(self.teacher / MANIFEST_NAME),
                              "distill_weight": self.distill_weight, "temperature": self.temperature}
        out["data"] = str(self.data.expanduser().resolve())
        out["input_spec"] = dataclasses.asdict(self.input_spec)
        out["preprocess"] = dataclasses.asdict(self.preprocess)
        return out


@dataclass(frozen=True)
class FoldMetrics:
    """Held-out results of one cross-validation fold (rates at p > 0.5; ``nan`` if undefined)."""

    fold: int
    train_images: int
    test_images: int
    test_patients: int
    auc: float
    accuracy: float
    sensitivity: float
    specificity: float
    checkpoint: Path


@dataclass(frozen=True)
class TrainResult:
    out: Path
    summary: Path
    images: int
    patients: int
    folds: tuple[FoldMetrics, ...]
    mean: dict[str, float]
    sd: dict[str, float]
    pooled_auc: float  # AUC over all out-of-fold predictions together
    final_checkpoint: Path | None
    skipped_stages: tuple[str, ...]  # complete before this run
    resumed_stages: tuple[str, ...]  # continued from an interrupted run

    def to_dict(self) -> dict[str, Any]:
        return to_json(dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------
# entry point


def train(config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Run the protocol of the module docstring; returns what ``summary.json`` holds, in short."""
    device = _device(config.device)
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, device, progress)
    finally:
        torch.set_num_threads(old_threads)


def _train(config: TrainConfig, device: torch.device, progress: ProgressFn | None) -> TrainResult:
    table = read_index(config.data)
    if config.max_images is not None:
        table = _limit(table, config.max_images, config.seed)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config, table)

    patients = table.patients()
    labels = table.labels
    pid_of_row = table.patient_ids
    log.info(
        "training on %d images of %d patients (%d gout, %d control), %d lesion images",
        len(table), len(patients), sum(p.gout for p in patients),
        sum(not p.gout for p in patients), int(labels.sum()),
    )

    stages: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    folds: tuple[tuple[str, ...], ...] = ()
    if config.folds:
        folds = patient_folds([p.patient_id for p in patients], [p.diagnosis for p in patients],
                              config.folds, config.seed)
        for k, test_ids in enumerate(folds):
            members = set(test_ids)
            test = np.array([i for i, pid in enumerate(pid_of_row) if pid in members])
            train_idx = np.setdiff1d(np.arange(len(table)), test)
            stages.append((f"fold{k + 1}", k, train_idx, test))
    if config.final:
        stages.append((FINAL, _FINAL_STAGE_ID, np.arange(len(table)), np.array([], dtype=np.int64)))

    soft = None if config.teacher is None else teacher_targets(config, table, progress)
    skipped: list[str] = []
    resumed: list[str] = []
    stage_metrics: dict[str, dict[str, Any]] = {}
    cache: ImageCache | None = None  # prepared on first need: a rerun of a finished run skips it
    for name, stage_id, train_idx, test_idx in stages:
        if cache is None and not (out / name / "metrics.json").is_file():
            cache = load_cache(
                table, config.input_spec, config.preprocess,
                None if progress is None else lambda i, n: progress("preprocess", 1, 1, i, n, math.nan),
            )
        metrics, how = _run_stage(name, stage_id, train_idx, test_idx, table, cache, config,
                                  device, progress, soft)
        stage_metrics[name] = metrics
        if how == "skipped":
            skipped.append(name)
        elif how == "resumed":
            resumed.append(name)

    return _summarize(config, table, folds, stage_metrics, tuple(skipped), tuple(resumed))


# --------------------------------------------------------------------------------------------
# data


def _limit(table: IndexTable, max_images: int, seed: int) -> IndexTable:
    """Whole patients, alternating diagnoses in a seeded order, up to ``max_images`` images."""
    rng = np.random.default_rng([seed, 7])
    by_dx: dict[str, list[Any]] = {}
    for p in sorted(table.patients(), key=lambda p: p.patient_id):
        by_dx.setdefault(p.diagnosis, []).append(p)
    queues = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(by_dx.items())]
    chosen: list[str] = []
    total = 0
    for i in range(max(len(q) for q in queues)):
        for q in queues:
            if i < len(q) and total + len(q[i].rows) <= max_images:
                chosen.append(q[i].patient_id)
                total += len(q[i].rows)
    if not chosen:
        raise UsageError(f"--max-images {max_images} is smaller than any patient's image count")
    log.info("max_images=%d: using %d images of %d patients", max_images, total, len(chosen))
    return table.select(chosen)


def translate(
    batch: np.ndarray, rng: np.random.Generator, max_dy: int, max_dx: int
) -> np.ndarray:
    """Shift each image of (N, H, W) by a random whole-pixel offset, filling with 0 (the mean)."""
    n, h, w = batch.shape
    out = np.zeros((n, h, w), np.float32)
    dys = rng.integers(-max_dy, max_dy + 1, n)
    dxs = rng.integers(-max_dx, max_dx + 1, n)
    for i, (dy, dx) in enumerate(zip(dys.tolist(), dxs.tolist(), strict=True)):
        out[i, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = batch[
            i, max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
        ]
    return out


# --------------------------------------------------------------------------------------------
# one stage: a fold or the final model


def _run_stage(
    name: str,
    stage_id: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    table: IndexTable,
    cache: ImageCache | None,
    config: TrainConfig,
    device: torch.device,
    progress: ProgressFn | None,
    soft: np.ndarray | None = None,
) -> tuple[dict[str, Any], str]:
    stage_dir = config.out / name
    metrics_path = stage_dir / "metrics.json"
    state_path = stage_dir / "state.pt"
    if metrics_path.is_file():
        state_path.unlink(missing_ok=True)
        log.info("%s: complete in an earlier run, skipped", name)
        return json.loads(metrics_path.read_text(encoding="utf-8")), "skipped"
    assert cache is not None
    stage_dir.mkdir(parents=True, exist_ok=True)

    seed_seq = np.random.SeedSequence([config.seed, stage_id])
    torch.manual_seed(int(seed_seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    model = GoutResNet(config.blocks, width=config.width)
    if config.init is not None:
        model.load_state_dict(load_checkpoint(config.init, config.blocks).model.state_dict())
    model = model.to(device)
    steps = math.ceil(len(train_idx) / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # One-cycle: warm up to --lr over the first 30 % of the steps, then anneal (stepped per batch).
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * steps)
    labels = table.labels
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(labels[train_idx], config, device))

    start, history, how = 0, [], "fresh"
    if state_path.is_file():
        state = _load_state(state_path)
        if state.get("stage") != name or state.get("epochs") != config.epochs:
            raise CheckpointError(
                f"{state_path} belongs to another run (stage {state.get('stage')!r}, "
                f"{state.get('epochs')} epochs); delete it or use a new --out"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, history, how = int(state["epoch"]), list(state["loss_history"]), "resumed"
        log.info("%s: resuming after epoch %d of %d", name, start, config.epochs)

    h, w = config.input_spec.height, config.input_spec.width
    max_dy, max_dx = int(config.translate_fraction * h), int(config.translate_fraction * w)
    for epoch in range(start, config.epochs):
        rng = np.random.default_rng([config.seed, stage_id, epoch])
        order = rng.permutation(train_idx)
        model.train()
        total = 0.0
        for step in range(steps):
            idx = np.sort(order[step * config.batch_size : (step + 1) * config.batch_size])
            x = torch.from_numpy(translate(cache.images[idx], rng, max_dy, max_dx)).unsqueeze(1)
            y = torch.from_numpy(labels[idx])
            optimizer.zero_grad(set_to_none=True)
            logits = model(x.to(device))
            loss = loss_fn(logits, y.to(device))
            if soft is not None:
                loss = _distilled(loss, logits, torch.from_numpy(soft[idx]).to(device), config)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise CheckFailedError(
                    f"{name}: the training loss became {value} in epoch {epoch + 1}, step "
                    f"{step + 1}; lower the learning rate (--lr {config.lr:g})"
                )
            total += value * len(idx)
            if progress is not None:
                progress(name, epoch + 1, config.epochs, step + 1, steps, value)
        history.append(total / len(train_idx))
        _save_state(state_path, {
            "stage": name,
            "epoch": epoch + 1,
            "epochs": config.epochs,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_seed": [config.seed, stage_id, epoch + 1],  # next epoch's generator
            "loss_history": history,
        })
        log.debug("%s: epoch %d/%d, mean loss %.4f", name, epoch + 1, config.epochs, history[-1])

    checkpoint = stage_dir / "model.safetensors"
    _save_weights(model, checkpoint, config, name)
    metrics: dict[str, Any] = {
        "stage": name,
        "epochs": config.epochs,
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": sha256_file(checkpoint),
        "train": {
            "images": int(len(train_idx)),
            "patients": len({table.rows[i].patient_id for i in train_idx}),
            "loss_history": history,
        },
    }
    if len(test_idx):
        metrics.update(_evaluate(model, table, cache, test_idx, config, device))
        log.info(
            "%s: AUC %s, accuracy %.3f on %d held-out images", name,
            _fmt(metrics["test"]["auc"]), metrics["test"]["accuracy"], len(test_idx),
        )
    atomic_write_json(metrics_path, metrics)
    state_path.unlink(missing_ok=True)
    return metrics, how


def _distilled(hard: torch.Tensor, logits: torch.Tensor, teacher_logit: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """``(1 − α)·hard + α·T²·KL(teacher_T ‖ student_T)``; a NaN teacher logit leaves its image
    to the label term."""
    t = config.temperature
    known = torch.isfinite(teacher_logit)
    if not bool(known.any()):
        return hard
    p1 = torch.sigmoid(teacher_logit[known].float() / t)
    target = torch.stack([1 - p1, p1], dim=1)
    log_student = torch.log_softmax(logits[known] / t, dim=1)
    kl = torch.nn.functional.kl_div(log_student, target, reduction="batchmean")
    return (1 - config.distill_weight) * hard + config.distill_weight * t * t * kl


def teacher_targets(config: TrainConfig, table: IndexTable, progress: ProgressFn | None) -> np.ndarray:
    """The teacher's logit difference ``log(p / (1 − p))`` for every row, from
    its FP32 ONNX model through the runtime; cached in ``OUT/teacher.npz`` for reruns."""
    from gout_edge.calibration.calibrate import score_table
    from gout_edge.edge_runtime.inference.loading import open_bundle
    from gout_edge.edge_runtime.inference.scoring import Scorer

    assert config.teacher is not None
    path = config.out / "teacher.npz"
    key = np.array([sha256_file(config.teacher / MANIFEST_NAME), table.sha256])
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if np.array_equal(cached["key"], key):
                return cached["logit"]
    bundle = open_bundle(config.teacher)
    scorer = Scorer(bundle, "onnxruntime", "fp32", config.threads)
    try:
        log.info("teacher %s: scoring %d images for soft targets", config.teacher, len(table))
        scored = score_table(table, [scorer], None if progress is None else
                             lambda i, n: progress("teacher", 1, 1, i, n, math.nan))[0]
    finally:
        scorer.close()
    p = np.clip(scored.probabilities, 1e-6, 1 - 1e-6)  # the model's opinion, whatever the bedside gates say
    logit = np.log(p / (1 - p)).astype(np.float32)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
            np.savez(fh, key=key, logit=logit)

    atomic_write(path, write)
    return logit


def _class_weights(y: np.ndarray, config: TrainConfig, device: torch.device) -> torch.Tensor | None:
    counts = np.bincount(y, minlength=2)
    if not config.class_weighted or (counts == 0).any():
        return None
    return torch.tensor(len(y) / (2.0 * counts), dtype=torch.float32, device=device)


@torch.inference_mode()
def _scores(model: nn.Module, cache: ImageCache, idx: np.ndarray, batch: int, device: torch.device) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(idx), batch):
        x = torch.from_numpy(cache.images[idx[i : i + batch]].astype(np.float32)).unsqueeze(1)
        out.append(torch.softmax(model(x.to(device)).float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def _evaluate(
    model: nn.Module, table: IndexTable, cache: ImageCache, test_idx: np.ndarray,
    config: TrainConfig, device: torch.device,
) -> dict[str, Any]:
    scores = _scores(model, cache, test_idx, max(1, 2 * config.batch_size), device)
    labels = table.labels[test_idx]
    abnormal = scores > IMAGE_CUTOFF
    conf = confusion(labels, abnormal.astype(int))
    rows = [table.rows[i] for i in test_idx]
    predictions = [
        {
            "line": r.line, "image": table.relative(r), "patient_id": r.patient_id,
            "diagnosis": r.diagnosis, "label": r.image_label, "score": float(s),
        }
        for r, s in zip(rows, scores, strict=True)
    ]
    per_patient: dict[str, list[int]] = {}
    for j, r in enumerate(rows):
        per_patient.setdefault(r.patient_id, []).append(j)
    patients = [
        {
            "patient_id": pid, "diagnosis": rows[js[0]].diagnosis, "images": len(js),
            "abnormal_images": int(abnormal[js].sum()),
            "abnormal_fraction": float(abnormal[js].mean()),
        }
        for pid, js in per_patient.items()
    ]
    return {
        "test": {
            "images": int(len(test_idx)),
            "patients": len(per_patient),
            "cutoff": IMAGE_CUTOFF,
            "auc": auc(labels, scores),
            "accuracy": conf.accuracy,
            "sensitivity": conf.sensitivity,
            "specificity": conf.specificity,
            "confusion": {"tp": conf.tp, "fn": conf.fn, "tn": conf.tn, "fp": conf.fp},
        },
        "patients": patients,
        "predictions": predictions,
    }


# --------------------------------------------------------------------------------------------
# files


def _save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path) -> dict[str, Any]:
    try:  # on the CPU: the RNG state must stay there; load_state_dict moves the rest
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} cannot be loaded as training state ({exc}); delete it to restart this stage"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a gout-edge training state; delete it to restart")
    return state


def _save_weights(model: nn.Module, path: Path, config: TrainConfig, stage: str) -> None:
    from safetensors.torch import save_file

    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "arch": ARCH,
        "blocks": str(config.blocks),
        "width": str(config.width),
        "seed": str(config.seed),
        "epoch": str(config.epochs),
        "stage": stage,
        "input": f"{config.input_spec.height}x{config.input_spec.width}",
        "normalization": "per-image-standardization",  # edge_runtime.imaging.preprocess.standardize
    }
    if config.teacher is not None:
        metadata["teacher"] = sha256_file(config.teacher / MANIFEST_NAME)
    atomic_write(path, lambda tmp: save_file(weights, str(tmp), metadata=metadata))


def _check_config(out: Path, config: TrainConfig, table: IndexTable) -> None:
    """Refuse to resume into ``out`` with different settings or a different table."""
    current = json.loads(json.dumps({"fingerprint": config.fingerprint(), "index_sha256": table.sha256}))
    path = out / "config.json"
    if not path.is_file():
        atomic_write_json(path, current)
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        previous = {}
    if previous == current:
        return
    before = previous.get("fingerprint", {}) if isinstance(previous, dict) else {}
    now = current["fingerprint"]
    differ = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
    if not isinstance(previous, dict) or previous.get("index_sha256") != table.sha256:
        differ.append("the index table's contents")
    raise UsageError(
        f"{out} holds a training run with other settings ({', '.join(differ)}); use a new --out, "
        "or delete the folder to start over"
    )


def _summarize(
    config: TrainConfig,
    table: IndexTable,
    folds: tuple[tuple[str, ...], ...],
    stage_metrics: dict[str, dict[str, Any]],
    skipped: tuple[str, ...],
    resumed: tuple[str, ...],
) -> TrainResult:
    out = config.out
    fold_results: list[FoldMetrics] = []
    fold_docs: list[dict[str, Any]] = []
    oof: list[dict[str, Any]] = []
    for k, test_ids in enumerate(folds):
        m = stage_metrics[f"fold{k + 1}"]
        t = m["test"]
        fold_results.append(FoldMetrics(
            fold=k + 1, train_images=m["train"]["images"], test_images=t["images"],
            test_patients=t["patients"], auc=_nan(t["auc"]), accuracy=_nan(t["accuracy"]),
            sensitivity=_nan(t["sensitivity"]), specificity=_nan(t["specificity"]),
            checkpoint=out / f"fold{k + 1}" / m["checkpoint"],
        ))
        fold_docs.append({"fold": k + 1, "test_patient_ids": list(test_ids), **t,
                          "patients": m["patients"]})
        oof.extend({**p, "fold": k + 1} for p in m["predictions"])
    oof.sort(key=lambda p: p["line"])
    mean: dict[str, float] = {}
    sd: dict[str, float] = {}
    for name in _METRIC_NAMES:
        mean[name], sd[name] = mean_sd([getattr(f, name) for f in fold_results])
    pooled = auc([p["label"] for p in oof], [p["score"] for p in oof]) if oof else math.nan
    final = out / FINAL / "model.safetensors" if config.final else None
    patients = table.patients()
    summary = {
        "format": SUMMARY_FORMAT,
        "format_version": 1,
        "config": {**config.fingerprint(), "out": str(out), "final": config.final,
                   "device": config.device},
        "data": {
            "index": str(table.path), "index_sha256": table.sha256,
            "images": len(table), "lesion_images": int(table.labels.sum()),
            "patients": len(patients), "gout_patients": sum(p.gout for p in patients),
            "control_patients": sum(not p.gout for p in patients),
        },
        "image_cutoff": IMAGE_CUTOFF,
        "folds": fold_docs,
        "mean": mean,
        "sd": sd,
        "pooled_auc": pooled,
        "oof_predictions": oof,
        "final": (
            {"checkpoint": f"{FINAL}/model.safetensors",
             "sha256": stage_metrics[FINAL]["checkpoint_sha256"],
             "loss_history": stage_metrics[FINAL]["train"]["loss_history"]}
            if config.final else None
        ),
    }
    summary_path = out / "summary.json"
    atomic_write_json(summary_path, summary)
    return TrainResult(
        out=out, summary=summary_path, images=len(table), patients=len(patients),
        folds=tuple(fold_results), mean=mean, sd=sd, pooled_auc=pooled, final_checkpoint=final,
        skipped_stages=skipped, resumed_stages=resumed,
    )


# --------------------------------------------------------------------------------------------
# small helpers


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    return device


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"

