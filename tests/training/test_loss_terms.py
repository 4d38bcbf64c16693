"""StyleGAN2Loss terms against hand computations on tiny stand-in networks with known weights.

Stand-ins: G = a linear mapping (one matrix per ws row) and a linear, noise-free synthesis; D = a linear
`<v, vec(x)> + b`, or one tanh feature layer F(x) = tanh(W vec(x)) under the same linear head J. Expected
values are closed forms in float64 NumPy; the AdaptiveMix gradients use autograd through a literal
implementation written here (three F passes, explicit cosine / L2, closed-form R1 input gradient). Random
draws are replayed from the same seeds in the loss's order: per G call the style-mixing cutoff (randint over
[1, num_ws)), its gate uniform, then z2; per AdaptiveMix D call the partner permutation (CPU torch), lambda
(NumPy Beta(1, 1)), then the target noise (CPU torch). Statistics are read back with a `training_stats.Collector`.
"""

import numpy as np
import pytest
import torch

from torch_utils import training_stats
from training.loss import StyleGAN2Loss

Z_DIM, NUM_WS, W_DIM = 3, 4, 2
IMG_SHAPE = (1, 2, 3)  # [C, H, W]
IMG_SIZE = int(np.prod(IMG_SHAPE))
N = 4
HIDDEN = 5  # Feature width of the tanh discriminator.
LABELS = torch.zeros([N, 0])


# ------------------------------------------------------------------------------------------------------------
# Stand-in networks.


class LinearMapping(torch.nn.Module):
    """ws[n, k] = weight[k] @ z[n], shape [N, NUM_WS, W_DIM]; records every call's (z, skip_w_avg_update)."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([NUM_WS, W_DIM, Z_DIM], generator=generator) * 0.5)
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, z, c, skip_w_avg_update=False):
        self.calls.append((z.detach().clone(), skip_w_avg_update))
        return torch.einsum("kwz,nz->nkw", self.weight, z)


class LinearSynthesis(torch.nn.Module):
    """img[n] = weight @ vec(ws[n]) reshaped to [C, H, W]; no noise. Records every input ws."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([IMG_SIZE, NUM_WS * W_DIM], generator=generator) * 0.4)
        self.inputs: list[torch.Tensor] = []

    def forward(self, ws):
        self.inputs.append(ws.detach().clone())
        return (ws.flatten(1) @ self.weight.T).reshape(-1, *IMG_SHAPE)


class StandInG(torch.nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.mapping = LinearMapping(generator)
        self.synthesis = LinearSynthesis(generator)


class StandInD(torch.nn.Module):
    """F(x) = vec(x) (hidden=None, so D is linear) or tanh(W vec(x)) [N, hidden]; J(f) = f @ v + b, [N, 1]."""

    def __init__(self, hidden: int | None = None, seed: int = 1):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn([hidden, IMG_SIZE], generator=generator) * 0.6) if hidden else None
        self.v = torch.nn.Parameter(torch.randn([hidden or IMG_SIZE], generator=generator) * 0.7)
        self.b = torch.nn.Parameter(torch.tensor(0.2))

    def features(self, img, c):
        x = img.flatten(1)
        return (x if self.W is None else torch.tanh(x @ self.W.T)), None

    def head(self, features, c):
        feature, extra = features
        assert extra is None
        return (feature.flatten(1) @ self.v + self.b)[:, None]

    def forward(self, img, c):
        return self.head(self.features(img, c), c)


# ------------------------------------------------------------------------------------------------------------
# Helpers.


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_generate(G: StandInG, z: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Flattened images [n, IMG_SIZE] and flattened ws [n, NUM_WS * W_DIM] of the stand-in G, float64."""
    ws = np.einsum("kwz,nz->nkw", np64(G.mapping.weight), np64(z)).reshape(len(z), -1)
    return ws @ np64(G.synthesis.weight).T, ws


def inputs(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn([N, Z_DIM], generator=generator), torch.randn([N, *IMG_SHAPE], generator=generator)


def run_phase(loss, phase, train, seed, gen_z, real_img, gain) -> training_stats.Collector:
    """One `accumulate_gradients` call with only `train` requiring grad (grads cleared) after seeding torch and
    NumPy with `seed`, as the training loop does; returns the statistics it reported."""
    for module in (loss.G, loss.D):
        module.requires_grad_(module is train)
        for param in module.parameters():
            param.grad = None
    collector = training_stats.Collector(regex="Loss/.*")
    torch.manual_seed(seed)
    np.random.seed(seed)
    loss.accumulate_gradients(
        phase,
        real_img=real_img,
        real_c=LABELS[: len(real_img)],
        gen_z=gen_z,
        gen_c=LABELS[: len(gen_z)],
        sync=True,
        gain=gain,
    )
    collector.update()
    return collector


def assert_stat(collector, name, values) -> None:
    """The statistic holds exactly these per-sample values (count, mean and population std)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    assert collector.num(name) == values.size, name
    rms = float(np.sqrt(np.mean(values**2)))
    assert collector.mean(name) == pytest.approx(values.mean(), rel=1e-5, abs=1e-6 * rms + 1e-9), name
    # Moments are summed in float32, so a near-zero std carries ~sqrt(float eps) * rms of cancellation.
    assert collector.std(name) == pytest.approx(values.std(), rel=1e-4, abs=1e-3 * rms + 1e-9), name


def assert_grad(param, expected) -> None:
    assert param.grad is not None
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max()), 1e-3)
    np.testing.assert_allclose(np64(param.grad), np.broadcast_to(expected, param.shape), rtol=1e-5, atol=1e-5 * scale)


def make_loss(G, D, **kwargs) -> StyleGAN2Loss:
    return StyleGAN2Loss(torch.device("cpu"), G, D, **{"style_mixing_prob": 0.0, **kwargs})


def replay_mix(n: int, noise_std: float, feat_dim: int) -> tuple[torch.Tensor, float, torch.Tensor]:
    """One mixed call's draws: randperm (torch CPU), lambda ~ Beta(1, 1) (NumPy), then eps (torch CPU)."""
    perm = torch.randperm(n)
    lam = float(np.random.beta(1.0, 1.0))
    return perm, lam, torch.randn([n, feat_dim]) * noise_std


def reseed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ------------------------------------------------------------------------------------------------------------
# 1. Logistic terms, 2. R1, phase table.


def test_gmain_logistic_loss_stats_and_generator_gradients():
    G, D = StandInG(), StandInD()
    z, real = inputs()
    gain = 1.7
    stats = run_phase(make_loss(G, D), "Gmain", G, 0, z, real, gain)
    img, ws = np_generate(G, z)
    v, A = np64(D.v), np64(G.synthesis.weight)
    scores = img @ v + float(np64(D.b))
    assert (scores > 0).any() and (scores < 0).any()
    assert_stat(stats, "Loss/scores/fake", scores)
    assert_stat(stats, "Loss/signs/fake", np.sign(scores))
    assert_stat(stats, "Loss/G/loss", softplus(-scores))
    # d mean(softplus(-s)) / ds_i = -sigmoid(-s_i) / N, with s_i = <v, A ws_i> + b and ws_i[k] = M[k] z_i.
    coef = -sigmoid(-scores) * gain / N
    assert_grad(G.synthesis.weight, np.outer(v, coef @ ws))
    assert_grad(G.mapping.weight, (A.T @ v).reshape(NUM_WS, W_DIM)[:, :, None] * (coef @ np64(z))[None, None, :])
    assert D.v.grad is None and stats.num("Loss/D/loss") == 0


def test_dmain_logistic_loss_stats_and_discriminator_gradients():
    G, D = StandInG(), StandInD()
    z, real = inputs()
    gain = 0.6
    stats = run_phase(make_loss(G, D), "Dmain", D, 0, z, real, gain)
    fake, _ = np_generate(G, z)
    real_flat, v, b = np64(real).reshape(N, -1), np64(D.v), float(np64(D.b))
    fake_scores, real_scores = fake @ v + b, real_flat @ v + b
    assert_stat(stats, "Loss/scores/fake", fake_scores)
    assert_stat(stats, "Loss/signs/fake", np.sign(fake_scores))
    assert_stat(stats, "Loss/scores/real", real_scores)
    assert_stat(stats, "Loss/signs/real", np.sign(real_scores))
    assert_stat(stats, "Loss/D/loss", softplus(fake_scores) + softplus(-real_scores))
    coef_fake, coef_real = sigmoid(fake_scores) * gain / N, -sigmoid(-real_scores) * gain / N
    assert_grad(D.v, coef_fake @ fake + coef_real @ real_flat)
    assert_grad(D.b, coef_fake.sum() + coef_real.sum())
    assert G.synthesis.weight.grad is None and stats.num("Loss/r1_penalty") == 0


def test_r1_of_a_linear_discriminator_is_gamma_w():
    G, D = StandInG(), StandInD()
    z, real = inputs()
    gamma, gain = 3.0, 2.5
    stats = run_phase(make_loss(G, D, r1_gamma=gamma), "Dreg", D, 0, z, real, gain)
    v = np64(D.v)
    penalty = np.full(N, v @ v)  # The input gradient of <v, x> + b is v for every sample.
    assert_stat(stats, "Loss/r1_penalty", penalty)
    assert_stat(stats, "Loss/D/reg", penalty * gamma / 2)
    assert_stat(stats, "Loss/scores/real", np64(real).reshape(N, -1) @ v + float(np64(D.b)))
    assert_grad(D.v, gamma * v * gain)  # d/dv mean(gamma/2 * ||v||^2) * gain.
    assert_grad(D.b, 0.0)
    assert stats.num("Loss/D/loss") == 0 and stats.num("Loss/scores/fake") == 0


def test_r1_of_a_tanh_discriminator_and_dboth_sums_both_parts():
    G, D = StandInG(), StandInD(hidden=HIDDEN)
    z, real = inputs()
    gamma, gain = 2.0, 0.8
    stats = run_phase(make_loss(G, D, r1_gamma=gamma), "Dboth", D, 0, z, real, gain)
    W, v, b = np64(D.W), np64(D.v), float(np64(D.b))
    fake, _ = np_generate(G, z)
    x = np64(real).reshape(N, -1)
    sech2 = 1 - np.tanh(x @ W.T) ** 2  # [N, hidden]
    r = (v * sech2) @ W  # Input gradient of v . tanh(W x) + b, per sample.
    penalty = (r**2).sum(1)
    assert_stat(stats, "Loss/r1_penalty", penalty)
    fake_scores, real_scores = np.tanh(fake @ W.T) @ v + b, np.tanh(x @ W.T) @ v + b
    assert_stat(stats, "Loss/D/loss", softplus(fake_scores) + softplus(-real_scores))
    coef_fake, coef_real = sigmoid(fake_scores) * gain / N, -sigmoid(-real_scores) * gain / N
    # Logistic part on v, plus R1: d ||r_i||^2 / dv_h = 2 sech2_ih (W r_i)_h.
    expected_v = coef_fake @ np.tanh(fake @ W.T) + coef_real @ np.tanh(x @ W.T)
    expected_v += gamma / 2 * gain / N * (2 * sech2 * (r @ W.T)).sum(0)
    assert_grad(D.v, expected_v)
    assert_grad(D.b, coef_fake.sum() + coef_real.sum())


@pytest.mark.parametrize(
    "phase, reported, absent",
    [
        ("Gmain", ["Loss/G/loss", "Loss/scores/fake"], ["Loss/pl_penalty", "Loss/D/loss", "Loss/r1_penalty"]),
        ("Greg", ["Loss/pl_penalty", "Loss/G/reg"], ["Loss/G/loss", "Loss/scores/fake", "Loss/D/loss"]),
        ("Gboth", ["Loss/G/loss", "Loss/pl_penalty"], ["Loss/D/loss", "Loss/r1_penalty"]),
        ("Dmain", ["Loss/D/loss", "Loss/scores/fake", "Loss/scores/real"], ["Loss/r1_penalty", "Loss/G/loss"]),
        ("Dreg", ["Loss/r1_penalty", "Loss/D/reg", "Loss/scores/real"], ["Loss/D/loss", "Loss/scores/fake"]),
        ("Dboth", ["Loss/D/loss", "Loss/r1_penalty", "Loss/scores/real"], ["Loss/G/loss", "Loss/pl_penalty"]),
    ],
)
def test_phases_run_their_parts_only(phase, reported, absent):
    G, D = StandInG(), StandInD()
    z, real = inputs()
    stats = run_phase(make_loss(G, D, r1_gamma=1.0), phase, G if phase.startswith("G") else D, 0, z, real, 1.0)
    assert all(stats.num(name) > 0 for name in reported), stats.as_dict()
    assert all(stats.num(name) == 0 for name in absent), stats.as_dict()


def test_zero_weights_switch_regularizers_off_and_bad_phase_is_rejected():
    G, D = StandInG(), StandInD()
    z, real = inputs()
    loss = make_loss(G, D, r1_gamma=0, pl_weight=0)
    stats = run_phase(loss, "Dreg", D, 0, z, real, 1.0)
    assert stats.num("Loss/r1_penalty") == 0 and D.v.grad is None
    stats = run_phase(loss, "Greg", G, 0, z, real, 1.0)
    assert stats.num("Loss/pl_penalty") == 0 and G.synthesis.weight.grad is None
    with pytest.raises(ValueError, match="phase"):
        loss.accumulate_gradients("Dmian", real, LABELS, z, LABELS, sync=True, gain=1.0)


# ------------------------------------------------------------------------------------------------------------
# 3. Path length, style mixing.


def expected_path_length(G, y, pl_mean, decay, weight, gain):
    """Closed form for img = A vec(ws): g_i = A^T y_i, l_i = sqrt(mean_k sum_w g_ikw^2). Returns the
    lengths, the new pl_mean, the penalties and d(mean(weight * penalty) * gain)/dA (pl_mean not detached)."""
    A = np64(G.synthesis.weight)
    y = np64(y).reshape(len(y), -1)
    g = y @ A
    lengths = np.sqrt((g**2).reshape(len(y), NUM_WS, W_DIM).sum(2).mean(1))
    new_mean = pl_mean + decay * (lengths.mean() - pl_mean)
    n = len(y)
    dloss_dl = weight * gain / n * (2 * (lengths - new_mean) - decay / n * (2 * (lengths - new_mean)).sum())
    grad_A = np.einsum("j,jp,jm->pm", dloss_dl / (NUM_WS * lengths), y, g)
    return lengths, new_mean, (lengths - new_mean) ** 2, grad_A


@pytest.mark.parametrize("batch, shrink", [(6, 3), (3, 1)])
def test_path_length_penalty_pl_mean_update_and_gradient(batch, shrink):
    G, D = StandInG(), StandInD()
    z = torch.randn([batch, Z_DIM], generator=torch.Generator().manual_seed(2))
    decay, weight, gain = 0.3, 2.0, 2.5
    loss = make_loss(G, D, pl_weight=weight, pl_decay=decay, pl_batch_shrink=shrink)
    n = batch // shrink
    pl_mean = 0.0
    for seed in (7, 8):  # The second step starts from the first step's pl_mean.
        G.mapping.calls.clear()
        stats = run_phase(loss, "Greg", G, seed, z, z.new_zeros([batch, *IMG_SHAPE]), gain)
        torch.manual_seed(seed)  # No style mixing: y is the first draw.
        y = torch.randn([n, *IMG_SHAPE]) / np.sqrt(IMG_SHAPE[1] * IMG_SHAPE[2])
        lengths, pl_mean, penalty, grad_A = expected_path_length(G, y, pl_mean, decay, weight, gain)
        assert len(G.mapping.calls) == 1 and torch.equal(G.mapping.calls[0][0], z[:n])
        assert float(loss.pl_mean) == pytest.approx(pl_mean, rel=1e-5)
        assert_stat(stats, "Loss/pl_penalty", penalty)
        assert_stat(stats, "Loss/G/reg", penalty * weight)
        assert_grad(G.synthesis.weight, grad_A)
        assert_grad(G.mapping.weight, 0.0)  # lengths do not depend on ws; the zero term still reaches it.


def find_seed(condition) -> int:
    return next(seed for seed in range(1000) if condition(seed))


def replay_style_mixing(seed: int, z_shape, prob: float) -> tuple[int, torch.Tensor]:
    """Style-mixing draws: cutoff in [1, NUM_WS), u ~ U[0, 1) (cutoff = NUM_WS if u >= prob), then z2."""
    torch.manual_seed(seed)
    cutoff = int(torch.randint(1, NUM_WS, []))
    if float(torch.rand([])) >= prob:
        cutoff = NUM_WS
    return cutoff, torch.randn(z_shape)


@pytest.mark.parametrize("mixes", [True, False])
def test_style_mixing_draw_order_and_rows_from_second_mapping_call(mixes):
    G, D = StandInG(), StandInD()
    z, real = inputs()
    prob = 0.5
    seed = find_seed(lambda s: (replay_style_mixing(s, z.shape, prob)[0] < NUM_WS) == mixes)
    cutoff, z2 = replay_style_mixing(seed, z.shape, prob)
    run_phase(make_loss(G, D, style_mixing_prob=prob), "Gmain", G, seed, z, real, 1.0)
    assert [flag for _, flag in G.mapping.calls] == [False, True]  # Only the first call updates w_avg.
    assert torch.equal(G.mapping.calls[0][0], z) and torch.equal(G.mapping.calls[1][0], z2)
    with torch.no_grad():
        ws1 = torch.einsum("kwz,nz->nkw", G.mapping.weight, z)
        ws2 = torch.einsum("kwz,nz->nkw", G.mapping.weight, z2)
    expected = torch.cat([ws1[:, :cutoff], ws2[:, cutoff:]], dim=1)
    torch.testing.assert_close(G.synthesis.inputs[-1], expected, rtol=0, atol=0)


def test_path_length_noise_is_drawn_after_the_style_mixing_draws():
    G, D = StandInG(), StandInD()
    z = torch.randn([4, Z_DIM], generator=torch.Generator().manual_seed(3))
    decay, weight, gain = 0.5, 2.0, 1.0
    loss = make_loss(G, D, style_mixing_prob=0.9, pl_decay=decay)
    stats = run_phase(loss, "Greg", G, 4, z, z.new_zeros([4, *IMG_SHAPE]), gain)
    _, z2 = replay_style_mixing(4, [2, Z_DIM], 0.9)  # pl_batch_shrink = 2: two samples.
    y = torch.randn([2, *IMG_SHAPE]) / np.sqrt(IMG_SHAPE[1] * IMG_SHAPE[2])
    assert torch.equal(G.mapping.calls[1][0], z2)
    _, _, penalty, grad_A = expected_path_length(G, y, 0.0, decay, weight, gain)
    assert_stat(stats, "Loss/pl_penalty", penalty)
    assert_grad(G.synthesis.weight, grad_A)


# ------------------------------------------------------------------------------------------------------------
# 4. AdaptiveMix, release variant, inside the loss.


def neg_cosine(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    u, t = u.flatten(1), t.flatten(1)
    return -(u * t).sum(1) / (u.norm(dim=1) * t.norm(dim=1))


def literal_release_call(D, x, perm, lam, eps):
    """The release's mixed D call with three F passes: logits J(m) + J(F(x_hat)) [N] and -cos(F(x_hat), sg(m + eps)) [N]."""
    x_b = x[perm]
    f_hat = D.features(lam * x + (1 - lam) * x_b, None)[0]
    f_a, f_b = D.features(x, None)[0], D.features(x_b, None)[0]
    m = lam * f_a + (1 - lam) * f_b
    logits = D.head((m, None), None) + D.head((f_hat, None), None)
    return logits.flatten(), neg_cosine(f_hat, (m + eps).detach())


def release_r1_input_grad(D, x, perm, lam):
    """Closed-form d(sum logits)/dx of the mixed call for F = tanh(W .), linear J: per sample k,
    q(x_k) + lam q(x_hat_k) + (1 - lam) sum_{i: perm[i] = k} q(x_hat_i), with q(u) = W^T (v * sech^2(W u))."""
    flat = x.flatten(1)
    q = lambda u: (D.v * (1 - torch.tanh(u @ D.W.T) ** 2)) @ D.W  # noqa: E731
    q_hat = q(lam * flat + (1 - lam) * flat[perm])
    return (q(flat) + lam * q_hat).index_add(0, perm, (1 - lam) * q_hat)


def params_grad(value: torch.Tensor, module: torch.nn.Module) -> dict[str, np.ndarray]:
    """d value / d parameter for every parameter of `module` (zero where it does not take part)."""
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return {name: np64(g) if g is not None else np.zeros(p.shape) for name, p, g in zip(names, params, grads)}


def assert_module_grads(module, expected: dict[str, np.ndarray]) -> None:
    for name, param in module.named_parameters():
        assert_grad(param, expected[name])


@pytest.mark.parametrize("noise_std", [0.0, 0.2])
def test_release_adaptivemix_in_gmain_dmain_and_not_in_r1(noise_std):
    G, D = StandInG(), StandInD(hidden=HIDDEN)
    z, real = inputs()
    gamma, gain = 3.0, 1.3
    loss = make_loss(G, D, r1_gamma=gamma, adaptivemix=True, noise_std=noise_std)
    sp = torch.nn.functional.softplus

    stats = run_phase(loss, "Gmain", G, 11, z, real, gain)
    reseed(11)
    logits, shrink = literal_release_call(D, G.synthesis(G.mapping(z, LABELS)), *replay_mix(N, noise_std, HIDDEN))
    assert_stat(stats, "Loss/scores/fake", np64(logits))
    assert_stat(stats, "Loss/adaptivemix", np64(shrink))
    assert_stat(stats, "Loss/G/loss", np64(sp(-logits) + shrink))
    assert_module_grads(G, params_grad((sp(-logits) + shrink).mean() * gain, G))

    stats = run_phase(loss, "Dmain", D, 12, z, real, gain)
    reseed(12)
    with torch.no_grad():
        fake = G.synthesis(G.mapping(z, LABELS))
    fake_logits, fake_shrink = literal_release_call(D, fake, *replay_mix(N, noise_std, HIDDEN))
    real_logits, real_shrink = literal_release_call(D, real, *replay_mix(N, noise_std, HIDDEN))
    assert_stat(stats, "Loss/scores/real", np64(real_logits))
    assert_stat(stats, "Loss/adaptivemix", np.concatenate([np64(fake_shrink), np64(real_shrink)]))
    total = sp(fake_logits) + fake_shrink + sp(-real_logits) + real_shrink
    assert_stat(stats, "Loss/D/loss", np64(total))
    assert_module_grads(D, params_grad(total.mean() * gain, D))

    stats = run_phase(loss, "Dreg", D, 13, z, real, gain)
    rng_after = torch.rand([3])
    reseed(13)
    perm, lam, _ = replay_mix(N, noise_std, HIDDEN)
    assert torch.equal(torch.rand([3]), rng_after)  # eps is drawn although Dreg does not use it.
    penalty = release_r1_input_grad(D, real, perm, lam).square().sum(1)
    assert_stat(stats, "Loss/r1_penalty", np64(penalty))
    assert_stat(stats, "Loss/scores/real", np64(literal_release_call(D, real, perm, lam, 0.0)[0]))
    assert stats.num("Loss/adaptivemix") == 0
    assert_module_grads(D, params_grad((penalty * gamma / 2).mean() * gain, D))


# ------------------------------------------------------------------------------------------------------------
# 6. AdaptiveMix, paper variant (reals mixed with fakes, L2, clean logits).


def literal_paper_terms(D, real, fake, perm, lam, eps):
    """Clean logits J(F(real)), J(F(fake)) [N] and ||F(lam real + (1-lam) fake[perm]) - target||_2 [N], with the
    gradient through the target too (Eq. 6 has no stop-gradient)."""
    f_real, f_fake = D.features(real, None)[0], D.features(fake, None)[0]
    f_hat = D.features(lam * real + (1 - lam) * fake[perm], None)[0]
    target = lam * f_real + (1 - lam) * f_fake[perm] + eps
    shrink = (f_hat - target).square().sum(1).sqrt()
    return D.head((f_real, None), None).flatten(), D.head((f_fake, None), None).flatten(), shrink


@pytest.mark.parametrize("noise_std", [0.0, 0.2])
def test_paper_adaptivemix_in_gmain_and_dmain_not_in_r1(noise_std):
    G, D = StandInG(), StandInD(hidden=HIDDEN)
    z, real = inputs()
    gamma, gain = 2.0, 0.9
    loss = make_loss(G, D, r1_gamma=gamma, adaptivemix=True, adaptivemix_form="paper", noise_std=noise_std)
    sp = torch.nn.functional.softplus

    stats = run_phase(loss, "Gmain", G, 21, z, real, gain)
    reseed(21)
    fake = G.synthesis(G.mapping(z, LABELS))
    _, fake_logits, shrink = literal_paper_terms(D, real, fake, *replay_mix(N, noise_std, HIDDEN))
    assert_stat(stats, "Loss/scores/fake", np64(fake_logits))
    assert_stat(stats, "Loss/adaptivemix", np64(shrink))
    assert_stat(stats, "Loss/G/loss", np64(sp(-fake_logits) + shrink))
    assert_module_grads(G, params_grad((sp(-fake_logits) + shrink).mean() * gain, G))

    stats = run_phase(loss, "Dmain", D, 22, z, real, gain)
    reseed(22)
    with torch.no_grad():
        fake = G.synthesis(G.mapping(z, LABELS))
    real_logits, fake_logits, shrink = literal_paper_terms(D, real, fake, *replay_mix(N, noise_std, HIDDEN))
    total = sp(fake_logits) + sp(-real_logits) + shrink
    assert_stat(stats, "Loss/scores/real", np64(real_logits))
    assert_stat(stats, "Loss/scores/fake", np64(fake_logits))
    assert_stat(stats, "Loss/adaptivemix", np64(shrink))
    assert_stat(stats, "Loss/D/loss", np64(total))
    assert_module_grads(D, params_grad(total.mean() * gain, D))

    stats = run_phase(loss, "Dreg", D, 23, z, real, gain)
    flat = real.flatten(1)
    penalty = ((D.v * (1 - torch.tanh(flat @ D.W.T) ** 2)) @ D.W).square().sum(1)  # Plain R1 on J(F(x)).
    assert_stat(stats, "Loss/r1_penalty", np64(penalty))
    assert stats.num("Loss/adaptivemix") == 0
    assert_module_grads(D, params_grad((penalty * gamma / 2).mean() * gain, D))
