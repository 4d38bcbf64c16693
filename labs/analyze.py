"""Lipschitz ratio (AdaptiveMix Table 3) and feature compactness (Fig. 4) of a StyleGAN2 snapshot's D.

    python -m labs.analyze --network=network-snapshot-000100.pkl --data=fashion-1k.zip [--num=256] [--seed=0]

F is `D.features` (the 4x4 features before the epilogue). Reals are the first `--num` images of the dataset
(the order of its sorted file names), mapped to [-1, 1] as in training; fakes come from `G_ema` with seeds
from `--seed` (labels of the reals for a conditional G). Compactness is reported for the reals per class
(when the dataset has labels), all reals, the fakes and both together. `--json` also writes the numbers.

Both measures are in F's own units: a D whose F is multiplied by a constant a (and its head by 1/a, the same
discriminator) has every Lipschitz ratio and every SD multiplied by a. The report therefore adds them relative
to F's scale (the SD of all features, real and generated): each Lipschitz ratio divided by it, and the per-class
and generated SDs divided by the SD of the reals. These do not change under such a rescaling, so a method that
only shrinks F as a whole lowers the absolute columns and leaves the relative ones.
"""

from __future__ import annotations

import json
import pickle

import click
import numpy as np
import torch

from adaptivemix.analysis import PAIR_KINDS, feature_compactness, feature_vectors, lipschitz_table
from dnnlib.atomic import atomic_write
from training import distributed
from training.checkpoint import load_network_pkl_from_url
from training.dataset import ImageFolderDataset


def load_reals(dataset: ImageFolderDataset, num: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """First `num` images as float [-1, 1] [N, C, H, W], their label vectors [N, L] and class indices (or None)."""
    num = min(num, len(dataset))
    images = np.stack([dataset[i][0] for i in range(num)]).astype(np.float32) / 127.5 - 1
    labels = np.stack([dataset.get_label(i) for i in range(num)]).reshape(num, -1).astype(np.float32)
    classes = labels.argmax(axis=1) if dataset.has_labels and dataset.has_onehot_labels else None
    return torch.from_numpy(images), torch.from_numpy(labels), classes


@torch.no_grad()
def generate(G: torch.nn.Module, c: torch.Tensor, seed: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """G(z, c) for z ~ N(0, I) from `seed`, const noise, on the CPU as float32 [N, C, H, W]."""
    z = torch.randn(c.shape[0], G.z_dim, generator=torch.Generator().manual_seed(seed))
    parts = []
    for i in range(0, z.shape[0], batch_size):
        c_batch = c[i : i + batch_size].to(device) if G.c_dim > 0 else None
        parts.append(G(z[i : i + batch_size].to(device), c_batch, noise_mode="const").float().cpu())
    return torch.cat(parts)


def analyze(
    D: torch.nn.Module,
    G: torch.nn.Module,
    reals: torch.Tensor,
    labels: torch.Tensor,
    classes: np.ndarray | None,
    seed: int = 0,
    batch_size: int = 32,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """{'lipschitz': {kind: ratio}, 'compactness': {group: SD}, 'compactness_per_class': {class: SD}}."""
    D = D.eval().requires_grad_(False).to(device)
    fakes = generate(G.eval().requires_grad_(False).to(device), labels, seed, batch_size, device)

    def features_fn(x):
        return D.features(x.to(device), None)

    lipschitz = lipschitz_table(features_fn, reals, fakes, seed=seed, batch_size=batch_size)
    f_real = feature_vectors(features_fn, reals, batch_size).cpu()
    f_fake = feature_vectors(features_fn, fakes, batch_size).cpu()
    per_class = feature_compactness(f_real, classes)
    compactness = {
        "real_mean_class": per_class.mean_class,
        "real": per_class.total,
        "generated": feature_compactness(f_fake).total,
        "total": feature_compactness(torch.cat([f_real, f_fake])).total,
    }
    return {
        "lipschitz": lipschitz,
        "compactness": compactness,
        "compactness_per_class": {str(k): v for k, v in per_class.per_class.items()},
        "relative": relative_to_scale(lipschitz, compactness),
    }


def relative_to_scale(lipschitz: dict[str, float], compactness: dict[str, float]) -> dict[str, float]:
    """The measures divided by F's scale, unchanged when F is multiplied by a constant: `lipschitz_<kind>` =
    ratio / SD of all features; `real_mean_class` and `generated` = their SD / the SD of the reals."""
    out = {f"lipschitz_{kind}": value / compactness["total"] for kind, value in lipschitz.items()}
    out["real_mean_class"] = compactness["real_mean_class"] / compactness["real"]
    out["generated"] = compactness["generated"] / compactness["real"]
    return out


def format_report(result: dict) -> str:
    lines = ["Lipschitz ratio, mean ||F(a)-F(b)|| / ||a-b|| (smaller = flatter F):"]
    lines += [f"  {kind:<10} {result['lipschitz'][kind]:.4f}" for kind in PAIR_KINDS]
    lines.append("Feature compactness, SD of D.features (smaller = more compact):")
    lines += [f"  {group:<16} {value:.4f}" for group, value in result["compactness"].items()]
    if result["compactness_per_class"]:
        lines.append("  per class: " + ", ".join(f"{k}: {v:.4f}" for k, v in result["compactness_per_class"].items()))
    lines.append("Relative to F's scale (Lipschitz ratios / SD of all features, SDs / SD of the reals):")
    lines += [f"  {name:<20} {value:.4f}" for name, value in result["relative"].items()]
    return "\n".join(lines)


@click.command()
@click.option("--network", "network_pkl", help="Network pickle (snapshot) path or URL", required=True, metavar="PATH")
@click.option("--data", help="Dataset zip or folder (dataset_tool.py output)", required=True, metavar="PATH")
@click.option(
    "--num", help="Number of real and of generated images", type=click.IntRange(min=2), default=256, show_default=True
)
@click.option("--seed", help="Seed of the latents and the pairings", type=int, default=0, show_default=True)
@click.option(
    "--batch",
    "batch_size",
    help="Batch size of the network passes",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
)
@click.option(
    "--device", help="Device", type=click.Choice(distributed.DEVICE_CHOICES), default="auto", show_default=True
)
@click.option("--json", "json_path", help="Also write the numbers to this JSON file", metavar="FILE")
def main(network_pkl: str, data: str, num: int, seed: int, batch_size: int, device: str, json_path: str | None) -> None:
    """Print the Lipschitz ratio and feature compactness of a snapshot's discriminator."""
    try:
        device = torch.device(distributed.resolve_device(device))
    except ValueError as error:
        raise click.UsageError(f"--device: {error}") from None
    try:
        snapshot = load_network_pkl_from_url(network_pkl, verbose=False)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise click.ClickException(f'cannot load network "{network_pkl}": {error}') from None
    G, D = snapshot["G_ema"], snapshot["D"]
    try:
        dataset = ImageFolderDataset(data, use_labels=True)  # Labels, where present, group the compactness.
    except (OSError, ValueError) as error:
        raise click.UsageError(f'--data: cannot read "{data}": {error}') from None
    if dataset.resolution != G.img_resolution or dataset.num_channels != G.img_channels:
        raise click.UsageError(
            f"--data: images are {dataset.num_channels}x{dataset.resolution}^2 but the network "
            f"expects {G.img_channels}x{G.img_resolution}^2; give the dataset it was trained on"
        )
    reals, labels, classes = load_reals(dataset, num)
    if G.c_dim > 0 and labels.shape[1] != G.c_dim:
        raise click.UsageError(
            f"--data: the network is conditional on {G.c_dim} classes but the dataset has "
            f"{labels.shape[1]} label values; give the labelled dataset it was trained on"
        )
    result = analyze(D, G, reals, labels, classes, seed=seed, batch_size=batch_size, device=device)
    print(format_report(result))
    if json_path:
        with atomic_write(json_path, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
