"""Feature extractors F for the classification lab, chosen by name: small-cnn, preact-resnet18, wrn-28-10.

Every backbone is a sequence of `stages` (an nn.ModuleList); `features(x, mix_at, draw)` runs them in order
and, for Manifold Mixup, mixes the hidden batch entering stage `mix_at` (0 = the input image, i.e. Mixup).
The last stage ends with global average pooling, so features are [N, feature_dim].
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from adaptivemix.mixing import MixDraw, mix


class Backbone(nn.Module):
    """`stages` run in order; `feature_dim` is the width of the pooled output; `mix_stages` are Manifold
    Mixup's eligible mixing points (stage inputs)."""

    feature_dim: int
    mix_stages: tuple[int, ...] = (0, 1, 2)

    def features(self, x: torch.Tensor, mix_at: int | None = None, draw: MixDraw | None = None) -> torch.Tensor:
        h = x
        for index, stage in enumerate(self.stages):
            if index == mix_at:
                h = mix(h, draw)
            h = stage(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _pool() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


class SmallCNN(Backbone):
    """Three conv-BN-ReLU-maxpool stages (32, 64, 128 channels), then global average pooling: 128-d features.

    About 0.1 M parameters; 32x32 inputs cost ~10 M multiply-adds per image, so it trains on a CPU in minutes.
    """

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        widths = [in_channels, width, 2 * width, 4 * width]
        stages = []
        for c_in, c_out in itertools.pairwise(widths):
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
        stages[-1].append(_pool())
        self.stages = nn.ModuleList(stages)
        self.feature_dim = widths[-1]


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 plus shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(Backbone):
    """PreActResNet-18 as used by Mixup / Manifold Mixup: conv3x3 stem (64), four stages of two blocks
    (64, 128, 256, 512; strides 1, 2, 2, 2), final BN-ReLU, global average pooling: 512-d features."""

    def __init__(self, in_channels: int):
        super().__init__()
        widths, strides = [64, 128, 256, 512], [1, 2, 2, 2]
        layers, c_in = [], 64
        for c_out, stride in zip(widths, strides):
            layers.append(nn.Sequential(PreActBlock(c_in, c_out, stride), PreActBlock(c_out, c_out, 1)))
            c_in = c_out
        head = nn.Sequential(layers[3], nn.BatchNorm2d(512), nn.ReLU(inplace=True), _pool())
        self.stages = nn.ModuleList(
            [nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), layers[0], layers[1], layers[2], head]
        )
        self.feature_dim = 512
        self.mix_stages = (0, 2, 3)  # The input, after stage 1, after stage 2 (as in Manifold Mixup).


class WideBlock(nn.Module):
    """Wide-ResNet block of the AdaptiveMix release: BN-ReLU-conv3x3-BN-ReLU-conv3x3(stride), convs with
    bias, 1x1 conv shortcut (with bias) when the stride or the width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, stride, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(Backbone):
    """WRN-depth-k (Zagoruyko & Komodakis) in the AdaptiveMix release's form: conv3x3 stem (16, bias), three
    groups of (depth - 4) / 6 blocks of widths 16k, 32k, 64k (strides 1, 2, 2), global average pooling, no
    final BN-ReLU. Conv weights ~ N(0, 2 / (kernel^2 * C_out)). WRN-28-10 gives 640-d features."""

    def __init__(self, in_channels: int, depth: int = 28, widen: int = 10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        groups, c_in = [], 16
        for c_out, stride in zip(widths, [1, 2, 2]):
            groups.append(
                nn.Sequential(*[WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)])
            )
            c_in = c_out
        self.stages = nn.ModuleList(
            [nn.Conv2d(in_channels, 16, 3, 1, 1), groups[0], groups[1], nn.Sequential(groups[2], _pool())]
        )
        self.feature_dim = widths[-1]
        self.mix_stages = (0, 2, 3)  # The input, after group 1, after group 2.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0]
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / (k * k * module.out_channels)))


BACKBONES = {
    "small-cnn": SmallCNN,
    "preact-resnet18": PreActResNet18,
    "wrn-28-10": lambda in_channels: WideResNet(in_channels, depth=28, widen=10),
}


def make_backbone(name: str, in_channels: int) -> Backbone:
    """A backbone by name (one of BACKBONES)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](in_channels)
