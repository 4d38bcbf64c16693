"""labs.modes: the mode index of stacked images whose classes are known, and the CLI on a tiny stacked run
against a per-image, per-channel count done by hand."""

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip

from labs import modes
from labs.common.data import load_images, stack_images
from labs.common.snapshot import load_snapshot
from labs.dcgan import cli as dcgan
from labs.dcgan.cli import STACK_SEED
from metrics import domain_classifier, metric_utils


def _brightness_classifier(images: torch.Tensor) -> torch.Tensor:
    """Class = mean intensity // 25 (0..9) as one-hot scores: a classifier whose answers are known."""
    classes = (images.to(torch.float32).mean(dim=(1, 2, 3)) // 25).long().clamp(0, 9)
    return torch.nn.functional.one_hot(classes, 10).float()


def test_mode_index_of_images_with_known_classes():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 10, size=(40, 3))
    images = torch.from_numpy(np.repeat(25 * classes + 10, 64, axis=1).reshape(40, 3, 8, 8).astype(np.uint8))
    index = modes.mode_indices(images, _brightness_classifier, stack=3, num_classes=10)
    assert index.tolist() == [int(100 * a + 10 * b + c) for a, b, c in classes]
    with pytest.raises(ValueError, match="3 groups"):
        modes.mode_indices(images[:, :2], _brightness_classifier, stack=3, num_classes=10)


def test_cli_counts_modes_and_kl_of_a_stacked_run(tmp_path):
    data = make_image_zip(tmp_path / "d.zip", num_images=12, resolution=32, channels=1)
    run_dir = tmp_path / "run"
    args = ["--data", str(data), "--outdir", str(run_dir), "--objective=ns", "--width=4", "--z-dim=8", "--batch=4"]
    assert CliRunner().invoke(dcgan.main, [*args, "--stack=3", "--kimg=0.008"]).exit_code == 0
    torch.manual_seed(0)
    detector = domain_classifier.DomainClassifier(num_classes=4, channels=(4, 4), hidden=8)
    domain_classifier.save(detector, str(tmp_path / "det.pt"), info={})
    result = CliRunner().invoke(
        modes.main, [f"--run={run_dir}", f"--detector={tmp_path / 'det.pt'}", "--num=30", "--batch=7", "--seed=3"]
    )
    assert result.exit_code == 0, result.output
    found = re.fullmatch(r"modes (\d+) KL ([0-9.]+)", result.output.strip().splitlines()[-1])
    assert found, result.output
    # By hand: the same 30 latents, each image and channel classified one at a time.
    G, stack = modes.generator_from_snapshot(load_snapshot(str(run_dir / "snapshot.pt")))
    assert stack == 3 and G.img_channels == 3
    generator = torch.Generator().manual_seed(3)
    z = torch.cat([torch.randn([n, G.z_dim], generator=generator) for n in (7, 7, 7, 7, 2)])
    classifier = domain_classifier.load(str(tmp_path / "det.pt"))
    counts = {}
    with torch.no_grad():
        images = metric_utils.images_to_uint8(G(z))
        for image in images:
            digits = [int(classifier(image[k : k + 1][None]).argmax()) for k in range(3)]
            key = digits[0] * 16 + digits[1] * 4 + digits[2]
            counts[key] = counts.get(key, 0) + 1
    p = np.array(list(counts.values())) / 30
    assert int(found.group(1)) == len(counts)
    assert float(found.group(2)) == pytest.approx(float((p * np.log(64 * p)).sum()), abs=1e-4)


def test_real_stacked_images_are_counted_as_the_training_set(tmp_path):
    data = make_image_zip(tmp_path / "d.zip", num_images=10, resolution=8, channels=1)
    images, _ = load_images(str(data))
    stacked, perms = stack_images(images, 3, seed=STACK_SEED)
    counts = modes.count_real_modes(stacked, _brightness_classifier, 3, 10, batch=4)
    classes = _brightness_classifier(images).argmax(dim=1)
    expected = np.bincount(
        (100 * classes[perms[0]] + 10 * classes[perms[1]] + classes[perms[2]]).numpy(), minlength=1000
    )
    assert np.array_equal(counts, expected)


def test_cli_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(modes.main, [f"--run={tmp_path}", f"--detector={tmp_path / 'x.pt'}"])
    assert result.exit_code == 2 and "snapshot.pt" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(modes.main, [f"--detector={tmp_path / 'x.pt'}"])
    assert result.exit_code == 2 and "--run=DIR" in result.output
