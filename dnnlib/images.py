"""The one PNG writer: a [H, W, C] uint8 array to PNG bytes (`encode_png`) or to a file, atomically (`save_png`)."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

from dnnlib import atomic

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # Channels -> PIL mode.


def _pil_image(pixels: np.ndarray) -> PIL.Image.Image:
    """`pixels` ([H, W] or [H, W, C] uint8, C in 1, 3, 4) as a PIL image; ValueError for anything else."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in IMAGE_MODES or pixels.dtype != np.uint8:
        raise ValueError(
            f"cannot save an array of shape {list(pixels.shape)} and dtype {pixels.dtype} as PNG: "
            "expected [H, W, C] uint8 with C = 1, 3 or 4"
        )
    channels = pixels.shape[2]
    return PIL.Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, IMAGE_MODES[channels])


def encode_png(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """The PNG file bytes of `pixels` ([H, W] or [H, W, C] uint8, C in 1, 3, 4).

    `compress_level` is zlib's 0 (stored, fastest: what dataset zips use) to 9; 6 is PIL's default.
    """
    buffer = io.BytesIO()
    _pil_image(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def save_png(pixels: np.ndarray, path: str) -> None:
    """Write `pixels` ([H, W] or [H, W, C] uint8, C in 1, 3, 4) to `path` as PNG, atomically.

    Raises ValueError for another shape or dtype, and `atomic.WriteError` (one line) when the disk refuses.
    """
    image = _pil_image(pixels)
    with atomic.atomic_path(path, suffix=".png") as tmp_path:
        image.save(tmp_path, format="PNG")


def tile_images(images: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """[gw * gh, C, H, W] images -> one [gh * H, gw * W, C] canvas, filled row by row (gw columns, gh rows)."""
    gw, gh = grid
    n, channels, height, width = images.shape
    if n != gw * gh:
        raise ValueError(f"a {gw}x{gh} grid needs {gw * gh} images, got {n}")
    return (
        images.reshape(gh, gw, channels, height, width)
        .transpose(0, 3, 1, 4, 2)
        .reshape(gh * height, gw * width, channels)
    )
