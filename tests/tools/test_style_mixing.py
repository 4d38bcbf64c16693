"""style_mixing.py: each grid cell against a direct synthesis of hand-mixed ws; the CLI writes grid.png atomically."""

import os

import numpy as np
import PIL.Image
import torch
from click.testing import CliRunner

import style_mixing
from training.checkpoint import save_network_pkl
from training.networks import Discriminator, Generator

RES = 8


def _generator() -> Generator:
    torch.manual_seed(0)
    G = Generator(
        8, 0, 8, RES, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8)
    )
    G.mapping.w_avg.normal_()  # A non-zero w_avg, so truncation is visible.
    return G.eval().requires_grad_(False)


def write_snapshot(path: str, G: Generator) -> str:
    """A network pickle holding G (as G and G_ema) and a matching tiny D."""
    D = Discriminator(
        G.c_dim, G.img_resolution, G.img_channels, channel_base=64, channel_max=8, mapping_kwargs=dict(num_layers=2)
    )
    save_network_pkl(path, dict(G_ema=G, G=G, D=D.eval(), augment_pipe=None, training_set_kwargs=None))
    return path


def _direct_image(G, row_seed, col_seed, styles, psi):
    """Mapping of each seed, truncation by hand (w_avg + psi (w - w_avg)), layer swap, synthesis."""

    def ws_of(seed):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
        w = G.mapping(z, None)
        return G.mapping.w_avg + psi * (w - G.mapping.w_avg)

    w = ws_of(row_seed).clone()
    w[:, styles] = ws_of(col_seed)[:, styles]
    img = (G.synthesis(w, noise_mode="const").permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img[0].numpy()


def test_grid_cells_equal_hand_mixed_synthesis():
    G = _generator()
    rows, cols, styles, psi = [1, 2], [5, 6, 7], [0, 2], 0.7
    with torch.no_grad():
        grid = style_mixing.style_mixing_grid(G, rows, cols, styles, psi, "const", torch.zeros([1, 0]))
        assert grid.shape == (3 * RES, 4 * RES, 3)
        assert (grid[:RES, :RES] == 0).all()  # Empty corner.
        cell = lambda r, c: grid[r * RES : (r + 1) * RES, c * RES : (c + 1) * RES]  # noqa: E731
        for i, row in enumerate(rows):
            np.testing.assert_array_equal(cell(i + 1, 0), _direct_image(G, row, row, [], psi))
            for j, col in enumerate(cols):
                np.testing.assert_array_equal(
                    cell(i + 1, j + 1), _direct_image(G, row, col, styles, psi), err_msg=f"cell {row},{col}"
                )
        for j, col in enumerate(cols):
            np.testing.assert_array_equal(cell(0, j + 1), _direct_image(G, col, col, [], psi))
        assert not np.array_equal(cell(1, 1), cell(1, 0)) and not np.array_equal(cell(1, 1), cell(0, 1))


def test_cli_writes_grid_and_refuses_bad_styles(tmp_path):
    G = _generator()
    network = write_snapshot(str(tmp_path / "net.pkl"), G)
    out = tmp_path / "out"
    args = [f"--network={network}", "--rows=1,2", "--cols=3-5", "--styles=0-3", f"--outdir={out}", "--device=cpu"]
    result = CliRunner().invoke(style_mixing.main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert os.listdir(out) == ["grid.png"]  # No temp file left behind.
    with PIL.Image.open(out / "grid.png") as image:
        assert image.size == (4 * RES, 3 * RES) and image.mode == "RGB"
    result = CliRunner().invoke(style_mixing.main, [*args[:3], "--styles=0-99", f"--outdir={out}"])
    assert result.exit_code == 2 and f"ws layers 0-{G.num_ws - 1}" in result.output
