"""Read throughput of ImageFolderDataset from a zip through a DataLoader with 0, 1 and 2 workers.

Generates a zip of random PNGs in the dataset_tool layout, then times full passes over it
(after one warm-up pass, workers kept alive) and prints images/s and the ratio to 0 workers.

    OMP_NUM_THREADS=1 python3 benchmarks/dataset.py --num-images=2000 --resolution=32
"""

import io
import os
import sys
import tempfile
import time
import zipfile

import click
import numpy as np
import PIL.Image
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from training.dataset import ImageFolderDataset  # noqa: E402


def write_random_zip(path: str, num_images: int, resolution: int) -> None:
    """uint8 RGB noise images as uncompressed PNGs in an uncompressed zip (as dataset_tool writes)."""
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for idx in range(num_images):
            buffer = io.BytesIO()
            image = rng.randint(0, 256, size=[resolution, resolution, 3], dtype=np.uint8)
            PIL.Image.fromarray(image).save(buffer, format="png", compress_level=0)
            archive.writestr(f"{idx // 1000:05d}/img{idx:08d}.png", buffer.getvalue())
        archive.writestr("dataset.json", '{"labels": null}')


def images_per_second(dataset: ImageFolderDataset, num_workers: int, batch_size: int, passes: int) -> float:
    """Images/s over ``passes`` full passes, after one untimed warm-up pass."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0
    )
    for _ in loader:
        pass
    start = time.perf_counter()
    for _ in range(passes):
        for _ in loader:
            pass
    return passes * len(dataset) / (time.perf_counter() - start)


@click.command()
@click.option("--num-images", type=int, default=2000, show_default=True)
@click.option("--resolution", type=int, default=32, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--passes", type=int, default=2, show_default=True, help="Timed passes per setting")
def main(num_images: int, resolution: int, batch_size: int, passes: int) -> None:
    """Print DataLoader read throughput (images/s) for 0, 1 and 2 workers."""
    with tempfile.TemporaryDirectory() as tmp_dir:
        path = os.path.join(tmp_dir, "bench.zip")
        write_random_zip(path, num_images, resolution)
        dataset = ImageFolderDataset(path)
        print(
            f"{num_images} images of {resolution}x{resolution} RGB, batch {batch_size}, torch {torch.__version__}, "
            f"{os.cpu_count()} CPUs"
        )
        baseline = None
        for num_workers in [0, 1, 2]:
            rate = images_per_second(dataset, num_workers, batch_size, passes)
            baseline = baseline or rate
            print(f"num_workers={num_workers}: {rate:8.0f} images/s  ({rate / baseline:.2f}x of 0 workers)")


if __name__ == "__main__":
    main()
