"""Load a training checkpoint into a ``GoutResNet`` without executing pickled code.

Accepted forms (docs/design.md §5): safetensors; a plain ``state_dict`` saved with ``torch.save``; a
dict holding ``state_dict`` (or ``model_state_dict`` / ``model``) plus settings. Pickles are read
with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers —
a checkpoint carrying code is rejected before any of it runs. Parameter names follow torchvision;
a ``module.`` prefix (DataParallel) is stripped, a 3-channel ``conv1`` is folded to one channel.
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

from .model import SUPPORTED_BLOCKS, GoutResNet

__all__ = ["LoadedCheckpoint", "load_checkpoint", "read_state_dict", "infer_blocks"]

_STATE_KEYS = ("state_dict", "model_state_dict", "model")
_LAYER = re.compile(r"^layer(\d+)\.")


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


def load_checkpoint(path: Path, blocks: int | None = None) -> LoadedCheckpoint:
    """Rebuild the network from ``path``; ``blocks`` (if given) must match the checkpoint."""
    path = Path(path)
    state, settings = read_state_dict(path)
    state = _strip_prefix(state)
    found = infer_blocks(state)
    if blocks is not None and blocks != found:
        raise CheckpointError(
            f"--blocks {blocks} does not match the checkpoint {path.name}, which has {found} residual "
            f"stage(s) (layer1…layer{found}); use --blocks {found} or leave it out"
        )
    if found not in SUPPORTED_BLOCKS:
        raise CheckpointError(f"the checkpoint has {found} stages; supported: {SUPPORTED_BLOCKS}")
    folded = False
    stem = state.get("conv1.weight")
    if stem is None or stem.ndim != 4:
        raise CheckpointError("the checkpoint has no 4-D `conv1.weight`")
    if stem.shape[1] == 3:
        # Grey input replicated to RGB: conv(w, [g, g, g]) == conv(sum_c w_c, g), exactly.
        state["conv1.weight"] = stem.sum(dim=1, keepdim=True)
        folded = True
    elif stem.shape[1] != 1:
        raise CheckpointError(f"conv1 has {stem.shape[1]} input channels; expected 1 (grey) or 3 (RGB)")
    fc = state.get("fc.weight")
    if fc is None or fc.shape[0] != 2:
        shape = None if fc is None else tuple(fc.shape)
        raise CheckpointError(f"fc.weight has shape {shape}; the classifier must have 2 outputs (normal, lesion)")
    model = GoutResNet(blocks=found)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"the checkpoint does not fit a {found}-stage GoutResNet: missing {missing[:5]}"
            f"{' …' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
        )
    model.eval()
    return LoadedCheckpoint(model, found, sha256_file(path), folded, settings)
