"""The classification lab's model (input normalisation, backbone F, head) and the seven training methods.

| method              | head                 | loss on a batch (x, y)                                                 |
|---------------------|----------------------|------------------------------------------------------------------------|
| ce                  | linear (with bias)   | CE(h(F(x)), y)                                                         |
| mixup               | linear               | lam CE(o, y) + (1 - lam) CE(o, y[pi]), o = h(F(lam x + (1-lam) x[pi])) |
| manifold-mixup      | linear               | the same with the mix applied to the hidden batch entering a random stage |
| orth                | orthogonal (Eq. 7-9) | CE(h(F(x)), y)                                                         |
| orth-mixup          | orthogonal           | Mixup's loss (Table 7's "Orth. + Mixup")                               |
| orth-manifold-mixup | orthogonal           | Manifold Mixup's loss (Table 7's "Orth. + M.-Mixup")                   |
| orth-adaptivemix    | orthogonal           | the AdaptiveMix step of `adaptivemix.classifier` (Mixup CE + shrinkage) |

The two orthogonal Mixup rows are the controls that separate AdaptiveMix's shrinkage from its mixing: they
share the head and the mixed cross-entropy with `orth-adaptivemix` and lack only the shrinkage term (and its
second F pass). With the orthogonal head, features are L2-normalised (as in the AdaptiveMix release), so the
shrinkage acts on unit feature vectors, and the scores are s * cos (`orth_scale` s; 1 is the paper's literal
Eq. 8). pi and lam come from `adaptivemix.mixing.draw_mix` (one lam per batch).
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
from adaptivemix.mixing import MixDraw, draw_mix, unit_features
from labs.classify.backbones import make_backbone

METHODS = ("ce", "mixup", "manifold-mixup", "orth", "orth-mixup", "orth-manifold-mixup", "orth-adaptivemix")
ORTH_HEADS = ("paper", "release")  # paper: trainable signed cosine (Eq. 7); release: frozen |cosine|.
# The lab's default s of the orthogonal head's s * cos: 12 came within 1 point of ce at the lab budget where 8 did
# not and 16 was unstable (measured in docs/classification.md).
ORTH_SCALE = 12.0


class ImageClassifier(nn.Module):
    """Images in [0, 1], [N, C, H, W] -> class scores [N, K]: head(F((x - mean) / std)).

    Args:
        backbone: a name of `classify_backbones.BACKBONES`.
        method: one of METHODS (decides the head: orthogonal for 'orth*', linear otherwise).
        mean, std: per-channel input statistics [C] (of the training set).
        orth_head: 'paper' or 'release' form of the orthogonal head.
        orth_scale: s of the orthogonal head's scores s * cos (1: the literal Eq. 8).
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
        orth_scale: float = ORTH_SCALE,
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
            self.head = OrthogonalClassifier(dim, num_classes, absolute=release, frozen=release, scale=orth_scale)
        else:
            self.head = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def features(self, x: torch.Tensor, mix_at: int | None = None, draw: MixDraw | None = None) -> torch.Tensor:
        """F(x) [N, D]; unit-norm rows with the orthogonal head. `mix_at`/`draw`: see Backbone.features."""
        v = self.backbone.features((x - self.mean) / self.std, mix_at, draw)
        return unit_features(v) if self.orthogonal else v

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
    if method in ("mixup", "manifold-mixup", "orth-mixup", "orth-manifold-mixup"):
        draw = draw_mix(x.shape[0], options.alpha)
        stages = model.backbone.mix_stages
        mix_at = int(stages[np.random.randint(len(stages))]) if method.endswith("manifold-mixup") else 0
        logits = model.head(model.features(x, mix_at, draw))
        return mixup_cross_entropy(logits, y, draw), {"mix_at": float(mix_at)}
    if method == "orth-adaptivemix":
        loss, _result, shrink = AdaptiveMixClassifierLoss(options.noise_std, options.alpha)(
            model.features, model.head, x, y
        )
        return loss, {"shrinkage": float(shrink.detach())}
    raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
