"""Fig. 3-like pictures of the toy lab, drawn with PIL and NumPy (no plotting library needed).

A panel shows D's confidence map over the plane as a colour image (dark blue = low, yellow = high), the data
points in white and the generated points in red, over the square [-EXTENT, EXTENT]^2.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import PIL.ImageDraw

from dnnlib.atomic import atomic_path

EXTENT = 3.0
_COLORMAP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def colorize(values: np.ndarray) -> np.ndarray:
    """[H, W] values in [0, 1] -> uint8 [H, W, 3] along a five-colour viridis-like ramp."""
    t = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(_COLORMAP) - 1)
    low = np.floor(t).astype(int).clip(0, len(_COLORMAP) - 2)
    frac = (t - low)[..., None]
    return (_COLORMAP[low] * (1 - frac) + _COLORMAP[low + 1] * frac).astype(np.uint8)


def grid_points(size: int) -> np.ndarray:
    """Centres [size * size, 2] of a size x size pixel grid over the panel, row-major, y pointing up."""
    axis = (np.arange(size) + 0.5) / size * 2 * EXTENT - EXTENT
    xs, ys = np.meshgrid(axis, axis[::-1])
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def _to_pixels(points: np.ndarray, size: int) -> np.ndarray:
    px = (points[:, 0] + EXTENT) / (2 * EXTENT) * size
    py = (EXTENT - points[:, 1]) / (2 * EXTENT) * size
    keep = np.isfinite(px) & np.isfinite(py) & (px >= 0) & (px < size) & (py >= 0) & (py < size)
    return np.stack([px[keep], py[keep]], axis=1).astype(int)


def render_panel(confidence: np.ndarray, data: np.ndarray, samples: np.ndarray) -> PIL.Image.Image:
    """A square RGB panel: `confidence` [S, S] in [0, 1] (rows top to bottom, as from `grid_points`), data and
    sample points [N, 2]."""
    size = confidence.shape[0]
    pixels = colorize(confidence)
    for points, color in ((data, (255, 255, 255)), (samples, (230, 30, 30))):
        for x, y in _to_pixels(points, size):
            pixels[max(y - 1, 0) : y + 1, max(x - 1, 0) : x + 1] = color
    return PIL.Image.fromarray(pixels)


def compose(
    panels: list[list[PIL.Image.Image | None]], row_labels: list[str], col_labels: list[str], title: str = ""
) -> PIL.Image.Image:
    """A labelled grid of equally sized panels (None leaves a grey cell)."""
    size = next(p.size[0] for row in panels for p in row if p is not None)
    left, top, gap = 90, 34 if title else 18, 4
    width = left + len(col_labels) * (size + gap)
    height = top + len(row_labels) * (size + gap)
    image = PIL.Image.new("RGB", (width, height), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(image)
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0))
    for j, label in enumerate(col_labels):
        draw.text((left + j * (size + gap) + 2, top - 14), label[: size // 6], fill=(0, 0, 0))
    for i, label in enumerate(row_labels):
        draw.text((4, top + i * (size + gap) + size // 2 - 6), label, fill=(0, 0, 0))
        for j, panel in enumerate(panels[i]):
            box = (left + j * (size + gap), top + i * (size + gap))
            if panel is None:
                draw.rectangle([box, (box[0] + size - 1, box[1] + size - 1)], fill=(200, 200, 200))
            else:
                image.paste(panel, box)
    return image


def save_png(image: PIL.Image.Image, path: str) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp)
