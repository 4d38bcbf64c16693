"""The semi-supervised GAN's losses (Salimans et al. 2016, Sec. 5) and the labelled-subset selection.

D is a (K+1)-class classifier whose class K+1 means "generated". Fixing that class's logit at 0 (which loses
nothing, since softmax is invariant to a common shift) leaves K free logits l_1..l_K, and with
Z(x) = sum_k exp(l_k(x)) the probability of "real" is D(x) = Z / (Z + 1). The losses, all batch means:

    supervised          -log p(y | x, y <= K) = logsumexp(l) - l_y          (softmax cross-entropy over K)
    unsupervised real   -log D(x)             = -logsumexp(l) + softplus(logsumexp(l))
    unsupervised fake   -log (1 - D(G(z)))    = softplus(logsumexp(l))

D minimizes supervised + unsupervised real + unsupervised fake; G is trained by feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the K real classes: mean over [N, K] logits and int64 labels [N]."""
    return F.cross_entropy(logits, labels)


def unsupervised_real_loss(logits: torch.Tensor) -> torch.Tensor:
    """-mean log D(x) for real (unlabelled) logits [N, K], with D = Z / (Z + 1)."""
    lse = torch.logsumexp(logits, dim=1)
    return (-lse + F.softplus(lse)).mean()


def unsupervised_fake_loss(logits: torch.Tensor) -> torch.Tensor:
    """-mean log(1 - D(G(z))) = mean log(Z + 1) for generated logits [N, K]."""
    return F.softplus(torch.logsumexp(logits, dim=1)).mean()


def select_labelled(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices (sorted, int64) of exactly `per_class` items of every class in `labels` [N], drawn without
    replacement by a generator seeded with `seed` (one permutation per class, classes in increasing order).
    Raises ValueError naming a class with too few items."""
    if per_class < 1:
        raise ValueError(f"labels per class must be >= 1, got {per_class}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        if len(members) < per_class:
            raise ValueError(f"class {k} has only {len(members)} images, fewer than --labels-per-class={per_class}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.sort(torch.cat(chosen)).values
