"""APA, adaptive pseudo augmentation (Jiang et al., NeurIPS 2021, "Deceive D"): with probability p, each
of D's real inputs is replaced by an image the generator made, and p adapts like ADA's.

Why it helps: D's "real" distribution becomes the mixture (1 - p) p_data + p p_g, so an overconfident D
is penalised on the generated images it is told are real; the paper shows G's optimum is still p_g = p_data.
p follows ADA's rule from the signs of D's logits on the (mixed) real batch: a larger p puts more
generated images into that batch, D scores them negative, the mean sign falls, and this limits p.

`PseudoAugment` has one probability `p`: the scalar buffer of the AugmentPipe when one is given
(`--with-dataaug=1`: the pipe augments D's inputs with the same p, and no ADA controller runs),
otherwise a buffer of this object (`--apa=1` alone). `build_augmentation` makes that choice for the loop.

How the loss uses it (one `PseudoAugment` per rank, living in the loss object):
  * Gmain, right after `gen_img, _ = run_G(gen_z, gen_c)`:  `apa.store(gen_img)`.
    Only Gmain stores (not Gpl, not Dgen). Nothing is saved or synchronized.
  * Dmain / Dreg / Dboth, at the start of the real part, before `run_D` (after Dgen's draws):
        real_img_tmp = apa.replace_reals(real_img).detach().requires_grad_(do_Dr1)
        real_logits = run_D(real_img_tmp, real_c)   # the pipe (if any) augments the mixed batch
        apa.accumulate(real_logits)                  # the heuristic sees the mixed batch
    then L_Dreal = softplus(-real_logits) and R1 w.r.t. the mixed batch, as usual.
  * Training loop, after `batch_idx += 1`:  `apa.step(batch_idx, batch_size)`.
`replace_reals` draws one uniform per sample (shape [N, 1, 1, 1]) from the global torch RNG on
the images' device on every call, even when p = 0.
"""

from __future__ import annotations

from typing import Any

import torch

import dnnlib
from training.augment import AdaController


def draw_replacement_mask(batch_size: int, p: torch.Tensor | float, device: torch.device | str) -> torch.Tensor:
    """Bool [N, 1, 1, 1]: True where u < p for one fresh u ~ U[0, 1) per sample (so p >= 1 replaces all)."""
    u = torch.rand([batch_size, 1, 1, 1], device=device)
    return u < p


def mix_pseudo_real(real: torch.Tensor, pseudo: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample selection: pseudo[i] where mask[i] else real[i]; `real` itself if nothing is selected.

    real, pseudo: [N, C, H, W]; mask: bool [N, 1, 1, 1]. `pseudo` may be None only when mask is all False.
    """
    if not bool(mask.any()):
        return real
    if pseudo is None:
        raise ValueError(
            "APA has no pseudo-real images yet: call store(gen_img) in the Gmain phase before the D phases"
        )
    if pseudo.shape != real.shape:
        raise ValueError(
            f"APA pseudo images {list(pseudo.shape)} and real images {list(real.shape)} differ in shape; "
            f"the Gmain chunk and the real chunk must have the same size"
        )
    return torch.where(mask, pseudo.to(real.dtype), real)


class PseudoAugment:
    """Per-rank APA state: the shared p, the latest generated images and the p controller.

    augment_pipe: the AugmentPipe whose `p` is shared (APA and ADA use one p); None keeps a
        private p (APA alone). The initial p is whatever that buffer holds (augment_p).
    target: APA target t for E[sign(D(mixed reals))]; None = fixed p.
    interval, kimg: as ADA (iterations between updates; kimg for p to change by 1.0).
    """

    def __init__(
        self,
        augment_pipe: torch.nn.Module | None = None,
        target: float | None = 0.6,
        interval: int = 4,
        kimg: float = 500,
        p: float = 0.0,
    ):
        self.augment_pipe = augment_pipe
        self._own_p = None if augment_pipe is not None else torch.tensor(float(p), dtype=torch.float32)
        self.pseudo_data: torch.Tensor | None = None
        self.controller = AdaController(self, target=target, interval=interval, kimg=kimg)

    @property
    def p(self) -> torch.Tensor:
        """Replacement probability (0-d float32 tensor; the pipe's buffer when a pipe is shared)."""
        return self.augment_pipe.p if self.augment_pipe is not None else self._own_p

    def store(self, gen_img: torch.Tensor) -> None:
        """Keep a detached reference to the Gmain images [N, C, H, W] as the pseudo-real pool."""
        self.pseudo_data = gen_img.detach()

    def replace_reals(self, real_img: torch.Tensor) -> torch.Tensor:
        """Return real_img [N, C, H, W] with each sample replaced by its pseudo image with probability p."""
        mask = draw_replacement_mask(real_img.shape[0], self.p.to(real_img.device), real_img.device)
        return mix_pseudo_real(real_img, self.pseudo_data, mask)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of D's logits on the mixed real batch (Dmain and Dreg) to the p statistic."""
        self.controller.accumulate(real_logits)

    def step(self, batch_idx: int, batch_size: int) -> bool:
        """After `batch_idx += 1`: adjust p every `interval` iterations; returns whether it did."""
        return self.controller.step(batch_idx, batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Resumable state (p and this rank's accumulators); pseudo_data is transient and not saved."""
        return self.controller.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state)


def build_augmentation(
    augment_kwargs: dict | None,
    augment_p: float,
    ada_target: float | None,
    ada_interval: int,
    ada_kimg: float,
    apa_kwargs: dict | None,
    device: torch.device | str,
):
    """The training loop's augmenters: (augment_pipe or None, ADA controller or None, PseudoAugment or None).

    * The pipe is built from `augment_kwargs` when it has work: a fixed p > 0, an ADA target, or APA with
      `with_dataaug`. Its p starts at `augment_p`.
    * ADA (`ada_target` not None) adapts the pipe's p from D's signs on real images.
    * APA (`apa_kwargs`: target, interval, kimg, with_dataaug) keeps its own p, unless `with_dataaug` is true:
      then there is one p, the pipe's, which APA adapts and the pipe applies as its augmentation strength
      (the Deceive D paper's "APA + data augmentation"); there is then no ADA controller.
    """
    apa_kwargs = dict(apa_kwargs) if apa_kwargs is not None else None
    shared = bool(apa_kwargs.pop("with_dataaug", False)) if apa_kwargs is not None else False
    if shared and (augment_kwargs is None or ada_target is not None):
        raise ValueError(
            "with_dataaug needs an augmentation pipe (augment_kwargs) and no ADA target: APA adapts the one p"
        )
    augment_pipe = ada = apa = None
    if augment_kwargs is not None and (augment_p > 0 or ada_target is not None or shared):
        augment_pipe = dnnlib.util.construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
        augment_pipe.p.copy_(torch.as_tensor(augment_p))
        if ada_target is not None:
            ada = AdaController(augment_pipe, target=ada_target, interval=ada_interval, kimg=ada_kimg)
    if apa_kwargs is not None:
        apa = PseudoAugment(augment_pipe=augment_pipe if shared else None, **apa_kwargs)
    return augment_pipe, ada, apa
