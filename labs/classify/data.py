"""Data for the classification lab: its training augmentation and the makers of its extra dataset zips.

The lab reads zips with the labs' loader (`labs.common.data.load_images`, a seeded subset per run `--seed`).
The makers write zips in the layout `dataset_tool.py` writes:

    python -m labs.classify.data classes --source=fm-train.zip --dest=fm-train-0to5.zip --classes=0-5
    python -m labs.classify.data noise   --like=fm-test.zip --dest=gauss.zip --kind=gaussian --count=2000
    python -m labs.classify.data digits  --like=fm-test.zip --dest=digits.zip   # needs scikit-learn (optional)

Gaussian noise images are N(128, 64^2) per pixel, clipped to [0, 255]; uniform noise images are U{0..255}.
The 8x8 scikit-learn digits (values 0-16) are scaled to 0-255 and upscaled (bilinear) to the reference size.
"""

from __future__ import annotations

import json
import zipfile

import click
import numpy as np
import PIL.Image
import torch

from dnnlib.atomic import atomic_path
from dnnlib.images import encode_png
from dnnlib.seeds import parse_range
from labs.common.data import load_images
from training.dataset import ImageFolderDataset


def random_crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation of a batch [N, C, H, W]: zero-pad by `pad`, cut a random H x W window per
    image, then mirror each image left-right with probability 1/2 (torch's global generator)."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, [pad] * 4)
    top = torch.randint(0, 2 * pad + 1, (n,)).to(x.device)
    left = torch.randint(0, 2 * pad + 1, (n,)).to(x.device)
    flip = (torch.rand(n) < 0.5).to(x.device)
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = left[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    index = torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None]
    return padded[index[0], index[1], rows, cols]


def write_zip(dest: str, images: np.ndarray, labels: list[int] | None) -> None:
    """Write uint8 images [N, H, W] or [N, H, W, C] as PNGs plus dataset.json, atomically."""
    entries = []
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for idx, image in enumerate(images):
            fname = f"{idx // 1000:05d}/img{idx:08d}.png"
            archive.writestr(fname, encode_png(image, compress_level=0))
            entries.append([fname, int(labels[idx])] if labels is not None else None)
        archive.writestr("dataset.json", json.dumps({"labels": entries if labels is not None else None}))


def _parse_classes(text: str) -> list[int]:
    """'0-5' or '0,2,4' (or a mix; the seed-list grammar of `dnnlib.seeds`) -> sorted class indices."""
    try:
        return sorted(set(parse_range(text)))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give classes like 0-5 or 0,2,4") from None


def _reference_shape(like: str) -> tuple[int, int]:
    """(resolution, channels) of an existing dataset."""
    dataset = ImageFolderDataset(like)
    channels, resolution = dataset.num_channels, dataset.resolution
    dataset.close()
    return resolution, channels


@click.group()
def cli() -> None:
    """Make the lab's extra dataset zips."""


@cli.command()
@click.option("--source", required=True, metavar="ZIP", help="Labelled dataset")
@click.option("--dest", required=True, metavar="ZIP", help="Output zip")
@click.option("--classes", required=True, help="Classes to keep, e.g. 0-5 or 6,7,8,9")
@click.option(
    "--relabel/--keep-labels",
    default=True,
    show_default=True,
    help="Renumber the kept classes 0..k-1 (needed to train on them)",
)
def classes(source: str, dest: str, classes: str, relabel: bool) -> None:
    """Keep only some classes of a labelled zip."""
    keep = _parse_classes(classes)
    try:
        images, labels = load_images(source, use_labels=True)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    mask = np.isin(labels.numpy(), keep)
    new_label = {c: (i if relabel else c) for i, c in enumerate(keep)}
    kept = [new_label[int(c)] for c in labels.numpy()[mask]]
    write_zip(dest, images.numpy()[mask].transpose(0, 2, 3, 1), kept)
    print(f"wrote {len(kept)} images of classes {keep} to {dest}")


@cli.command()
@click.option("--like", required=True, metavar="ZIP", help="Dataset whose resolution and channels to copy")
@click.option("--dest", required=True, metavar="ZIP")
@click.option("--kind", type=click.Choice(["gaussian", "uniform"]), required=True)
@click.option("--count", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def noise(like: str, dest: str, kind: str, count: int, seed: int) -> None:
    """Noise images: Gaussian N(128, 64^2) clipped, or uniform over 0..255."""
    resolution, channels = _reference_shape(like)
    rng = np.random.default_rng(seed)
    shape = [count, resolution, resolution, channels]
    values = rng.normal(128, 64, shape) if kind == "gaussian" else rng.integers(0, 256, shape)
    write_zip(dest, np.clip(np.rint(values), 0, 255).astype(np.uint8), None)
    print(f"wrote {count} {kind} noise images to {dest}")


@cli.command()
@click.option("--like", required=True, metavar="ZIP", help="Dataset whose resolution and channels to copy")
@click.option("--dest", required=True, metavar="ZIP")
def digits(like: str, dest: str) -> None:
    """scikit-learn's 1797 8x8 digits, upscaled (needs scikit-learn, an optional extra)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise click.ClickException(
            "the digits set needs scikit-learn: pip install scikit-learn (only for this maker)"
        ) from err
    resolution, channels = _reference_shape(like)
    data = load_digits()
    images = []
    for image in np.rint(data.images * (255 / 16)).astype(np.uint8):
        big = np.asarray(PIL.Image.fromarray(image).resize((resolution, resolution), PIL.Image.BILINEAR))
        images.append(np.repeat(big[:, :, None], channels, axis=2))
    write_zip(dest, np.stack(images), [int(t) for t in data.target])
    print(f"wrote {len(images)} digit images to {dest}")


if __name__ == "__main__":
    cli()
