"""Throughput of the StyleGAN2 networks: images/s for G and D, forward and forward+backward.

    python benchmarks/networks.py --quick              # small configs, about a minute on 2 CPU cores
    python benchmarks/networks.py --device=cuda        # all configs on the GPU, fp32 and mixed precision
    python benchmarks/networks.py --configs=res32-c512-cifar

Per config it times: G forward in eval mode (fused modulated conv), G forward in training mode (non-fused),
G forward+backward, D forward, D forward+backward, and prints ratios measured in the same run. On CUDA each
config runs twice: fp32 (num_fp16_res=0) and mixed precision (num_fp16_res=4, conv_clamp=256).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.networks import Discriminator, Generator  # noqa: E402

# name: (resolution, channel_base, channel_max, batch)
CONFIGS = {
    "res32-c128": (32, 4096, 128, 8),
    "res64-c128": (64, 8192, 128, 8),
    "res32-c512-cifar": (32, 32768, 512, 4),
    "res256-c512-paper256": (256, 16384, 512, 4),
}
QUICK_CONFIGS = ("res32-c128", "res64-c128")


def build(res: int, channel_base: int, channel_max: int, fp16: bool, device: torch.device):
    precision = dict(num_fp16_res=4, conv_clamp=256) if fp16 else dict(num_fp16_res=0, conv_clamp=None)
    common = dict(channel_base=channel_base, channel_max=channel_max, **precision)
    G = Generator(512, 0, 512, res, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=common).to(device)
    D = Discriminator(0, res, 3, epilogue_kwargs=dict(mbstd_group_size=4), **common).to(device)
    return G, D


def images_per_second(step: Callable[[], None], batch: int, iters: int, device: torch.device) -> float:
    """Median over `iters` timed calls of `step` (after one warm-up call), in images per second."""
    step()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


def benchmark_config(name: str, fp16: bool, iters: int, device: torch.device) -> dict[str, float]:
    res, channel_base, channel_max, batch = CONFIGS[name]
    torch.manual_seed(0)
    G, D = build(res, channel_base, channel_max, fp16, device)
    z = torch.randn([batch, G.z_dim], device=device)
    img = torch.randn([batch, 3, res, res], device=device)

    def g_forward(training: bool) -> Callable[[], None]:
        def step():
            G.train(training)
            with torch.no_grad():
                G(z, None)

        return step

    def g_forward_backward():
        G.train()
        G.zero_grad(set_to_none=True)
        D(G(z, None), None).sum().backward()

    def d_forward():
        with torch.no_grad():
            D(img, None)

    def d_forward_backward():
        D.zero_grad(set_to_none=True)
        D(img, None).sum().backward()

    return {
        "G fwd eval (fused)": images_per_second(g_forward(False), batch, iters, device),
        "G fwd train (non-fused)": images_per_second(g_forward(True), batch, iters, device),
        "G+D fwd+bwd": images_per_second(g_forward_backward, batch, iters, device),
        "D fwd": images_per_second(d_forward, batch, iters, device),
        "D fwd+bwd": images_per_second(d_forward_backward, batch, iters, device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--iters", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_CONFIGS)}")
    parser.add_argument("--configs", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    args = parser.parse_args()
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    names = QUICK_CONFIGS if args.quick else tuple(CONFIGS)
    if args.configs:
        names = tuple(args.configs.split(","))
        unknown = [name for name in names if name not in CONFIGS]
        if unknown:
            parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    precisions = (False, True) if device.type == "cuda" else (False,)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} iters={args.iters}")
    print(f"{'config':24s} {'precision':9s} {'measurement':24s} {'images/s':>10s}  ratio")
    for name in names:
        baseline = None
        for fp16 in precisions:
            results = benchmark_config(name, fp16, args.iters, device)
            for key, value in results.items():
                ratio = ""
                if key == "G fwd train (non-fused)":
                    ratio = f"{value / results['G fwd eval (fused)']:.2f}x of fused"
                elif key == "D fwd+bwd":
                    ratio = f"{value / results['D fwd']:.2f}x of D fwd"
                if fp16 and baseline is not None:
                    ratio += f"  {value / baseline[key]:.2f}x of fp32"
                print(f"{name:24s} {'mixed' if fp16 else 'fp32':9s} {key:24s} {value:10.1f}  {ratio}", flush=True)
            baseline = results


if __name__ == "__main__":
    main()
