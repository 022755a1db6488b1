"""Load a training checkpoint into a ``GoutResNet`` without executing pickled code.

Accepted forms (docs/design.md §5): safetensors; a plain ``state_dict`` saved with ``torch.save``; a
dict holding ``state_dict`` (or ``model_state_dict`` / ``model``) plus settings. Pickles are read
with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers —
a checkpoint carrying code is rejected before any of it runs. Parameter names follow torchvision;
a ``module.`` prefix (DataParallel) is stripped, a 3-channel ``conv1`` is folded to one channel.

A checkpoint the network cannot take — Bottleneck blocks (ResNet-50 and deeper), more than two
BasicBlocks per stage (ResNet-34), another number of classes, a tensor of the wrong shape — is
refused with one ``CheckpointError`` that says what was found and what is supported (``SUPPORTED``),
checked before torch's ``load_state_dict`` could list dozens of size mismatches.
"""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gout_edge._io import sha256_file
from gout_edge.errors import CheckpointError

from .model import SUPPORTED_BLOCKS, SUPPORTED_WIDTHS, GoutResNet

__all__ = ["LoadedCheckpoint", "load_checkpoint", "read_state_dict", "infer_blocks"]

_STATE_KEYS = ("state_dict", "model_state_dict", "model")
_LAYER = re.compile(r"^layer(\d+)\.")
_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.")
SUPPORTED = (
    "supported: a ResNet-18-style trunk with torchvision's parameter names — conv1 (7 × 7, 1 or 3 input "
    f"channels), bn1, then layer1 … layerN (N from {min(SUPPORTED_BLOCKS)} to {max(SUPPORTED_BLOCKS)}) of exactly two BasicBlocks each (two 3 × 3 "
    "convolutions, widths 64, 128, 256, 512, then 512 — or a compact student's, from a stem of "
    f"{', '.join(map(str, SUPPORTED_WIDTHS[:-1]))} channels doubling per stage), and fc with 2 outputs (normal, lesion)"
)


@dataclass(frozen=True)
class LoadedCheckpoint:
    model: GoutResNet
    blocks: int
    sha256: str
    folded_rgb_stem: bool
    settings: dict[str, Any]


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(state_dict, settings)`` from a safetensors or torch checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; give the path of a .safetensors or .pt file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                settings = dict(fh.metadata() or {})
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
        return state, settings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler's protocol notice; refusals raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refused {path}: it holds Python objects other than tensors and plain values, which "
            f"could execute code when loaded ({first}). Re-save the weights only, e.g. "
            "`torch.save(model.state_dict(), path)` or safetensors."
        ) from None
    except Exception as exc:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}; expected a state_dict (a dict of tensors)")
    settings: dict[str, Any] = {}
    for key in _STATE_KEYS:
        if isinstance(obj.get(key), dict):
            settings = {k: v for k, v in obj.items() if k != key and not isinstance(v, (dict, torch.Tensor))}
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{path} holds no tensors; expected a model state_dict")
    return state, settings


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def infer_blocks(state: dict[str, torch.Tensor]) -> int:
    stages = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    if not stages:
        raise CheckpointError("the checkpoint has no `layer1.…` parameters: it is not a ResNet with torchvision names")
    if stages != set(range(1, max(stages) + 1)):
        raise CheckpointError(f"the checkpoint's residual stages {sorted(stages)} are not consecutive from layer1")
    return max(stages)


def _check_architecture(state: dict[str, torch.Tensor]) -> None:
    """Refuse, in one sentence, the ResNets this network is not: Bottleneck blocks, more than two
    blocks per stage."""
    if any(re.match(r"^layer\d+\.\d+\.(conv3|bn3)\.", k) for k in state):
        raise CheckpointError(
            "the checkpoint has Bottleneck blocks (conv3 inside its residual blocks): it is a ResNet-50, -101 "
            f"or -152, which gout-edge cannot export; {SUPPORTED}"
        )
    per_stage: dict[int, set[int]] = {}
    for k in state:
        if m := _BLOCK.match(k):
            per_stage.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    counts = {stage: max(ids) + 1 for stage, ids in per_stage.items()}
    if any(n != 2 for n in counts.values()):
        shown = ", ".join(f"layer{s}: {n}" for s, n in sorted(counts.items()))
        family = " (the layout of a ResNet-34)" if [counts[s] for s in sorted(counts)][:4] == [3, 4, 6, 3] else ""
        raise CheckpointError(
            f"the checkpoint has {shown} residual blocks per stage{family}; only two BasicBlocks per stage "
            f"can be exported; {SUPPORTED}"
        )


def _check_shapes(model: GoutResNet, state: dict[str, torch.Tensor], stages: int) -> None:
    """Every tensor the model has must come with its shape: one message for all mismatches."""
    expected = model.state_dict()
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        first = ", ".join(f"{k} is {list(got)} where {list(want)} is expected" for k, got, want in wrong[:3])
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise CheckpointError(
            f"the checkpoint's tensors do not fit a {stages}-stage network: {first}{more}; {SUPPORTED}"
        )


def load_checkpoint(path: Path, blocks: int | None = None) -> LoadedCheckpoint:
    """Rebuild the network from ``path``; ``blocks`` (if given) must match the checkpoint.

    Anything the network cannot take is one ``CheckpointError`` saying what is supported."""
    path = Path(path)
    state, settings = read_state_dict(path)
    state = _strip_prefix(state)
    _check_architecture(state)
    found = infer_blocks(state)
    if blocks is not None and blocks != found:
        raise CheckpointError(
            f"--blocks {blocks} does not match the checkpoint {path.name}, which has {found} residual "
            f"stage(s) (layer1…layer{found}); use --blocks {found} or leave it out"
        )
    if found not in SUPPORTED_BLOCKS:
        raise CheckpointError(f"the checkpoint has {found} stages; {SUPPORTED}")
    folded = False
    stem = state.get("conv1.weight")
    if stem is None or stem.ndim != 4:
        raise CheckpointError("the checkpoint has no 4-D `conv1.weight`")
    if stem.shape[1] == 3:
        # Grey input replicated to RGB: conv(w, [g, g, g]) == conv(sum_c w_c, g), exactly.
        state["conv1.weight"] = stem.sum(dim=1, keepdim=True)
        folded = True
    elif stem.shape[1] != 1:
        raise CheckpointError(f"conv1 has {stem.shape[1]} input channels; expected 1 (grey) or 3 (RGB); {SUPPORTED}")
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2 or fc.shape[0] != 2:
        shape = None if fc is None else tuple(fc.shape)
        classes = f" ({fc.shape[0]} classes: an ImageNet or other classifier head)" if fc is not None and fc.ndim == 2 else ""
        raise CheckpointError(
            f"fc.weight has shape {shape}{classes}; the classifier must have 2 outputs (normal, lesion): "
            f"fine-tune it on the two classes first; {SUPPORTED}"
        )
    width = int(stem.shape[0])
    if width not in SUPPORTED_WIDTHS:
        raise CheckpointError(f"conv1 has {width} output channels; {SUPPORTED}")
    model = GoutResNet(blocks=found, width=width)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _check_shapes(model, state, found)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # anything the shape check did not foresee: still one line
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the checkpoint does not fit a {found}-stage network ({first[:200]}); {SUPPORTED}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"the checkpoint does not fit a {found}-stage network: missing {missing[:5]}"
            f"{' …' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}; {SUPPORTED}"
        )
    model.eval()
    return LoadedCheckpoint(model, found, sha256_file(path), folded, settings)
