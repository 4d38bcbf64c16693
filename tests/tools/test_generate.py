"""generate.py end to end on tiny networks (click's CliRunner), including its error cases."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
from dnnlib import atomic
from dnnlib.seeds import parse_range
from training.checkpoint import save_network_pkl
from training.networks import Discriminator, Generator


def save_tiny_network(path, c_dim: int = 0, img_channels: int = 3) -> Generator:
    torch.manual_seed(c_dim + img_channels)
    G = Generator(8, c_dim, 8, 16, img_channels, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=128, channel_max=16))  # fmt: skip
    with torch.no_grad():
        for tensor in list(G.parameters()) + list(G.buffers()):
            tensor.add_(torch.randn(tensor.shape) * 0.2)
    G = G.eval().requires_grad_(False)
    D = Discriminator(c_dim, 16, img_channels, channel_base=128, channel_max=16).eval().requires_grad_(False)
    save_network_pkl(path, dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    return G


def expected_pixels(G: Generator, seed: int, label: torch.Tensor, psi: float = 1.0) -> np.ndarray:
    """The image generate.py should write, converted with NumPy: NHWC, x * 127.5 + 128, clip, truncate to uint8."""
    z = torch.from_numpy(np.random.RandomState(seed).standard_normal([1, G.z_dim]))
    with torch.no_grad():
        img = G(z, label, truncation_psi=psi, noise_mode="const").numpy()
    return np.clip(img.transpose(0, 2, 3, 1) * 127.5 + 128, 0, 255).astype(np.uint8)[0]


def read_png(path) -> np.ndarray:
    pixels = np.asarray(PIL.Image.open(path))
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    nets = {}
    for name, c_dim, channels in (("uncond", 0, 3), ("cond", 4, 3), ("gray", 0, 1)):
        path = folder / f"{name}.pkl"
        nets[name] = (str(path), save_tiny_network(path, c_dim, channels))
    return nets


def run(*args: str):
    return CliRunner().invoke(generate.generate_images, [*args, "--device", "cpu"])


def test_unconditional_seeds_and_truncation(networks, tmp_path):
    pkl, G = networks["uncond"]
    result = run("--network", pkl, "--seeds", "0-1,5", "--trunc", "0.7", "--outdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Generating image for seed 5 (2/3) ..." in result.output
    assert sorted(os.listdir(tmp_path)) == ["seed0000.png", "seed0001.png", "seed0005.png"]
    for seed in (0, 1, 5):
        pixels = read_png(tmp_path / f"seed{seed:04d}.png")
        assert pixels.shape == (16, 16, 3)
        assert np.array_equal(pixels, expected_pixels(G, seed, torch.zeros([1, 0]), psi=0.7))


def test_conditional_network_needs_a_valid_class(networks, tmp_path):
    pkl, G = networks["cond"]
    result = run("--network", pkl, "--seeds", "3", "--outdir", str(tmp_path))
    assert result.exit_code == 2
    assert "Must specify class label with --class when using a conditional network" in result.output
    result = run("--network", pkl, "--seeds", "3", "--class", "9", "--outdir", str(tmp_path))
    assert result.exit_code == 2 and "out of range" in result.output
    result = run("--network", pkl, "--seeds", "3", "--class", "2", "--outdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    label = torch.zeros([1, 4])
    label[0, 2] = 1
    assert np.array_equal(read_png(tmp_path / "seed0003.png"), expected_pixels(G, 3, label))


@pytest.mark.parametrize("class_idx", ["1", "99"])
def test_class_on_unconditional_network_is_refused(networks, tmp_path, class_idx):
    out = tmp_path / "out"
    result = run("--network", networks["uncond"][0], "--seeds", "2", "--class", class_idx, "--outdir", str(out))
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert f"--class={class_idx}: the network is unconditional" in errors[0] and not out.exists()


def test_leftovers_of_a_killed_generate_are_removed_and_live_writes_kept(networks, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = out / f".seed0000.png.tmp-{dead_pid}-0123abcd.png"  # A kill -9 during a PNG write.
    live = out / f".seed0001.png.tmp-{os.getpid()}-4567cdef.png"  # Another generate.py writing now.
    left.write_bytes(b"partial")
    live.write_bytes(b"partial")
    assert atomic.is_temp_name(left.name) and atomic.is_temp_name(live.name)
    result = run("--network", networks["uncond"][0], "--seeds", "0", "--outdir", str(out))
    assert result.exit_code == 0, result.output
    assert not left.exists() and live.exists() and (out / "seed0000.png").is_file()


def test_grayscale_network_writes_single_channel_pngs(networks, tmp_path):
    pkl, G = networks["gray"]
    result = run("--network", pkl, "--seeds", "4", "--noise-mode", "none", "--outdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    image = PIL.Image.open(tmp_path / "seed0004.png")
    assert image.mode == "L" and image.size == (16, 16)


def test_projected_w(networks, tmp_path):
    pkl, G = networks["uncond"]
    ws = np.random.RandomState(0).standard_normal([2, G.num_ws, G.w_dim]).astype(np.float32)
    np.savez(tmp_path / "proj.npz", w=ws)
    out = tmp_path / "out"
    result = run("--network", pkl, "--projected-w", str(tmp_path / "proj.npz"), "--seeds", "1", "--outdir", str(out))
    assert result.exit_code == 0, result.output
    assert "warn: --seeds is ignored when using --projected-w" in result.output
    assert sorted(os.listdir(out)) == ["proj00.png", "proj01.png"]
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(ws[1:2]), noise_mode="const").numpy()
    expected = np.clip(img.transpose(0, 2, 3, 1) * 127.5 + 128, 0, 255).astype(np.uint8)[0]
    assert np.array_equal(read_png(out / "proj01.png"), expected)
    np.savez(tmp_path / "bad.npz", w=ws[:, :3])
    result = run("--network", pkl, "--projected-w", str(tmp_path / "bad.npz"), "--outdir", str(out))
    assert result.exit_code == 2 and "expected [n, " in result.output


@pytest.mark.parametrize(
    "seeds, message",
    [("3-x", "is not a seed or a range"), ("5-2", "empty range"), ("1,,2", "is not a seed"),
     (None, "--seeds option is required")],
)  # fmt: skip
def test_bad_seed_lists_are_usage_errors(networks, tmp_path, seeds, message):
    args = ["--network", networks["uncond"][0], "--outdir", str(tmp_path)]
    result = run(*args, *(["--seeds", seeds] if seeds is not None else []))
    assert result.exit_code == 2 and message in result.output
    assert not any(name.endswith(".png") for name in os.listdir(tmp_path))


def test_unreadable_networks_give_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(os.urandom(64))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(dict(G_ema=io.StringIO("x"))))
    cases = [(tmp_path / "missing.pkl", "No such file"), (garbage, "cannot load network"), (evil, "'_io.StringIO'")]
    for path, message in cases:
        result = run("--network", str(path), "--seeds", "0", "--outdir", str(tmp_path / "out"))
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when no CUDA device is present")
def test_cuda_without_a_gpu_is_a_usage_error(networks, tmp_path):
    args = ["--network", networks["uncond"][0], "--seeds", "0", "--outdir", str(tmp_path), "--device", "cuda"]
    result = CliRunner().invoke(generate.generate_images, args)
    assert result.exit_code == 2 and "no CUDA device" in result.output


def test_parse_range():
    assert parse_range("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_range("12") == [12]
    with pytest.raises(ValueError, match="2\\*\\*32"):
        parse_range("4294967296")


def test_outdir_that_is_a_file_and_huge_seed_ranges_are_one_line(networks, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run("--network", networks["uncond"][0], "--seeds", "0", "--outdir", str(afile))
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    for seeds, message in [
        ("0-9999999999", "seeds must be below 2**32"),
        ("0-4000000000", "4000000001 seeds requested; at most 1000000"),
    ]:
        result = run("--network", networks["uncond"][0], "--seeds", seeds, "--outdir", str(tmp_path / "out"))
        assert result.exit_code == 2 and message in result.output, result.output  # Refused before expanding.
    result = run("--network", networks["uncond"][0], "--seeds", "0", "--trunc", "nan", "--outdir", str(tmp_path / "o"))
    assert result.exit_code == 2 and "is not a finite number" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_full_disk_while_saving_an_image_is_one_line(networks, tmp_path, monkeypatch):
    def full(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", full)
    result = run("--network", networks["uncond"][0], "--seeds", "0-1", "--outdir", str(tmp_path / "out"))
    assert result.exit_code == 1 and "seed0000.png: no space left on device" in result.output, result.output
    assert os.listdir(tmp_path / "out") == []
