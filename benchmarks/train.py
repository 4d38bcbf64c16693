"""Training speed: sec/kimg of G+D training with every phase in its proportion (Gmain and Dmain every
iteration, Greg every 4th, Dreg every 16th), with and without AdaptiveMix, on the reference CPU config and
the `tiny` preset. Figures and ratios come from one run.

    python benchmarks/train.py                    # 2 threads, CPU
    python benchmarks/train.py --device=cuda --iters=64
"""

from __future__ import annotations

import os
import sys
import time

import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from adaptivemix import AdaptiveMixDiscriminatorCall
from training.loss import StyleGAN2Loss
from training.networks import Discriminator, Generator
from training.training_loop import build_phases, run_phase

# The reference config (res 32, channel_base 4096, channel_max 256, mapping depth 2, batch 16) and the tiny preset.
CONFIGS = {
    "ref32": dict(res=32, channel_base=4096, channel_max=256, z_dim=512, map=2, batch=16, mbstd=4),
    "tiny32": dict(res=32, channel_base=4096, channel_max=128, z_dim=128, map=2, batch=16, mbstd=4),
}


def build(cfg: dict, device: torch.device, adaptivemix: bool):
    G = Generator(z_dim=cfg["z_dim"], c_dim=0, w_dim=cfg["z_dim"], img_resolution=cfg["res"], img_channels=3,
                  mapping_kwargs=dict(num_layers=cfg["map"]),
                  synthesis_kwargs=dict(channel_base=cfg["channel_base"], channel_max=cfg["channel_max"], num_fp16_res=4, conv_clamp=256))
    D = Discriminator(c_dim=0, img_resolution=cfg["res"], img_channels=3, channel_base=cfg["channel_base"],
                      channel_max=cfg["channel_max"], num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd"]))
    G = G.train().requires_grad_(False).to(device)
    D = D.train().requires_grad_(False).to(device)
    amix = AdaptiveMixDiscriminatorCall(noise_std=0.05) if adaptivemix else None
    gamma = 0.0002 * cfg["res"] ** 2 / cfg["batch"]
    loss = StyleGAN2Loss(device, G, D, r1_gamma=gamma, adaptivemix=amix)
    opt = dict(class_name="torch.optim.Adam", lr=0.0025, betas=[0, 0.99], eps=1e-8)
    return G, loss, build_phases(G, D, opt, opt, G_reg_interval=4, D_reg_interval=16)


def sec_per_kimg(cfg: dict, device: torch.device, adaptivemix: bool, iters: int, warmup: int) -> float:
    torch.manual_seed(0)
    G, loss, phases = build(cfg, device, adaptivemix)
    batch = cfg["batch"]
    real = torch.randn([batch, 3, cfg["res"], cfg["res"]], device=device).clamp(-1, 1)
    c = torch.zeros([batch, 0], device=device)
    elapsed = 0.0
    for batch_idx in range(warmup + iters):
        start = time.perf_counter()
        for phase in phases:
            if batch_idx % phase.interval == 0:
                z = torch.randn([batch, G.z_dim], device=device)
                run_phase(phase, loss, [real], [c], [z], [c])
        if batch_idx >= warmup:
            elapsed += time.perf_counter() - start
    return elapsed / (iters * batch) * 1000


@click.command()
@click.option("--device", default="cpu", type=click.Choice(["cpu", "cuda"]))
@click.option("--threads", default=2, type=int, help="torch CPU threads")
@click.option("--iters", default=16, type=int, help="timed iterations per measurement (a multiple of 16 keeps the phase mix exact)")
@click.option("--warmup", default=2, type=int)
@click.option("--configs", default="ref32,tiny32", help=f"comma list of {', '.join(CONFIGS)}")
def main(device, threads, iters, warmup, configs):
    torch.set_num_threads(threads)
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    print(f"device: {name}; torch {torch.__version__}; {iters} timed iterations (batch 16) after {warmup} warm-up")
    print(f"{'config':<8} {'plain s/kimg':>13} {'adaptivemix s/kimg':>19} {'amix/plain':>11}")
    for key in configs.split(","):
        plain = sec_per_kimg(CONFIGS[key], device, False, iters, warmup)
        amix = sec_per_kimg(CONFIGS[key], device, True, iters, warmup)
        print(f"{key:<8} {plain:>13.1f} {amix:>19.1f} {amix / plain:>10.2f}x")


if __name__ == "__main__":
    main()
