"""The StyleGAN2 loss (non-saturating logistic, style mixing, lazy R1 and path length) with AdaptiveMix and APA.

Phases, as in StyleGAN2-ADA: `Gmain`, `Greg`, `Gboth`, `Dmain`, `Dreg`, `Dboth`. Each part calls backward on
`mean(per-sample loss) * gain`; gradients land in whichever network has `requires_grad` enabled.

AdaptiveMix joins through the split discriminator (`D.features` = F, `D.head` = J):
- `adaptivemix_variant='release'` (default, the authors' StyleGAN2 code): every D call in Gmain, Dmain and
  Dreg is the mixed call of `adaptivemix.gan` (partners from the same batch, negative cosine, logits
  J(mix of features) + J(F(mixed input))); the shrinkage term joins Gmain, Dgen and Dreal, not R1.
- `adaptivemix_variant='paper'`: clean logits J(F(x)); reals are mixed with fakes and the shrinkage term
  (L2 distance by default) joins Gmain and Dmain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adaptivemix import AdaptiveMixDiscriminatorCall, split_features
from torch_utils import training_stats
from torch_utils.ops.grad import input_gradients

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")
ADAPTIVEMIX_VARIANTS = ("release", "paper")


class StyleGAN2Loss:
    """Loss of StyleGAN2-ADA with optional AdaptiveMix and APA.

    Args:
        device: where latents and noise live.
        G: generator with `.mapping(z, c, skip_w_avg_update=...)` and `.synthesis(ws)`.
        D: discriminator with `forward(img, c)`, and `.features(img, c)` / `.head(features, c)` for AdaptiveMix.
        augment_pipe: ADA pipe applied to every D input (None: no augmentation).
        adaptivemix: an `AdaptiveMixDiscriminatorCall` (None: off).
        adaptivemix_variant: 'release' or 'paper' (see module docstring).
        adaptivemix_weight: weight of the shrinkage term (release: 1).
        apa: a `training.apa.PseudoAugment` (None: off); its p is its own unless it shares the ADA pipe's.
        real_logit_observers: objects with `accumulate(real_logits)` (ADA/APA p controllers) that see the
            logits of every real batch, in Dmain and Dreg.
    """

    def __init__(
        self,
        device: torch.device,
        G: torch.nn.Module,
        D: torch.nn.Module,
        augment_pipe: torch.nn.Module | None = None,
        r1_gamma: float = 10,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 2,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        adaptivemix: AdaptiveMixDiscriminatorCall | None = None,
        adaptivemix_variant: str = "release",
        adaptivemix_weight: float = 1.0,
        apa: Any = None,
        real_logit_observers: tuple = (),
    ):
        if adaptivemix_variant not in ADAPTIVEMIX_VARIANTS:
            raise ValueError(f"adaptivemix_variant must be one of {ADAPTIVEMIX_VARIANTS}, got {adaptivemix_variant!r}")
        self.device = torch.device(device)
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_mean = torch.zeros([], device=self.device)
        self.adaptivemix = adaptivemix
        self.adaptivemix_variant = adaptivemix_variant
        self.adaptivemix_weight = adaptivemix_weight
        self.apa = apa
        self.real_logit_observers = tuple(real_logit_observers) + ((apa,) if apa is not None else ())

    # ------------------------------------------------------------------------
    # Network calls.

    def run_G(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, C, H, W] and the (style-mixed) ws [N, num_ws, w_dim]; updates w_avg in training mode."""
        ws = self.G.mapping(z, c)
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff, torch.full_like(cutoff, num_ws))
            ws2 = self.G.mapping(torch.randn_like(z), c, skip_w_avg_update=True)
            keep = torch.arange(num_ws, device=ws.device)[None, :, None] < cutoff
            ws = torch.where(keep, ws, ws2)
        img = self.G.synthesis(ws)
        return img, ws

    def _augment(self, img: torch.Tensor) -> torch.Tensor:
        return self.augment_pipe(img) if self.augment_pipe is not None else img

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [N] and the per-sample AdaptiveMix shrinkage term [N] (None unless the release variant is on)."""
        x = self._augment(img)
        if self.adaptivemix is None or self.adaptivemix_variant != "release":
            return self.D(x, c).flatten(), None
        result = self.adaptivemix(lambda t: self.D.features(t, c), self.D.head, x, c)
        return result.logits.flatten(), self.adaptivemix.shrinkage(result)

    def _paper_terms(self, real_img: torch.Tensor, real_c: torch.Tensor, gen_img: torch.Tensor, gen_c: torch.Tensor,
                     need_real_logits: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Paper variant: clean real logits [N] (None unless needed), clean fake logits [N] and the real-fake
        shrinkage term [N]. F ignores labels; the reals need no graph when their logits are not needed."""
        real_x, gen_x = self._augment(real_img), self._augment(gen_img)
        with torch.set_grad_enabled(need_real_logits):
            real_feat = self.D.features(real_x, real_c)
        gen_feat = self.D.features(gen_x, gen_c)
        real_logits = self.D.head(real_feat, real_c).flatten() if need_real_logits else None
        gen_logits = self.D.head(gen_feat, gen_c).flatten()
        shrink = self.adaptivemix.cross_shrinkage(lambda t: self.D.features(t, real_c), real_x,
                                                     split_features(real_feat)[0], gen_x, split_features(gen_feat)[0])
        return real_logits, gen_logits, shrink

    # ------------------------------------------------------------------------
    # Phases.

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, sync: bool, gain: float) -> None:
        """Run one phase on one round of data and backpropagate `mean(loss) * gain`."""
        if phase not in PHASES:
            raise ValueError(f"Unknown loss phase {phase!r}: expected one of {', '.join(PHASES)}")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        paper = self.adaptivemix is not None and self.adaptivemix_variant == "paper"

        if do_Gmain:
            self._accumulate_Gmain(real_img, real_c, gen_z, gen_c, gain, paper)
        if do_Gpl:
            self._accumulate_Gpl(gen_z, gen_c, gain)
        if do_Dmain and paper:
            self._accumulate_Dmain_paper(real_img, real_c, gen_z, gen_c, gain)
        elif do_Dmain:
            self._accumulate_Dgen(gen_z, gen_c, gain)
        if (do_Dmain and not paper) or do_Dr1:
            self._accumulate_Dreal(real_img, real_c, gain, do_Dmain=do_Dmain and not paper, do_Dr1=do_Dr1)

    def _real_input(self, real_img: torch.Tensor) -> torch.Tensor:
        """The detached batch D sees as real: APA swaps in pseudo-real (generated) images with probability p."""
        real_img = real_img.detach()
        return self.apa.replace_reals(real_img).detach() if self.apa is not None else real_img

    def _observe_real(self, real_logits: torch.Tensor) -> None:
        training_stats.report("Loss/scores/real", real_logits)
        training_stats.report("Loss/signs/real", real_logits.sign())
        for observer in self.real_logit_observers:
            observer.accumulate(real_logits)

    def _report_adaptivemix(self, shrink: torch.Tensor | None) -> torch.Tensor:
        if shrink is None:
            return 0
        training_stats.report("Loss/adaptivemix", shrink)
        return shrink * self.adaptivemix_weight

    def _accumulate_Gmain(self, real_img, real_c, gen_z, gen_c, gain, paper):
        gen_img, _ = self.run_G(gen_z, gen_c)
        if self.apa is not None:
            self.apa.store(gen_img)
        if paper:
            _, gen_logits, shrink = self._paper_terms(real_img.detach(), real_c, gen_img, gen_c, need_real_logits=False)
        else:
            gen_logits, shrink = self.run_D(gen_img, gen_c)
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        loss_Gmain = F.softplus(-gen_logits) + self._report_adaptivemix(shrink)
        training_stats.report("Loss/G/loss", loss_Gmain)
        (loss_Gmain.mean() * gain).backward()

    def _accumulate_Gpl(self, gen_z, gen_c, gain):
        batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
        pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
        (pl_grads,) = input_gradients((gen_img * pl_noise).sum(), [gen_ws])  # No weight gradients in the inner pass.
        pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        pl_penalty = (pl_lengths - pl_mean).square()
        training_stats.report("Loss/pl_penalty", pl_penalty)
        loss_Gpl = pl_penalty * self.pl_weight
        training_stats.report("Loss/G/reg", loss_Gpl)
        # The zero term gives every G parameter a (zero) gradient, as in the original: Adam then steps them all.
        ((gen_img[:, 0, 0, 0] * 0 + loss_Gpl).mean() * gain).backward()

    def _accumulate_Dgen(self, gen_z, gen_c, gain):
        with torch.no_grad():
            gen_img, _ = self.run_G(gen_z, gen_c)
        gen_logits, shrink = self.run_D(gen_img, gen_c)
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        loss_Dgen = F.softplus(gen_logits) + self._report_adaptivemix(shrink)
        self._loss_Dgen = loss_Dgen.detach()
        (loss_Dgen.mean() * gain).backward()

    def _accumulate_Dreal(self, real_img, real_c, gain, do_Dmain, do_Dr1):
        real_img = self._real_input(real_img).requires_grad_(do_Dr1)
        real_logits, shrink = self.run_D(real_img, real_c)
        self._observe_real(real_logits)
        loss = 0
        if do_Dmain:
            loss_Dreal = F.softplus(-real_logits) + self._report_adaptivemix(shrink)
            training_stats.report("Loss/D/loss", self._loss_Dgen + loss_Dreal)
            loss = loss + loss_Dreal
        if do_Dr1:
            (r1_grads,) = input_gradients(real_logits.sum(), [real_img])
            r1_penalty = r1_grads.square().sum([1, 2, 3])
            loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
            training_stats.report("Loss/r1_penalty", r1_penalty)
            training_stats.report("Loss/D/reg", loss_Dr1)
            loss = loss + loss_Dr1
        ((real_logits * 0 + loss).mean() * gain).backward()  # Zero term: every D parameter gets a gradient.

    def _accumulate_Dmain_paper(self, real_img, real_c, gen_z, gen_c, gain):
        with torch.no_grad():
            gen_img, _ = self.run_G(gen_z, gen_c)
        real_img = self._real_input(real_img)
        real_logits, gen_logits, shrink = self._paper_terms(real_img, real_c, gen_img, gen_c, need_real_logits=True)
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        self._observe_real(real_logits)
        loss = F.softplus(gen_logits) + F.softplus(-real_logits) + self._report_adaptivemix(shrink)
        training_stats.report("Loss/D/loss", loss)
        (loss.mean() * gain).backward()
