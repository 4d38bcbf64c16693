"""Analysis tools of the AdaptiveMix paper for any network split into a feature extractor F and a head J.

- Lipschitz ratio (the paper's Table 3): the mean over pairs (a, b) of

      ||F(a) - F(b)||_2 / ||a - b||_2

  (both vectors flattened), on pairs of real samples, of generated samples, of one real and one generated
  sample ('both'), and of real/generated mixes. Smaller means a flatter, closer-to-Lipschitz F.
- Feature compactness (the paper's Fig. 4): the standard deviation of a group of feature vectors v_i in R^D,

      SD = sqrt( (1 / (N D)) sum_i ||v_i - mean(v)||^2 ),

  the root-mean-square deviation of the coordinates from the group mean (population form), per class and
  for all samples together ('total'). Smaller means a more compact feature space.

`features_fn(x)` may return a tensor or a tuple `(feature, *extras)` (e.g. `D.features`); only the feature is
used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .gan import split_features

PAIR_KINDS = ("real", "generated", "both", "mixed")


@torch.no_grad()
def feature_vectors(features_fn: Callable[[torch.Tensor], Any], x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """F(x) flattened to [N, D] float32, computed in batches of `batch_size` without gradients."""
    if x.shape[0] < 1:
        raise ValueError("feature_vectors needs at least one sample")
    parts = [
        split_features(features_fn(x[i : i + batch_size]))[0].flatten(1).float()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts)


def pair_ratios(
    x_a: torch.Tensor, x_b: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """Per-pair ||f_a - f_b|| / ||x_a - x_b|| [P] for paired rows; pairs with identical inputs are left out."""
    if x_a.shape[0] != x_b.shape[0] or f_a.shape[0] != x_a.shape[0] or f_b.shape[0] != x_b.shape[0]:
        raise ValueError("pair_ratios: the four arguments need the same number of rows")
    dx = (x_a.flatten(1).double() - x_b.flatten(1).double()).norm(dim=1)
    dv = (f_a.flatten(1).double() - f_b.flatten(1).double()).norm(dim=1)
    keep = dx > eps
    return (dv[keep] / dx[keep]).float()


def lipschitz_ratio(
    features_fn: Callable[[torch.Tensor], Any], x_a: torch.Tensor, x_b: torch.Tensor, batch_size: int = 64
) -> float:
    """Mean ||F(a_i) - F(b_i)|| / ||a_i - b_i|| over the rows of two equally long batches."""
    ratios = pair_ratios(
        x_a, x_b, feature_vectors(features_fn, x_a, batch_size), feature_vectors(features_fn, x_b, batch_size)
    )
    if ratios.numel() == 0:
        raise ValueError("lipschitz_ratio: every pair has identical inputs")
    return float(ratios.mean())


def cycle_partners(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation with no fixed point (one random cycle): partner[order[k]] = order[k + 1]."""
    if n < 2:
        raise ValueError(f"pairs need at least 2 samples, got {n}")
    order = torch.randperm(n, generator=generator)
    partner = torch.empty(n, dtype=torch.int64)
    partner[order] = order.roll(-1)
    return partner


def lipschitz_table(
    features_fn: Callable[[torch.Tensor], Any],
    real: torch.Tensor,
    fake: torch.Tensor,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, float]:
    """Table 3 for one network: the mean ratio on each kind of pair in PAIR_KINDS.

    'real' and 'generated' pair each sample with a random other one of its set; 'both' pairs real[i] with
    fake[i]; 'mixed' builds x_i = lam_i real_i + (1 - lam_i) fake_i (lam_i ~ U(0, 1)) and pairs mixes like
    'real'. F is evaluated once per sample.
    """
    n = min(real.shape[0], fake.shape[0])
    real, fake = real[:n], fake[:n]
    gen = torch.Generator().manual_seed(seed)
    lam = torch.rand(n, generator=gen, dtype=real.dtype).view([n] + [1] * (real.ndim - 1))
    mixed = lam * real + (1 - lam) * fake
    f_real, f_fake, f_mixed = (feature_vectors(features_fn, x, batch_size) for x in (real, fake, mixed))
    table = {}
    for kind, (x, f) in (("real", (real, f_real)), ("generated", (fake, f_fake)), ("mixed", (mixed, f_mixed))):
        p = cycle_partners(n, gen)
        table[kind] = float(pair_ratios(x, x[p], f, f[p]).mean())
    table["both"] = float(pair_ratios(real, fake, f_real, f_fake).mean())
    return {kind: table[kind] for kind in PAIR_KINDS}


def spread(features: torch.Tensor) -> float:
    """sqrt(mean over samples and coordinates of (v - mean(v))^2) for features [N, ...]."""
    v = features.flatten(1).double()
    return float((v - v.mean(dim=0)).square().mean().sqrt())


@dataclass
class Compactness:
    """Fig. 4 numbers: SD per class, their mean over classes, and the SD of all samples together."""

    per_class: dict[int, float]
    mean_class: float
    total: float


def feature_compactness(features: torch.Tensor, labels: torch.Tensor | np.ndarray | None = None) -> Compactness:
    """Compactness of features [N, ...] grouped by integer `labels` [N] (None: one group, the total)."""
    total = spread(features)
    if labels is None:
        return Compactness(per_class={}, mean_class=total, total=total)
    labels = torch.as_tensor(np.asarray(labels)).long().flatten()
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f"feature_compactness: {features.shape[0]} features but {labels.shape[0]} labels")
    per_class = {int(k): spread(features[labels == k]) for k in torch.unique(labels).tolist()}
    return Compactness(per_class=per_class, mean_class=float(np.mean(list(per_class.values()))), total=total)
