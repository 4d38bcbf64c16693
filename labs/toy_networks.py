"""Small MLPs of the toy 2D lab: a generator (optionally with virtual batch norm) and a discriminator split
into a feature extractor F (`features`) and a head J (`head`), optionally with minibatch discrimination."""

from __future__ import annotations

import torch
from torch import nn

from training.techniques.minibatch_discrimination import MinibatchDiscrimination
from training.techniques.virtual_batch_norm import ReferenceBatch, VirtualBatchNorm

HEADS = ("linear", "mean")


class ToyGenerator(nn.Module):
    """z [N, z_dim] -> points [N, 2]: `layers` hidden ReLU layers of `width` units.

    With `vbn`, every hidden layer is followed by virtual batch norm; the reference latents (`reference_size`
    draws from `seed`) are fixed here, saved in the state_dict, and forwarded before every call.
    """

    def __init__(
        self,
        z_dim: int = 8,
        width: int = 128,
        layers: int = 3,
        vbn: bool = False,
        reference_size: int = 128,
        seed: int = 0,
    ):
        super().__init__()
        self.z_dim = z_dim
        blocks: list[nn.Module] = []
        size = z_dim
        for _ in range(layers):
            blocks += [nn.Linear(size, width)] + ([VirtualBatchNorm(width)] if vbn else []) + [nn.ReLU()]
            size = width
        self.net = nn.Sequential(*blocks, nn.Linear(size, 2))
        self.reference = None
        if vbn:
            self.reference = ReferenceBatch(
                torch.randn(reference_size, z_dim, generator=torch.Generator().manual_seed(seed))
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            self.reference.refresh(self.net)  # Reference statistics with the current weights.
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """x [N, 2] -> score [N, 1] = J(F(x)).

    F: `layers` LeakyReLU(0.2) layers of `width` units, then (with `mbdisc_kernels` > 0) minibatch
    discrimination, which appends B = `mbdisc_kernels` closeness values. J: a linear layer ('linear') or the
    mean of the feature entries ('mean', the averaging critic of the AdaptiveMix paper's Eq. 6).
    """

    def __init__(
        self, width: int = 128, layers: int = 3, head: str = "linear", mbdisc_kernels: int = 0, mbdisc_dim: int = 5
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown toy D head {head!r}: choose one of {', '.join(HEADS)}")
        blocks: list[nn.Module] = []
        size = 2
        for _ in range(layers):
            blocks += [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        if mbdisc_kernels > 0:
            blocks.append(MinibatchDiscrimination(size, mbdisc_kernels, mbdisc_dim))
            size += mbdisc_kernels
        self.body = nn.Sequential(*blocks)
        self.head_kind = head
        self.out = nn.Linear(size, 1) if head == "linear" else None

    def features(self, x: torch.Tensor, _c=None) -> torch.Tensor:
        return self.body(x)

    def head(self, feat: torch.Tensor, _c=None) -> torch.Tensor:
        return self.out(feat) if self.out is not None else feat.mean(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor, _c=None) -> torch.Tensor:
        return self.head(self.features(x))
