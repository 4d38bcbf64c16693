"""In-memory image datasets for the labs: a whole dataset zip (or folder) as one uint8 tensor, and a seeded,
resumable stream of shuffled batches over it."""

from __future__ import annotations

import torch

from dnnlib.progress import ProgressBar
from training.dataset import ImageFolderDataset


def load_images(
    path: str,
    use_labels: bool = False,
    max_images: int | None = None,
    desc: str = "loading",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All images of a dataset made by dataset_tool.py as uint8 [N, C, H, W], and its class indices int64 [N]
    when `use_labels` (None otherwise). Raises OSError/ValueError with a one-line reason for unusable data."""
    dataset = ImageFolderDataset(path=path, use_labels=use_labels, max_size=max_images)
    if use_labels and not dataset.has_onehot_labels:
        raise ValueError(
            f'"{path}" has no integer class labels (dataset.json); convert labelled data with dataset_tool.py'
        )
    loader = torch.utils.data.DataLoader(dataset, batch_size=500, num_workers=0)
    images, labels = [], []
    with ProgressBar(len(dataset), desc=desc, unit="img") as progress:
        for x, c in loader:
            images.append(x)
            if use_labels:
                labels.append(c.argmax(dim=1))
            progress.update(len(x))
    return torch.cat(images), (torch.cat(labels) if use_labels else None)


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
