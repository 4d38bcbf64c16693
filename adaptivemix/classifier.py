"""AdaptiveMix for image classification: the orthogonal classifier head and the mixed training loss.

Orthogonal head (paper Eq. 7-9): the last fully connected layer is replaced by bias-free class vectors
w_k (rows of W [K, D], initialised orthonormal so that w_k . w_l = 0 for k != l) and the class score is
the cosine y_k = w_k . v / (|w_k| |v|), in [-1, 1]; a softmax over these scores gives the probabilities.
The authors' release uses |cos| with W frozen after its orthogonal initialisation (`absolute=True,
frozen=True`).

Scale. Eq. 8 feeds the cosines themselves to the softmax, so the logits span at most 2 (signed) or 1 (|cos|):
with K classes the true class's probability is at most e / (e + (K - 1) / e) (0.60 for K = 6), and only
e / (e + K - 1) (0.35 for K = 6; cross-entropy >= 1.04) while the class vectors stay orthogonal. A correctly
classified sample then pulls almost as hard as a wrong one (its 1 - p stays >= 0.4), so training is slow.
Cosine classifiers (NormFace, Wang et al. 2017; CosFace) multiply the cosine by a scale s so that the softmax
can become confident: logits s * cos. `scale=1` is the literal Eq. 7-8.

Mixed loss (the release's classification step, one batch x [N, ...] with labels y [N]):
    pi, lam = draw_mix(N, alpha);  x_hat = lam x + (1 - lam) x[pi]
    v_hat = F(x_hat);  v_a = F(x);  m = lam v_a + (1 - lam) v_a[pi];  t = m + eps, eps ~ N(0, sigma^2)
    o = h(m) + h(v_hat)
    loss = lam CE(o, y) + (1 - lam) CE(o, y[pi]) + mean over all elements of (v_hat - sg(t))^2
This is exactly the mixed discriminator call of `gan.AdaptiveMixDiscriminatorCall` with the class head as
J and the 'mse' distance, so it is built on that call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .gan import AdaptiveMixDiscriminatorCall, MixedCallResult
from .mixing import MixDraw


class OrthogonalClassifier(torch.nn.Module):
    """Bias-free (scaled) cosine class scores [N, K] of features [N, D]; W [K, D] initialised with orthonormal rows.

    Args:
        feature_dim: D. Must be >= num_classes, otherwise K vectors cannot be mutually orthogonal.
        num_classes: K.
        absolute: score |cos| instead of cos (the release's form).
        frozen: keep W at its initialisation (a buffer, never trained; the release's form).
        scale: s > 0; the scores are s * cos (s * |cos|). 1 is the paper's literal form.
    """

    def __init__(
        self, feature_dim: int, num_classes: int, absolute: bool = False, frozen: bool = False, scale: float = 1.0
    ):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"orthogonal head: scale must be > 0, got {scale}")
        if num_classes > feature_dim:
            raise ValueError(
                f"orthogonal head: {num_classes} classes need feature_dim >= {num_classes}, got {feature_dim}"
            )
        weight = torch.nn.init.orthogonal_(torch.empty(num_classes, feature_dim))
        if frozen:
            self.register_buffer("weight", weight)
        else:
            self.weight = torch.nn.Parameter(weight)
        self.absolute = absolute
        self.frozen = frozen
        self.scale = float(scale)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        scores = F.normalize(v, dim=1, eps=1e-12) @ F.normalize(self.weight, dim=1, eps=1e-12).t()
        return self.scale * (scores.abs() if self.absolute else scores)

    def extra_repr(self) -> str:
        num_classes, feature_dim = self.weight.shape
        return (
            f"feature_dim={feature_dim}, num_classes={num_classes}, absolute={self.absolute}, frozen={self.frozen}, "
            f"scale={self.scale:g}"
        )


def mixup_cross_entropy(logits: torch.Tensor, y: torch.Tensor, draw: MixDraw) -> torch.Tensor:
    """Mixup's cross-entropy `lam CE(logits, y) + (1 - lam) CE(logits, y[perm])` (batch means), a scalar."""
    y_b = y[draw.perm.to(y.device)]
    return draw.lam * F.cross_entropy(logits, y) + (1 - draw.lam) * F.cross_entropy(logits, y_b)


class AdaptiveMixClassifierLoss:
    """The release's AdaptiveMix classification step (see the module docstring) for any F and head h.

    Args:
        noise_std: sigma of the target noise (release and paper's best: 0.05).
        alpha: Beta(alpha, alpha) parameter of lam (release default and paper's best: 1).
    """

    def __init__(self, noise_std: float = 0.05, alpha: float = 1.0):
        self.call = AdaptiveMixDiscriminatorCall(noise_std=noise_std, alpha=alpha, distance="mse", stop_gradient=True)

    def __call__(
        self,
        features_fn: Callable[[torch.Tensor], torch.Tensor],
        head: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> tuple[torch.Tensor, MixedCallResult, torch.Tensor]:
        """Returns (total loss, the mixed call's result with logits o [N, K], shrinkage term scalar)."""
        result = self.call(features_fn, lambda v, _c: head(v), x, None)
        shrink = self.call.shrinkage(result).mean()
        return mixup_cross_entropy(result.logits, y, result.draw) + shrink, result, shrink
