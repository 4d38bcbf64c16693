"""One D step and one G step of the DCGAN lab: the objective, AdaptiveMix and the optional techniques.

The techniques' added terms (feature matching, Bures, historical averaging) and the AdaptiveMix weight come from
`training.techniques.composition.TechniqueTerms`, the same composition as train.py's StyleGAN2 loss.

AdaptiveMix comes in two forms (`--adaptivemix-form`, `adaptivemix.FORMS`):
- 'paper' (the paper's Eq. 6, used for wgan and wgan-gp): the critic is scored on clean images, s = J(F(x)),
  and both players add `adaptivemix_weight * mean_i ||F(x_hat_i) - (lam F(real_i) + (1 - lam) F(fake_pi(i)) + eps)||_2`
  with x_hat_i = lam real_i + (1 - lam) fake_pi(i): reals mixed with fakes, plain L2 norm, the gradient through
  both sides (`adaptivemix.wgan.CrossMixShrinkage`, which quotes the paper for each choice). In G's step the
  gradient reaches G through the fakes inside x_hat and through F(fake) in the target. eps ~ N(0, sigma^2), or
  N(0, (sigma * rms of the sample's mixture)^2) with `noise_scale='relative'`.
- 'release' (the authors' StyleGAN2 form, used for ns, hinge and lsgan, whose losses expect logits of a learned
  head): every D call is the mixed call of `AdaptiveMixDiscriminatorCall.__call__` (partners from the same
  batch, logits J(m) + J(F(x_hat))) plus `adaptivemix_weight` times its negative-cosine shrinkage term against the
  detached target m + eps, eps ~ N(0, sigma^2).
In both, lambda ~ Beta(1, 1) once per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adaptivemix import NOISE_SCALES, AdaptiveMixDiscriminatorCall, CrossMixShrinkage, check_form
from labs.common import objectives
from training.techniques.composition import TechniqueTerms
from training.techniques.label_smoothing import smoothed_real_loss


@dataclass
class LossSettings:
    """Everything the two steps need besides the networks (see the CLI's help for each)."""

    objective: str
    adaptivemix: bool = False
    adaptivemix_form: str = "paper"
    adaptivemix_weight: float = 1.0
    noise_std: float = 0.05
    noise_scale: str = "absolute"  # 'relative': sigma times the rms of each mixed feature (paper form only).
    gp_weight: float = 10.0
    fm_weight: float = 0.0
    label_smoothing: float = 1.0  # 1 = no smoothing.
    hist_avg_weight: float = 0.0
    bures_weight: float = 0.0


def default_form(objective: str) -> str:
    """'paper' for the Wasserstein objectives (Eq. 6), 'release' for the logit losses."""
    return "paper" if objective in ("wgan", "wgan-gp") else "release"


class DCGANLosses:
    """Computes D's and G's losses for one batch; `stats` holds the last values (floats) for logging."""

    def __init__(self, settings: LossSettings, G: torch.nn.Module, D: torch.nn.Module):
        objectives.check_objective(settings.objective)
        check_form(settings.adaptivemix_form)
        if settings.label_smoothing != 1.0 and settings.objective != "ns":
            raise ValueError("label smoothing applies to the logistic loss only: use it with --objective=ns")
        if settings.noise_scale not in NOISE_SCALES:
            raise ValueError(f"unknown noise scale {settings.noise_scale!r}: choose one of {', '.join(NOISE_SCALES)}")
        if settings.noise_scale != "absolute" and settings.adaptivemix_form != "paper":
            raise ValueError("a relative noise scale applies to AdaptiveMix's paper form: use --adaptivemix-form=paper")
        self.s = settings
        self.G, self.D = G, D
        self.amix = AdaptiveMixDiscriminatorCall(noise_std=settings.noise_std, distance="cosine")
        self.eq6 = CrossMixShrinkage(noise_std=settings.noise_std, noise_scale=settings.noise_scale)
        self.terms = TechniqueTerms(
            G.parameters(),
            D.parameters(),
            settings.fm_weight,
            settings.bures_weight,
            settings.hist_avg_weight,
            settings.adaptivemix_weight,
        )
        self.stats: dict[str, float] = {}

    def _head(self, feat: torch.Tensor, _c=None) -> torch.Tensor:
        return self.D.head(feat)

    def _release_call(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed D call: (logits [N, 1], mean shrinkage term)."""
        result = self.amix(self.D.features, self._head, x, None)
        return result.logits, self.amix.shrinkage(result).mean()

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """D's scalar loss on a real batch and a (detached) fake batch [N, C, R, R]."""
        s = self.s
        fake = fake.detach()
        shrink = torch.zeros([])
        if s.adaptivemix and s.adaptivemix_form == "release":
            s_r, shrink_r = self._release_call(real)
            s_f, shrink_f = self._release_call(fake)
            shrink = shrink_r + shrink_f
        else:
            feat_r, feat_f = self.D.features(real), self.D.features(fake)
            s_r, s_f = self.D.head(feat_r), self.D.head(feat_f)
            if s.adaptivemix:
                shrink = self.eq6(self.D.features, real, feat_r, fake, feat_f).mean()
        if s.label_smoothing != 1.0:
            adv = smoothed_real_loss(s_r.flatten(), s.label_smoothing).mean() + F.softplus(s_f.flatten()).mean()
        else:
            adv = objectives.d_loss(s.objective, s_r, s_f)
        loss = adv + self.terms.adaptivemix(shrink)
        if s.objective == "wgan-gp":
            gp = objectives.gradient_penalty(self.D, real, fake, s.gp_weight)
            loss = loss + gp
            self.stats["D/gp"] = gp.item()
        extra, terms = self.terms.discriminator()
        loss = loss + extra
        self.stats.update({f"D/{name}": float(value.detach()) for name, value in terms.items()})
        self.stats.update(
            {
                "D/loss": loss.item(),
                "D/adv": adv.item(),
                "D/adaptivemix": float(shrink.detach()),
                "D/real": s_r.mean().item(),
                "D/fake": s_f.mean().item(),
            }
        )
        return loss

    def g_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """G's scalar loss for fakes [N, C, R, R] made with gradient; `real` feeds the real-side statistics."""
        s = self.s
        shrink = torch.zeros([])
        feat_r = feat_f = None
        paper = s.adaptivemix and s.adaptivemix_form == "paper"
        if s.adaptivemix and not paper:
            s_f, shrink = self._release_call(fake)
        else:
            feat_f = self.D.features(fake)
            s_f = self.D.head(feat_f)
        if paper or self.terms.needs_features:
            with torch.no_grad():
                feat_r = self.D.features(real)
            if feat_f is None:
                feat_f = self.D.features(fake)
        if paper:
            shrink = self.eq6(self.D.features, real, feat_r, fake, feat_f).mean()
        adv = objectives.g_loss(s.objective, s_f)
        extra, terms = self.terms.generator(feat_r, feat_f)
        loss = adv + self.terms.adaptivemix(shrink) + extra
        self.stats.update({f"G/{name}": float(value.detach()) for name, value in terms.items()})
        self.stats.update({"G/loss": loss.item(), "G/adv": adv.item(), "G/adaptivemix": float(shrink.detach())})
        return loss

    def end_update(self, player: str) -> None:
        """After `player`'s ('G' or 'D') optimiser step: its parameters join its historical average (if on)."""
        self.terms.end_update(player)

    def state_dict(self) -> dict:
        """Historical averages (empty when off), under the keys 'hist_G' and 'hist_D'."""
        return {f"hist_{player}": state for player, state in self.terms.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.terms.load_state_dict({key[len("hist_") :]: value for key, value in state.items()})
