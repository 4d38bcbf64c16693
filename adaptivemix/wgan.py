"""The AdaptiveMix paper's WGAN form (Liu et al., CVPR 2023, Eq. 6): reals mixed with fakes, L2 shrinkage.

The paper's text, and the choice each sentence fixes here:

    L_ada = sum_i sum_j D_v(lam F(x_i) + (1 - lam) F(x_j), F(x_hat_ij) + sigma)                  (Eq. 2)
    min_G max_{F,J} E_{x~p_r}[J(F(x))] - E_z[J(F(G(z)))] + min_{G,F} E_{x~p_r,p_g}[L_ada]          (Eq. 6)

- "L2 norm is adapted as the metrics for L_ada": D_v is the plain Euclidean norm ||u - v||_2 of the
  flattened per-sample difference, not its square (`distance='l2'`).
- "min_{G,F} E[L_ada]" over the whole of Eq. 2, and the paper writes no stop-gradient anywhere: the term's
  gradient flows through both arguments, i.e. into F(x_hat) and into the mixture lam F(x_a) + (1 - lam) F(x_b)
  (`stop_gradient=False`). G receives it through the fakes inside x_hat and through F(G(z)) in the mixture.
  The authors' StyleGAN2 release detaches the target; that is `AdaptiveMixDiscriminatorCall`'s form.
- "AdaptiveMix generates hard samples by the linear combination of real samples and fake ones": x_a are
  reals and x_b fakes, x_hat_i = lam x_a[i] + (1 - lam) x_b[perm[i]].
- "we directly adopt averaging operator as J": the critic of Eq. 6 scores clean images with
  J(F(x)) = mean of F(x)'s entries (`mean_head`); the term itself does not involve J.
- "sigma is a noise term sampled from Gaussian distribution": eps ~ N(0, sigma^2) per entry. Eq. 2 adds it to
  F(x_hat); here it is added to the mixture, which for the symmetric L2 distance is the same in distribution
  (||F(x_hat) + eps - m|| = ||F(x_hat) - (m - eps)|| and -eps ~ eps).

Estimator (as the release does): one partner per sample (a random permutation) and one lam ~ Beta(alpha, alpha)
per batch instead of the double sum over all pairs, averaged over the batch by the caller.

`noise_scale='relative'` (not in the paper) draws eps ~ N(0, (sigma * rms_i)^2) with rms_i the root mean square
of sample i's (detached) mixture, so the noise keeps its share of the feature when the features are small (e.g.
~0.01 under WGAN weight clipping, where an absolute sigma of 0.05 is the whole term).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .mixing import DISTANCES, MixDraw, draw_mix, mix_pair, shrinkage_loss

NOISE_SCALES = ("absolute", "relative")
MixableFeaturesFn = Callable[[torch.Tensor], torch.Tensor]


def mean_head(feat: torch.Tensor) -> torch.Tensor:
    """The paper's J, the averaging operator: mean of each sample's feature entries, [N, ...] -> [N, 1]."""
    return feat.flatten(1).mean(dim=1, keepdim=True)


def target_noise(feat_mix: torch.Tensor, noise_std: float, noise_scale: str = "absolute") -> torch.Tensor:
    """eps [N, ...] for the target mixture: N(0, sigma^2) (absolute) or N(0, (sigma * rms_i)^2) (relative).

    The standard normal draw is one `torch.randn` of the mixture's shape on torch's CPU generator, in float32 (as
    released), whatever the scale, so both scales consume the same random numbers.
    """
    if noise_scale not in NOISE_SCALES:
        raise ValueError(f"AdaptiveMix noise scale must be one of {', '.join(NOISE_SCALES)}, got {noise_scale!r}")
    noise = (torch.randn(feat_mix.shape, dtype=torch.float32) * noise_std).to(feat_mix.device, feat_mix.dtype)
    if noise_scale == "relative":
        rms = feat_mix.detach().flatten(1).square().mean(dim=1).sqrt()
        noise = noise * rms.view(-1, *([1] * (feat_mix.ndim - 1)))
    return noise


class CrossMixShrinkage:
    """L_ada of Eq. 6 for two batches: x_a[i] mixed with x_b[perm[i]], per-sample term [N].

    Args:
        noise_std: sigma of the target noise (paper: 0.05).
        noise_scale: 'absolute' (the paper: eps ~ N(0, sigma^2)) or 'relative' (sigma times each sample's rms).
        alpha: Beta(alpha, alpha) parameter of the mixing weight (paper: 1).
        distance: see `mixing.shrinkage_loss` (Eq. 6: 'l2').
        stop_gradient: detach the target mixture (Eq. 6: False; the release's classification and SSL uses: True).
    """

    def __init__(
        self,
        noise_std: float = 0.05,
        noise_scale: str = "absolute",
        alpha: float = 1.0,
        distance: str = "l2",
        stop_gradient: bool = False,
    ):
        if not noise_std >= 0:
            raise ValueError(f"AdaptiveMix noise_std must be >= 0, got {noise_std}")
        if noise_scale not in NOISE_SCALES:
            raise ValueError(f"AdaptiveMix noise scale must be one of {', '.join(NOISE_SCALES)}, got {noise_scale!r}")
        if not alpha > 0:
            raise ValueError(f"AdaptiveMix alpha must be > 0, got {alpha}")
        if distance not in DISTANCES:
            raise ValueError(f"Unknown AdaptiveMix distance {distance!r}: choose one of {', '.join(DISTANCES)}")
        self.noise_std = float(noise_std)
        self.noise_scale = noise_scale
        self.alpha = float(alpha)
        self.distance = distance
        self.stop_gradient = bool(stop_gradient)
        self.last_draw: MixDraw | None = None  # The draw of the latest call (for tests and logging).

    def __call__(
        self,
        features_fn: MixableFeaturesFn,
        x_a: torch.Tensor,
        feat_a: torch.Tensor,
        x_b: torch.Tensor,
        feat_b: torch.Tensor,
    ) -> torch.Tensor:
        """Per-sample D_v(F(x_hat), m + eps) [N], m = lam feat_a + (1 - lam) feat_b[perm].

        `features_fn` returns the mixable feature [N, ...] of a batch; `feat_a`/`feat_b` are its values for
        x_a/x_b, already computed by the caller (so only the mixed batch costs an F pass). Draw order: perm
        (torch CPU), lam (NumPy), F(x_hat), then eps (torch CPU).
        """
        if x_a.shape != x_b.shape:
            raise ValueError(
                f"AdaptiveMix cross mixing needs equal batches, got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
            )
        draw = draw_mix(x_a.shape[0], self.alpha)
        self.last_draw = draw
        perm = draw.perm.to(x_a.device)
        feat_hat = features_fn(mix_pair(x_a, x_b[perm], draw.lam))
        feat_mix = mix_pair(feat_a, feat_b[perm.to(feat_b.device)], draw.lam)
        target = feat_mix + target_noise(feat_mix, self.noise_std, self.noise_scale)
        return shrinkage_loss(feat_hat, target.detach() if self.stop_gradient else target, self.distance)
