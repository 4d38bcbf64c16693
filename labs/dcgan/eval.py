"""Evaluations of the DCGAN lab: FID and KID with a detector file (the project's metrics code) and samples grids.

FID and KID are `metrics.frechet_inception_distance.compute_fid` and `metrics.kernel_inception_distance.compute_kid`
with the detector replaced by the given file (e.g. a domain detector from `python -m metrics.domain_detector`),
real statistics from `metric_data` (cached on disk by the metrics code) and `num_gen` generated images. The
latents are drawn after seeding torch and NumPy with `seed`, so every evaluation of a run sees the same z.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from metrics import frechet_inception_distance, kernel_inception_distance, metric_utils
from training.image_grid import save_image_grid

GRID = (8, 8)  # Columns x rows of the samples grid.


def summarize_fids(results: list[dict]) -> str | None:
    """'FID over N evaluations: mean ± SD (sample SD, n - 1); min FID X at kimg K', as Table 2 reports; None
    without FIDs."""
    fids = [(r["fid"], r["kimg"]) for r in results if r.get("fid") is not None]
    if not fids:
        return None
    values = np.array([f for f, _ in fids])
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    best, at = min(fids)
    return f"FID over {len(values)} evaluations: {values.mean():.2f} ± {sd:.2f}; min FID {best:.2f} at kimg {at:g}"


class Evaluator:
    """Call with a run: writes `fakesNNNNNNN.png` into `outdir` (an 8x8 grid from fixed latents; NNNNNNN = real
    images shown to D so far) and returns {'fid': float, 'kid': float} (both None without a detector)."""

    def __init__(
        self,
        outdir: str,
        detector: str | None,
        metric_data: str | None,
        num_real: int | None = 10000,
        num_gen: int = 2000,
        seed: int = 0,
    ):
        if detector is not None and metric_data is None:
            raise ValueError("FID/KID need real images: give --metric-data (or --data)")
        self.outdir = outdir
        self.detector = detector
        self.metric_data = metric_data
        self.num_real = num_real
        self.num_gen = num_gen
        self.seed = seed

    def __call__(self, run) -> dict:
        G = copy.deepcopy(run.G).eval().requires_grad_(False)
        self.save_grid(G, os.path.join(self.outdir, f"fakes{run.images_seen:07d}.png"))
        if self.detector is None:
            return {"fid": None, "kid": None}
        opts = metric_utils.MetricOptions(
            G=G,
            dataset_kwargs={
                "class_name": "training.dataset.ImageFolderDataset",
                "path": self.metric_data,
            },
            device="cpu",
            detector=self.detector,
            cache=True,
        )
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        fid = frechet_inception_distance.compute_fid(opts, max_real=self.num_real, num_gen=self.num_gen)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        kid = kernel_inception_distance.compute_kid(
            opts,
            max_real=self.num_real,
            num_gen=self.num_gen,
            num_subsets=100,
            max_subset_size=1000,
        )
        return {"fid": float(fid), "kid": float(kid)}

    def save_grid(self, G: torch.nn.Module, path: str) -> None:
        z = torch.randn(
            [GRID[0] * GRID[1], G.z_dim],
            generator=torch.Generator().manual_seed(self.seed),
        )
        with torch.no_grad():
            images = G(z).numpy()
        save_image_grid(images, path, drange=(-1, 1), grid=GRID)
