"""The DCGAN generator and discriminator (Radford et al. 2016) of the AdaptiveMix paper's Tables 2 and 4.

At resolution R = 2^k (32 in the paper) with base width w (64 in the paper) and n = k - 2 resolution steps:

    G: z [N, z_dim] -> ConvT 4x4 (stride 1) to [N, w 2^(n-1), 4, 4] -> norm -> ReLU
       -> n - 1 x (ConvT 4x4 stride 2 halving the channels -> norm -> ReLU) -> ConvT 4x4 stride 2 to [N, C, R, R]
       -> tanh                                                        (images in [-1, 1])
    D = J(F(x)):
       F: Conv 4x4 stride 2 (C -> w) -> LeakyReLU(0.2)
          -> n - 1 x (Conv 4x4 stride 2 doubling the channels -> norm -> LeakyReLU(0.2))   -> [N, w 2^(n-1), 4, 4]
       J: 'conv' - Conv 4x4 valid to one logit (DCGAN's last layer), [N, 1];
          'mean' - the mean of all feature entries (the paper's J for its WGAN with AdaptiveMix), [N, 1];
          with minibatch discrimination: flatten -> MinibatchDiscrimination -> Linear to one logit.

G's norm is BatchNorm (DCGAN) or VirtualBatchNorm with a fixed reference batch of z (Salimans et al.); D's
norm is BatchNorm or none (WGAN-GP's penalty is per sample, which batch statistics would break).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from adaptivemix import mean_head
from training.techniques.minibatch_discrimination import MinibatchDiscrimination
from training.techniques.virtual_batch_norm import ReferenceBatch, VirtualBatchNorm

G_NORMS = ("bn", "vbn")
D_NORMS = ("bn", "none")
HEADS = ("conv", "mean")


def check_resolution(resolution: int) -> int:
    """The number of stride-2 steps n = log2(resolution) - 2; resolution must be a power of two >= 8."""
    steps = round(math.log2(resolution)) - 2 if resolution > 0 else -1
    if steps < 1 or 2 ** (steps + 2) != resolution:
        raise ValueError(
            f"DCGAN needs square images of a power-of-two size >= 8, got {resolution}x{resolution} "
            "(convert with dataset_tool.py --width=32 --height=32)"
        )
    return steps


def _g_norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else VirtualBatchNorm(channels)


def _init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, VirtualBatchNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z [N, z_dim] (N(0, I)) -> images [N, C, R, R] in [-1, 1]. `forward(z, c=None)`: c is ignored (unconditional),
    so the metrics code can call it like a StyleGAN2 generator."""

    def __init__(
        self,
        channels: int,
        resolution: int = 32,
        width: int = 64,
        z_dim: int = 100,
        norm: str = "bn",
        reference_size: int = 64,
        seed: int = 0,
    ):
        super().__init__()
        if norm not in G_NORMS:
            raise ValueError(f"unknown generator norm {norm!r}: choose one of {', '.join(G_NORMS)}")
        steps = check_resolution(resolution)
        self.z_dim = z_dim
        self.c_dim = 0
        self.img_channels = channels
        self.img_resolution = resolution
        ch = width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False),
            _g_norm(norm, ch),
            nn.ReLU(),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                _g_norm(norm, ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        _init_dcgan(self)
        # VBN's reference batch: fixed latents drawn once from their own generator (part of the state dict).
        self.reference = None
        if norm == "vbn":
            z_ref = torch.randn(
                [reference_size, z_dim],
                generator=torch.Generator().manual_seed(seed + 12345),
            )
            self.reference = ReferenceBatch(z_ref[:, :, None, None])

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.reference is not None:
            self.reference.refresh(self.body)  # Reference statistics under the current parameters.
        return self.body(z.reshape(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """x [N, C, R, R] in [-1, 1] -> logits [N, 1] = head(features(x)); `features` is F, `head` is J."""

    def __init__(
        self,
        channels: int,
        resolution: int = 32,
        width: int = 64,
        norm: str = "bn",
        head: str = "conv",
        mbdisc: bool = False,
    ):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}: choose one of {', '.join(D_NORMS)}")
        if head not in HEADS:
            raise ValueError(f"unknown discriminator head {head!r}: choose one of {', '.join(HEADS)}")
        if head == "mean" and mbdisc:
            raise ValueError("minibatch discrimination needs a learned head: use head 'conv' with it, not 'mean'")
        steps = check_resolution(resolution)
        ch = width
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(steps - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none")]
            layers += [nn.BatchNorm2d(ch * 2)] if norm == "bn" else []
            layers += [nn.LeakyReLU(0.2)]
            ch *= 2
        self.feature_net = nn.Sequential(*layers)
        self.feature_shape = (ch, 4, 4)
        self.head_kind = head
        self.mbdisc = MinibatchDiscrimination(ch * 16) if mbdisc else None
        self.out = None
        if head == "conv":
            self.out = nn.Linear(ch * 16 + self.mbdisc.num_kernels, 1) if mbdisc else nn.Conv2d(ch, 1, 4, 1, 0)
        _init_dcgan(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F: images [N, C, R, R] -> features [N, w 2^(n-1), 4, 4]."""
        return self.feature_net(x)

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        """J: features [N, ...] -> logits [N, 1]."""
        if self.head_kind == "mean":
            return mean_head(feat)
        if self.mbdisc is not None:
            return self.out(self.mbdisc(feat.flatten(1)))
        return self.out(feat).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
