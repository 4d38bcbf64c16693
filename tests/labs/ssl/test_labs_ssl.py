"""labs.ssl: the K+1-class losses against an explicit (K+1)-way softmax on hand-made logits, the labelled-subset
selection, the networks' shapes, and the CLI end to end with resume (tiny zips, seconds)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip

from labs.ssl import cli as ssl
from labs.ssl.losses import (
    select_labelled,
    supervised_loss,
    unsupervised_fake_loss,
    unsupervised_real_loss,
)
from labs.ssl.networks import SSLDiscriminator, SSLGenerator
from labs.ssl.train import SSLConfig, SSLRun

LOGITS = np.array([[2.0, -1.0, 0.5], [-3.0, -2.5, -4.0], [0.0, 0.0, 0.0], [5.0, 1.0, -2.0]])
LABELS = np.array([0, 1, 2, 0])


def _k_plus_1_probs(logits):
    """Softmax over the K logits and an appended fixed zero logit (the 'generated' class), computed directly."""
    full = np.concatenate([logits, np.zeros([len(logits), 1])], axis=1)
    e = np.exp(full)
    return e / e.sum(axis=1, keepdims=True)


def test_k_plus_1_losses_against_explicit_softmax():
    p = _k_plus_1_probs(LOGITS)
    p_real = 1 - p[:, -1]
    # Supervised: -log p(y | x, y < K+1) = -log(p_y / (1 - p_{K+1})).
    expected_sup = -np.log(p[np.arange(4), LABELS] / p_real).mean()
    expected_real = -np.log(p_real).mean()  # -log(1 - p(K+1 | x)) on real data.
    expected_fake = -np.log(p[:, -1]).mean()  # -log p(K+1 | G(z)) on generated data.
    logits = torch.tensor(LOGITS)
    assert supervised_loss(logits, torch.tensor(LABELS)).item() == pytest.approx(expected_sup, rel=1e-12)
    assert unsupervised_real_loss(logits).item() == pytest.approx(expected_real, rel=1e-12)
    assert unsupervised_fake_loss(logits).item() == pytest.approx(expected_fake, rel=1e-12)


def test_zero_logits_give_hand_values():
    # K = 3 zero logits: Z = 3, D(x) = 3/4; supervised log 3, real -log(3/4), fake log 4.
    z = torch.zeros(2, 3)
    assert supervised_loss(z, torch.tensor([0, 2])).item() == pytest.approx(np.log(3))
    assert unsupervised_real_loss(z).item() == pytest.approx(-np.log(0.75))
    assert unsupervised_fake_loss(z).item() == pytest.approx(np.log(4))


def test_select_labelled_takes_exactly_n_per_class_and_is_seeded():
    labels = torch.tensor([0, 1, 2] * 20 + [1] * 7)
    chosen = select_labelled(labels, 5, seed=3)
    assert len(chosen) == 15 and len(set(chosen.tolist())) == 15
    assert torch.bincount(labels[chosen]).tolist() == [5, 5, 5]
    assert torch.equal(chosen, select_labelled(labels, 5, seed=3))
    assert not torch.equal(chosen, select_labelled(labels, 5, seed=4))
    with pytest.raises(ValueError, match="class 0 has only 20 images"):
        select_labelled(labels, 21, seed=0)


def test_network_shapes_and_noise_only_in_training():
    D, G = SSLDiscriminator(1024, 10), SSLGenerator((1, 32, 32))
    x = G(torch.rand(4, 100))
    assert x.shape == (4, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert D.features(x).shape == (4, 250) and D(x).shape == (4, 10)
    D.eval()
    torch.testing.assert_close(D(x), D(x))  # Deterministic without the Gaussian noise layers.
    D.train()
    assert not torch.equal(D(x), D(x))


def _pre_activations(net, run):
    """Outputs of every weight-normed Linear of `net` during `run()` (forward hooks)."""
    outs, hooks = [], []
    for m in net.modules():
        if isinstance(m, torch.nn.Linear) and hasattr(m, "parametrizations"):
            hooks.append(m.register_forward_hook(lambda _m, _i, out: outs.append(out.detach().clone())))
    run()
    for h in hooks:
        h.remove()
    return outs


def test_data_dependent_init_gives_unit_pre_activations_on_its_batch():
    torch.manual_seed(0)
    D, G = SSLDiscriminator(64, 3), SSLGenerator((1, 8, 8))
    x = torch.rand(50, 1, 8, 8)
    before = [t.var(dim=0, unbiased=False) for t in _pre_activations(D, lambda: D(x))]
    outs = _pre_activations(D, lambda: D.init_from_data(x))  # Training mode: the noise layers are on.
    outs += _pre_activations(G, lambda: G.init_from_data(torch.rand(40, 100)))
    assert len(outs) == 7  # D's five hidden layers and head, G's output layer.
    for t in outs:
        torch.testing.assert_close(t.mean(dim=0), torch.zeros(t.shape[1]), rtol=0, atol=1e-5)
        torch.testing.assert_close(t.var(dim=0, unbiased=False), torch.ones(t.shape[1]), rtol=0, atol=1e-4)
    assert max(float((v - 1).abs().max()) for v in before) > 0.5  # The default initialisation is far from it.
    v = D.feature_net[1].parametrizations.weight.original1
    assert abs(float(v.detach().std()) - 0.05) < 0.005  # v ~ N(0, 0.05^2) before the pass.


def _tiny_run(**kwargs):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 1, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.arange(30) % 3
    return SSLRun(SSLConfig(labels_per_class=2, epochs=1, batch=6, **kwargs), (images, labels), (images, labels))


def _shrinkage(run, x, seed):
    run.D.eval()  # No Gaussian noise in D, so the only randomness is the mix draw and the target noise.
    torch.manual_seed(seed)
    np.random.seed(seed)
    with torch.no_grad():
        return float(run.shrinkage(x, run.D.features(x)))


def test_mse_distance_is_the_squared_distance_of_unit_features():
    run = _tiny_run(adaptivemix=True, adaptivemix_distance="mse", noise_std=0.05)
    x = torch.rand(6, 1, 4, 4)
    got = _shrinkage(run, x, seed=5)
    # Direct computation, drawing in the documented order: partner permutation, lambda, target noise.
    torch.manual_seed(5)
    np.random.seed(5)
    perm, lam = torch.randperm(6), float(np.random.beta(1.0, 1.0))
    with torch.no_grad():
        f = run.D.features(x).numpy().astype(np.float64)
        f_hat = run.D.features(lam * x + (1 - lam) * x[perm]).numpy().astype(np.float64)
    eps = torch.randn(6, 250).numpy() * 0.05
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    target = lam * unit + (1 - lam) * unit[perm.numpy()] + eps
    expected = ((f_hat / np.linalg.norm(f_hat, axis=1, keepdims=True) - target) ** 2).mean()
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("distance, power", [("mse", 0), ("mse-raw", 2)])
def test_mse_is_scale_free_and_mse_raw_grows_with_the_feature_scale(distance, power):
    run = _tiny_run(adaptivemix=True, adaptivemix_distance=distance, noise_std=0.0)
    x = torch.rand(6, 1, 4, 4)
    base = _shrinkage(run, x, seed=1)
    last = run.D.feature_net[-2]  # F's last Linear, before its ReLU: scaling g and b scales F by 10.
    with torch.no_grad():
        last.parametrizations.weight.original0.mul_(10)
        last.bias.mul_(10)
    assert base > 0 and _shrinkage(run, x, seed=1) == pytest.approx(base * 10**power, rel=1e-4)


def test_salimans_recipe_keeps_labelled_images_out_of_the_unlabelled_pool():
    lab, sal = _tiny_run(), _tiny_run(recipe="salimans")
    assert len(lab.unlabelled) == 30 and torch.equal(lab.labelled, sal.labelled)
    assert sorted(sal.unlabelled.tolist()) == sorted(set(range(30)) - set(sal.labelled.tolist()))
    with pytest.raises(ValueError, match="unknown AdaptiveMix distance 'l1'"):
        _tiny_run(adaptivemix_distance="l1")


def _run(args):
    result = CliRunner().invoke(ssl.main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def zips(tmp_path):
    return (
        make_image_zip(
            tmp_path / "train.zip",
            num_images=24,
            resolution=8,
            channels=1,
            num_classes=3,
        ),
        make_image_zip(
            tmp_path / "test.zip",
            num_images=9,
            resolution=8,
            channels=1,
            num_classes=3,
            seed=1,
        ),
    )


def test_cli_end_to_end_with_resume(tmp_path, zips):
    train, test = zips
    common = [
        "--data",
        str(train),
        "--test-data",
        str(test),
        "--labels-per-class",
        "2",
        "--batch",
        "6",
        "--adaptivemix",
        "--adaptivemix-distance",
        "mse",
        "--recipe",
        "salimans",
    ]
    full = _run([*common, "--outdir", str(tmp_path / "full"), "--epochs", "2"])
    assert full.strip().splitlines()[-1].startswith("test error ") and full.strip().endswith("%")
    _run([*common, "--outdir", str(tmp_path / "part"), "--epochs", "1"])
    # The snapshot as labs.ssl saved it before the one AdaptiveMix vocabulary (ada_weight, ada_distance).
    state = torch.load(tmp_path / "part" / "snapshot.pt", weights_only=True)
    config = state["config"]
    config["ada_weight"], config["ada_distance"] = config.pop("adaptivemix_weight"), config.pop("adaptivemix_distance")
    torch.save(state, tmp_path / "part" / "snapshot.pt")
    _run(
        [
            "--data",
            str(train),
            "--test-data",
            str(test),
            "--outdir",
            str(tmp_path / "part"),
            "--resume",
            "--epochs",
            "2",
        ]
    )
    lines = [json.loads(s) for s in (tmp_path / "part" / "results.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    full_lines = [json.loads(s) for s in (tmp_path / "full" / "results.jsonl").read_text().splitlines()]
    assert [r["test_error"] for r in lines] == [r["test_error"] for r in full_lines]
    a = torch.load(tmp_path / "full" / "snapshot.pt", weights_only=True)["D"]
    b = torch.load(tmp_path / "part" / "snapshot.pt", weights_only=True)["D"]
    for key in a:  # Resuming trains exactly as the uninterrupted run.
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_cli_supervised_baseline_and_bad_input(tmp_path, zips):
    train, test = zips
    out = _run(
        [
            "--data",
            str(train),
            "--test-data",
            str(test),
            "--outdir",
            str(tmp_path / "sup"),
            "--no-gan",
            "--labels-per-class",
            "1",
            "--batch",
            "4",
            "--epochs",
            "1",
        ]
    )
    assert "supervised only: 1 labels per class (3 labelled, 24 unlabelled)" in out
    result = CliRunner().invoke(
        ssl.main,
        [
            "--data",
            str(train),
            "--test-data",
            str(test),
            "--outdir",
            str(tmp_path / "x"),
            "--labels-per-class",
            "9",
        ],
    )
    assert result.exit_code == 2 and "has only 8 images, fewer than --labels-per-class=9" in result.output
