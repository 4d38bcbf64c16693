"""Style-mixing grid: coarse/fine styles of one seed combined with another's.

    python style_mixing.py --network=net.pkl --rows=85,100,75 --cols=55,821,1789 --styles=0-6 --outdir=out

Each seed's z = RandomState(seed).randn(1, z_dim) is mapped to ws [num_ws, w_dim] and truncated toward w_avg
by --trunc. Cell (row r, column c) is the image of r's ws with the layers listed in --styles taken from c's
ws. The grid has the column images along the top, the row images down the left, and an empty corner; it is
written to `<outdir>/grid.png` (atomically).
"""

from __future__ import annotations

import os

import click
import numpy as np
import torch

from dnnlib.cli import click_errors
from dnnlib.images import save_png
from dnnlib.seeds import SeedList
from training.distributed import DEVICE_CHOICES
from training.generator_io import GeneratorLoadError, class_label, load_generator_pkl, resolve_device, to_uint8_images


def mapped_ws(G: torch.nn.Module, seeds: list[int], label: torch.Tensor, truncation_psi: float) -> torch.Tensor:
    """ws [len(seeds), num_ws, w_dim] of z = RandomState(seed).randn(z_dim), truncated toward w_avg by psi."""
    z = torch.from_numpy(np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds])).to(label.device)
    return G.mapping(z, label.expand(len(seeds), -1), truncation_psi=truncation_psi)


def mix_styles(row_ws: torch.Tensor, col_ws: torch.Tensor, styles: list[int]) -> torch.Tensor:
    """[R, C, num_ws, w_dim]: row r's ws with the layers in `styles` replaced by column c's."""
    mixed = row_ws[:, None].repeat(1, col_ws.shape[0], 1, 1)
    mixed[:, :, styles] = col_ws[None, :, styles]
    return mixed


def grid_image(cells: np.ndarray, row_images: np.ndarray, col_images: np.ndarray) -> np.ndarray:
    """uint8 [(R+1)*H, (C+1)*W, ch] from cells [R, C, H, W, ch], row images [R, H, W, ch], column images [C, ...]."""
    num_rows, num_cols, h, w, ch = cells.shape
    canvas = np.zeros([(num_rows + 1) * h, (num_cols + 1) * w, ch], dtype=np.uint8)
    for c in range(num_cols):
        canvas[:h, (c + 1) * w : (c + 2) * w] = col_images[c]
    for r in range(num_rows):
        canvas[(r + 1) * h : (r + 2) * h, :w] = row_images[r]
        for c in range(num_cols):
            canvas[(r + 1) * h : (r + 2) * h, (c + 1) * w : (c + 2) * w] = cells[r, c]
    return canvas


@torch.no_grad()
def style_mixing_grid(
    G: torch.nn.Module,
    rows: list[int],
    cols: list[int],
    styles: list[int],
    truncation_psi: float,
    noise_mode: str,
    label: torch.Tensor,
) -> np.ndarray:
    """The uint8 grid [(R+1)*res, (C+1)*res, channels] (see the module docstring)."""
    row_ws = mapped_ws(G, rows, label, truncation_psi)
    col_ws = mapped_ws(G, cols, label, truncation_psi)
    mixed = mix_styles(row_ws, col_ws, styles).flatten(0, 1)

    def synth(ws):
        return np.concatenate([to_uint8_images(G.synthesis(chunk, noise_mode=noise_mode)) for chunk in ws.split(16)])

    cells = synth(mixed).reshape(len(rows), len(cols), G.img_resolution, G.img_resolution, G.img_channels)
    return grid_image(cells, synth(row_ws), synth(col_ws))


@click.command()
@click.option("--network", "network_pkl", help="Network pickle path or URL", required=True, metavar="PATH")
@click.option("--rows", "row_seeds", type=SeedList(), help="Seeds of the rows, e.g. 85,100,75", required=True)
@click.option("--cols", "col_seeds", type=SeedList(), help="Seeds of the columns, e.g. 55,821,1789", required=True)
@click.option(
    "--styles",
    "col_styles",
    type=SeedList(),
    help="Layers (ws indices) taken from the column seed",
    default="0-6",
    show_default=True,
)
@click.option("--trunc", "truncation_psi", type=float, help="Truncation psi", default=1, show_default=True)
@click.option("--class", "class_idx", type=int, help="Class label (required for conditional networks)")
@click.option(
    "--noise-mode",
    help="Noise mode",
    type=click.Choice(["const", "random", "none"]),
    default="const",
    show_default=True,
)
@click.option("--outdir", help="Where to save grid.png", required=True, metavar="DIR")
@click.option(
    "--device",
    "device_name",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where to run the generator",
)
def main(network_pkl, row_seeds, col_seeds, col_styles, truncation_psi, class_idx, noise_mode, outdir, device_name):
    """Write a style-mixing grid of row seeds x column seeds."""
    with click_errors(GeneratorLoadError):
        device = resolve_device(device_name)
        G = load_generator_pkl(network_pkl, device)
    bad = [s for s in col_styles if s >= G.num_ws]
    if bad:
        raise click.UsageError(f"--styles: layer(s) {bad} out of range; this network has ws layers 0-{G.num_ws - 1}")
    with click_errors():
        label = class_label(G, class_idx, device)
    torch.manual_seed(0)  # Makes --noise-mode=random reproducible.
    grid = style_mixing_grid(G, row_seeds, col_seeds, col_styles, truncation_psi, noise_mode, label)
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "grid.png")
    save_png(grid, path)
    print(f'Saved "{path}" ({len(row_seeds)} rows x {len(col_seeds)} columns, styles {col_styles} from the columns)')


if __name__ == "__main__":
    main()
