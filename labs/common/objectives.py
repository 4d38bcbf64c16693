"""GAN learning objectives on raw discriminator outputs (logits), shared by the labs.

Every loss takes D's raw outputs `[N]` or `[N, 1]` (any shape; values are flattened) and returns a scalar,
the batch mean, that the player *minimizes*. With s_r = D(x_real), s_f = D(G(z)), softplus(t) = log(1 + e^t):

| objective | D loss                                       | G loss               |
|-----------|----------------------------------------------|----------------------|
| `ns`      | mean softplus(-s_r) + mean softplus(s_f)      | mean softplus(-s_f)  |
| `wgan`    | mean s_f - mean s_r                          | -mean s_f            |
| `wgan-gp` | as `wgan` (+ `gradient_penalty` separately)  | -mean s_f            |
| `hinge`   | mean relu(1 - s_r) + mean relu(1 + s_f)      | -mean s_f            |
| `lsgan`   | 0.5 mean (s_r - 1)^2 + 0.5 mean s_f^2        | 0.5 mean (s_f - 1)^2 |

`ns` is the non-saturating GAN of Goodfellow et al. (DCGAN's loss; the toy lab calls it `std`): D is a
logistic classifier real-vs-fake, G maximizes log D(G(z)). `wgan` is the critic loss of Arjovsky et al.;
its Lipschitz constraint is `clip_weights` after every critic step. `wgan-gp` (Gulrajani et al.) replaces
clipping with `gradient_penalty`. `hinge` is the hinge loss of Lim & Ye / Miyato et al.; `lsgan` is the
least-squares GAN of Mao et al. with targets a = 0 (fake), b = 1 (real), c = 1 (what G wants).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

OBJECTIVES = ("ns", "wgan", "wgan-gp", "hinge", "lsgan")


def check_objective(objective: str) -> str:
    """Return `objective` if known, else raise a ValueError that lists the choices."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    return objective


def d_loss(objective: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator (critic) loss to minimize, a scalar; see the module table for each formula."""
    check_objective(objective)
    s_r = real_logits.flatten()
    s_f = fake_logits.flatten()
    if objective == "ns":
        return F.softplus(-s_r).mean() + F.softplus(s_f).mean()
    if objective in ("wgan", "wgan-gp"):
        return s_f.mean() - s_r.mean()
    if objective == "hinge":
        return F.relu(1 - s_r).mean() + F.relu(1 + s_f).mean()
    return 0.5 * (s_r - 1).square().mean() + 0.5 * s_f.square().mean()


def g_loss(objective: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss to minimize, a scalar; see the module table for each formula."""
    check_objective(objective)
    s_f = fake_logits.flatten()
    if objective == "ns":
        return F.softplus(-s_f).mean()
    if objective == "lsgan":
        return 0.5 * (s_f - 1).square().mean()
    return -s_f.mean()


def gradient_penalty(
    d_fn: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
) -> torch.Tensor:
    """WGAN-GP penalty `weight * mean_i (||grad_x D(x_i)||_2 - 1)^2` on x_i = u_i real_i + (1 - u_i) fake_i.

    u_i ~ U(0, 1) is one draw per sample (torch's generator on the inputs' device). The gradient is taken
    with `create_graph=True`, so the penalty backpropagates into D's parameters. real, fake: [N, ...], equal
    shapes; `fake` is detached (the penalty trains D only). Returns a scalar.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty needs equal shapes, got {tuple(real.shape)} and {tuple(fake.shape)}")
    u = torch.rand([real.shape[0]] + [1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    out = d_fn(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return weight * (norms - 1).square().mean()


@torch.no_grad()
def clip_weights(module: torch.nn.Module, clip: float = 0.01) -> None:
    """Clamp every parameter of `module` into [-clip, clip] in place (WGAN's Lipschitz constraint)."""
    if clip <= 0:
        raise ValueError(f"weight clipping needs clip > 0, got {clip}")
    for p in module.parameters():
        p.clamp_(-clip, clip)
