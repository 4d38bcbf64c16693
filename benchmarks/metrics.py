"""Cost of the metrics: detector feature extraction (images/s) and the formulas (seconds), measured in one run.

    OMP_NUM_THREADS=2 python3 benchmarks/metrics.py                  # CPU, about a minute
    python3 benchmarks/metrics.py --device=cuda --num-real=50000     # GPU-sized formula inputs

Detectors: the native FID Inception (random weights: the cost of the real weights is identical) and a domain
classifier of the default size, on 32x32 uint8 images (Inception resizes them to 299x299 first).
Formulas: FID on 2048-d statistics (scipy sqrtm), KID with 100 subsets of up to 1000, precision/recall on
4096-d features (float16 on CUDA, float32 on CPU), on random features of `--num-real` rows each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metrics import formulas  # noqa: E402
from metrics.domain_classifier import DomainClassifier  # noqa: E402
from metrics.inception import InceptionV3FID  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(detector: Callable, images: torch.Tensor, seconds: float) -> float:
    """Feature extraction throughput over about `seconds` (after one warm-up batch)."""
    with torch.no_grad():
        detector(images, return_features=True)
        _sync(images.device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            detector(images, return_features=True)
            count += images.shape[0]
        _sync(images.device)
        return count / (time.perf_counter() - start)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per detector")
    parser.add_argument("--num-real", type=int, default=2000, help="feature rows per set for the formula timings")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    gen = torch.Generator().manual_seed(0)
    inception = InceptionV3FID().eval().to(device)
    domain = DomainClassifier(num_classes=10, in_channels=1, resolution=32).eval().to(device)
    batch_inception = 8 if device.type == "cpu" else 64
    batch_domain = 64
    images = torch.randint(0, 256, [batch_domain, 3, 32, 32], dtype=torch.uint8, generator=gen).to(device)
    inception_ips = images_per_second(inception, images[:batch_inception], args.seconds)
    domain_ips = images_per_second(domain, images, args.seconds)
    print(f"{'detector':<28s} {'batch':>5s} {'images/s':>10s} {'50k images':>11s}")
    for name, batch, ips in (
        ("native Inception (299x299)", batch_inception, inception_ips),
        ("domain classifier (32x32)", batch_domain, domain_ips),
    ):
        print(f"{name:<28s} {batch:>5d} {ips:>10.1f} {50000 / ips / 60:>9.1f} m")
    print(f"domain classifier / Inception throughput: {domain_ips / inception_ips:.0f}x")

    rng = np.random.RandomState(0)
    n = args.num_real
    real2048 = rng.randn(n, 2048).astype(np.float32)
    gen2048 = (rng.randn(n, 2048) + 0.1).astype(np.float32)
    stats_r, stats_g = formulas.mean_cov(real2048), formulas.mean_cov(gen2048)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    real4096 = torch.from_numpy(rng.randn(n, 4096).astype(np.float32)).to(device, dtype)
    gen4096 = torch.from_numpy(rng.randn(n, 4096).astype(np.float32)).to(device, dtype)
    print(f"{'formula':<44s} {'seconds':>8s}")
    rows = (
        ("FID from 2048-d statistics (sqrtm)", lambda: formulas.fid_from_stats(*stats_r, *stats_g)),
        (f"KID, 2048-d, {n} rows, 100 subsets", lambda: formulas.kid_from_features(real2048, gen2048)),
        (
            f"precision/recall, 4096-d, {n} rows each",
            lambda: (formulas.pr_from_torch_features(real4096, gen4096), _sync(device)),
        ),
    )
    for name, fn in rows:
        print(f"{name:<44s} {timed(fn):>8.2f}")


if __name__ == "__main__":
    main()
