"""Tensor-level AdaptiveMix pieces: the pairing/weight draw, the mix, and the shrinkage distances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DISTANCES = ("cosine", "l2", "l1", "mse")


@dataclass(frozen=True)
class MixDraw:
    """One mixing draw for a batch: sample i is mixed with sample `perm[i]` using weight `lam`."""

    perm: torch.Tensor  # [N] int64, on the CPU.
    lam: float  # In [0, 1]; one value for the whole batch.


def draw_mix(batch_size: int, alpha: float = 1.0) -> MixDraw:
    """Draw a partner permutation (torch's default CPU generator) and lambda ~ Beta(alpha, alpha) (NumPy's
    global generator), in that order, as the authors' release does."""
    if batch_size < 1:
        raise ValueError(f"AdaptiveMix needs a non-empty batch, got batch_size={batch_size}")
    if alpha <= 0:
        raise ValueError(f"AdaptiveMix alpha must be > 0, got {alpha}")
    perm = torch.randperm(batch_size)
    lam = float(np.random.beta(alpha, alpha))
    return MixDraw(perm=perm, lam=lam)


def mix(x: torch.Tensor, draw: MixDraw) -> torch.Tensor:
    """`lam * x + (1 - lam) * x[perm]` along the batch axis (any shape [N, ...])."""
    return mix_pair(x, x[draw.perm.to(x.device)], draw.lam)


def mix_pair(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """`lam * a + (1 - lam) * b`."""
    return a * lam + b * (1 - lam)


def unit_features(v: torch.Tensor) -> torch.Tensor:
    """Each sample's feature vector scaled to unit L2 norm: [N, D] -> [N, D] (eps 1e-12 guards a zero row).

    The authors' classification form applies the shrinkage to these embeddings: F(x_hat), F(x_a) and F(x_b)
    are normalised first, then mixed into the target, then compared with the 'mse' distance, so the term no
    longer grows with the features' scale.
    """
    return torch.nn.functional.normalize(v, dim=1, eps=1e-12)


def shrinkage_loss(feat_hat: torch.Tensor, target: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """Per-sample distance between the features of mixed inputs and their target, shape [N].

    Both inputs are [N, ...] and are flattened per sample. `cosine` is the negative cosine similarity
    (in [-1, 1], PyTorch's eps = 1e-8), `l2` the Euclidean norm of the difference, `l1` the sum of
    absolute differences, `mse` the mean squared difference. No stop-gradient is applied here.
    """
    if distance not in DISTANCES:
        raise ValueError(f"Unknown AdaptiveMix distance {distance!r}: choose one of {', '.join(DISTANCES)}")
    if feat_hat.shape != target.shape:
        raise ValueError(f"AdaptiveMix: feature shape {tuple(feat_hat.shape)} != target shape {tuple(target.shape)}")
    u = feat_hat.flatten(1)
    v = target.flatten(1).to(u.dtype)
    if distance == "cosine":
        return -torch.nn.functional.cosine_similarity(u, v, dim=1, eps=1e-8)
    diff = u - v
    if distance == "l2":
        return diff.square().sum(dim=1).sqrt()
    if distance == "l1":
        return diff.abs().sum(dim=1)
    return diff.square().mean(dim=1)
