"""Mode coverage of a stacked-image DCGAN run (VEEGAN's stacked MNIST, PacGAN's Table 2).

    python -m labs.modes --run=OUTDIR --detector=DET.pt --num=26000

Draws `--num` images from the generator of the run's latest snapshot (`OUTDIR/snapshot.pt` of `labs.dcgan
--stack=k`), classifies each of the k channel groups with a single-channel classifier (a detector file of
`python -m metrics.domain_detector` trained on the single-channel labelled data) and takes the mode of an image
to be its k classes read as a k-digit number in base K (K classes: K^k modes, 1000 for k = 3 and 10 classes;
channel group 0 is the leading digit). It prints the histogram's size and ends with the line

    modes <n> KL <x>

n = the number of modes with at least one image, x = KL(p || uniform) = sum_m p_m log(K^k p_m) of the mode
histogram p (0 log 0 = 0), as PacGAN's Table 2 reports.

    python -m labs.modes --data=ZIP --stack=3 --detector=DET.pt --num=26000

counts the same for `--num` real stacked images (the training set `labs.dcgan --stack` builds from ZIP): the
reference a perfect generator would reach with this classifier.
"""

from __future__ import annotations

import os

import click
import numpy as np
import torch

from labs.common.data import load_images, stack_images
from labs.common.snapshot import load_snapshot
from labs.dcgan.cli import STACK_SEED
from labs.dcgan.networks import Generator
from labs.dcgan.train import SNAPSHOT, config_from_snapshot
from labs.toy.data import mode_kl
from metrics import domain_classifier, metric_utils


@torch.no_grad()
def mode_indices(images: torch.Tensor, classify, stack: int, num_classes: int) -> torch.Tensor:
    """Mode index [N] of stacked images uint8 [N, stack C, H, W]: sum_j class(group j) K^(stack - 1 - j), where
    class(.) is the argmax of `classify` (uint8 [N, C, H, W] -> class scores [N, K]) on channel group j."""
    if images.shape[1] % stack != 0:
        raise ValueError(f"images with {images.shape[1]} channels cannot be split into {stack} groups")
    index = torch.zeros(len(images), dtype=torch.int64)
    for group in images.chunk(stack, dim=1):
        index = index * num_classes + classify(group).argmax(dim=1)
    return index


def generator_from_snapshot(state: dict) -> tuple[Generator, int]:
    """The run's generator (eval mode, its batch-norm running statistics) and its `stack`, from a snapshot dict.

    Channels and resolution are read from G's weights: the last transposed convolution's output channels, and
    R = 2^(number of transposed convolutions + 1)."""
    cfg = config_from_snapshot(state, None)
    weights = [v for k, v in state["G"].items() if k.startswith("body.") and k.endswith(".weight") and v.ndim == 4]
    channels, resolution = weights[-1].shape[1], 2 ** (len(weights) + 1)
    G = Generator(channels, resolution, cfg.width, cfg.z_dim, cfg.g_norm, reference_size=cfg.batch, seed=cfg.seed)
    G.load_state_dict(state["G"])
    return G.eval().requires_grad_(False), cfg.stack


@torch.no_grad()
def count_modes(G: Generator, classify, stack: int, num_classes: int, num: int, batch: int, seed: int) -> np.ndarray:
    """Histogram [num_classes^stack] of the modes of `num` images drawn with latents from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(num_classes**stack, dtype=torch.int64)
    for start in range(0, num, batch):
        z = torch.randn([min(batch, num - start), G.z_dim], generator=generator)
        index = mode_indices(metric_utils.images_to_uint8(G(z)), classify, stack, num_classes)
        counts += torch.bincount(index, minlength=len(counts))
    return counts.numpy()


def count_real_modes(images: torch.Tensor, classify, stack: int, num_classes: int, batch: int) -> np.ndarray:
    """Histogram [num_classes^stack] of the modes of stacked real images uint8 [N, stack C, H, W]."""
    counts = torch.zeros(num_classes**stack, dtype=torch.int64)
    for part in images.split(batch):
        counts += torch.bincount(mode_indices(part, classify, stack, num_classes), minlength=len(counts))
    return counts.numpy()


@click.command()
@click.option("--run", "run_dir", metavar="DIR", help="A labs.dcgan --stack run folder (snapshot.pt)")
@click.option("--data", metavar="ZIP", help="Count real stacked images of this single-channel set instead of --run")
@click.option("--stack", type=click.IntRange(min=1), default=3, show_default=True, help="Channels stacked (--data)")
@click.option("--detector", required=True, metavar="FILE", help="Single-channel classifier (metrics.domain_detector)")
@click.option("--num", type=click.IntRange(min=1), default=26000, show_default=True, help="Images to draw")
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Images per batch")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latents")
def main(run_dir: str | None, data: str | None, stack: int, detector: str, num: int, batch: int, seed: int) -> None:
    """Count the modes of a stacked-image run's samples (or of real stacked images) and their KL to uniform."""
    if (run_dir is None) == (data is None):
        raise click.UsageError("give --run=DIR (a run's samples) or --data=ZIP (real stacked images), one of them")
    path = os.path.join(run_dir or "", SNAPSHOT)
    if run_dir is not None and not os.path.isfile(path):
        raise click.UsageError(f"--run: no {SNAPSHOT} in {run_dir} (train one with python -m labs.dcgan --stack=3)")
    if not os.path.isfile(detector):
        raise click.UsageError(
            f"--detector: {detector} does not exist (make one with python -m metrics.domain_detector)"
        )
    try:
        classifier = domain_classifier.load(detector)
    except (ValueError, KeyError, RuntimeError) as err:
        raise click.UsageError(f"--detector: {detector} is not a domain detector file ({err})") from None
    num_classes = classifier.config["num_classes"]
    if data is not None:
        try:
            images, _ = load_images(data, max_images=None)
        except (OSError, ValueError) as err:
            raise click.UsageError(f"--data: {err}") from None
        if images.shape[1] != 1:
            raise click.UsageError(f"--data: {data} has {images.shape[1]} channels; the mode counter needs 1")
        counts = count_real_modes(
            stack_images(images, stack, seed=STACK_SEED)[0][:num], classifier, stack, num_classes, batch
        )
    else:
        G, stack = generator_from_snapshot(load_snapshot(path))
        if G.img_channels != stack:
            raise click.UsageError(
                f"--run: images of {G.img_channels} channels in {stack} parts; the counter needs 1 each"
            )
        counts = count_modes(G, classifier, stack, num_classes, num, batch, seed)
    print(f"{int(counts.sum())} images, {stack} channel(s) of {num_classes} classes: {len(counts)} modes in all")
    print(f"modes {int((counts > 0).sum())} KL {mode_kl(counts):.4f}")


if __name__ == "__main__":
    main()
