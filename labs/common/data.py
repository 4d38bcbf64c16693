"""In-memory image datasets for the labs: the labs' one loader of a dataset zip (or folder) into one uint8
tensor, stacked images, and a seeded, resumable stream of shuffled batches."""

from __future__ import annotations

import numpy as np
import torch

from dnnlib.progress import ProgressBar
from training.dataset import ImageFolderDataset


def load_images(
    path: str,
    use_labels: bool = False,
    max_images: int | None = None,
    subset_seed: int = 0,
    desc: str = "loading",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A dataset zip or folder (the layout dataset_tool.py writes) as uint8 images [N, C, H, W] and, when
    `use_labels`, its int64 class indices [N] from dataset.json (None otherwise); every lab loads data here.

    Which images, in what order: the dataset's images in archive order (sorted by file name); when `max_images`
    is below their number, a seeded random subset by the rule of train.py's `--subset` (`training.dataset`): the
    indices 0..N-1 shuffled by `np.random.RandomState(subset_seed)`, the first `max_images` kept, in ascending
    index order.
    Labels follow their images. Each lab passes the `subset_seed` its published tables used: `labs.dcgan` a
    fixed 0 (every `--seed` trains on the same subset), `labs.classify` its run's `--seed` (each seed draws its
    own subset). Raises OSError (unusable data) or ValueError (`use_labels` and no integer class labels), one
    line each.
    """
    dataset = ImageFolderDataset(path=path, use_labels=use_labels, max_size=max_images, random_seed=subset_seed)
    try:
        if use_labels and not dataset.has_onehot_labels:
            raise ValueError(
                f"{path} has no integer class labels in its dataset.json; make the zip with dataset_tool.py "
                "from a labelled source (e.g. the Fashion-MNIST idx files)"
            )
        images = np.empty([len(dataset), *dataset.image_shape], dtype=np.uint8)
        labels = np.empty([len(dataset)], dtype=np.int64)
        with ProgressBar(len(dataset), desc=desc, unit="img") as progress:
            for idx in range(len(dataset)):
                images[idx], onehot = dataset[idx]
                labels[idx] = int(np.argmax(onehot)) if use_labels else 0
                progress.update(1)
    finally:
        dataset.close()
    return torch.from_numpy(images), (torch.from_numpy(labels) if use_labels else None)


def stack_images(images: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked images (VEEGAN's stacked MNIST): uint8 [N, C, H, W] -> ([N, k C, H, W], perms int64 [k, N]).

    Image i of the result holds dataset images perms[0][i], ..., perms[k-1][i] as its channel groups 0..k-1, with
    k independent random permutations drawn from `seed`; a 10-class single-channel set gives 10^k modes.
    """
    if k < 1:
        raise ValueError(f"--stack must be >= 1, got {k}")
    generator = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(len(images), generator=generator) for _ in range(k)])
    return torch.cat([images[p] for p in perms], dim=1), perms


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] in 0..255 -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return images.to(torch.float32) / 127.5 - 1


class BatchStream:
    """Endless shuffled batches of indices 0..num_items-1: a new permutation per pass, drawn from its own seeded
    generator. `state_dict`/`load_state_dict` make a resumed run see exactly the batches it would have seen."""

    def __init__(self, num_items: int, batch_size: int, seed: int):
        if num_items < 1:
            raise ValueError("the dataset holds no images")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(num_items, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        """The next `batch_size` indices [B] (int64); a batch may span two passes."""
        parts, needed = [], self.batch_size
        while needed > 0:
            if self.pos >= self.num_items:
                self.perm = torch.randperm(self.num_items, generator=self.generator)
                self.pos = 0
            take = self.perm[self.pos : self.pos + needed]
            parts.append(take)
            self.pos += len(take)
            needed -= len(take)
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "perm": self.perm.clone(),
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["perm"]) != self.num_items:
            raise ValueError(
                f"resume: the snapshot's dataset held {len(state['perm'])} images, this one {self.num_items}"
            )
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
