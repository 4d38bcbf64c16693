"""MLPs of the toy 2D lab: a generator and a discriminator split into a feature extractor F (`features`) and a
head J (`head`), in two presets: the lab's small networks (`lab`, optionally with virtual batch norm in G) and
PacGAN's networks for the 2D protocol (`pacgan`); D optionally with minibatch discrimination, and for packing
(`pack` = m) an input of m points (2 m coordinates)."""

from __future__ import annotations

import torch
from torch import nn

from training.techniques.minibatch_discrimination import MinibatchDiscrimination
from training.techniques.virtual_batch_norm import ReferenceBatch, VirtualBatchNorm

HEADS = ("linear", "mean")
ARCHS = ("lab", "pacgan")


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


class Maxout(nn.Module):
    """[N, in] -> [N, out]: the maximum over `pieces` linear units for each output (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max (not amax): its backward routes each gradient through the saved argmax index, where amax's builds
        # an equality mask over all pieces; the two differ only at exact ties.
        return self.linear(x).unflatten(1, (-1, self.pieces)).max(dim=2).values


class PacGANGenerator(nn.Module):
    """PacGAN's 2D generator: z ~ N(0, I_2) [N, 2] -> 4 hidden layers of 400 ReLU units with batch norm -> [N, 2]."""

    def __init__(self, z_dim: int = 2, width: int = 400, layers: int = 4):
        super().__init__()
        self.z_dim = z_dim
        blocks: list[nn.Module] = []
        size = z_dim
        for _ in range(layers):
            blocks += [nn.Linear(size, width), nn.BatchNorm1d(width), nn.ReLU()]
            size = width
        self.net = nn.Sequential(*blocks, nn.Linear(size, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def build_toy_networks(
    arch: str,
    head: str = "linear",
    vbn: bool = False,
    seed: int = 0,
    pack: int = 1,
    mbdisc_kernels: int = 0,
    mbdisc_dim: int = 5,
) -> tuple[nn.Module, ToyDiscriminator]:
    """(G, D) of a preset: `lab` (G: z_dim 8, 3 x 128 ReLU; D: 3 x 128 LeakyReLU) or `pacgan` (G: PacGANGenerator;
    D: 3 maxout layers of 200 units with 5 pieces each)."""
    if arch == "lab":
        G = ToyGenerator(vbn=vbn, seed=seed)
        D = ToyDiscriminator(head=head, mbdisc_kernels=mbdisc_kernels, mbdisc_dim=mbdisc_dim, pack=pack)
    elif arch == "pacgan":
        if vbn:
            raise ValueError("virtual batch norm (vbn) is for the lab's generator: use --arch=lab")
        G = PacGANGenerator()
        D = ToyDiscriminator(
            width=200, head=head, mbdisc_kernels=mbdisc_kernels, mbdisc_dim=mbdisc_dim, pack=pack, maxout_pieces=5
        )
    else:
        raise ValueError(f"unknown toy network preset {arch!r}: choose one of {', '.join(ARCHS)}")
    return G, D


class ToyDiscriminator(nn.Module):
    """x [N, 2 pack] -> score [N, 1] = J(F(x)).

    F: `layers` LeakyReLU(0.2) layers (or maxout layers of `maxout_pieces` pieces) of `width` units, then (with `mbdisc_kernels` > 0) minibatch
    discrimination, which appends B = `mbdisc_kernels` closeness values. J: a linear layer ('linear') or the
    mean of the feature entries ('mean', the averaging critic of the AdaptiveMix paper's Eq. 6).
    """

    def __init__(
        self,
        width: int = 128,
        layers: int = 3,
        head: str = "linear",
        mbdisc_kernels: int = 0,
        mbdisc_dim: int = 5,
        pack: int = 1,
        maxout_pieces: int = 0,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown toy D head {head!r}: choose one of {', '.join(HEADS)}")
        blocks: list[nn.Module] = []
        size = 2 * pack
        for _ in range(layers):
            blocks += (
                [Maxout(size, width, maxout_pieces)] if maxout_pieces else [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            )
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
