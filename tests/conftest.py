"""Shared fixtures. Bundles are exported once per session at a small input size (fast); tests
that need the paper's full 320 × 700 input say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from gout_edge.manifest import InputSpec

SMALL = InputSpec(height=96, width=224)


def export_small(tmp: Path, blocks: int = 3, seed: int = 0, name: str = "bundle"):
    """Save a random-weight checkpoint with plain torch and export it at the small input size."""
    import torch

    from gout_edge.export.build import ExportConfig, export_bundle
    from gout_edge.export.model import GoutResNet

    torch.manual_seed(seed)
    model = GoutResNet(blocks)
    # BatchNorm statistics away from identity so that folding is exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    checkpoint = tmp / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    return export_bundle(ExportConfig(checkpoint, tmp / name, input=SMALL, int8=False)), model.eval()


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory):
    """(ExportResult, torch model) for a 3-stage model at 96 × 224."""
    return export_small(tmp_path_factory.mktemp("bundle"))
