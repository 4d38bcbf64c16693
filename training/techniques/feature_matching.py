"""Feature matching (Salimans et al. 2016, Sec. 3.1).

G is trained to match the mean of D's intermediate features on real data:

    L_FM = || E_{x ~ p_data} f(x) - E_{z ~ p_z} f(G(z)) ||_2^2

with both expectations estimated by batch means. D picks which statistics matter; G only matches them. The
real term is a constant for G, so it is detached: no gradient reaches the real batch or its graph.
"""

from __future__ import annotations

import torch


def feature_matching_loss(real_feat: torch.Tensor, fake_feat: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between the batch means of real [N, ...] and fake [M, ...] features (a scalar).

    Features are flattened per sample; the real features are detached.
    """
    real = real_feat.detach().flatten(1).to(torch.float32)
    fake = fake_feat.flatten(1).to(torch.float32)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature matching: real features have {real.shape[1]} values per sample, fake {fake.shape[1]}"
        )
    return (real.mean(dim=0) - fake.mean(dim=0)).square().sum()
