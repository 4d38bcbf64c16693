"""The paper's Eq. 6 term (`adaptivemix.wgan`) against hand computations in float64 NumPy.

F is a stand-in tanh(W vec(x)) (or a linear map) with fixed weights; reals and fakes are hand-made tensors. The
draws are replayed in the term's order: randperm (torch CPU), lambda (NumPy Beta), then eps (torch CPU randn).
The gradient tests make the stop-gradient visible: without it the term also pulls the mixture of the clean
features towards F(x_hat), so for a linear F (where F(x_hat) equals the mixture) the two pulls cancel exactly.
"""

import numpy as np
import pytest
import torch

from adaptivemix import AdaptiveMixDiscriminatorCall, CrossMixShrinkage, mean_head, target_noise

N, D_IN, D_FEAT = 4, 3, 5
W = np.random.default_rng(0).normal(0, 0.7, size=[D_FEAT, D_IN])


def features(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x @ torch.as_tensor(W, dtype=x.dtype).T)


def np_features(x: np.ndarray) -> np.ndarray:
    return np.tanh(x @ W.T)


def hand_batches(requires_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Reals and fakes [N, D_IN], float64, written out by hand."""
    real = [[0.5, -1.0, 0.2], [1.5, 0.3, -0.7], [-0.4, 0.8, 1.1], [0.0, -0.6, 0.9]]
    fake = [[-1.2, 0.4, 0.0], [0.3, 0.3, 0.3], [0.9, -1.4, 0.6], [-0.2, 1.0, -0.5]]
    real, fake = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    return real.requires_grad_(requires_grad), fake.requires_grad_(requires_grad)


def replay(seed: int, noise_std: float, shape=(N, D_FEAT)) -> tuple[np.ndarray, float, np.ndarray]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    perm = torch.randperm(shape[0]).numpy()
    lam = float(np.random.beta(1.0, 1.0))
    return perm, lam, (torch.randn(shape, dtype=torch.float32) * noise_std).double().numpy()


def run_term(term: CrossMixShrinkage, real: torch.Tensor, fake: torch.Tensor, seed: int, fn=features) -> torch.Tensor:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return term(fn, real, fn(real), fake, fn(fake))


def np_term(real, fake, perm, lam, eps, fn=np_features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-sample plain L2 term, F(x_hat), target) of Eq. 6 with the noise on the target mixture."""
    f_hat = fn(lam * real + (1 - lam) * fake[perm])
    target = lam * fn(real) + (1 - lam) * fn(fake)[perm] + eps
    return np.linalg.norm(f_hat - target, axis=1), f_hat, target


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_term_is_the_plain_l2_norm_of_the_real_fake_mix(noise_std):
    real, fake = hand_batches(requires_grad=False)
    got = run_term(CrossMixShrinkage(noise_std=noise_std), real, fake, seed=4)
    want, _, _ = np_term(real.numpy(), fake.numpy(), *replay(4, noise_std))
    assert got.shape == (N,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert not np.allclose(got.numpy(), want**2)  # Plain norm, not its square.


def test_gradient_flows_through_both_sides_without_stop_gradient():
    real, fake = hand_batches()
    run_term(CrossMixShrinkage(noise_std=0.3), real, fake, seed=6).sum().backward()
    perm, lam, eps = replay(6, 0.3)
    r, f = real.detach().numpy(), fake.detach().numpy()
    _, f_hat, target = np_term(r, f, perm, lam, eps)
    g = (f_hat - target) / np.linalg.norm(f_hat - target, axis=1, keepdims=True)  # d||u - t|| / du = -d / dt.
    x_hat = lam * r + (1 - lam) * f[perm]

    def pull(x, g_rows):  # J_F(x)^T g per row, with J_F(x) = diag(1 - tanh^2) W.
        return (g_rows * (1 - np_features(x) ** 2)) @ W

    want_real = lam * pull(x_hat, g) - lam * pull(r, g)
    want_fake = np.zeros_like(f)
    np.add.at(want_fake, perm, (1 - lam) * pull(x_hat, g) - (1 - lam) * pull(f[perm], g))
    np.testing.assert_allclose(real.grad.numpy(), want_real, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fake.grad.numpy(), want_fake, rtol=1e-9, atol=1e-12)


def test_stop_gradient_keeps_only_the_mixed_input_path():
    real, fake = hand_batches()
    run_term(CrossMixShrinkage(noise_std=0.3, stop_gradient=True), real, fake, seed=6).sum().backward()
    perm, lam, eps = replay(6, 0.3)
    r, f = real.detach().numpy(), fake.detach().numpy()
    _, f_hat, target = np_term(r, f, perm, lam, eps)
    g = (f_hat - target) / np.linalg.norm(f_hat - target, axis=1, keepdims=True)
    through_x_hat = (g * (1 - f_hat**2)) @ W
    want_fake = np.zeros_like(f)
    np.add.at(want_fake, perm, (1 - lam) * through_x_hat)
    np.testing.assert_allclose(real.grad.numpy(), lam * through_x_hat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fake.grad.numpy(), want_fake, rtol=1e-9, atol=1e-12)


def test_linear_features_the_two_pulls_cancel_without_stop_gradient_and_not_with_it():
    A = torch.tensor(W, dtype=torch.float64)

    def linear(x):
        return x @ A.T

    grads = {}
    for stop_gradient in (False, True):
        real, fake = hand_batches()
        term = run_term(CrossMixShrinkage(noise_std=0.3, stop_gradient=stop_gradient), real, fake, 2, linear)
        term.sum().backward()
        grads[stop_gradient] = real.grad.clone()
    _, lam, eps = replay(2, 0.3)
    # F(x_hat) = mixture exactly, so the term is ||eps|| and, without the stop-gradient, constant in the inputs.
    np.testing.assert_allclose(term.detach().numpy(), np.linalg.norm(eps, axis=1), rtol=1e-6)
    assert float(grads[False].abs().max()) < 1e-12  # Zero up to float64 rounding.
    assert float(grads[True].abs().max()) > 0.1
    g = -eps / np.linalg.norm(eps, axis=1, keepdims=True)
    np.testing.assert_allclose(grads[True].numpy(), lam * g @ W, rtol=1e-6, atol=1e-9)


def test_relative_noise_is_sigma_times_each_samples_rms():
    real, fake = hand_batches(requires_grad=False)
    got = run_term(CrossMixShrinkage(noise_std=0.5, noise_scale="relative"), real, fake, seed=8)
    perm, lam, eps = replay(8, 0.5)
    mixture = lam * np_features(real.numpy()) + (1 - lam) * np_features(fake.numpy())[perm]
    rms = np.sqrt((mixture**2).mean(axis=1, keepdims=True))
    want, _, _ = np_term(real.numpy(), fake.numpy(), perm, lam, eps * rms)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)


def test_target_noise_scales_and_draw():
    feat = torch.tensor([[3.0, 4.0], [0.0, 0.01]])
    torch.manual_seed(1)
    absolute = target_noise(feat, 0.2)
    torch.manual_seed(1)
    relative = target_noise(feat, 0.2, "relative")
    torch.manual_seed(1)
    z = torch.randn([2, 2]) * 0.2
    assert torch.equal(absolute, z)
    rms = torch.tensor([[np.sqrt(12.5)], [np.sqrt(0.00005)]], dtype=torch.float32)
    torch.testing.assert_close(relative, z * rms)
    with pytest.raises(ValueError, match="noise scale"):
        target_noise(feat, 0.2, "per-batch")


def test_mean_head_is_the_averaging_operator():
    feat = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(mean_head(feat), torch.tensor([[5.5], [17.5]]))


def test_release_calls_cross_shrinkage_is_the_same_term_with_its_settings():
    real, fake = hand_batches(requires_grad=False)
    call = AdaptiveMixDiscriminatorCall(noise_std=0.3, distance="mse", stop_gradient=True)
    torch.manual_seed(3)
    np.random.seed(3)
    got = call.cross_shrinkage(lambda t: (features(t), None), real, features(real), fake, features(fake))
    want = run_term(CrossMixShrinkage(noise_std=0.3, distance="mse", stop_gradient=True), real, fake, seed=3)
    assert torch.equal(got, want)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(noise_std=-0.1), "noise_std"),
        (dict(noise_scale="batch"), "noise scale"),
        (dict(alpha=0.0), "alpha"),
        (dict(distance="L2"), "distance"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossMixShrinkage(**kwargs)


def test_unequal_batches_are_rejected():
    with pytest.raises(ValueError, match="equal batches"):
        CrossMixShrinkage()(features, torch.zeros([2, D_IN]), torch.zeros([2, D_FEAT]), torch.zeros([3, D_IN]), None)
