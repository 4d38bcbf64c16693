"""L-infinity adversarial attacks on a classifier of images in [0, 1]: FGSM and PGD (cross-entropy ascent).

FGSM (Goodfellow et al. 2015): x_adv = clip01(x + eps * sign(grad_x CE(f(x), y))).
PGD (Madry et al. 2018): start at x (or x + U(-eps, eps) with `random_start`), then `steps` times
x <- clip01(proj_eps(x + step * sign(grad_x CE))), where proj_eps clips to [x0 - eps, x0 + eps]. The
returned point is, per sample, the iterate of highest loss seen (the start included), so the attack never
returns a point with a lower loss than its starting point.
The model is used in whatever mode it is in (call `model.eval()` first for test-time attacks).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Model = Callable[[torch.Tensor], torch.Tensor]


def _loss_and_grad(model: Model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample CE [N] and its gradient w.r.t. x (each sample's loss depends on its own input only)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps, clipped to [0, 1]."""
    _, grad = _loss_and_grad(model, x, y)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def pgd(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected signed-gradient ascent inside the L-inf eps-ball around x (and [0, 1])."""
    if steps < 1:
        raise ValueError(f"PGD needs steps >= 1, got {steps}")
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    current = x.detach().clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1
        current = torch.min(torch.max(current + eps * noise, lo), hi)
    best, best_loss = current.clone(), None
    for step in range(steps + 1):
        loss, grad = _loss_and_grad(model, current, y)
        if best_loss is None:
            best_loss = loss
        else:
            better = loss > best_loss
            best[better], best_loss = current[better], torch.where(better, loss, best_loss)
        if step < steps:
            current = torch.min(torch.max(current + step_size * grad.sign(), lo), hi).detach()
    return best
