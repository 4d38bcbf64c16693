"""The AdaptiveMix plug-in (`adaptivemix/`) against NumPy formulas and hand computations.

- `mixing`: the shrinkage distances, the mix, the draw (torch CPU randperm, then NumPy Beta) and validation.
- `AdaptiveMixDiscriminatorCall`: the release's mixed call and its cosine shrinkage term on a stand-in
  F = tanh(W vec(x)) and linear J, replayed from the same seeds; the stop-gradient on the target.
- On the real StyleGAN2 discriminator: F is per-sample (features of a permuted batch are the permuted
  features), so the plug-in's two F passes match a literal three-pass implementation written here.
"""

import numpy as np
import pytest
import torch

from adaptivemix import AdaptiveMixDiscriminatorCall, draw_mix, mix, shrinkage_loss
from adaptivemix.mixing import mix_pair
from training.networks import Discriminator

N = 5
IN_SHAPE = (1, 2, 3)
FEAT_SHAPE = (2, 2, 2)  # Not flat, so the per-sample flattening is exercised.
_rng = np.random.default_rng(0)
W = _rng.normal(0, 0.6, size=[int(np.prod(FEAT_SHAPE)), int(np.prod(IN_SHAPE))])
V = _rng.normal(0, 0.7, size=[int(np.prod(FEAT_SHAPE))])
LABEL_WEIGHT, BIAS = 0.5, 0.1


# ------------------------------------------------------------------------------------------------------------
# Stand-in F and J, in torch (what the plug-in calls) and float64 NumPy (the hand computation).


def np_features(x: np.ndarray) -> np.ndarray:
    return np.tanh(x.reshape(len(x), -1) @ W.T)


def np_head(feature: np.ndarray, c: np.ndarray) -> np.ndarray:
    return feature.reshape(len(feature), -1) @ V + c[:, 0] * LABEL_WEIGHT + BIAS


def make_features_fn(outputs: list | None = None, with_extras: bool = True):
    """F(x) = tanh(W vec(x)) as [N, *FEAT_SHAPE], returned as (feature, None) or bare; records its outputs."""

    def features_fn(x):
        feature = torch.tanh(x.flatten(1) @ torch.as_tensor(W, dtype=x.dtype).T).reshape(-1, *FEAT_SHAPE)
        if outputs is not None:
            outputs.append(feature)
        return (feature, None) if with_extras else feature

    return features_fn


def head_fn(features, c):
    if isinstance(features, tuple):
        features, extra = features
        assert extra is None
    return (features.flatten(1) @ torch.as_tensor(V, dtype=features.dtype) + c[:, 0] * LABEL_WEIGHT + BIAS)[:, None]


def np_neg_cosine(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    u, t = u.reshape(len(u), -1), t.reshape(len(t), -1)
    return -(u * t).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(t, axis=1))


def reseed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def batch(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn([N, *IN_SHAPE], generator=generator), torch.randn([N, 2], generator=generator)


# ------------------------------------------------------------------------------------------------------------
# mixing.py


@pytest.mark.parametrize(
    "distance, formula",
    [
        ("cosine", np_neg_cosine),
        ("l2", lambda u, t: np.sqrt(((u - t) ** 2).reshape(len(u), -1).sum(1))),
        ("l1", lambda u, t: np.abs(u - t).reshape(len(u), -1).sum(1)),
        ("mse", lambda u, t: ((u - t) ** 2).reshape(len(u), -1).mean(1)),
    ],
)
def test_shrinkage_loss_matches_numpy_formulas(distance, formula):
    rng = np.random.default_rng(1)
    u, t = rng.normal(size=[4, 3, 2, 2]), rng.normal(size=[4, 3, 2, 2])
    got = shrinkage_loss(torch.tensor(u, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), distance)
    assert got.shape == (4,)
    np.testing.assert_allclose(got.double().numpy(), formula(u, t), rtol=1e-5, atol=1e-6)


def test_cosine_of_a_zero_feature_is_zero_not_nan():
    got = shrinkage_loss(torch.zeros([2, 4]), torch.ones([2, 4]), "cosine")
    assert torch.equal(got.abs(), torch.zeros(2))


def test_bad_distance_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="distance"):
        shrinkage_loss(torch.zeros([2, 3]), torch.zeros([2, 3]), "cos")
    with pytest.raises(ValueError, match="shape"):
        shrinkage_loss(torch.zeros([2, 3]), torch.zeros([2, 4]))
    with pytest.raises(ValueError, match="distance"):
        AdaptiveMixDiscriminatorCall(distance="L2")
    with pytest.raises(ValueError, match="noise_std"):
        AdaptiveMixDiscriminatorCall(noise_std=-0.1)
    with pytest.raises(ValueError, match="equal batches"):
        AdaptiveMixDiscriminatorCall().cross_shrinkage(
            make_features_fn(), torch.zeros([2, 6]), torch.zeros([2, 8]), torch.zeros([3, 6]), torch.zeros([3, 8])
        )


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_draw_mix_is_cpu_randperm_then_numpy_beta(alpha):
    reseed(7)
    draw = draw_mix(6, alpha)
    torch_next, numpy_next = torch.rand([2]), np.random.random_sample(2)
    reseed(7)
    perm, lam = torch.randperm(6), np.random.beta(alpha, alpha)
    assert torch.equal(draw.perm, perm) and draw.perm.device.type == "cpu"
    assert draw.lam == lam and 0 <= draw.lam <= 1
    # Exactly one randperm and one Beta draw were consumed.
    assert torch.equal(torch.rand([2]), torch_next) and np.array_equal(np.random.random_sample(2), numpy_next)


@pytest.mark.parametrize("batch_size, alpha, match", [(0, 1.0, "batch"), (4, 0.0, "alpha"), (4, -1.0, "alpha")])
def test_draw_mix_validates_its_arguments(batch_size, alpha, match):
    with pytest.raises(ValueError, match=match):
        draw_mix(batch_size, alpha)
    x, c = batch()
    if batch_size > 0:  # The plug-in's alpha reaches the same check on its first call.
        with pytest.raises(ValueError, match=match):
            AdaptiveMixDiscriminatorCall(alpha=alpha)(make_features_fn(), head_fn, x, c)


def test_mix_and_mix_pair_formulas():
    reseed(2)
    x = torch.randn([N, 3])
    draw = draw_mix(N)
    xn, perm = x.double().numpy(), draw.perm.numpy()
    np.testing.assert_allclose(mix(x, draw).numpy(), draw.lam * xn + (1 - draw.lam) * xn[perm], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mix_pair(x, 2 * x, 0.25).numpy(), 0.25 * xn + 1.5 * xn, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# The mixed discriminator call (release).


@pytest.mark.parametrize("noise_std, with_extras", [(0.0, True), (0.3, True), (0.3, False)])
def test_mixed_call_logits_target_and_shrinkage_by_hand(noise_std, with_extras):
    x, c = batch()
    amix = AdaptiveMixDiscriminatorCall(noise_std=noise_std)
    reseed(11)
    result = amix(make_features_fn(with_extras=with_extras), head_fn, x, c)
    shrink = amix.shrinkage(result)
    rng_after = torch.rand([3])

    reseed(11)
    perm = torch.randperm(N).numpy()
    lam = np.random.beta(1.0, 1.0)
    eps = (torch.randn([N, *FEAT_SHAPE]) * noise_std).double().numpy()
    assert torch.equal(torch.rand([3]), rng_after)  # eps is drawn even when noise_std = 0.
    xn, cn = x.double().numpy(), c.double().numpy()
    f_hat = np_features(lam * xn + (1 - lam) * xn[perm])
    m = lam * np_features(xn) + (1 - lam) * np_features(xn[perm])
    target = m + eps.reshape(N, -1)
    logits = np_head(m, cn) + np_head(f_hat, cn)  # Un-permuted labels for both heads; noise-free m.

    assert np.array_equal(result.draw.perm.numpy(), perm) and result.draw.lam == lam
    assert result.logits.shape == (N, 1) and result.feat_hat.shape == (N, *FEAT_SHAPE)
    np.testing.assert_allclose(result.logits.double().numpy()[:, 0], logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.feat_hat.double().numpy().reshape(N, -1), f_hat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.feat.double().numpy().reshape(N, -1), np_features(xn), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.target.double().numpy().reshape(N, -1), target, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shrink.double().numpy(), np_neg_cosine(f_hat, target), rtol=1e-5, atol=1e-6)


def test_shrinkage_gradient_reaches_only_the_mixed_input_pass():
    x, c = batch()
    x.requires_grad_(True)
    outputs = []
    amix = AdaptiveMixDiscriminatorCall(noise_std=0.2)
    reseed(5)
    result = amix(make_features_fn(outputs), head_fn, x, c)
    shrink = amix.shrinkage(result)
    f_hat, f_a = outputs  # The plug-in makes two F passes: F(x_hat), then F(x).
    assert torch.autograd.grad(shrink.sum(), [f_a], retain_graph=True, allow_unused=True) == (None,)
    (grad_x,) = torch.autograd.grad(shrink.sum(), [x])

    # By hand: d(-cos(u, t))/du = -(t / (|u||t|) - (u.t) u / (|u|^3 |t|)), then tanh and W, then the mix.
    lam, perm = result.draw.lam, result.draw.perm.numpy()
    u, t = f_hat.detach().double().numpy().reshape(N, -1), result.target.detach().double().numpy().reshape(N, -1)
    nu, nt = np.linalg.norm(u, axis=1, keepdims=True), np.linalg.norm(t, axis=1, keepdims=True)
    grad_u = -(t / (nu * nt) - (u * t).sum(1, keepdims=True) * u / (nu**3 * nt))
    grad_x_hat = (grad_u * (1 - u**2)) @ W
    expected = lam * grad_x_hat
    np.add.at(expected, perm, (1 - lam) * grad_x_hat)  # x_hat[i] takes (1 - lam) of x[perm[i]].
    np.testing.assert_allclose(grad_x.double().numpy().reshape(N, -1), expected, rtol=1e-4, atol=1e-6)


def test_without_stop_gradient_the_target_passes_gradient():
    x, c = batch()
    outputs = []
    amix = AdaptiveMixDiscriminatorCall(noise_std=0.2, stop_gradient=False)
    reseed(5)
    result = amix(make_features_fn(outputs), head_fn, x.requires_grad_(True), c)
    (grad_f_a,) = torch.autograd.grad(amix.shrinkage(result).sum(), [outputs[1]])
    assert grad_f_a.abs().max() > 0


# ------------------------------------------------------------------------------------------------------------
# The real StyleGAN2 discriminator: 2 F passes equal the release's 3.


def tiny_discriminator() -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(
        c_dim=2,
        img_resolution=16,
        img_channels=3,
        architecture="skip",
        channel_base=128,
        channel_max=16,
        epilogue_kwargs=dict(mbstd_group_size=4),
    )


def test_discriminator_features_of_a_permuted_batch_are_the_permuted_features():
    D = tiny_discriminator()
    x = torch.randn([4, 3, 16, 16], generator=torch.Generator().manual_seed(1))
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        feature, img4 = D.features(x, None)
        feature_p, img4_p = D.features(x[perm], None)
    torch.testing.assert_close(feature_p, feature[perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(img4_p, img4[perm], rtol=1e-5, atol=1e-6)


def literal_three_pass_call(D, x, c, perm, lam, eps):
    """The release's mixed call step by step: F(x_hat), F(x), F(x[perm]); J(m, img4 of x) + J(F(x_hat))."""
    x_b = x[perm]
    f_hat, img4_hat = D.features(lam * x + (1 - lam) * x_b, c)
    f_a, img4_a = D.features(x, c)
    f_b, _ = D.features(x_b, c)
    m = lam * f_a + (1 - lam) * f_b
    target = m + eps
    logits = D.head((m, img4_a), c) + D.head((f_hat, img4_hat), c)
    u, t = f_hat.flatten(1), target.detach().flatten(1)
    shrink = -(u * t).sum(1) / (u.norm(dim=1) * t.norm(dim=1))
    return logits, target, shrink


def test_two_pass_call_matches_literal_three_pass_call_on_stylegan2_discriminator():
    D = tiny_discriminator()
    generator = torch.Generator().manual_seed(2)
    x = torch.randn([4, 3, 16, 16], generator=generator).requires_grad_(True)
    c = torch.randn([4, 2], generator=generator)
    params = [x, *D.parameters()]
    amix = AdaptiveMixDiscriminatorCall(noise_std=0.05)

    reseed(9)
    result = amix(lambda t: D.features(t, c), D.head, x, c)
    shrink = amix.shrinkage(result)
    grads = torch.autograd.grad((torch.nn.functional.softplus(result.logits[:, 0]) + shrink).mean(), params)

    reseed(9)
    perm = torch.randperm(4)
    lam = float(np.random.beta(1.0, 1.0))
    eps = torch.randn(result.target.shape) * 0.05
    logits, target, shrink_ref = literal_three_pass_call(D, x, c, perm, lam, eps)
    grads_ref = torch.autograd.grad((torch.nn.functional.softplus(logits[:, 0]) + shrink_ref).mean(), params)

    torch.testing.assert_close(result.logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.target, target, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shrink, shrink_ref, rtol=1e-5, atol=1e-6)
    for grad, grad_ref in zip(grads, grads_ref):
        scale = float(grad_ref.abs().max())
        torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-5 * scale)
