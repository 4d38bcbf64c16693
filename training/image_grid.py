"""Image grids written during training: `reals.png`, `fakes_init.png`, `fakesNNNNNN.png`."""

from __future__ import annotations

import numpy as np
import PIL.Image

from dnnlib.images import save_png, tile_images


def grid_size(width: int, height: int) -> tuple[int, int]:
    """Columns and rows of the grid for images of `width` x `height` pixels."""
    return int(np.clip(7680 // width, 7, 32)), int(np.clip(4320 // height, 4, 32))


def select_grid_items(dataset, random_seed: int = 0) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Pick the dataset items shown in the grid, grouped by label when there are labels.

    Returns `((gw, gh), images uint8 [gw*gh, C, H, W], labels float32 [gw*gh, label_dim])`.
    """
    rnd = np.random.RandomState(random_seed)
    gw, gh = grid_size(dataset.image_shape[2], dataset.image_shape[1])
    if not dataset.has_labels:
        all_indices = list(range(len(dataset)))
        rnd.shuffle(all_indices)
        grid_indices = [all_indices[i % len(all_indices)] for i in range(gw * gh)]
    else:
        label_groups: dict[tuple, list[int]] = {}
        for idx in range(len(dataset)):
            key = tuple(np.asarray(dataset.get_details(idx).raw_label).flatten()[::-1])
            label_groups.setdefault(key, []).append(idx)
        keys = sorted(label_groups.keys())
        for key in keys:
            rnd.shuffle(label_groups[key])
        grid_indices = []
        for y in range(gh):
            group = label_groups[keys[y % len(keys)]]
            grid_indices += [group[x % len(group)] for x in range(gw)]
            label_groups[keys[y % len(keys)]] = group[gw:] + group[:gw]
    images, labels = zip(*[dataset[i] for i in grid_indices])
    return (gw, gh), np.stack(images), np.stack(labels)


def save_image_grid(images: np.ndarray, path: str, drange: tuple[float, float], grid: tuple[int, int]) -> None:
    """Write `images` [gw*gh, C, H, W] (C = 1 or 3) with values in `drange` as one PNG, atomically."""
    lo, hi = drange
    gw, gh = grid
    img = np.asarray(images, dtype=np.float32)
    img = np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    _, C, H, W = img.shape
    if img.shape[0] != gw * gh or C not in (1, 3):
        raise ValueError(f"save_image_grid: expected [{gw * gh}, 1|3, H, W] images, got {list(img.shape)}")
    save_png(tile_images(img, grid), path)


def load_thumbnail(path: str, max_side: int) -> PIL.Image.Image:
    """A grid PNG as an RGB image, shrunk (aspect kept) so that neither side exceeds `max_side` pixels."""
    with PIL.Image.open(path) as img:
        img = img.convert("RGB")
    img.thumbnail((max_side, max_side))
    return img
