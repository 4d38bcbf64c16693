"""Training loop end to end on a tiny dataset: files written, exact resume, and data-parallel equivalence."""

import json
import os

import PIL.Image
import pytest
import torch

import legacy
from training.resume import state as resume_state
from training.training_loop import training_loop


def tiny_loop_kwargs(data, run_dir, **overrides):
    opt = dict(class_name="torch.optim.Adam", lr=0.002, betas=[0, 0.99], eps=1e-8)
    kwargs = dict(
        run_dir=str(run_dir),
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path=str(data),
            use_labels=True,
            max_size=None,
            xflip=False,
            resolution=16,
        ),
        data_loader_kwargs=dict(num_workers=0),
        G_kwargs=dict(
            class_name="training.networks.Generator",
            z_dim=16,
            w_dim=16,
            mapping_kwargs=dict(num_layers=2),
            synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0),
        ),
        D_kwargs=dict(
            class_name="training.networks.Discriminator",
            channel_base=128,
            channel_max=16,
            num_fp16_res=0,
            epilogue_kwargs=dict(mbstd_group_size=2),
        ),
        G_opt_kwargs=opt,
        D_opt_kwargs=opt,
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0),
        batch_size=4,
        batch_gpu=2,
        total_kimg=0.024,
        kimg_per_tick=0.008,
        ema_kimg=0.01,
        ema_rampup=0.05,
        G_reg_interval=2,
        D_reg_interval=2,
        image_snapshot_ticks=None,
        network_snapshot_ticks=1,
        device="cpu",
        deterministic=True,
    )
    kwargs.update(overrides)
    return kwargs


def read_stats(run_dir):
    with open(os.path.join(run_dir, "stats.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_end_to_end_files(tiny_zip, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    training_loop(
        **tiny_loop_kwargs(
            tiny_zip,
            run_dir,
            image_snapshot_ticks=2,
            total_kimg=0.016,
            metrics=[],
            loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0, adaptivemix=True, noise_std=0.05),
        )
    )
    # Grids: reals and fakes, 32x32 cells of 16x16 pixels.
    for name in ["reals.png", "fakes_init.png", "fakes000000.png"]:
        with PIL.Image.open(run_dir / name) as img:
            assert img.size == (32 * 16, 32 * 16) and img.mode == "RGB"
    # The snapshot loads through the safe loader and its G_ema runs.
    with open(run_dir / "network-snapshot-000000.pkl", "rb") as f:
        data = legacy.load_network_pkl(f)
    assert set(data) >= {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    img = data["G_ema"](torch.zeros(2, 16), torch.eye(2))
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    # stats.jsonl: one line per tick (after iterations 1, 3 and 4), with the losses and progress.
    stats = read_stats(run_dir)
    assert [round(s["Progress/kimg"]["mean"], 3) for s in stats] == [0.004, 0.012, 0.016]
    for name in ["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Loss/adaptivemix"]:
        assert name in stats[-1] and stats[-1][name]["num"] > 0, name
    assert -1 <= stats[-1]["Loss/adaptivemix"]["mean"] <= 1
    state = resume_state.load_training_state(str(run_dir / "training-state-000000.pt"))
    assert state["cur_nimg"] == 16 and state["batch_idx"] == 4


def params_of(module_state):
    return {k: v.clone() for k, v in module_state.items()}


@pytest.mark.slow
def test_exact_resume_equals_uninterrupted_run(tiny_zip, tmp_path):
    common = dict(
        augment_kwargs=dict(class_name="training.augment.AugmentPipe", xflip=1, rotate90=1, xint=1, brightness=1),
        ada_target=-1.0,
        ada_interval=1,
        ada_kimg=0.1,
        loss_kwargs=dict(class_name="training.loss.StyleGAN2Loss", r1_gamma=1.0, adaptivemix=True, noise_std=0.05),
        apa_kwargs=dict(target=-1.0, interval=1, kimg=0.1),
    )  # Negative targets: p grows.
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full_dir.mkdir()
    part_dir.mkdir()
    training_loop(**tiny_loop_kwargs(tiny_zip, full_dir, **common))
    training_loop(**tiny_loop_kwargs(tiny_zip, part_dir, **dict(common, total_kimg=0.012)))
    state_path = resume_state.latest_state_in_run(str(part_dir))
    assert resume_state.load_training_state(state_path)["batch_idx"] == 3
    training_loop(**tiny_loop_kwargs(tiny_zip, part_dir, resume_state=state_path, **common))

    full = resume_state.load_training_state(str(full_dir / "training-state-000000.pt"))
    resumed = resume_state.load_training_state(str(part_dir / "training-state-000000.pt"))
    assert full["batch_idx"] == resumed["batch_idx"] == 6
    for name in ["G", "D", "G_ema"]:
        for key, value in full[name].items():
            assert torch.equal(value, resumed[name][key]), f"{name}.{key}"
    assert full["augment_p"] == resumed["augment_p"] and full["augment_p"] > 0
    assert full["apa"] == resumed["apa"]
    assert torch.equal(full["pl_mean"], resumed["pl_mean"])
    full_stats, resumed_stats = read_stats(full_dir), read_stats(part_dir)
    assert len(full_stats) == len(resumed_stats) == 4
    for a, b in zip(full_stats, resumed_stats):
        for name in ["Loss/G/loss", "Loss/D/loss", "Loss/scores/real", "Loss/adaptivemix", "Progress/augment"]:
            assert a[name] == b[name], name


@pytest.mark.slow
def test_resume_from_network_pickle_copies_weights_by_name(tiny_zip, tmp_path):
    # Transfer learning (the original's --resume): weights come from the pickle, counters start at zero.
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    source_dir.mkdir()
    target_dir.mkdir()
    training_loop(**tiny_loop_kwargs(tiny_zip, source_dir, total_kimg=0.004))
    source_pkl = source_dir / "network-snapshot-000000.pkl"
    frozen = dict(class_name="torch.optim.Adam", lr=0.0, betas=[0, 0.99], eps=1e-8)  # lr 0: weights stay as loaded.
    training_loop(
        **tiny_loop_kwargs(
            tiny_zip,
            target_dir,
            total_kimg=0.004,
            resume_pkl=str(source_pkl),
            random_seed=5,
            G_opt_kwargs=frozen,
            D_opt_kwargs=frozen,
            ema_rampup=None,
        )
    )
    with open(source_pkl, "rb") as f:
        source = legacy.load_network_pkl(f)
    with open(target_dir / "network-snapshot-000000.pkl", "rb") as f:
        target = legacy.load_network_pkl(f)
    for name in ["G", "D", "G_ema"]:
        for (key, a), (_, b) in zip(source[name].named_parameters(), target[name].named_parameters()):
            assert torch.equal(a, b), f"{name}.{key}"
    state = resume_state.load_training_state(str(target_dir / "training-state-000000.pt"))
    assert state["batch_idx"] == 1 and state["cur_nimg"] == 4


def test_tensorboard_scalars_when_installed(tiny_zip, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    training_loop(**tiny_loop_kwargs(tiny_zip, tmp_path, total_kimg=0.008))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"Loss/G/loss", "Loss/D/loss", "Progress/kimg", "Progress/augment"} <= set(tags)
    assert [round(e.value, 3) for e in events.Scalars("Progress/kimg")] == [0.004, 0.008]
