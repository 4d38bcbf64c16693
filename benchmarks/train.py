"""Training speed: sec/kimg of G+D training with every phase in its proportion (Gmain and Dmain every
iteration, Greg every 4th, Dreg every 16th), with and without AdaptiveMix, on the reference CPU config and
the `tiny` preset. Figures and ratios come from one run.

    python benchmarks/train.py                    # 2 threads, CPU
    python benchmarks/train.py --device=cuda --iters=64 --configs=ref32,auto64,paper256 --fp16=both

Columns: seconds per kimg (lower is better), images per second, and on CUDA the peak memory allocated by
torch during the timed iterations. Timing alternates plain and AdaptiveMix measurements (`--repeats` pairs)
and reports medians, so a load change on the machine hits both columns alike.

`--profile` then traces `--iters` more iterations of each with `torch.profiler` and prints the share of the
self CPU time per op family (convolution, bias_act, upfirdn2d, modulation, optimiser, other; see
torch_utils/profiling.py for how backward and double-backward ops are attributed to their forward op).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils.profiling import FAMILIES, op_family_times
from training.loss import StyleGAN2Loss
from training.networks import Discriminator, Generator
from training.training_loop import build_phases, run_phase

# ref32: the CPU reference config (res 32, channel_base 4096, channel_max 256, mapping depth 2, batch 16);
# tiny32: the tiny preset's networks; auto64: `--cfg=auto` on one GPU at 64x64 (fmaps 0.5 -> channel_base 16384,
# batch min(4096 // res, 32) = 32); paper256: `--cfg=paper256` (fmaps 0.5, mapping depth 8, batch 64, mbstd 8).
CONFIGS = {
    "ref32": dict(res=32, channel_base=4096, channel_max=256, z_dim=512, map=2, batch=16, mbstd=4),
    "tiny32": dict(res=32, channel_base=4096, channel_max=128, z_dim=128, map=2, batch=16, mbstd=4),
    "auto64": dict(res=64, channel_base=16384, channel_max=512, z_dim=512, map=2, batch=32, mbstd=4),
    "paper256": dict(res=256, channel_base=16384, channel_max=512, z_dim=512, map=8, batch=64, mbstd=8),
}


def build(cfg: dict, device: torch.device, adaptivemix: bool, fp16: bool):
    num_fp16_res = 4 if fp16 else 0
    G = Generator(
        z_dim=cfg["z_dim"],
        c_dim=0,
        w_dim=cfg["z_dim"],
        img_resolution=cfg["res"],
        img_channels=3,
        mapping_kwargs=dict(num_layers=cfg["map"]),
        synthesis_kwargs=dict(
            channel_base=cfg["channel_base"], channel_max=cfg["channel_max"], num_fp16_res=num_fp16_res, conv_clamp=256
        ),
    )
    D = Discriminator(
        c_dim=0,
        img_resolution=cfg["res"],
        img_channels=3,
        channel_base=cfg["channel_base"],
        channel_max=cfg["channel_max"],
        num_fp16_res=num_fp16_res,
        conv_clamp=256,
        epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd"]),
    )
    G = G.train().requires_grad_(False).to(device)
    D = D.train().requires_grad_(False).to(device)
    gamma = 0.0002 * cfg["res"] ** 2 / cfg["batch"]
    loss = StyleGAN2Loss(device, G, D, r1_gamma=gamma, adaptivemix=adaptivemix)
    opt = dict(class_name="torch.optim.Adam", lr=0.0025, betas=[0, 0.99], eps=1e-8, fused=True)  # as train.py
    return G, loss, build_phases(G, D, opt, opt, G_reg_interval=4, D_reg_interval=16)


class Trainer:
    """One config's G+D training loop on a fixed random batch, stepped in the loop's phase proportions."""

    def __init__(self, cfg: dict, device: torch.device, adaptivemix: bool, fp16: bool):
        torch.manual_seed(0)
        self.G, self.loss, self.phases = build(cfg, device, adaptivemix, fp16)
        self.device = device
        self.batch = cfg["batch"]
        self.real = torch.randn([self.batch, 3, cfg["res"], cfg["res"]], device=device).clamp(-1, 1)
        self.c = torch.zeros([self.batch, 0], device=device)
        self.step = 0

    def run(self, iters: int) -> float:
        """Seconds per 1000 training images over `iters` iterations."""
        start = time.perf_counter()
        for _ in range(iters):
            for phase in self.phases:
                if self.step % phase.interval == 0:
                    z = torch.randn([self.batch, self.G.z_dim], device=self.device)
                    run_phase(phase, self.loss, [self.real], [self.c], [z], [self.c])
            self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return (time.perf_counter() - start) / (iters * self.batch) * 1000

    def family_shares(self, iters: int) -> dict[str, float]:
        """Fraction of the self CPU time per op family over `iters` profiled iterations."""
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            self.run(iters)
        times = op_family_times(prof.events())
        total = sum(times.values())
        return {family: t / total for family, t in times.items()}


@click.command()
@click.option("--device", default="cpu", type=click.Choice(["cpu", "cuda"]))
@click.option("--threads", default=2, type=int, help="torch CPU threads")
@click.option(
    "--iters",
    default=16,
    type=int,
    help="timed iterations per measurement (a multiple of 16 keeps the phase mix exact)",
)
@click.option("--warmup", default=2, type=int)
@click.option("--repeats", default=1, type=int, help="alternating plain/AdaptiveMix timing pairs; medians reported")
@click.option("--profile", is_flag=True, help="also print each op family's share of the CPU time")
@click.option("--configs", default="ref32,tiny32", help=f"comma list of {', '.join(CONFIGS)}")
@click.option(
    "--fp16",
    "fp16_mode",
    default="on",
    type=click.Choice(["on", "off", "both"]),
    help="fp16 in the 4 highest-resolution blocks (takes effect on CUDA only)",
)
def main(device, threads, iters, warmup, repeats, profile, configs, fp16_mode):
    torch.set_num_threads(threads)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.UsageError("--device=cuda: no CUDA GPU is available")
    unknown = [key for key in configs.split(",") if key not in CONFIGS]
    if unknown:
        raise click.UsageError(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    print(f"device: {name}; torch {torch.__version__}; {iters} timed iterations after {warmup} warm-up")
    print(
        f"{'config':<9} {'fp16':<4} {'batch':>5} {'plain s/kimg':>13} {'img/s':>8} {'GiB':>6} "
        f"{'amix s/kimg':>12} {'img/s':>8} {'GiB':>6} {'amix/plain':>11}"
    )
    shares = []
    for key in configs.split(","):
        for fp16 in {"on": [True], "off": [False], "both": [True, False]}[fp16_mode]:
            trainers = {mode: Trainer(CONFIGS[key], device, mode == "amix", fp16) for mode in ("plain", "amix")}
            times = {mode: [] for mode in trainers}
            peaks = {}
            for trainer in trainers.values():
                trainer.run(warmup)
            for _ in range(repeats):
                for mode, trainer in trainers.items():
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    times[mode].append(trainer.run(iters))
                    peaks[mode] = (
                        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
                    )
            plain, amix = statistics.median(times["plain"]), statistics.median(times["amix"])
            print(
                f"{key:<9} {'on' if fp16 else 'off':<4} {CONFIGS[key]['batch']:>5} {plain:>13.2f} {1000 / plain:>8.1f} "
                f"{peaks['plain']:>6.2f} {amix:>12.2f} {1000 / amix:>8.1f} {peaks['amix']:>6.2f} {amix / plain:>10.2f}x",
                flush=True,
            )
            if profile:
                for mode, trainer in trainers.items():
                    shares.append((f"{key} {mode}", trainer.family_shares(iters)))
    if shares:
        print(f"\nshare of self CPU time per op family ({iters} profiled iterations each)")
        print(f"{'run':<14}" + "".join(f"{family:>13}" for family in FAMILIES) + f"{'non-conv':>10}")
        for name, share in shares:
            cells = "".join(f"{share[family]:>12.1%} " for family in FAMILIES)
            print(f"{name:<14}{cells}{1 - share['convolution']:>9.1%}")


if __name__ == "__main__":
    main()
