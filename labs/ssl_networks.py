"""Salimans et al.'s (2016) permutation-invariant MNIST networks for the semi-supervised GAN.

    D = J(F(x)), x flattened to [N, C H W] in [0, 1]:
      F: GaussianNoise(0.3) -> Dense 1000 -> ReLU -> GaussianNoise(0.5) -> Dense 500 -> ReLU -> GaussianNoise(0.5)
         -> Dense 250 -> ReLU -> GaussianNoise(0.5) -> Dense 250 -> ReLU -> GaussianNoise(0.5) -> Dense 250 -> ReLU
         (features [N, 250]; G's feature matching and AdaptiveMix act on them)
      J: GaussianNoise(0.5) -> Dense K   (the K real-class logits; the "generated" logit is fixed at 0)
    Every Dense of D is weight-normalised (w = g v / ||v||).
    G: z ~ U(0, 1)^100 -> Dense 500 -> softplus -> BatchNorm -> Dense 500 -> softplus -> BatchNorm
       -> weight-normalised Dense C H W -> sigmoid, reshaped to [N, C, H, W].
Gaussian noise layers add N(0, sigma^2) noise in training mode only. (The original also initialises weight
norm from data; here the default initialisation is kept.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

D_WIDTHS = (1000, 500, 250, 250, 250)
G_WIDTHS = (500, 500)
INPUT_NOISE = 0.3
HIDDEN_NOISE = 0.5


class GaussianNoise(nn.Module):
    """x + N(0, sigma^2) noise in training mode; identity in eval mode."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.sigma if self.training and self.sigma > 0 else x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class SSLDiscriminator(nn.Module):
    """Images [N, C, H, W] in [0, 1] -> K logits [N, K]; `features` is F ([N, 250]), `head` is J."""

    def __init__(self, in_features: int, num_classes: int, widths: tuple[int, ...] = D_WIDTHS):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_features
        for i, width in enumerate(widths):
            layers += [
                GaussianNoise(INPUT_NOISE if i == 0 else HIDDEN_NOISE),
                weight_norm(nn.Linear(prev, width)),
                nn.ReLU(),
            ]
            prev = width
        self.feature_net = nn.Sequential(*layers)
        self.head_net = nn.Sequential(GaussianNoise(HIDDEN_NOISE), weight_norm(nn.Linear(prev, num_classes)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_net(x.flatten(1))

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        return self.head_net(feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SSLGenerator(nn.Module):
    """z [N, z_dim] ~ U(0, 1) -> images [N, C, H, W] in (0, 1)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        z_dim: int = 100,
        widths: tuple[int, ...] = G_WIDTHS,
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        prev = z_dim
        for width in widths:
            layers += [nn.Linear(prev, width), nn.Softplus(), nn.BatchNorm1d(width)]
            prev = width
        out = image_shape[0] * image_shape[1] * image_shape[2]
        layers += [weight_norm(nn.Linear(prev, out)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)
