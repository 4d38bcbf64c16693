"""Packing (Lin et al. 2018, PacGAN): the discriminator judges m samples of the same kind at once.

PacGAN's discriminator takes m samples, all real or all generated, concatenated into one input; nothing else
in the GAN changes. Here that is a reshape of a batch before D sees it: m consecutive samples become one
packed sample whose channels (or 2D coordinates) are the m samples' channels in order,

    pack(x, m)[j] = concat(x[j m], x[j m + 1], ..., x[j m + m - 1])   along dim 1,

so a batch of N m samples [N m, C, ...] becomes N packed samples [N, m C, ...], and D is built for m C input
channels. Every loss term then treats a packed sample as one sample (the objective, AdaptiveMix's pairs, the
gradient penalty, minibatch discrimination, feature statistics). With m = 1 the batch is returned as is.
"""

from __future__ import annotations

import torch


def check_pack(m: int) -> int:
    """`m` as an int if it is a valid packing degree (>= 1), else a ValueError saying so."""
    if int(m) != m or m < 1:
        raise ValueError(f"--pack must be an integer >= 1 (1 = no packing), got {m}")
    return int(m)


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """[N m, C, ...] -> [N, m C, ...]: each group of m consecutive samples joined along dim 1, in order."""
    m = check_pack(m)
    if m == 1:
        return x
    if x.ndim < 2 or x.shape[0] % m != 0:
        raise ValueError(f"packing {m} samples needs a batch [N * {m}, C, ...], got {tuple(x.shape)}")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])
