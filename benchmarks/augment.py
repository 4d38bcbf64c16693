"""Throughput of the ADA pipe (`bgc` preset by default): images/s for forward and forward+backward.

Usage: python3 benchmarks/augment.py [--device cpu|cuda|all] [--preset bgc] [--seconds 1.0]
Prints one row per (device, resolution, p) and the ratio of p = 1 to p = 0.5 throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training.augment import AUGPIPE_PRESETS, AugmentPipe  # noqa: E402

RESOLUTIONS = (32, 64, 256)
BATCH = {"cpu": {32: 32, 64: 16, 256: 4}, "cuda": {32: 64, 64: 64, 256: 32}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(pipe: AugmentPipe, x: torch.Tensor, backward: bool, seconds: float) -> float:
    """Run the pipe repeatedly for about `seconds` (after one warm-up call) and return images/s."""

    def once() -> None:
        xi = x.requires_grad_(backward)
        y = pipe(xi)
        if backward:
            y.sum().backward()

    once()
    _sync(x.device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        count += 1
    _sync(x.device)
    return count * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all", help="all = cpu, plus cuda if present"
    )
    parser.add_argument("--preset", choices=sorted(AUGPIPE_PRESETS), default="bgc")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing window per measurement")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available; use --device cpu")
    devices = [d for d in ("cpu", "cuda") if args.device in (d, "all") and (d == "cpu" or torch.cuda.is_available())]

    print(f"AugmentPipe preset={args.preset}, torch {torch.__version__}, threads={torch.get_num_threads()}")
    print(f"{'device':<7}{'res':>5}{'batch':>7}{'p':>6}{'fwd img/s':>12}{'fwd+bwd img/s':>15}")
    for device_name in devices:
        device = torch.device(device_name)
        pipe = AugmentPipe(**AUGPIPE_PRESETS[args.preset]).train().requires_grad_(False).to(device)
        for res in RESOLUTIONS:
            batch = BATCH[device_name][res]
            x = torch.rand([batch, 3, res, res], device=device) * 2 - 1
            forward = {}
            for p in (0.5, 1.0):
                pipe.p.fill_(p)
                forward[p] = images_per_second(pipe, x, backward=False, seconds=args.seconds)
                both = images_per_second(pipe, x, backward=True, seconds=args.seconds)
                print(f"{device_name:<7}{res:>5}{batch:>7}{p:>6.1f}{forward[p]:>12.1f}{both:>15.1f}", flush=True)
            print(f"{'':<7}{res:>5}  fwd ratio p=1 / p=0.5: {forward[1.0] / forward[0.5]:.2f}", flush=True)


if __name__ == "__main__":
    main()
