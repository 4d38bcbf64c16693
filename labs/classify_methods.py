"""The classification lab's model (input normalisation, backbone F, head) and the five training methods.

| method           | head                      | loss on a batch (x, y)                                              |
|------------------|---------------------------|---------------------------------------------------------------------|
| ce               | linear (with bias)        | CE(h(F(x)), y)                                                      |
| mixup            | linear                    | lam CE(o, y) + (1 - lam) CE(o, y[pi]), o = h(F(lam x + (1-lam) x[pi])) |
| manifold-mixup   | linear                    | the same with the mix applied to the hidden batch entering a random stage |
| orth             | orthogonal (Eq. 7-9)      | CE(h(F(x)), y)                                                      |
| orth-adaptivemix | orthogonal                | the AdaptiveMix step of `adaptivemix.classifier` (Mixup CE + shrinkage) |

With the orthogonal head, features are L2-normalised (as in the AdaptiveMix release), so the shrinkage
acts on unit feature vectors. pi and lam come from `adaptivemix.mixing.draw_mix` (one lam per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaptivemix.classifier import (
    AdaptiveMixClassifierLoss,
    OrthogonalClassifier,
    mixup_cross_entropy,
)
from adaptivemix.mixing import MixDraw, draw_mix

from .classify_backbones import make_backbone

METHODS = ("ce", "mixup", "manifold-mixup", "orth", "orth-adaptivemix")
ORTH_HEADS = ("paper", "release")  # paper: trainable signed cosine (Eq. 7); release: frozen |cosine|.


class ImageClassifier(nn.Module):
    """Images in [0, 1], [N, C, H, W] -> class scores [N, K]: head(F((x - mean) / std)).

    Args:
        backbone: a name of `classify_backbones.BACKBONES`.
        method: one of METHODS (decides the head: orthogonal for 'orth*', linear otherwise).
        mean, std: per-channel input statistics [C] (of the training set).
        orth_head: 'paper' or 'release' form of the orthogonal head.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int,
        num_classes: int,
        method: str,
        mean: list[float],
        std: list[float],
        orth_head: str = "paper",
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        if orth_head not in ORTH_HEADS:
            raise ValueError(f"unknown orthogonal head {orth_head!r}: choose one of {', '.join(ORTH_HEADS)}")
        self.backbone = make_backbone(backbone, in_channels)
        self.orthogonal = method.startswith("orth")
        dim = self.backbone.feature_dim
        if self.orthogonal:
            release = orth_head == "release"
            self.head = OrthogonalClassifier(dim, num_classes, absolute=release, frozen=release)
        else:
            self.head = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def features(self, x: torch.Tensor, mix_at: int | None = None, draw: MixDraw | None = None) -> torch.Tensor:
        """F(x) [N, D]; unit-norm rows with the orthogonal head. `mix_at`/`draw`: see Backbone.features."""
        v = self.backbone.features((x - self.mean) / self.std, mix_at, draw)
        return F.normalize(v, dim=1, eps=1e-12) if self.orthogonal else v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class MethodOptions:
    alpha: float = 1.0  # Beta(alpha, alpha) of the mixing weight (Mixup, Manifold Mixup, AdaptiveMix).
    noise_std: float = 0.05  # AdaptiveMix target noise sigma.


def training_loss(
    model: ImageClassifier, method: str, x: torch.Tensor, y: torch.Tensor, options: MethodOptions
) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's loss on one batch (a scalar with graph) and scalars to log."""
    if method in ("ce", "orth"):
        return F.cross_entropy(model(x), y), {}
    if method in ("mixup", "manifold-mixup"):
        draw = draw_mix(x.shape[0], options.alpha)
        stages = model.backbone.mix_stages
        mix_at = 0 if method == "mixup" else int(stages[np.random.randint(len(stages))])
        logits = model.head(model.features(x, mix_at, draw))
        return mixup_cross_entropy(logits, y, draw), {"mix_at": float(mix_at)}
    if method == "orth-adaptivemix":
        loss, _result, shrink = AdaptiveMixClassifierLoss(options.noise_std, options.alpha)(
            model.features, model.head, x, y
        )
        return loss, {"shrinkage": float(shrink.detach())}
    raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
