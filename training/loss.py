"""The StyleGAN2 loss (non-saturating logistic, style mixing, lazy R1 and path length) with AdaptiveMix and APA.

Phases, as in StyleGAN2-ADA: `Gmain`, `Greg`, `Gboth`, `Dmain`, `Dreg`, `Dboth`. Each part calls backward on
`mean(per-sample loss) * gain`; gradients land in whichever network has `requires_grad` enabled.

AdaptiveMix joins through the split discriminator (`D.features` = F, `D.head` = J), in one of its `adaptivemix.FORMS`:
- `adaptivemix_form='release'` (default, the authors' StyleGAN2 code): every D call in Gmain, Dmain and
  Dreg is the mixed call of `adaptivemix.gan` (partners from the same batch, negative cosine, logits
  J(mix of features) + J(F(mixed input))); the shrinkage term joins Gmain, Dgen and Dreal, not R1.
- `adaptivemix_form='paper'`: clean logits J(F(x)); reals are mixed with fakes and the paper's Eq. 6 term
  (`adaptivemix.wgan.CrossMixShrinkage`: L2 norm, gradient through both sides, no stop-gradient) joins Gmain
  and Dmain, with the same noise_std. J stays StyleGAN2's learned epilogue and the adversarial
  loss the logistic one (Eq. 6's averaging J belongs to its WGAN critic).

Techniques of `training.techniques` (all off by default), on the same split D (f = D.features, flattened); their
terms and the AdaptiveMix weight come from `training.techniques.composition.TechniqueTerms`:
- feature matching: G's loss gains `fm_weight * ||mean f(real) - mean f(fake)||^2` per round;
- Bures diversity matching: G's loss gains `bures_weight * B(C_real, C_fake)^2` (squared Bures distance of the
  normalised feature covariances) per round; with `bures_alt`, G's updates alternate between the GAN loss
  (even updates) and the Bures term alone (odd updates), with no weight;
- one-sided label smoothing: D's real loss is the logistic loss against target `label_smoothing` (< 1);
- historical averaging: each player's main loss gains `hist_avg_weight * ||theta - mean of its past theta||^2`
  once per update (on the last round), and the update's parameters join the mean after that round.
The real features for G's terms come from the reals as D sees them (augmented), without gradient. In the
release AdaptiveMix form the fake features cost one extra F pass (the mixed call never computes F(x)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adaptivemix import (
    DEFAULT_FORM,
    NOISE_STD,
    AdaptiveMixDiscriminatorCall,
    CrossMixShrinkage,
    check_form,
    split_features,
)
from torch_utils import training_stats
from torch_utils.ops.grad import input_gradients
from training.techniques.bures import alt_bures_term, bures_distance_squared
from training.techniques.composition import TechniqueTerms
from training.techniques.label_smoothing import check_alpha, smoothed_real_loss

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


class StyleGAN2Loss:
    """Loss of StyleGAN2-ADA with optional AdaptiveMix and APA.

    Args:
        device: where latents and noise live.
        G: generator with `.mapping(z, c, skip_w_avg_update=...)` and `.synthesis(ws)`.
        D: discriminator with `forward(img, c)`, and `.features(img, c)` / `.head(features, c)` for AdaptiveMix.
        augment_pipe: ADA pipe applied to every D input (None: no augmentation).
        adaptivemix: add AdaptiveMix (off by default).
        adaptivemix_form: 'release' or 'paper' (see module docstring).
        adaptivemix_weight: weight of the shrinkage term (release: 1).
        noise_std: std sigma of the Gaussian noise on the shrinkage target (release: 0.05); alpha of the mixing
            weight's Beta(alpha, alpha) is the release's 1.
        apa: a `training.apa.PseudoAugment` (None: off); its p is its own unless it shares the ADA pipe's.
        real_logit_observers: objects with `accumulate(real_logits)` (ADA/APA p controllers) that see the
            logits of every real batch, in Dmain and Dreg.
        fm_weight, bures_weight, bures_alt, label_smoothing, hist_avg_weight: the techniques of the module
            docstring (0 / False / 1.0 = off).
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
        adaptivemix: bool = False,
        adaptivemix_form: str = DEFAULT_FORM,
        adaptivemix_weight: float = 1.0,
        noise_std: float = NOISE_STD,
        apa: Any = None,
        real_logit_observers: tuple = (),
        fm_weight: float = 0.0,
        bures_weight: float = 0.0,
        bures_alt: bool = False,
        label_smoothing: float = 1.0,
        hist_avg_weight: float = 0.0,
    ):
        check_form(adaptivemix_form)
        if bures_alt and bures_weight > 0:
            raise ValueError("bures_alt is the parameter-free alternative to bures_weight: use one of them")
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
        self.adaptivemix = None  # The release form's mixed call.
        self.eq6 = None  # The paper form's term (Eq. 6).
        if adaptivemix and adaptivemix_form == "release":
            self.adaptivemix = AdaptiveMixDiscriminatorCall(noise_std=noise_std)
        elif adaptivemix:
            self.eq6 = CrossMixShrinkage(noise_std=noise_std)
        self.apa = apa
        self.real_logit_observers = tuple(real_logit_observers) + ((apa,) if apa is not None else ())
        self.terms = TechniqueTerms(
            G.parameters(), D.parameters(), fm_weight, bures_weight, hist_avg_weight, adaptivemix_weight
        )
        self.bures_alt = bool(bures_alt)
        self.label_smoothing = check_alpha(label_smoothing)
        self.g_updates = 0  # Completed Gmain updates (Alt-Bures picks its term from the parity).

    # ------------------------------------------------------------------------
    # Technique state (part of the training state, so that resume is exact).

    def state_dict(self) -> dict:
        """Historical averages and the count of G updates."""
        return {"g_updates": self.g_updates, "hist": self.terms.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g_updates = int(state["g_updates"])
        self.terms.load_state_dict(state["hist"])

    # ------------------------------------------------------------------------
    # Network calls.

    def run_G(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, C, H, W] and the (style-mixed) ws [N, num_ws, w_dim]; updates w_avg in training mode."""
        ws = self.G.mapping(z, c)
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
            cutoff = torch.where(
                torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff, torch.full_like(cutoff, num_ws)
            )
            ws2 = self.G.mapping(torch.randn_like(z), c, skip_w_avg_update=True)
            keep = torch.arange(num_ws, device=ws.device)[None, :, None] < cutoff
            ws = torch.where(keep, ws, ws2)
        img = self.G.synthesis(ws)
        return img, ws

    def _augment(self, img: torch.Tensor) -> torch.Tensor:
        return self.augment_pipe(img) if self.augment_pipe is not None else img

    def run_D(
        self, img: torch.Tensor, c: torch.Tensor, need_features: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Logits [N], the per-sample AdaptiveMix shrinkage term [N] (None unless the release form is on) and,
        when `need_features` (else None), the features F(x) [N, ...] of the augmented input."""
        x = self._augment(img)
        if self.adaptivemix is None:
            features = self.D.features(x, c)
            logits = self.D.head(features, c).flatten()
            return logits, None, split_features(features)[0] if need_features else None
        result = self.adaptivemix(lambda t: self.D.features(t, c), self.D.head, x, c)
        return result.logits.flatten(), self.adaptivemix.shrinkage(result), result.feat if need_features else None

    def _paper_terms(
        self,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_img: torch.Tensor,
        gen_c: torch.Tensor,
        need_real_logits: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Paper form: clean real logits [N] (None unless needed), clean fake logits [N], the real-fake
        shrinkage term [N], and the mixable real and fake features. F ignores labels; the reals need no graph
        when their logits are not needed."""
        real_x, gen_x = self._augment(real_img), self._augment(gen_img)
        with torch.set_grad_enabled(need_real_logits):
            real_feat = self.D.features(real_x, real_c)
        gen_feat = self.D.features(gen_x, gen_c)
        real_logits = self.D.head(real_feat, real_c).flatten() if need_real_logits else None
        gen_logits = self.D.head(gen_feat, gen_c).flatten()
        real_f, gen_f = split_features(real_feat)[0], split_features(gen_feat)[0]
        shrink = self.eq6(lambda t: split_features(self.D.features(t, real_c))[0], real_x, real_f, gen_x, gen_f)
        return real_logits, gen_logits, shrink, real_f, gen_f

    # ------------------------------------------------------------------------
    # Phases.

    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        sync: bool,
        gain: float,
    ) -> None:
        """Run one phase on one round of data and backpropagate `mean(loss) * gain`.

        `sync` is True on the last round of the phase's update (the one after which its optimiser steps): the
        per-update terms (historical averaging) join that round, and the update's bookkeeping (the running
        parameter mean, the count of G updates for Alt-Bures) happens after it.
        """
        if phase not in PHASES:
            raise ValueError(f"Unknown loss phase {phase!r}: expected one of {', '.join(PHASES)}")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        paper = self.eq6 is not None

        if do_Gmain:
            self._accumulate_Gmain(real_img, real_c, gen_z, gen_c, gain, paper, last_round=sync)
        if do_Gpl:
            self._accumulate_Gpl(gen_z, gen_c, gain)
        if do_Dmain and paper:
            self._accumulate_Dmain_paper(real_img, real_c, gen_z, gen_c, gain, last_round=sync)
        elif do_Dmain:
            loss_Dgen = self._accumulate_Dgen(gen_z, gen_c, gain, last_round=sync)
        if (do_Dmain and not paper) or do_Dr1:
            loss_Dreal = self._accumulate_Dreal(real_img, real_c, gain, do_Dmain=do_Dmain and not paper, do_Dr1=do_Dr1)
            if do_Dmain and not paper:
                training_stats.report("Loss/D/loss", loss_Dgen + loss_Dreal)
        if sync:
            self._end_update(do_Gmain, do_Dmain)

    def _end_update(self, did_Gmain: bool, did_Dmain: bool) -> None:
        """After the last round of a main update: fold the player's parameters into its running mean (they are
        the values the penalty of this update was taken at) and count G's update."""
        for player, did in (("G", did_Gmain), ("D", did_Dmain)):
            if did:
                self.terms.end_update(player)
        if did_Gmain:
            self.g_updates += 1

    def _D_history(self, last_round: bool) -> torch.Tensor | float:
        """D's weighted history term (reported) on the last round of its update, else 0."""
        hist, terms = self.terms.discriminator(last_round)
        self._report_terms("D", terms)
        return hist

    @staticmethod
    def _report_terms(player: str, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            training_stats.report(f"Loss/{player}/{name}", value)

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
        return self.terms.adaptivemix(shrink)

    def _real_loss(self, real_logits: torch.Tensor) -> torch.Tensor:
        """D's per-sample logistic loss on real logits: target 1, or `label_smoothing` (one-sided smoothing)."""
        if self.label_smoothing == 1.0:
            return F.softplus(-real_logits)
        return smoothed_real_loss(real_logits, self.label_smoothing)

    def _real_features(self, real_img: torch.Tensor, real_c: torch.Tensor) -> torch.Tensor:
        """Mixable features of the (augmented) reals, without gradient: the constant side of G's statistics."""
        with torch.no_grad():
            return split_features(self.D.features(self._augment(real_img.detach()), real_c))[0]

    def _accumulate_Gmain(self, real_img, real_c, gen_z, gen_c, gain, paper, last_round):
        gen_img, _ = self.run_G(gen_z, gen_c)
        if self.apa is not None:
            self.apa.store(gen_img)
        if self.bures_alt and alt_bures_term(self.g_updates) == "bures":
            hist, hist_terms = self.terms.history("G", last_round)
            self._report_terms("G", hist_terms)
            gen_feat = split_features(self.D.features(self._augment(gen_img), gen_c))[0]
            bures = bures_distance_squared(self._real_features(real_img, real_c), gen_feat)
            training_stats.report("Loss/G/bures", bures)
            training_stats.report("Loss/G/loss", bures)
            ((bures + hist) * gain).backward()
            return
        need_stats = self.terms.needs_features
        if paper:
            _, gen_logits, shrink, real_feat, gen_feat = self._paper_terms(
                real_img.detach(), real_c, gen_img, gen_c, need_real_logits=False
            )
        else:
            gen_logits, shrink, gen_feat = self.run_D(gen_img, gen_c, need_features=need_stats)
            real_feat = self._real_features(real_img, real_c) if need_stats else None
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        loss_Gmain = F.softplus(-gen_logits) + self._report_adaptivemix(shrink)
        extra, terms = self.terms.generator(real_feat, gen_feat, last_round)
        self._report_terms("G", terms)
        training_stats.report("Loss/G/loss", loss_Gmain + extra)
        ((loss_Gmain.mean() + extra) * gain).backward()

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

    def _accumulate_Dgen(self, gen_z, gen_c, gain, last_round) -> torch.Tensor:
        """Dmain's fake part; returns its detached per-sample loss [N] (including the D history term)."""
        with torch.no_grad():
            gen_img, _ = self.run_G(gen_z, gen_c)
        gen_logits, shrink, _ = self.run_D(gen_img, gen_c)
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        loss_Dgen = F.softplus(gen_logits) + self._report_adaptivemix(shrink)
        hist = self._D_history(last_round)
        ((loss_Dgen.mean() + hist) * gain).backward()
        return (loss_Dgen + hist).detach()

    def _accumulate_Dreal(self, real_img, real_c, gain, do_Dmain, do_Dr1) -> torch.Tensor | None:
        """Dmain's real part and/or R1; returns the detached per-sample Dmain loss [N] (None without Dmain)."""
        real_img = self._real_input(real_img).requires_grad_(do_Dr1)
        real_logits, shrink, _ = self.run_D(real_img, real_c)
        self._observe_real(real_logits)
        loss = 0
        loss_Dreal = None
        if do_Dmain:
            loss_Dreal = self._real_loss(real_logits) + self._report_adaptivemix(shrink)
            loss = loss + loss_Dreal
        if do_Dr1:
            (r1_grads,) = input_gradients(real_logits.sum(), [real_img])
            r1_penalty = r1_grads.square().sum([1, 2, 3])
            loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
            training_stats.report("Loss/r1_penalty", r1_penalty)
            training_stats.report("Loss/D/reg", loss_Dr1)
            loss = loss + loss_Dr1
        ((real_logits * 0 + loss).mean() * gain).backward()  # Zero term: every D parameter gets a gradient.
        return loss_Dreal.detach() if loss_Dreal is not None else None

    def _accumulate_Dmain_paper(self, real_img, real_c, gen_z, gen_c, gain, last_round):
        with torch.no_grad():
            gen_img, _ = self.run_G(gen_z, gen_c)
        real_img = self._real_input(real_img)
        real_logits, gen_logits, shrink, _, _ = self._paper_terms(
            real_img, real_c, gen_img, gen_c, need_real_logits=True
        )
        training_stats.report("Loss/scores/fake", gen_logits)
        training_stats.report("Loss/signs/fake", gen_logits.sign())
        self._observe_real(real_logits)
        loss = F.softplus(gen_logits) + self._real_loss(real_logits) + self._report_adaptivemix(shrink)
        hist = self._D_history(last_round)
        training_stats.report("Loss/D/loss", loss + hist)
        ((loss.mean() + hist) * gain).backward()
