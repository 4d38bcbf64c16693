"""labs.dcgan: network shapes, the loss assembly against direct computations, clipping in training, the batch
stream, and the CLI end to end with resume (tiny zip, seconds)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import make_image_zip

from adaptivemix.mixing import shrinkage_loss
from labs.common.data import BatchStream, stack_images, to_float
from labs.common.losses import DCGANLosses, LossSettings
from labs.dcgan import cli as dcgan
from labs.dcgan.networks import Discriminator, Generator
from labs.dcgan.train import DCGANRun, RunConfig


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_32(channels):
    G = Generator(channels, 32, width=64)
    D = Discriminator(channels, 32, width=64)
    x = G(torch.randn(4, 100))
    assert x.shape == (4, channels, 32, 32)
    assert x.abs().max() <= 1
    assert D.features(x).shape == (4, 256, 4, 4)
    assert D(x).shape == (4, 1)
    assert Discriminator(channels, 32, width=8, head="mean")(x).shape == (4, 1)
    assert Discriminator(channels, 32, width=8, mbdisc=True)(x).shape == (4, 1)
    assert Generator(channels, 32, width=8, norm="vbn")(torch.randn(3, 100)).shape == (
        3,
        channels,
        32,
        32,
    )


def test_mean_head_is_the_mean_of_the_features():
    D = Discriminator(1, 32, width=8, head="mean")
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(D(x)[:, 0], D.features(x).flatten(1).mean(dim=1))


def test_bad_resolution_is_one_clear_error():
    with pytest.raises(ValueError, match="power-of-two size"):
        Generator(1, 28)


def _nets(seed=0, head="conv"):
    torch.manual_seed(seed)
    return Generator(1, 32, width=8), Discriminator(1, 32, width=8, norm="none", head=head)


def test_plain_losses_against_direct_computation():
    G, D = _nets()
    real, fake = torch.rand(6, 1, 32, 32) * 2 - 1, torch.rand(6, 1, 32, 32) * 2 - 1
    s_r, s_f = D(real).flatten().detach(), D(fake).flatten().detach()
    losses = DCGANLosses(LossSettings(objective="hinge"), G, D)
    expected = torch.relu(1 - s_r).mean() + torch.relu(1 + s_f).mean()
    torch.testing.assert_close(losses.d_loss(real, fake).detach(), expected)
    torch.testing.assert_close(losses.g_loss(real, fake).detach(), -s_f.mean())
    smoothed = DCGANLosses(LossSettings(objective="ns", label_smoothing=0.9), G, D)
    expected = (0.9 * F.softplus(-s_r) + 0.1 * F.softplus(s_r)).mean() + F.softplus(s_f).mean()
    torch.testing.assert_close(smoothed.d_loss(real, fake).detach(), expected)


def test_paper_form_adaptivemix_against_direct_computation():
    # Eq. 6 with J = mean: D loss = mean J(F(fake)) - mean J(F(real)) + mean_i ||F(x_hat_i) - (lam f_r + (1-lam) f_f[pi] + eps)||.
    G, D = _nets(head="mean")
    real, fake = torch.rand(5, 1, 32, 32) * 2 - 1, torch.rand(5, 1, 32, 32) * 2 - 1
    losses = DCGANLosses(LossSettings(objective="wgan", adaptivemix=True, adaptivemix_form="paper"), G, D)
    torch.manual_seed(7)
    np.random.seed(7)
    got = losses.d_loss(real, fake).detach()
    torch.manual_seed(7)
    np.random.seed(7)
    perm = torch.randperm(5)
    lam = np.random.beta(1.0, 1.0)
    eps = torch.randn(5, 32, 4, 4) * 0.05
    with torch.no_grad():
        f_r, f_f = D.features(real), D.features(fake)
        f_hat = D.features(lam * real + (1 - lam) * fake[perm])
        target = lam * f_r + (1 - lam) * f_f[perm] + eps
        shrink = (f_hat - target).flatten(1).norm(dim=1).mean()
        adv = f_f.flatten(1).mean(1).mean() - f_r.flatten(1).mean(1).mean()
    torch.testing.assert_close(got, adv + shrink, rtol=1e-5, atol=1e-6)


def test_release_form_adaptivemix_against_direct_computation():
    # Release form, G step: logits J(m) + J(F(x_hat)) within the fake batch, negative cosine to the noisy mix.
    G, D = _nets()
    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    losses = DCGANLosses(
        LossSettings(objective="ns", adaptivemix=True, adaptivemix_form="release", adaptivemix_weight=0.5),
        G,
        D,
    )
    torch.manual_seed(3)
    np.random.seed(3)
    got = losses.g_loss(real, fake).detach()
    torch.manual_seed(3)
    np.random.seed(3)
    perm = torch.randperm(4)
    lam = np.random.beta(1.0, 1.0)
    with torch.no_grad():
        f_hat = D.features(lam * fake + (1 - lam) * fake[perm])
        f = D.features(fake)
        m = lam * f + (1 - lam) * f[perm]
        target = m + torch.randn(m.shape) * 0.05
        logits = D.head(m) + D.head(f_hat)
        expected = F.softplus(-logits).mean() + 0.5 * shrinkage_loss(f_hat, target, "cosine").mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_wgan_training_keeps_weights_clipped():
    images = torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8)
    run = DCGANRun(
        RunConfig(
            objective="wgan",
            kimg=1,
            batch=8,
            width=8,
            optimizer="rmsprop",
            lr=0.5,
            n_critic=5,
            clip=0.01,
        ),
        images,
    )
    for _ in range(3):
        run.step()
    assert max(p.abs().max().item() for p in run.D.parameters()) <= 0.01
    assert run.images_seen == 24 and run.d_steps == 3


def test_batch_stream_covers_each_pass_and_resumes():
    stream = BatchStream(10, 4, seed=1)
    first_pass = torch.cat([stream.next(), stream.next(), stream.next()])[:10]
    assert sorted(first_pass.tolist()) == list(range(10))
    state = stream.state_dict()
    ahead = [stream.next() for _ in range(3)]
    resumed = BatchStream(10, 4, seed=99)
    resumed.load_state_dict(state)
    for expected in ahead:
        assert torch.equal(resumed.next(), expected)


def _cli(args):
    result = CliRunner().invoke(dcgan.main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_end_to_end_with_resume(tmp_path):
    data = make_image_zip(tmp_path / "d.zip", num_images=24, resolution=32, channels=3)
    common = [
        "--data",
        str(data),
        "--objective",
        "ns",
        "--batch",
        "8",
        "--width",
        "4",
        "--eval-every",
        "0.016",
        "--seed",
        "3",
    ]
    full = _cli([*common, "--outdir", str(tmp_path / "full"), "--kimg", "0.032"])
    assert "Training ns" in full
    _cli([*common, "--outdir", str(tmp_path / "part"), "--kimg", "0.016"])
    # The snapshot as labs.dcgan saved it before the one AdaptiveMix vocabulary (amix_form, ada_weight).
    state = torch.load(tmp_path / "part" / "snapshot.pt", weights_only=True)
    losses = state["config"]["losses"]
    losses["amix_form"], losses["ada_weight"] = losses.pop("adaptivemix_form"), losses.pop("adaptivemix_weight")
    torch.save(state, tmp_path / "part" / "snapshot.pt")
    resumed = _cli(
        [
            "--data",
            str(data),
            "--outdir",
            str(tmp_path / "part"),
            "--resume",
            "--kimg",
            "0.032",
        ]
    )
    assert "Training ns" in resumed
    lines = [json.loads(s) for s in (tmp_path / "part" / "results.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in lines] == [0.016, 0.032]
    assert set(lines[0]) == {"kimg", "fid", "kid", "seconds"}
    assert (tmp_path / "part" / "fakes0000032.png").is_file()
    full_state = torch.load(tmp_path / "full" / "snapshot.pt", weights_only=True)
    part_state = torch.load(tmp_path / "part" / "snapshot.pt", weights_only=True)
    for key in full_state["G"]:  # Resuming trains exactly as the uninterrupted run.
        torch.testing.assert_close(part_state["G"][key], full_state["G"][key], rtol=0, atol=0)
    again = _cli(["--data", str(data), "--outdir", str(tmp_path / "part"), "--resume"])
    assert "already reached 0.032 kimg" in again


def test_cli_metrics_with_a_detector_file(tmp_path, monkeypatch):
    from metrics import domain_classifier

    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    data = make_image_zip(tmp_path / "d.zip", num_images=16, resolution=32, channels=1)
    torch.manual_seed(0)
    detector = tmp_path / "det.pt"
    domain_classifier.save(
        domain_classifier.DomainClassifier(2, in_channels=1, channels=(4,), hidden=8),
        str(detector),
        {},
    )
    out = _cli(
        [
            "--data",
            str(data),
            "--outdir",
            str(tmp_path / "run"),
            "--objective",
            "wgan-gp",
            "--batch",
            "8",
            "--width",
            "4",
            "--kimg",
            "0.016",
            "--eval-every",
            "0.008",
            "--metric-detector",
            str(detector),
            "--metric-images",
            "16",
            "--adaptivemix",
        ]
    )
    lines = [json.loads(s) for s in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    fids = [r["fid"] for r in lines]
    assert len(fids) == 2 and all(f > 0 for f in fids)
    assert f"min FID {min(fids):.2f}" in out
    assert f"{np.mean(fids):.2f} ± {np.std(fids, ddof=1):.2f}" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--objective", "hinge", "--label-smoothing", "0.9", "--kimg", "1"],
            "applies to the logistic loss only",
        ),
        ([], "give the training length"),
        (["--kimg", "1", "--epochs", "1"], "give --kimg or --epochs, not both"),
    ],
)
def test_cli_bad_options_give_one_line(tmp_path, args, message):
    data = make_image_zip(tmp_path / "d.zip", num_images=8, resolution=32, channels=1)
    result = CliRunner().invoke(dcgan.main, ["--data", str(data), "--outdir", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output


def test_stacked_channel_k_of_image_i_is_dataset_image_pi_k_of_i():
    images = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    stacked, perms = stack_images(images, 3, seed=4)
    assert stacked.shape == (12, 3, 8, 8) and perms.shape == (3, 12)
    for k in range(3):
        assert sorted(perms[k].tolist()) == list(range(12))  # each channel uses every dataset image once
        for i in range(12):
            assert torch.equal(stacked[i, k], images[perms[k, i], 0])
    assert not torch.equal(perms[0], perms[1])  # independent draws
    assert torch.equal(stack_images(images, 3, seed=4)[0], stacked)  # one fixed data set per seed


def test_packed_d_sees_the_m_images_in_order_and_pack1_is_plain():
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    run = DCGANRun(RunConfig(objective="ns", kimg=1, batch=2, width=4, z_dim=8, pack=3), images)
    assert run.D.feature_net[0].in_channels == 3
    seen = []
    run.D.feature_net.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    order = run.stream.perm[run.stream.pos : run.stream.pos + 6].clone()  # 2 packed inputs of 3 images each
    run.step()
    real = seen[0]  # D's first call of the step is on the real batch.
    assert real.shape == (2, 3, 8, 8) and run.images_seen == 6
    for j in range(2):
        expected = torch.cat([to_float(images[order[3 * j + i]]) for i in range(3)])
        assert torch.equal(real[j], expected)
    trained = []
    for extra in ({}, {"pack": 1}):  # Built and trained in turn: both draw from the global RNGs.
        r = DCGANRun(RunConfig(objective="ns", kimg=1, batch=4, width=4, z_dim=8, **extra), images)
        for _ in range(3):
            r.step()
        trained.append(r)
    for a, b in zip(trained[0].G.state_dict().values(), trained[1].G.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_stack_and_pack_train_and_resume(tmp_path):
    data = make_image_zip(tmp_path / "d.zip", num_images=12, resolution=32, channels=1)
    out = tmp_path / "o"
    args = ["--data", str(data), "--outdir", str(out), "--objective=ns", "--width=4", "--z-dim=8", "--batch=2"]
    result = CliRunner().invoke(dcgan.main, [*args, "--stack=3", "--pack=2", "--kimg=0.008"])
    assert result.exit_code == 0, result.output
    assert "(3, 32, 32)" in result.output
    state = torch.load(out / "snapshot.pt", weights_only=True)
    assert state["config"]["stack"] == 3 and state["config"]["pack"] == 2 and state["images_seen"] == 8
    assert state["D"]["feature_net.0.weight"].shape[1] == 6  # 2 packed images of 3 channels
    again = CliRunner().invoke(dcgan.main, [*args, "--resume", "--kimg=0.016"])
    assert again.exit_code == 0, again.output
    assert torch.load(out / "snapshot.pt", weights_only=True)["images_seen"] == 16
    bad = CliRunner().invoke(
        dcgan.main,
        [*args[:2], "--outdir", str(tmp_path / "b"), "--stack=3", "--kimg=1", "--metric-detector", str(data)],
    )
    assert bad.exit_code == 2 and "labs.modes" in bad.output
