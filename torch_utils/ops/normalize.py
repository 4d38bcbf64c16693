"""Normalization of latent vectors to unit mean square (the mapping network applies it to z and to embedded c)."""

from __future__ import annotations

import torch


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """`x * rsqrt(mean(x**2, dim, keepdim=True) + eps)`: unit mean square along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


__all__ = ["normalize_2nd_moment"]
