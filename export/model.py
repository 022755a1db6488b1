"""The paper's classifier: a ResNet-18-style trunk with ``blocks`` residual stages (docs/design.md §5).

Parameter names follow torchvision (``conv1, bn1, layer1 … layerN, fc``; BasicBlocks, two per
stage), so a checkpoint of a truncated ``torchvision.models.resnet18`` loads directly. Input is one
grey channel; the class activation map is the FC weights applied to the last feature map.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GoutResNet", "WithCam", "stage_widths", "count_macs", "PAPER_WIDTH", "SUPPORTED_BLOCKS", "SUPPORTED_WIDTHS"]

SUPPORTED_BLOCKS = (1, 2, 3, 4, 5, 6)
SUPPORTED_WIDTHS = (16, 24, 32, 48, 64)
PAPER_ABLATION_BLOCKS = (2, 3, 4, 6)


PAPER_WIDTH = 64  # the stem's and first stage's channels in the paper's (ResNet-18) trunk


def stage_widths(blocks: int, width: int = PAPER_WIDTH) -> tuple[int, ...]:
    """``width`` doubling per stage up to 8 × ``width``: 64, 128, 256, 512, 512 … for the paper's
    model; a compact student (``width`` 32) has half the channels in every stage."""
    return tuple(min(width * 2**i, 8 * width) for i in range(blocks))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class GoutResNet(nn.Module):
    """ResNet trunk with ``blocks`` stages, global average pooling and a 2-class linear head;
    ``width`` channels in the stem and the first stage (64: the paper's; fewer: a compact student)."""

    def __init__(self, blocks: int = 3, num_classes: int = 2, in_channels: int = 1, width: int = PAPER_WIDTH) -> None:
        super().__init__()
        if blocks not in SUPPORTED_BLOCKS:
            raise ValueError(f"blocks={blocks} is not supported; choose one of {SUPPORTED_BLOCKS}")
        if width not in SUPPORTED_WIDTHS:
            raise ValueError(f"width={width} is not supported; choose one of {SUPPORTED_WIDTHS}")
        self.blocks = blocks
        self.width = width
        self.widths = stage_widths(blocks, width)
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = width
        for i, width in enumerate(self.widths):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(in_ch, width, stride), BasicBlock(width, width, 1))
            self.add_module(f"layer{i + 1}", layer)
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_stride(self) -> int:
        return 4 * 2 ** (self.blocks - 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.blocks):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class WithCam(nn.Module):
    """Wraps a ``GoutResNet`` to return ``(logits, cam, features)``; the graph that is exported.

    ``cam = einsum("ck,nkhw->nchw", fc.weight, features)`` and ``logits = cam.mean((2,3)) +
    fc.bias``, which equals the model's logits (average pooling and the linear layer commute).
    ``features`` is the pooled last feature map (N, C): what the scope guard measures distances on.
    """

    def __init__(self, model: GoutResNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model.features(x)
        cam = torch.einsum("ck,nkhw->nchw", self.model.fc.weight, feats)
        logits = cam.mean(dim=(2, 3)) + self.model.fc.bias
        return logits, cam, feats.mean(dim=(2, 3))


def count_macs(model: GoutResNet, height: int, width: int) -> int:
    """Multiply-accumulates of one frame (convolutions and the linear layer)."""
    macs = 0
    hooks = []

    def conv_hook(mod: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = mod.kernel_size
        macs += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * kh * kw

    def fc_hook(mod: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        macs += mod.in_features * mod.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(fc_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.conv1.in_channels, height, width))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return macs
