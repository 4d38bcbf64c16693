"""One-sided label smoothing (Salimans et al. 2016, Sec. 3.4) for the logistic (non-saturating) GAN loss.

D's real targets become alpha (default 0.9) instead of 1; fake targets stay 0 (smoothing the fakes too would
reward D for leaving fake samples where the data has none). The per-sample real loss is the binary
cross-entropy against target alpha:

    l(s) = -alpha log sigmoid(s) - (1 - alpha) log(1 - sigmoid(s)) = alpha softplus(-s) + (1 - alpha) softplus(s)

whose gradient is dl/ds = sigmoid(s) - alpha: D stops pushing a real logit up once sigmoid(s) = alpha.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or a ValueError naming the valid range (0.5, 1]."""
    alpha = float(alpha)
    if not 0.5 < alpha <= 1:
        raise ValueError(f"label smoothing alpha must be in (0.5, 1] (1 = no smoothing), got {alpha}")
    return alpha


def smoothed_real_loss(real_logits: torch.Tensor, alpha: float = 0.9) -> torch.Tensor:
    """Per-sample logistic loss of real logits [N] against the smoothed target `alpha`, shape [N]."""
    alpha = check_alpha(alpha)
    return F.softplus(-real_logits) * alpha + F.softplus(real_logits) * (1 - alpha)
