"""The AdaptiveMix discriminator call: any feature extractor F and head J, mixed as in the authors' release.

`features_fn(x)` may return a tensor or a tuple `(feature, *extras)`; only `feature` is mixed, the extras
(e.g. StyleGAN2's 4x4 skip image) travel unchanged to `head_fn((feature, *extras), c)` (or
`head_fn(feature, c)` for a plain tensor).

Release behaviour (one call, N images x):
    pi, lam = draw_mix(N)                        # torch CPU randperm, then NumPy Beta(alpha, alpha)
    x_hat   = lam * x + (1 - lam) * x[pi]
    f_hat   = F(x_hat);  f_a = F(x);  f_b = f_a[pi]   # 2 F passes (the release makes 3: F(x[pi]) again)
    m       = lam * f_a + (1 - lam) * f_b
    t       = m + eps,   eps ~ N(0, noise_std^2)  (drawn on the CPU generator)
    logits  = J(m, extras_a) + J(f_hat, extras_hat)
F is per-sample, so gathering f_b = f_a[pi] gives the release's values to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .mixing import MixDraw, draw_mix, mix, shrinkage_loss
from .wgan import CrossMixShrinkage, target_noise

FeaturesFn = Callable[[torch.Tensor], Any]
HeadFn = Callable[[Any, Any], torch.Tensor]


@dataclass
class MixedCallResult:
    """What one mixed discriminator call returns."""

    logits: torch.Tensor  # [N, 1]: J(mixed features) + J(F(mixed input)).
    feat_hat: torch.Tensor  # [N, ...]: F(mixed input).
    feat: torch.Tensor  # [N, ...]: F(x), the unmixed input's features (for feature statistics; no extra pass).
    target: torch.Tensor  # [N, ...]: mixed features plus noise (part of the graph; detach for a stop-gradient).
    draw: MixDraw


def split_features(features: Any) -> tuple[torch.Tensor, tuple]:
    """`(mixable feature, extras)` of what F returned: a tensor, or a tuple `(feature, *extras)`."""
    if isinstance(features, torch.Tensor):
        return features, ()
    feature, *extras = features
    return feature, tuple(extras)


def _join(feature: torch.Tensor, extras: tuple) -> Any:
    return (feature, *extras) if extras else feature


class AdaptiveMixDiscriminatorCall:
    """Mixed discriminator call and shrinkage term of the AdaptiveMix release.

    Args:
        noise_std: standard deviation sigma of the Gaussian noise added to the target (release: 0.05).
        alpha: Beta(alpha, alpha) parameter of the mixing weight (release: 1, i.e. uniform).
        distance: shrinkage distance, see `mixing.shrinkage_loss` (release: 'cosine').
        stop_gradient: detach the target inside the shrinkage term (release: True).
    """

    def __init__(
        self, noise_std: float = 0.05, alpha: float = 1.0, distance: str = "cosine", stop_gradient: bool = True
    ):
        if noise_std < 0:
            raise ValueError(f"AdaptiveMix noise_std must be >= 0, got {noise_std}")
        if alpha <= 0:
            raise ValueError(f"AdaptiveMix alpha must be > 0, got {alpha}")
        shrinkage_loss(torch.zeros(1, 1), torch.zeros(1, 1), distance)  # Validates the name early.
        self.noise_std = float(noise_std)
        self.alpha = float(alpha)
        self.distance = distance
        self.stop_gradient = stop_gradient

    def __call__(self, features_fn: FeaturesFn, head_fn: HeadFn, x: torch.Tensor, c: Any) -> MixedCallResult:
        draw = draw_mix(x.shape[0], self.alpha)
        x_hat = mix(x, draw)
        feat_hat, extras_hat = split_features(features_fn(x_hat))
        feat_a, extras_a = split_features(features_fn(x))
        feat_mix = mix(feat_a, draw)
        target = self._noisy(feat_mix)
        logits = head_fn(_join(feat_mix, extras_a), c) + head_fn(_join(feat_hat, extras_hat), c)
        return MixedCallResult(logits=logits, feat_hat=feat_hat, feat=feat_a, target=target, draw=draw)

    def _noisy(self, feat_mix: torch.Tensor) -> torch.Tensor:
        """`feat_mix + eps`, eps ~ N(0, noise_std^2) drawn on torch's CPU generator (as released), float32."""
        return feat_mix + target_noise(feat_mix, self.noise_std)

    def cross_shrinkage(
        self, features_fn: FeaturesFn, x_a: torch.Tensor, feat_a: torch.Tensor, x_b: torch.Tensor, feat_b: torch.Tensor
    ) -> torch.Tensor:
        """Mix each x_a[i] with x_b[perm[i]]: `wgan.CrossMixShrinkage` with this call's noise, alpha, distance and
        stop-gradient, per-sample term [N]. `feat_a`/`feat_b` are the mixable features F gave for x_a/x_b."""
        cross = CrossMixShrinkage(self.noise_std, "absolute", self.alpha, self.distance, self.stop_gradient)
        return cross(lambda t: split_features(features_fn(t))[0], x_a, feat_a, x_b, feat_b)

    def shrinkage(self, result: MixedCallResult) -> torch.Tensor:
        """Per-sample shrinkage term [N] of a mixed call."""
        target = result.target.detach() if self.stop_gradient else result.target
        return shrinkage_loss(result.feat_hat, target, self.distance)
