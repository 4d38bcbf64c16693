"""Shared test fixtures: the reference-data folder and a tiny labelled image dataset."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # The repository (tests/ sits at its top, tests/<area>/ below).

# The reference numbers the tests reproduce live in the repository (tests/data/reference/, see its README.md).
# $REFERENCE_DIR points the tests at another copy, e.g. the full, untrimmed set. Missing data fails loudly:
# every reference file must be reproduced by a test.
REFERENCE_DIR = Path(os.environ.get("REFERENCE_DIR", Path(__file__).resolve().parent / "data" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.fail(f"Reference data not found at {REFERENCE_DIR}: unset REFERENCE_DIR to use tests/data/reference/")
    return REFERENCE_DIR


def make_image_zip(
    path: Path, num_images: int = 32, resolution: int = 16, channels: int = 3, num_classes: int = 2, seed: int = 0
) -> Path:
    """A zip dataset of smooth random images with int class labels (dataset.json), as dataset_tool writes it."""
    rng = np.random.default_rng(seed)
    labels = []
    with zipfile.ZipFile(path, "w") as zf:
        for idx in range(num_images):
            low = rng.uniform(0, 255, size=[4, 4, channels])
            img = np.kron(low, np.ones([resolution // 4, resolution // 4, 1])).astype(np.uint8)
            pil = PIL.Image.fromarray(img[:, :, 0] if channels == 1 else img)
            fname = f"{idx // 1000:05d}/img{idx:08d}.png"
            with zf.open(fname, "w") as f:
                pil.save(f, format="png")
            labels.append([fname, int(idx % num_classes) if num_classes else 0])
        zf.writestr("dataset.json", json.dumps({"labels": labels if num_classes else None}))
    return path


@pytest.fixture
def tiny_zip(tmp_path) -> Path:
    return make_image_zip(tmp_path / "tiny16.zip")


def build_reference_networks(cfg: dict):
    """G and D (float32 everywhere) from the `config` dict stored in the reference files (net_a.pt, loss_step_1.pt,
    adaptivemix_step_1.pt)."""
    from training.networks import Discriminator, Generator

    G = Generator(
        z_dim=cfg["z_dim"],
        c_dim=cfg["c_dim"],
        w_dim=cfg["w_dim"],
        img_resolution=cfg["res"],
        img_channels=cfg["ch"],
        mapping_kwargs=dict(num_layers=cfg["map_layers"]),
        synthesis_kwargs=dict(
            channel_base=cfg["cbase"], channel_max=cfg["cmax"], conv_clamp=cfg["clamp"], architecture=cfg["g_arch"]
        ),
    )
    D = Discriminator(
        c_dim=cfg["c_dim"],
        img_resolution=cfg["res"],
        img_channels=cfg["ch"],
        architecture=cfg["d_arch"],
        channel_base=cfg["cbase"],
        channel_max=cfg["cmax"],
        conv_clamp=cfg["clamp"],
        epilogue_kwargs=dict(mbstd_group_size=cfg["mbstd_group"], mbstd_num_channels=cfg.get("mbstd_ch", 1)),
    )
    return G, D
