"""Fused multiply-add `a * b + c` with broadcasting; it exists only for speed (one kernel instead of two)."""

from __future__ import annotations

import torch


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """`a * b + c` as one `torch.addcmul(c, a, b)`; gradients are reduced to each input's broadcast shape."""
    return torch.addcmul(c, a, b)


__all__ = ["fma"]
