"""The domain classifier (an offline detector for every metric) and its training command."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from metrics import domain_classifier, domain_detector


def write_labelled_image_folder(path, num_images: int, resolution: int = 8, channels: int = 1, seed: int = 0) -> None:
    """A dataset folder (PNG files + dataset.json) with two easy classes: dark (0) and bright (1) noise images."""
    rng = np.random.RandomState(seed)
    os.makedirs(path, exist_ok=True)
    labels = []
    for idx in range(num_images):
        label = idx % 2
        pixels = rng.randint(0, 100, size=(resolution, resolution, channels)) + 140 * label
        image = PIL.Image.fromarray(
            pixels.astype(np.uint8).squeeze(axis=2) if channels == 1 else pixels.astype(np.uint8)
        )
        name = f"img{idx:08d}.png"
        image.save(os.path.join(path, name))
        labels.append([name, label])
    with open(os.path.join(path, "dataset.json"), "w") as f:
        json.dump({"labels": labels}, f)


def _model(**kwargs) -> domain_classifier.DomainClassifier:
    torch.manual_seed(0)
    return domain_classifier.DomainClassifier(
        **dict(dict(num_classes=4, in_channels=1, resolution=16, channels=(4, 6, 8), hidden=5), **kwargs)
    ).eval()


def _images(n: int, channels: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randint(
        0, 256, [n, channels, size, size], dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_outputs_follow_detector_call_convention():
    model = _model()
    x = _images(3)
    with torch.no_grad():
        probs = model(x)
        features = model(x, return_features=True)
        unbiased = model(x, no_output_bias=True)
    assert probs.shape == (3, 4) and features.shape == (3, 5)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(unbiased, probs)  # The output layer has no bias to drop.
    assert (features >= 0).all()  # Penultimate layer after ReLU.


def test_gray_repeated_to_rgb_gives_the_same_outputs():
    model = _model()
    gray = _images(2, channels=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(gray.repeat(1, 3, 1, 1), return_features=True), model(gray, return_features=True)
        )


def test_input_is_resized_to_the_training_resolution():
    model = _model()
    # Any averaging resize keeps a constant image constant: 40x40 and 16x16 images of one grey level agree.
    levels = torch.tensor([0.0, 90.0, 200.0]).reshape(3, 1, 1, 1)
    with torch.no_grad():
        large = model(levels.expand(3, 1, 40, 40), return_features=True)
        small = model(levels.expand(3, 1, 16, 16), return_features=True)
        resized = F.interpolate(
            _images(2, channels=1, size=40).float(), size=(16, 16), mode="bilinear", align_corners=False, antialias=True
        )
        torch.testing.assert_close(
            model(_images(2, channels=1, size=40), return_features=True), model(resized, return_features=True)
        )
    torch.testing.assert_close(large, small)


def test_lpips_embedding_distance_is_mean_normalised_activation_distance():
    model = _model()
    acts = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: acts.append(F.relu(out))) for conv in model.convs]
    a, b = _images(2, size=24).float().chunk(2)
    with torch.no_grad():
        ea = model(a, resize_images=False, return_lpips=True)
        eb = model(b, resize_images=False, return_lpips=True)
    for hook in hooks:
        hook.remove()
    # Direct LPIPS with unit channel weights: per layer, unit-normalise channels, mean over pixels of the
    # squared difference summed over channels; then sum over layers.
    expected = 0.0
    for act_a, act_b in zip(acts[:3], acts[3:]):
        assert act_a.shape[2] in (24, 12, 6)  # resize_images=False keeps the input size.
        na = act_a / act_a.norm(dim=1, keepdim=True).clamp(min=1e-10)
        nb = act_b / act_b.norm(dim=1, keepdim=True).clamp(min=1e-10)
        expected += (na - nb).square().sum(dim=1).mean().item()
    assert (ea - eb).square().sum().item() == pytest.approx(expected, rel=1e-5)


def test_training_command_writes_an_accurate_weights_only_detector(tmp_path):
    data = tmp_path / "data"
    write_labelled_image_folder(data, num_images=48)
    out = tmp_path / "det.pt"
    result = CliRunner().invoke(
        domain_detector.main,
        [f"--data={data}", f"--out={out}", "--epochs=8", "--batch=8", "--holdout=0.25", "--channels=4,8", "--hidden=8"],
    )
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output
    raw = torch.load(str(out), weights_only=True)
    info = raw["info"]
    assert (info["num_train"], info["num_holdout"], info["num_classes"]) == (36, 12, 2)
    assert info["holdout_accuracy"] == 1.0  # Dark vs bright is trivially separable.
    model = domain_classifier.from_file_dict(raw)
    assert model.config == dict(num_classes=2, in_channels=1, resolution=8, channels=[4, 8], hidden=8)


def test_training_command_rejects_unlabelled_data(tmp_path):
    data = tmp_path / "data"
    write_labelled_image_folder(data, num_images=4)
    (data / "dataset.json").write_text('{"labels": null}')
    result = CliRunner().invoke(domain_detector.main, [f"--data={data}", f"--out={tmp_path / 'det.pt'}"])
    assert result.exit_code == 2 and "has no class labels" in result.output
