"""projector.py: schedule and regulariser by hand, projection reduces the distance, CLI -> generate.py round trip."""

import math
import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from test_style_mixing import write_snapshot

import dnnlib
import generate
import projector
from metrics import detectors, domain_classifier
from training.networks import Generator

RES = 16


def _generator() -> Generator:
    torch.manual_seed(2)
    G = Generator(
        8, 0, 8, RES, 1, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16)
    )
    return G.eval().requires_grad_(False)


def _distance_net_file(path: str) -> str:
    """A deterministic random stand-in for VGG16 with the same call (return_lpips=True), via the detector loader."""
    torch.manual_seed(3)
    domain_classifier.save(
        domain_classifier.DomainClassifier(2, in_channels=1, resolution=RES, channels=(8, 8), hidden=8), path, info={}
    )
    return path


def test_learning_rate_ramp_by_hand():
    assert projector.learning_rate(0.0) == 0.0
    assert projector.learning_rate(0.025) == pytest.approx(0.05)  # Half-way up the 5 % linear ramp-up.
    assert projector.learning_rate(0.5) == pytest.approx(0.1)
    assert projector.learning_rate(0.875) == pytest.approx(
        0.1 * (0.5 - 0.5 * math.cos(0.5 * math.pi))
    )  # Half-way down.


def test_noise_regulariser_equals_direct_sum():
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((16, 16)), rng.standard_normal((8, 8))]
    want = 0.0
    for n in maps:
        while True:
            want += (n * np.roll(n, 1, axis=1)).mean() ** 2 + (n * np.roll(n, 1, axis=0)).mean() ** 2
            if n.shape[0] <= 8:
                break
            n = n.reshape(n.shape[0] // 2, 2, n.shape[1] // 2, 2).mean(axis=(1, 3))
    got = projector.noise_regulariser([torch.from_numpy(m) for m in maps])
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_projection_reduces_the_distance(tmp_path):
    G = _generator()
    net = detectors.load_detector_file(_distance_net_file(str(tmp_path / "net.pt")))
    with torch.no_grad():
        w = G.mapping(torch.randn([1, 8]), None)
        target = ((G.synthesis(w, noise_mode="const")[0] * 127.5 + 128).clamp(0, 255)).to(torch.uint8)
    dists = []
    torch.manual_seed(0)
    ws, noise = projector.project(
        G, target, net, num_steps=30, w_avg_samples=200, on_step=lambda step, dist, loss: dists.append(dist)
    )
    assert ws.shape == (30, G.num_ws, G.w_dim) and torch.equal(ws[:, 0], ws[:, -1])  # One w for all layers.
    assert min(dists[-5:]) < 0.5 * dists[0]
    for value in noise.values():  # Renormalised after every step.
        assert abs(float(value.mean())) < 1e-5 and float(value.square().mean()) == pytest.approx(1, abs=1e-4)


def test_cli_outputs_round_trip_through_generate(tmp_path):
    G = _generator()
    network = write_snapshot(str(tmp_path / "net.pkl"), G)
    vgg = _distance_net_file(str(tmp_path / "vgg_stand_in.pt"))
    target = tmp_path / "target_in.png"
    PIL.Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 30), dtype=np.uint8)).save(target)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        projector.main,
        [
            f"--network={network}",
            f"--target={target}",
            "--num-steps=5",
            f"--vgg={vgg}",
            f"--outdir={out}",
            "--device=cpu",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert sorted(os.listdir(out)) == ["proj.png", "projected_w.npz", "target.png"]
    with PIL.Image.open(out / "target.png") as image:
        assert image.size == (RES, RES) and image.mode == "L"
    with np.load(out / "projected_w.npz") as data:
        assert data["w"].shape == (1, G.num_ws, G.w_dim)
        assert any(k.startswith("noise.") for k in data.files)
    result = CliRunner().invoke(
        generate.generate_images,
        [f"--network={network}", f"--projected-w={out / 'projected_w.npz'}", f"--outdir={out}", "--device=cpu"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    # generate.py applies the stored w and noise maps: its image is the projector's proj.png, pixel for pixel.
    np.testing.assert_array_equal(
        np.asarray(PIL.Image.open(out / "proj00.png")), np.asarray(PIL.Image.open(out / "proj.png"))
    )


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    network = write_snapshot(str(tmp_path / "net.pkl"), _generator())
    target = tmp_path / "t.png"
    PIL.Image.fromarray(np.zeros((RES, RES), dtype=np.uint8)).save(target)
    monkeypatch.setattr(
        dnnlib.util,
        "_download",
        lambda url, num_attempts, verbose: (_ for _ in ()).throw(dnnlib.util.DownloadError("offline")),
    )
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        projector.main,
        [
            f"--network={network}",
            f"--target={target}",
            f"--outdir={tmp_path}",
            f"--detector-dir={tmp_path}",
            "--device=cpu",
        ],
    )
    assert (
        result.exit_code == 1
        and 'Detector "vgg16.pt" is not available' in result.output
        and "Traceback" not in result.output
    )
    monkeypatch.setattr(projector.importlib.util, "find_spec", lambda name: None)
    result = CliRunner().invoke(
        projector.main, [f"--network={network}", f"--target={target}", f"--outdir={tmp_path}", "--save-video=1"]
    )
    assert result.exit_code == 2 and "pip install imageio imageio-ffmpeg" in result.output
