"""Data-parallel training with gloo on CPU: two processes equal one process with the same global batch."""

import os

import numpy as np
import pytest
import torch
import torch.distributed

from tests.conftest import REPO_ROOT
from training import distributed
from training.loss import StyleGAN2Loss
from training.networks import Discriminator, Generator
from training.training_loop import build_phases, run_phase

GLOBAL_BATCH = 8


def one_step(rank: int, world: int, adaptivemix: bool) -> dict:
    """Build identical tiny networks, run Gmain, Greg, Dmain, Dreg once on this rank's share of a fixed batch."""
    torch.manual_seed(0)
    G = Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=8,
        img_channels=1,
        mapping_kwargs=dict(num_layers=1),
        synthesis_kwargs=dict(channel_base=64, channel_max=8, use_noise=False),
    )
    D = Discriminator(
        c_dim=0,
        img_resolution=8,
        img_channels=1,
        channel_base=64,
        channel_max=8,
        epilogue_kwargs=dict(mbstd_group_size=2),
    )
    G.train().requires_grad_(False)
    D.train().requires_grad_(False)
    data = torch.Generator().manual_seed(1)
    real = torch.randn([GLOBAL_BATCH, 1, 8, 8], generator=data)
    gen_z = torch.randn([4, GLOBAL_BATCH, 8], generator=data)  # One block per phase.
    c = torch.zeros([GLOBAL_BATCH, 0])
    torch.manual_seed(100 + rank)  # Per-rank streams, as in training; no draw below may affect the result.
    np.random.seed(100 + rank)
    loss = StyleGAN2Loss(
        torch.device("cpu"),
        G,
        D,
        r1_gamma=1.0,
        style_mixing_prob=0,
        pl_weight=0 if not adaptivemix else 2,
        adaptivemix=adaptivemix,
    )
    opt = dict(class_name="torch.optim.Adam", lr=0.01, betas=[0, 0.99], eps=1e-8)
    phases = build_phases(G, D, opt, opt, G_reg_interval=4, D_reg_interval=16)
    share = slice(rank, None, world)  # The infinite sampler interleaves ranks the same way.
    for phase, z in zip(phases, gen_z):
        run_phase(phase, loss, [real[share]], [c[share]], [z[share]], [c[share]])
    return {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}


def _worker(rank, world, init_file, out_dir, adaptivemix):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.save(one_step(rank, world, adaptivemix), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def run_two_ranks(tmp_path, adaptivemix):
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), adaptivemix), nprocs=2)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    single = one_step(rank=0, world=1, adaptivemix=False)
    rank0, rank1 = run_two_ranks(tmp_path, adaptivemix=False)
    torch.manual_seed(0)
    untrained = Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=8,
        img_channels=1,
        mapping_kwargs=dict(num_layers=1),
        synthesis_kwargs=dict(channel_base=64, channel_max=8, use_noise=False),
    ).state_dict()
    assert not torch.equal(single["G.synthesis.b8.torgb.weight"], untrained["synthesis.b8.torgb.weight"])  # It trained.
    for name, value in single.items():
        if name == "G.mapping.w_avg":
            continue  # Tracks each rank's own batch mean, as in the original (exempt from consistency checks).
        assert torch.equal(rank0[name], rank1[name]), name
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_adaptivemix_gradients_are_averaged_across_ranks(tmp_path):
    # Each rank mixes with its own permutation and lambda, so the ranks' raw D gradients differ; averaged
    # gradients keep D identical on every rank (the authors' release let them drift apart).
    rank0, rank1 = run_two_ranks(tmp_path, adaptivemix=True)
    for name in rank0:
        if name == "G.mapping.w_avg":
            continue
        assert torch.equal(rank0[name], rank1[name]), name


def test_average_gradients_keeps_missing_gradients_missing():
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    params[0].grad = torch.full([2], 3.0)
    distributed.average_gradients(params)  # Single process: unchanged.
    assert torch.equal(params[0].grad, torch.full([2], 3.0)) and params[1].grad is None


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_run(tiny_zip, tmp_path):
    import subprocess
    import sys

    repo = REPO_ROOT
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(repo / "train.py"),
        f"--outdir={tmp_path / 'runs'}",
        f"--data={tiny_zip}",
        "--cfg=tiny",
        "--batch=4",
        "--kimg=0.008",
        "--device=cpu",
        "--aug=noaug",
        "--workers=1",
        "--adaptivemix=1",
    ]
    result = subprocess.run(
        command, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs  # Rank 0 named the run; rank 1 joined it.
    options = (runs[0] / "training_options.json").read_text()
    assert '"num_gpus": 2' in options and '"batch_gpu": 2' in options
    log = (runs[0] / "log.txt").read_text()
    assert log.count("tick 1 ") == 1 and "Exiting..." in log
    assert (runs[0] / "network-snapshot-000000.pkl").is_file()
