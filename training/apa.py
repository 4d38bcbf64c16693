"""APA, adaptive pseudo augmentation ("Deceive D", spec apa.md): with probability p, D's real
input is replaced by an image from the generator, and p adapts like ADA's.

There is one probability `p`: the scalar buffer of the AugmentPipe when one is given (so the
pipe, when applied with `with_dataaug`, uses the same p), otherwise a buffer of this object.

How the loss uses it (one `PseudoAugment` per rank, living in the loss object):
  * Gmain, right after `gen_img, _ = run_G(gen_z, gen_c)`:  `apa.store(gen_img)`.
    Only Gmain stores (not Gpl, not Dgen). Nothing is saved or synchronized.
  * Dmain / Dreg / Dboth, at the start of the real part, before `run_D` (after Dgen's draws):
        real_img_tmp = apa.replace_reals(real_img).detach().requires_grad_(do_Dr1)
        real_logits = run_D(real_img_tmp, real_c)   # pipe applied only if with_dataaug
        apa.accumulate(real_logits)                  # the heuristic sees the mixed batch
    then L_Dreal = softplus(-real_logits) and R1 w.r.t. the mixed batch, as usual.
  * Training loop, after `batch_idx += 1`:  `apa.step(batch_idx, batch_size)`.
`replace_reals` draws one uniform per sample (shape [N, 1, 1, 1]) from the global torch RNG on
the images' device on every call, even when p = 0.
"""

from __future__ import annotations

from typing import Any

import torch

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
        raise ValueError('APA has no pseudo-real images yet: '
                         'call store(gen_img) in the Gmain phase before the D phases')
    if pseudo.shape != real.shape:
        raise ValueError(f'APA pseudo images {list(pseudo.shape)} and real images {list(real.shape)} differ in shape; '
                         f'the Gmain chunk and the real chunk must have the same size')
    return torch.where(mask, pseudo.to(real.dtype), real)


class PseudoAugment:
    """Per-rank APA state: the shared p, the latest generated images and the p controller.

    augment_pipe: the AugmentPipe whose `p` is shared (APA and ADA use one p); None keeps a
        private p (APA alone). The initial p is whatever that buffer holds (augment_p).
    target: APA target t for E[sign(D(mixed reals))]; None = fixed p.
    interval, kimg: as ADA (iterations between updates; kimg for p to change by 1.0).
    """

    def __init__(self, augment_pipe: torch.nn.Module | None = None, target: float | None = 0.6,
                 interval: int = 4, kimg: float = 500, p: float = 0.0):
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
