"""Adversarial attacks on a classifier of images in [0, 1]: FGSM and PGD (L-inf, cross-entropy ascent) and
Carlini-Wagner (L2).

FGSM (Goodfellow et al. 2015): x_adv = clip01(x + eps * sign(grad_x CE(f(x), y))).
PGD (Madry et al. 2018): start at x (or x + U(-eps, eps) with `random_start`), then `steps` times
x <- clip01(proj_eps(x + step * sign(grad_x CE))), where proj_eps clips to [x0 - eps, x0 + eps]. The
returned point is, per sample, the iterate of highest loss seen (the start included), so the attack never
returns a point with a lower loss than its starting point.
CW (Carlini & Wagner 2017, the L2 attack with a fixed constant c, as "CW-100 (c=0.01)" in the AdaptiveMix
paper's Tables 7-10): with x' = (tanh(w) + 1) / 2 (the box [0, 1] by a change of variables) and logits Z,
    minimise over w:  |x' - x|_2^2 + c * max(Z(x')_y - max_{j != y} Z(x')_j, 0)
by Adam (learning rate 0.01) for `steps` steps from w = atanh(2x - 1). It returns, per sample, the
misclassified iterate of smallest L2 distance, or x itself where no iterate was misclassified. There is no
binary search over c: a fixed c makes the attack depend on the logits' scale (a head whose logits span only
[-1, 1] feels the same c far less).
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


def carlini_wagner_l2(
    model: Model, x: torch.Tensor, y: torch.Tensor, c: float, steps: int, lr: float = 0.01
) -> torch.Tensor:
    """CW-L2 with a fixed c (see the module docstring); x [N, ...] in [0, 1], y [N] int64."""
    if steps < 1:
        raise ValueError(f"CW needs steps >= 1, got {steps}")
    x = x.detach()
    # atanh(+-1) is infinite: pull the start a hair inside the box (|x' - x| <= 1e-6 per pixel).
    w = torch.atanh((2 * x - 1) * (1 - 1e-6)).requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    best = x.clone()
    best_dist = torch.full(y.shape, float("inf"), dtype=x.dtype, device=x.device)
    other = torch.ones(y.shape[0], 1, dtype=torch.bool, device=x.device)
    for step in range(steps + 1):
        with torch.enable_grad():
            adv = (torch.tanh(w) + 1) / 2
            logits = model(adv)
            dist = (adv - x).flatten(1).square().sum(dim=1)
            true = logits.gather(1, y[:, None])[:, 0]
            mask = other.expand_as(logits).scatter(1, y[:, None], False)
            runner_up = logits.masked_fill(~mask, float("-inf")).amax(dim=1)
            margin = true - runner_up
        fooled = (margin < 0) & (dist < best_dist)  # argmax != y (a tie counts as not fooled).
        best[fooled], best_dist = adv.detach()[fooled], torch.where(fooled, dist.detach(), best_dist)
        if step == steps:
            break
        loss = (dist + c * margin.clamp_min(0)).sum()  # Samples are independent: the sum optimises each one.
        (w.grad,) = torch.autograd.grad(loss, w)  # Only w's gradient: the model's parameters stay untouched.
        optimizer.step()
    return best
