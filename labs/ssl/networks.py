"""Salimans et al.'s (2016) permutation-invariant MNIST networks for the semi-supervised GAN.

    D = J(F(x)), x flattened to [N, C H W] in [0, 1]:
      F: GaussianNoise(0.3) -> Dense 1000 -> ReLU -> GaussianNoise(0.5) -> Dense 500 -> ReLU -> GaussianNoise(0.5)
         -> Dense 250 -> ReLU -> GaussianNoise(0.5) -> Dense 250 -> ReLU -> GaussianNoise(0.5) -> Dense 250 -> ReLU
         (features [N, 250]; G's feature matching and AdaptiveMix act on them)
      J: GaussianNoise(0.5) -> Dense K   (the K real-class logits; the "generated" logit is fixed at 0)
    Every Dense of D is weight-normalised (w = g v / ||v||).
    G: z ~ U(0, 1)^100 -> Dense 500 -> softplus -> BatchNorm -> Dense 500 -> softplus -> BatchNorm
       -> weight-normalised Dense C H W -> sigmoid, reshaped to [N, C, H, W].
Gaussian noise layers add N(0, sigma^2) noise in training mode only. The paper's text says "We use weight
normalization [20] and add Gaussian noise to the output of each layer of the discriminator" and "Our networks
have 5 hidden layers each"; it gives no widths and no noise sigma. The widths, G's two hidden layers (the text's
"5 hidden layers each" would give G five) and sigma 0.3 / 0.5 are this lab's earlier choices, kept so that its
measured rows stay comparable. `data_dependent_init` is weight normalisation's initialisation from [20]
(`--recipe=salimans`); without it the layers keep PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

D_WIDTHS = (1000, 500, 250, 250, 250)
G_WIDTHS = (500, 500)
INPUT_NOISE = 0.3
HIDDEN_NOISE = 0.5
WN_INIT_STD = 0.05  # [20]: v ~ N(0, 0.05^2) before the data-dependent pass.


class GaussianNoise(nn.Module):
    """x + N(0, sigma^2) noise in training mode; identity in eval mode."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.sigma if self.training and self.sigma > 0 else x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


@torch.no_grad()
def data_dependent_init(net: nn.Sequential, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Weight normalisation's data-dependent initialisation (Salimans & Kingma 2016, Sec. 3) of every weight-normed
    Linear in `net`, on one batch x [N, in] passed through `net` in its current mode; returns net's output.

    The paper: v is drawn "from a simple distribution with fixed scale, which is in our experiments a normal
    distribution with mean zero and standard deviation 0.05"; then, layer by layer on a single minibatch,
    t = v . x / ||v||, and "we can then initialize the neuron's bias b and scale g as g <- 1/sigma[t],
    b <- -mu[t]/sigma[t]", so each pre-activation w . x + b has zero mean and unit variance over the batch
    (sigma is the population standard deviation; eps guards a constant unit). Layers in training mode keep
    their noise, so the statistics are those of the noisy pass the network sees in training.
    """
    for layer in net:
        if isinstance(layer, nn.Linear) and parametrize.is_parametrized(layer, "weight"):
            g, v = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
            v.normal_(0, WN_INIT_STD)
            t = x @ (v / v.norm(dim=1, keepdim=True)).t()
            var, mean = torch.var_mean(t, dim=0, unbiased=False)
            std = (var + eps).sqrt()
            g.copy_((1 / std).view_as(g))
            layer.bias.copy_(-mean / std)
        x = layer(x)
    return x


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

    def init_from_data(self, x: torch.Tensor) -> None:
        """`data_dependent_init` of F and J, in order, on one batch of images x [N, C, H, W]."""
        data_dependent_init(self.head_net, data_dependent_init(self.feature_net, x.flatten(1)))


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

    def init_from_data(self, z: torch.Tensor) -> None:
        """`data_dependent_init` of the weight-normed output layer on one batch of latents z [N, z_dim]."""
        data_dependent_init(self.net, z)
