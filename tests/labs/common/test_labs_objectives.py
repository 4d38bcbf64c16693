"""labs.common.objectives: each D and G loss against a direct NumPy computation, the gradient penalty against a
hand-differentiated critic, and weight clipping."""

import math

import numpy as np
import pytest
import torch

from labs.common import objectives

REAL = np.array([2.0, -0.5, 0.3, 1.7])
FAKE = np.array([-1.2, 0.4, 0.9, -3.0])


def _softplus(t):
    return np.log1p(np.exp(t))


EXPECTED_D = {
    "ns": _softplus(-REAL).mean() + _softplus(FAKE).mean(),
    "wgan": FAKE.mean() - REAL.mean(),
    "wgan-gp": FAKE.mean() - REAL.mean(),
    "hinge": np.maximum(0, 1 - REAL).mean() + np.maximum(0, 1 + FAKE).mean(),
    "lsgan": 0.5 * ((REAL - 1) ** 2).mean() + 0.5 * (FAKE**2).mean(),
}
EXPECTED_G = {
    "ns": _softplus(-FAKE).mean(),
    "wgan": -FAKE.mean(),
    "wgan-gp": -FAKE.mean(),
    "hinge": -FAKE.mean(),
    "lsgan": 0.5 * ((FAKE - 1) ** 2).mean(),
}


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_losses_match_direct_computation(objective):
    real = torch.tensor(REAL).reshape(-1, 1)  # [N, 1] as D returns it.
    fake = torch.tensor(FAKE)
    assert objectives.d_loss(objective, real, fake).item() == pytest.approx(EXPECTED_D[objective], rel=1e-12)
    assert objectives.g_loss(objective, fake.reshape(-1, 1)).item() == pytest.approx(EXPECTED_G[objective], rel=1e-12)


def test_hand_values():
    # ns at zero logits: 2 log 2 for D, log 2 for G; hinge with margins exactly met is zero.
    z = torch.zeros(3)
    assert objectives.d_loss("ns", z, z).item() == pytest.approx(2 * math.log(2))
    assert objectives.g_loss("ns", z).item() == pytest.approx(math.log(2))
    assert objectives.d_loss("hinge", torch.ones(3), -torch.ones(3)).item() == 0.0


def test_unknown_objective_is_one_clear_error():
    with pytest.raises(ValueError, match="choose one of ns, wgan, wgan-gp, hinge, lsgan"):
        objectives.d_loss("wasserstein", torch.zeros(1), torch.zeros(1))


def test_gradient_penalty_against_hand_gradient():
    # Critic D(x) = sum_j w_j x_j^2 has gradient 2 w * x, so the penalty is known in closed form for the
    # interpolates; seeding torch reproduces the interpolation weights u_i.
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    real = torch.tensor([[1.0, 2.0, 0.0], [0.3, -0.2, 0.7]], dtype=torch.float64)
    fake = torch.tensor([[0.0, 1.0, -1.0], [0.1, 0.4, 0.2]], dtype=torch.float64)
    torch.manual_seed(3)
    pen = objectives.gradient_penalty(lambda x: (x.square() * w).sum(dim=1), real, fake, weight=10.0)
    torch.manual_seed(3)
    u = torch.rand(2, 1, dtype=torch.float64)
    x = u * real + (1 - u) * fake
    norms = np.linalg.norm((2 * w * x).numpy(), axis=1)
    assert pen.item() == pytest.approx(10.0 * ((norms - 1) ** 2).mean(), rel=1e-12)


def test_gradient_penalty_reaches_critic_parameters():
    critic = torch.nn.Linear(4, 1)
    pen = objectives.gradient_penalty(critic, torch.randn(5, 4), torch.randn(5, 4))
    pen.backward()
    # For a linear critic the gradient is w itself: penalty = 10 (||w|| - 1)^2, d/dw = 20 (||w|| - 1) w / ||w||.
    w = critic.weight.detach()
    expected = 20 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(critic.weight.grad, expected)


def test_clip_weights_keeps_every_parameter_in_range():
    torch.manual_seed(0)
    d = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(1),
    )
    d(torch.randn(2, 3, 6, 6))
    with torch.no_grad():
        for p in d.parameters():
            p.mul_(100)
    before = [p.detach().clone() for p in d.parameters()]
    objectives.clip_weights(d, clip=0.01)
    for old, p in zip(before, d.parameters()):
        assert p.abs().max().item() <= 0.01
        torch.testing.assert_close(p, old.clamp(-0.01, 0.01))  # Values inside the range are untouched.
