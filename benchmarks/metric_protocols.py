"""Measure how FID, KID and density/coverage move with the resize protocol and the image count.

    python -m benchmarks.metric_protocols --network=snap.pkl --data=fmnist32.zip --detectors=det32.pt,det64.pt \
        --counts=500,1000,2000,5000,10000 --seeds=0,1,2 --out=protocols.json

For each seed, max(counts) images are generated once (z ~ N(0, I) from torch.manual_seed(seed)); for every
detector and resize protocol their features and those of the first max(counts) real images are computed
through the metrics' own input path (metrics.metric_utils.detector_input). Each count N then uses the first
N real and N generated features, as `--num-images=N` does. The real-vs-real lines compare two disjoint
random subsets of N real images each (N <= half the real set; drawn per seed). `--no-generated` skips the
generator (real-vs-real only). Prints a Markdown table (mean ± SD over seeds) and writes every value as JSON.
"""

from __future__ import annotations

import json
import time

import click
import numpy as np
import torch

import dnnlib
from dnnlib.atomic import write_text
from metrics import detectors, formulas, metric_utils
from training.checkpoint import load_network_pkl


def real_images(data: str, count: int, resolution: int) -> torch.Tensor:
    """The first `count` dataset images, uint8 [N, C, H, W]."""
    dataset = dnnlib.util.construct_class_by_name(
        class_name="training.dataset.ImageFolderDataset", path=data, resolution=resolution, max_size=count
    )
    return torch.cat([x for x, _ in torch.utils.data.DataLoader(dataset, batch_size=500)])


@torch.no_grad()
def generated_images(G: torch.nn.Module, count: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    c = torch.zeros([count, G.c_dim])
    z = torch.randn([count, G.z_dim])
    return torch.cat([metric_utils.generated_images_uint8(G, zb, cb, {}) for zb, cb in zip(z.split(500), c.split(500))])


@torch.no_grad()
def features(opts: metric_utils.MetricOptions, detector: torch.nn.Module, url: str, images: torch.Tensor) -> np.ndarray:
    return np.concatenate(
        [
            detector(metric_utils.detector_input(opts, detector, url, x), return_features=True).numpy()
            for x in images.split(500)
        ]
    )


def scores(real: np.ndarray, gen: np.ndarray, seed: int) -> dict[str, float]:
    prdc = formulas.prdc_from_torch_features(torch.from_numpy(real), torch.from_numpy(gen), nearest_k=5)
    return dict(
        fid=formulas.fid_from_features(real, gen),
        kid=formulas.kid_from_features(real, gen, seed=seed),
        density=prdc["density"],
        coverage=prdc["coverage"],
    )


@click.command()
@click.option("--network", "network_pkl", required=True, metavar="PKL")
@click.option("--data", required=True, metavar="ZIP")
@click.option("--detectors", "detector_list", required=True, help="Comma-separated detector files")
@click.option("--counts", default="500,1000,2000,5000,10000", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--generated/--no-generated", default=True, show_default=True, help="Also score generated images")
@click.option("--out", required=True, metavar="JSON")
def main(network_pkl, data, detector_list, counts, seeds, generated, out):
    counts = [int(c) for c in counts.split(",")]
    seeds = [int(s) for s in seeds.split(",")]
    with open(network_pkl, "rb") as f:
        G = load_network_pkl(f)["G_ema"].eval().requires_grad_(False).cpu()
    start = time.time()
    reals = real_images(data, max(counts), G.img_resolution)
    gens = {seed: generated_images(G, max(counts), seed) for seed in seeds} if generated else {}
    print(f"{len(reals)} real and {len(gens)} x {max(counts)} generated images in {time.time() - start:.0f} s")

    results = []
    for url in detector_list.split(","):
        # get_detector downloads a URL, finds local copies and loads TorchScript only when trusted.
        detector = detectors.get_detector(url)
        for mode in ("legacy", "clean"):
            opts = metric_utils.MetricOptions(device="cpu", resize=mode)
            real_feat = features(opts, detector, url, reals)
            for seed in seeds:
                perm = np.random.default_rng(seed).permutation(len(real_feat))
                for n in [n for n in counts if 2 * n <= len(real_feat)]:
                    a, b = real_feat[perm[:n]], real_feat[perm[n : 2 * n]]
                    results.append(
                        dict(
                            detector=detectors.file_name(url),
                            resize=mode,
                            count=n,
                            seed=seed,
                            real_vs_real=True,
                            **scores(a, b, seed),
                        )
                    )
            for seed in gens:
                gen_feat = features(opts, detector, url, gens[seed])
                for n in counts:
                    results.append(
                        dict(
                            detector=detectors.file_name(url),
                            resize=mode,
                            count=n,
                            seed=seed,
                            real_vs_real=False,
                            **scores(real_feat[:n], gen_feat[:n], seed),
                        )
                    )
            print(f"{detectors.file_name(url)} {mode}: done at {time.time() - start:.0f} s", flush=True)
    write_text(out, json.dumps(results, indent=1) + "\n")

    print("| detector | resize | compared | images (each side) | FID | KID | density | coverage |")
    print("|---|---|---|---|---|---|---|---|")
    keys = sorted(
        {(r["real_vs_real"], r["detector"], r["resize"], r["count"]) for r in results},
        key=lambda k: (k[1], not k[0], k[2] != "legacy", k[3]),
    )
    for real_vs_real, det, mode, n in keys:
        rows = [
            r
            for r in results
            if (r["real_vs_real"], r["detector"], r["resize"], r["count"]) == (real_vs_real, det, mode, n)
        ]

        def cell(key, fmt, rows=rows):
            return f"{np.mean([r[key] for r in rows]):{fmt}} ± {np.std([r[key] for r in rows], ddof=1) if len(rows) > 1 else 0:{fmt}}"

        what = "real vs real" if real_vs_real else "real vs generated"
        print(
            f"| {det} | {mode} | {what} | {n} | {cell('fid', '.2f')} | {cell('kid', '.2f')} | {cell('density', '.3f')} | {cell('coverage', '.3f')} |"
        )


if __name__ == "__main__":
    main()
