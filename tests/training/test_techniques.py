"""Salimans et al. techniques and the Bures distance against direct computations on tiny tensors."""

import numpy as np
import pytest
import scipy.linalg
import torch

from training.techniques.bures import (
    alt_bures_term,
    bures_distance_squared,
    bures_from_covariances,
    normalised_batch,
    pick_space,
    sqrtm_psd,
)
from training.techniques.feature_matching import feature_matching_loss
from training.techniques.historical_averaging import HistoricalAverage
from training.techniques.label_smoothing import smoothed_real_loss
from training.techniques.minibatch_discrimination import MinibatchDiscrimination, PairwiseL1
from training.techniques.virtual_batch_norm import ReferenceBatch, VirtualBatchNorm


def _random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T + (0 if rank else 0.1 * np.eye(d))


# ---------------------------------------------------------------- Bures


def _scipy_bures_sq(a, b):
    ra = scipy.linalg.sqrtm(a).real
    return np.trace(a) + np.trace(b) - 2 * np.trace(scipy.linalg.sqrtm(ra @ b @ ra).real)


def test_sqrtm_psd_matches_scipy():
    rng = np.random.default_rng(0)
    a = _random_spd(rng, 6)
    got = sqrtm_psd(torch.tensor(a)).numpy()
    np.testing.assert_allclose(got, scipy.linalg.sqrtm(a).real, rtol=1e-8, atol=1e-10)


def test_sqrtm_psd_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    a = torch.tensor(_random_spd(rng, 4), requires_grad=True)
    w = torch.tensor(rng.standard_normal((4, 4)))
    assert torch.autograd.gradcheck(lambda m: (sqrtm_psd((m + m.T) / 2) * w).sum(), (a,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bures_from_covariances_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = _random_spd(rng, 5), _random_spd(rng, 5)
    got = bures_from_covariances(torch.tensor(a), torch.tensor(b)).item()
    assert got == pytest.approx(_scipy_bures_sq(a, b), rel=1e-7)


@pytest.mark.parametrize("n, m, d", [(8, 8, 3), (5, 7, 12), (16, 9, 6)])
def test_bures_feature_and_kernel_space_match_scipy_on_normalised_covariances(n, m, d):
    gen = torch.Generator().manual_seed(n * 100 + d)
    real, fake = (
        torch.randn(n, d, generator=gen, dtype=torch.float64),
        torch.randn(m, d, generator=gen, dtype=torch.float64) * 2 + 1,
    )
    xr = real - real.mean(0)
    xg = fake - fake.mean(0)
    cr, cg = (xr.T @ xr).numpy(), (xg.T @ xg).numpy()
    want = _scipy_bures_sq(cr / np.trace(cr), cg / np.trace(cg))
    for space in ("feature", "kernel"):
        assert bures_distance_squared(real, fake, space=space).item() == pytest.approx(want, abs=1e-5)


def test_bures_zero_for_equal_covariances():
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(10, 4, generator=gen)
    # Same centred batch up to a shift, a scale and a reordering: identical normalised covariance.
    fake = real[torch.randperm(10, generator=gen)] * 3.0 + 5.0
    for space in ("feature", "kernel"):
        assert bures_distance_squared(real, fake, space=space).item() == pytest.approx(0.0, abs=1e-5)
    different = torch.randn(10, 4, generator=gen) * torch.tensor([5.0, 1, 1, 0.1])
    assert bures_distance_squared(real, different).item() > 0.05


@pytest.mark.parametrize("space", ["feature", "kernel"])
def test_bures_gradients_finite_for_rank_deficient_covariances(space):
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(4, 16, generator=gen)  # rank <= 3 in 16 dimensions
    fake = torch.randn(4, 1, generator=gen).repeat(1, 16).requires_grad_(True)  # rank 1: collapsed
    loss = bures_distance_squared(real, fake, space=space)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(fake.grad).all()
    assert fake.grad.abs().sum() > 0


def test_bures_auto_space_picks_smaller_eigendecomposition():
    assert pick_space(8, 16, 512) == "kernel"
    assert pick_space(64, 64, 8) == "feature"
    with pytest.raises(ValueError, match="space"):
        pick_space(1, 1, 1, "pixel")


def test_normalised_batch_has_trace_one():
    x = normalised_batch(torch.randn(7, 3) * 10)
    assert torch.trace(x.T @ x).item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(x.sum(0), torch.zeros(3, dtype=x.dtype), atol=1e-6)


def test_alt_bures_by_parity_for_train_py():
    assert [alt_bures_term(i) for i in range(4)] == ["gan", "bures", "gan", "bures"]


def test_bures_of_hand_made_features_matches_scipy_on_centred_unit_trace_covariances():
    real = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [2.0, 2.0, 0.0], [-1.0, 0.5, 1.0], [0.0, -2.0, 1.0]])
    fake = np.array([[0.5, 0.5, 0.5], [1.0, -1.0, 0.0], [0.0, 0.0, 3.0], [2.0, 1.0, 1.0], [-1.0, 0.0, 0.0]])

    def cov(phi):  # Centred with the batch mean, then scaled to trace 1.
        c = (phi - phi.mean(0)).T @ (phi - phi.mean(0))
        return c / np.trace(c)

    want = _scipy_bures_sq(cov(real), cov(fake))
    assert 0.05 < want < 2
    for space in ("feature", "kernel"):
        got = bures_distance_squared(torch.tensor(real, dtype=torch.float32), torch.tensor(fake), space=space)
        assert got.item() == pytest.approx(want, abs=1e-6)
    # Scale-free: multiplying one batch's features by 100 changes nothing.
    assert bures_distance_squared(torch.tensor(real * 100), torch.tensor(fake)).item() == pytest.approx(want, abs=1e-6)


def test_toy_alt_bures_makes_a_gan_update_then_a_bures_update_every_iteration():
    from labs.toy.run import ToyConfig, ToyRun

    run = ToyRun(ToyConfig("grid9", "ns", "alt-bures", seed=0, batch=16))
    seen = []
    update = run._g_update

    def record(loss_fn):
        def wrapped(real, fake):
            loss = loss_fn(real, fake)
            with torch.no_grad():
                gan = torch.nn.functional.softplus(-run.D(fake)).mean()
                bures = bures_distance_squared(run.D.features(real), run.D.features(fake))
            seen.append((float(loss.detach()), float(gan), float(bures)))
            return loss

        update(wrapped)

    run._g_update = record
    steps = []
    step = run.opt_G.step
    run.opt_G.step = lambda: steps.append(1) or step()
    run.g_step()
    run.g_step()
    assert len(steps) == 4 and run.g_steps == 2  # Two G updates per iteration, not one by parity.
    for (loss_a, gan_a, _), (loss_b, _, bures_b) in (seen[0:2], seen[2:4]):
        assert loss_a == pytest.approx(gan_a, rel=1e-6)  # First: the GAN loss.
        assert loss_b == pytest.approx(bures_b, rel=1e-6)  # Then: the Bures term alone, no weight.


# ---------------------------------------------------------------- feature matching


def test_feature_matching_value_and_gradient_reaches_only_g():
    torch.manual_seed(0)
    G = torch.nn.Linear(3, 5)
    D_features = torch.nn.Linear(5, 4).requires_grad_(False)  # D is frozen during G's update
    real = torch.randn(6, 5, requires_grad=True)
    z = torch.randn(8, 3)
    real_feat, fake_feat = D_features(real), D_features(G(z))
    loss = feature_matching_loss(real_feat, fake_feat)
    want = ((real_feat.mean(0) - fake_feat.mean(0)) ** 2).sum()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    assert real.grad is None  # real side detached
    assert G.weight.grad is not None and G.weight.grad.abs().sum() > 0
    # d/d fake_mean of ||r - f||^2 = -2 (r - f): check through G's bias (d fake_feat / d bias = W_D).
    expected_bias_grad = -2 * (real_feat.mean(0) - fake_feat.mean(0)).detach() @ D_features.weight
    assert torch.allclose(G.bias.grad, expected_bias_grad, atol=1e-6)


# ---------------------------------------------------------------- minibatch discrimination


def test_minibatch_discrimination_shape_and_values():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, num_kernels=3, kernel_dim=2)
    x = torch.randn(5, 4)
    out = layer(x)
    assert out.shape == (5, 4 + 3)
    assert torch.equal(out[:, :4], x)
    m = (x @ layer.T).view(5, 3, 2).detach()
    want = torch.zeros(5, 3)
    for i in range(5):
        for j in range(5):
            want[i] += torch.exp(-(m[i] - m[j]).abs().sum(dim=1))
    assert torch.allclose(out[:, 4:], want, atol=1e-6)


def test_minibatch_discrimination_permutation_equivariant_and_detects_collapse():
    torch.manual_seed(1)
    layer = MinibatchDiscrimination(6, num_kernels=4, kernel_dim=3)
    x = torch.randn(7, 6)
    perm = torch.randperm(7)
    assert torch.allclose(layer(x)[perm], layer(x[perm]), atol=1e-6)
    collapsed = x[:1].repeat(7, 1)
    assert torch.allclose(layer(collapsed)[:, 6:], torch.full((7, 4), 7.0))


def test_pairwise_l1_values_gradients_and_double_backward_match_the_direct_form():
    torch.manual_seed(2)
    m = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)

    def direct(m):
        return (m[:, :, None] - m[:, None]).abs().sum(dim=3)

    assert torch.allclose(PairwiseL1.apply(m), direct(m))
    weights = torch.randn(3, 6, 6, dtype=torch.float64)
    (fast,) = torch.autograd.grad((PairwiseL1.apply(m) * weights).sum(), m, create_graph=True)
    (slow,) = torch.autograd.grad((direct(m) * weights).sum(), m, create_graph=True)
    assert torch.allclose(fast, slow)
    # Second order, as a gradient penalty needs it: d/dm of sum(grad * v) through exp(-l) agrees too.
    v = torch.randn_like(m)
    second = [
        torch.autograd.grad((torch.autograd.grad(torch.exp(-f(m)).sum(), m, create_graph=True)[0] * v).sum(), m)[0]
        for f in (PairwiseL1.apply, direct)
    ]
    assert torch.allclose(second[0], second[1])
    assert torch.autograd.gradgradcheck(PairwiseL1.apply, (m,))


# ---------------------------------------------------------------- label smoothing


def test_one_sided_label_smoothing_loss_and_gradient():
    logits = torch.tensor([-2.0, 0.0, 1.5, 4.0], requires_grad=True)
    loss = smoothed_real_loss(logits, alpha=0.9)
    p = torch.sigmoid(logits.detach())
    want = -(0.9 * torch.log(p) + 0.1 * torch.log(1 - p))
    assert torch.allclose(loss, want, atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(logits.grad, p - 0.9, atol=1e-6)
    # alpha = 1 is the plain logistic loss.
    assert torch.allclose(smoothed_real_loss(logits.detach(), 1.0), torch.nn.functional.softplus(-logits.detach()))
    with pytest.raises(ValueError, match="alpha"):
        smoothed_real_loss(logits, 0.3)


# ---------------------------------------------------------------- historical averaging


def test_historical_average_exact_mean_and_resume():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    avg = HistoricalAverage(net.parameters())
    assert avg.penalty().item() == 0
    history = []
    for _ in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.update()
        history.append([p.detach().clone().double() for p in net.parameters()])
    state = avg.state_dict()
    resumed = HistoricalAverage(net.parameters())
    resumed.load_state_dict(state)
    for _ in range(3):  # continue both; they must stay identical
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0.5).add_(1.0)
        avg.update()
        resumed.update()
        history.append([p.detach().clone().double() for p in net.parameters()])
    means = [torch.stack([h[k] for h in history]).mean(0) for k in range(2)]
    for m_avg, m_res, m_true in zip(avg.mean, resumed.mean, means):
        assert torch.allclose(m_avg, m_true, atol=1e-12) and torch.equal(m_avg, m_res)
    with torch.no_grad():
        net.weight.add_(1.0)
    want = sum(((p.detach().double() - m) ** 2).sum() for p, m in zip(net.parameters(), means))
    pen = resumed.penalty()
    assert pen.item() == pytest.approx(want.item(), rel=1e-5)
    pen.backward()
    assert torch.allclose(net.weight.grad.double(), 2 * (net.weight.detach().double() - means[0]), atol=1e-5)


def test_historical_average_rejects_mismatched_state():
    avg = HistoricalAverage(torch.nn.Linear(3, 2).parameters())
    with pytest.raises(ValueError, match="does not match"):
        avg.load_state_dict(HistoricalAverage(torch.nn.Linear(4, 2).parameters()).state_dict())


# ---------------------------------------------------------------- virtual batch norm


def test_vbn_matches_formula_and_is_independent_of_the_batch():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), VirtualBatchNorm(3))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        net[1].bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    ref = ReferenceBatch(torch.randn(16, 2))
    ref.refresh(net)
    x = torch.randn(5, 2)
    out = net(x)
    for i in range(5):  # each example alone, and inside another batch, gives the same output
        assert torch.allclose(net(x[i : i + 1]), out[i : i + 1], atol=1e-6)
        other = torch.cat([torch.randn(3, 2) * 10, x[i : i + 1]])
        assert torch.allclose(net(other)[-1], out[i], atol=1e-6)
    h_ref, h = net[0](ref.batch).detach(), net[0](x).detach()
    for i in range(5):  # reference batch plus the example, |R| + 1 samples, biased variance
        pool = torch.cat([h_ref, h[i : i + 1]])
        mean, var = pool.mean(0), pool.var(0, unbiased=False)
        want = (h[i] - mean) / torch.sqrt(var + 1e-5) * net[1].weight + net[1].bias
        assert torch.allclose(out[i], want, atol=1e-5)


def test_vbn_reference_batch_is_saved_state_and_required():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), VirtualBatchNorm(2))
    with pytest.raises(RuntimeError, match="reference"):
        net(torch.randn(2, 1, 4, 4))
    holder = torch.nn.Module()
    holder.net, holder.ref = net, ReferenceBatch(torch.randn(4, 1, 4, 4))
    assert torch.equal(holder.state_dict()["ref.batch"], holder.ref.batch)
    holder.ref.refresh(net)
    y = net(torch.randn(3, 1, 4, 4))
    assert y.shape == (3, 2, 4, 4) and torch.isfinite(y).all()
