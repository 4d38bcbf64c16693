"""The technique options in train.py, the loss and the training loop: options, a few iterations each, exact resume."""

import json

import pytest
import torch
from click.testing import CliRunner
from test_training_loop import read_stats, tiny_loop_kwargs

import legacy
import train
from torch_utils import training_stats
from training.loss import StyleGAN2Loss
from training.networks import Discriminator, Generator
from training.resume import state as resume_state
from training.training_loop import training_loop

TECHNIQUES = dict(fm_weight=0.5, label_smoothing=0.9, bures_weight=1.0, hist_avg_weight=0.01)


def run_train(*args):
    return CliRunner().invoke(train.main, list(args), catch_exceptions=False)


# ---------------------------------------------------------------- options


def test_dry_run_shows_the_techniques(tiny_zip, tmp_path):
    result = run_train(
        f"--outdir={tmp_path}",
        f"--data={tiny_zip}",
        "--cfg=tiny",
        "--device=cpu",
        "--dry-run",
        "--fm-weight=0.5",
        "--label-smoothing=0.9",
        "--bures-alt=1",
        "--hist-avg-weight=0.01",
        "--mbdisc=1",
        "--adaptivemix=1",
        "--apa=1",
    )
    assert result.exit_code == 0, result.output
    text = result.output
    options = json.loads(text[text.index("{") : text.index("\n}\n") + 2])
    loss = options["loss_kwargs"]
    assert loss["fm_weight"] == 0.5 and loss["label_smoothing"] == 0.9 and loss["bures_alt"] is True
    assert loss["hist_avg_weight"] == 0.01 and "bures_weight" not in loss
    assert options["D_kwargs"]["epilogue_kwargs"]["mbdisc_kernels"] == 100
    assert (
        "Techniques:" in text
        and "Alt-Bures" in text
        and "minibatch discrimination B=100 C=5 (with minibatch-std)" in text
    )
    assert "-fm0.5-ls0.9-altbures-histavg0.01-mbdisc" in text


def test_techniques_are_off_by_default(tiny_zip, tmp_path):
    result = run_train(f"--outdir={tmp_path}", f"--data={tiny_zip}", "--cfg=tiny", "--device=cpu", "--dry-run")
    text = result.output
    options = json.loads(text[text.index("{") : text.index("\n}\n") + 2])
    assert not {"fm_weight", "label_smoothing", "bures_weight", "bures_alt", "hist_avg_weight"} & set(
        options["loss_kwargs"]
    )
    assert "mbdisc_kernels" not in options["D_kwargs"]["epilogue_kwargs"] and "Techniques:         none" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fm-weight=-1"], "--fm-weight must be >= 0"),
        (["--label-smoothing=0.2"], "--label-smoothing is the real target"),
        (["--bures-weight=1", "--bures-alt=1"], "--bures-alt=1 is the parameter-free"),
        (["--hist-avg-weight=-0.1"], "--hist-avg-weight must be >= 0"),
    ],
)
def test_bad_technique_options_give_one_line_errors(args, message, tiny_zip, tmp_path):
    result = CliRunner().invoke(
        train.main, [f"--outdir={tmp_path}", f"--data={tiny_zip}", "--cfg=tiny", "--device=cpu", "--dry-run", *args]
    )
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- loss


def tiny_networks():
    torch.manual_seed(0)
    G = Generator(
        8, 0, 8, 16, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16)
    )
    D = Discriminator(0, 16, 3, channel_base=128, channel_max=16, epilogue_kwargs=dict(mbstd_group_size=2))
    return G, D


def collect(fn):
    collector = training_stats.Collector(regex="Loss/.*")
    fn()
    collector.update()
    return {name: collector.mean(name) for name in collector.names() if collector.num(name) > 0}


def test_alt_bures_alternates_g_updates_and_counts_only_completed_updates():
    G, D = tiny_networks()
    loss = StyleGAN2Loss("cpu", G, D, bures_alt=True, pl_weight=0, style_mixing_prob=0)
    real, z, c = torch.randn(4, 3, 16, 16), torch.randn(4, 8), torch.zeros(4, 0)
    seen = []
    for update in range(4):
        for sync in (False, True):  # two rounds per update
            stats = collect(
                lambda sync=sync: loss.accumulate_gradients("Gmain", real[:2], c[:2], z[:2], c[:2], sync=sync, gain=1)
            )
            seen.append(("bures" if "Loss/G/bures" in stats else "gan", "Loss/scores/fake" in stats))
        assert loss.g_updates == update + 1
    assert seen == [("gan", True)] * 2 + [("bures", False)] * 2 + [("gan", True)] * 2 + [("bures", False)] * 2


def test_historical_average_penalty_on_last_round_and_mean_after_it():
    G, D = tiny_networks()
    loss = StyleGAN2Loss("cpu", G, D, hist_avg_weight=1.0, r1_gamma=0)
    real, z, c = torch.randn(2, 3, 16, 16), torch.randn(2, 8), torch.zeros(2, 0)
    snapshots = []
    for update in range(3):
        with torch.no_grad():
            for p in D.parameters():
                p.add_(0.01 * (update + 1))
        D.requires_grad_(True)
        first = collect(lambda: loss.accumulate_gradients("Dmain", real, c, z, c, sync=False, gain=1))
        last = collect(lambda loss=loss: loss.accumulate_gradients("Dmain", real, c, z, c, sync=True, gain=1))
        assert "Loss/D/hist_avg" not in first and "Loss/D/hist_avg" in last
        if snapshots:  # penalty = ||theta - mean of the previous updates' theta||^2
            mean = [torch.stack(ps).double().mean(0) for ps in zip(*snapshots)]
            want = sum(((p.detach().double() - m) ** 2).sum() for p, m in zip(D.parameters(), mean))
            assert last["Loss/D/hist_avg"] == pytest.approx(want.item(), rel=1e-4)
        else:
            assert last["Loss/D/hist_avg"] == 0
        snapshots.append([p.detach().clone() for p in D.parameters()])
    assert loss.terms.hist["D"].count == 3 and loss.terms.hist["G"].count == 0


def test_label_smoothing_changes_only_the_real_loss():
    G, D = tiny_networks()
    real, z, c = torch.randn(1, 3, 16, 16), torch.randn(1, 8), torch.zeros(1, 0)
    results = {}
    for alpha in (1.0, 0.9):
        loss = StyleGAN2Loss("cpu", G, D, label_smoothing=alpha, r1_gamma=0)
        torch.manual_seed(1)
        results[alpha] = collect(lambda loss=loss: loss.accumulate_gradients("Dmain", real, c, z, c, sync=True, gain=1))
    s_r, s_f = results[1.0]["Loss/scores/real"], results[1.0]["Loss/scores/fake"]
    assert results[0.9]["Loss/scores/real"] == pytest.approx(s_r) and results[0.9]["Loss/scores/fake"] == pytest.approx(
        s_f
    )
    sp = torch.nn.functional.softplus
    s_r, s_f = torch.tensor(s_r), torch.tensor(s_f)
    assert results[1.0]["Loss/D/loss"] == pytest.approx((sp(s_f) + sp(-s_r)).item(), rel=1e-5)
    assert results[0.9]["Loss/D/loss"] == pytest.approx((sp(s_f) + 0.9 * sp(-s_r) + 0.1 * sp(s_r)).item(), rel=1e-5)


# ---------------------------------------------------------------- training loop


@pytest.mark.slow
def test_training_loop_runs_with_bures_and_history_under_ada_apa_and_paper_adaptivemix(tiny_zip, tmp_path):
    extra = dict(loss=dict(bures_weight=1.0, hist_avg_weight=0.01), apa=True, ada=True, adaptivemix="paper")
    training_loop(**loop_kwargs(tiny_zip, tmp_path, extra, total_kimg=0.008))
    # Names with values in this run: the statistics registry is per process, so a name an earlier test reported
    # is listed too, with num 0.
    names = {k for line in read_stats(tmp_path) for k, v in line.items() if isinstance(v, dict) and v.get("num")}
    assert {"Loss/G/bures", "Loss/G/hist_avg", "Loss/D/hist_avg", "Loss/adaptivemix"} <= names
    assert "Loss/G/feature_matching" not in names
    with open(tmp_path / "network-snapshot-000000.pkl", "rb") as f:
        assert legacy.load_network_pkl(f)["D"].b4.mbdisc is None


def loop_kwargs(data, run_dir, extra, **overrides):
    common = dict(loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0, **extra["loss"]))
    if extra.get("adaptivemix"):
        form = "paper" if extra["adaptivemix"] == "paper" else "release"
        common["loss_kwargs"].update(adaptivemix=True, adaptivemix_form=form, noise_std=0.05)
    if extra.get("ada"):
        common.update(
            augment_kwargs=dict(class_name="training.augment.AugmentPipe", xflip=1, rotate90=1, xint=1),
            ada_target=-1.0,
            ada_interval=1,
            ada_kimg=0.1,
        )
    if extra.get("apa"):
        common["apa_kwargs"] = dict(target=-1.0, interval=1, kimg=0.1)
    kwargs = tiny_loop_kwargs(data, run_dir, **common, **overrides)
    if extra.get("mbdisc"):
        kwargs["D_kwargs"]["epilogue_kwargs"].update(mbdisc_kernels=4, mbdisc_kernel_dim=3)
    return kwargs


@pytest.mark.slow
def test_exact_resume_with_techniques(tiny_zip, tmp_path):
    extra = dict(
        loss=dict(fm_weight=0.5, label_smoothing=0.9, bures_alt=True, hist_avg_weight=0.01),
        mbdisc=True,
        adaptivemix=True,
        ada=True,
    )
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full_dir.mkdir()
    part_dir.mkdir()
    training_loop(**loop_kwargs(tiny_zip, full_dir, extra))
    training_loop(**loop_kwargs(tiny_zip, part_dir, extra, total_kimg=0.012))
    state_path = resume_state.latest_state_in_run(str(part_dir))
    assert resume_state.load_training_state(state_path)["loss"]["g_updates"] == 3
    training_loop(**loop_kwargs(tiny_zip, part_dir, extra, resume_state=state_path))
    with open(part_dir / "network-snapshot-000000.pkl", "rb") as f:
        assert legacy.load_network_pkl(f)["D"].b4.mbdisc is not None  # the safe loader accepts the layer
    full = resume_state.load_training_state(str(full_dir / "training-state-000000.pt"))
    resumed = resume_state.load_training_state(str(part_dir / "training-state-000000.pt"))
    for name in ["G", "D", "G_ema"]:
        for key, value in full[name].items():
            assert torch.equal(value, resumed[name][key]), f"{name}.{key}"
    assert full["loss"]["g_updates"] == resumed["loss"]["g_updates"] == 6
    for player in ("G", "D"):
        assert full["loss"]["hist"][player]["count"] == resumed["loss"]["hist"][player]["count"] == 6
        for a, b in zip(full["loss"]["hist"][player]["mean"], resumed["loss"]["hist"][player]["mean"]):
            assert torch.equal(a, b)
    for a, b in zip(read_stats(full_dir), read_stats(part_dir)):
        for name in ["Loss/G/loss", "Loss/D/loss", "Loss/G/feature_matching", "Loss/G/bures", "Loss/D/hist_avg"]:
            assert name in a and a[name] == b[name], name
