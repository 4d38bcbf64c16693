"""training.generator_io (what the command-line tools share about a generator), dnnlib.cli (their library errors
as click errors) and metrics.detector_check (the detectors checked before a run), each on its own."""

from __future__ import annotations

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dnnlib.cli import OptionError, click_errors
from metrics import detector_check
from training import generator_io
from training.checkpoint import save_network_pkl
from training.networks import Discriminator


def test_to_uint8_images_matches_numpy_conversion():
    img = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.004, 0.5, 0.9961, 1.0, 2.0]).reshape(1, 1, 3, 3).repeat(2, 3, 1, 1)
    img[1] *= -1
    got = generator_io.to_uint8_images(img)
    values = img.numpy().transpose(0, 2, 3, 1).astype(np.float64) * 127.5 + 128  # NHWC, then clip and truncate.
    want = np.clip(values, 0, 255).astype(np.uint8)
    assert got.shape == (2, 3, 3, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert got[0, 0, :, 0].tolist() == [0, 0, 64] and got[0, 2, :, 0].tolist() == [255, 255, 255]


class _Conditional(torch.nn.Module):
    z_dim, c_dim = 4, 3


class _Unconditional(torch.nn.Module):
    z_dim, c_dim = 4, 0


def test_class_label_one_hot_or_empty():
    device = torch.device("cpu")
    assert generator_io.class_label(_Conditional(), 2, device).tolist() == [[0.0, 0.0, 1.0]]
    assert generator_io.class_label(_Unconditional(), None, device).shape == (1, 0)


@pytest.mark.parametrize(
    "G, class_idx, message",
    [
        (_Conditional(), None, "Must specify class label with --class"),
        (_Conditional(), 3, "--class=3 is out of range: the network has classes 0-2"),
        (_Conditional(), -1, "--class=-1 is out of range"),
        (_Unconditional(), 0, "--class=0: the network is unconditional"),
    ],
)
def test_class_label_refuses_bad_classes_as_option_errors(G, class_idx, message):
    with pytest.raises(OptionError, match=message):
        generator_io.class_label(G, class_idx, torch.device("cpu"))


def test_load_generator_pkl_refuses_a_module_that_is_no_generator(tmp_path):
    path = tmp_path / "discriminator.pkl"
    D = Discriminator(0, 16, 3, channel_base=128, channel_max=16)
    save_network_pkl(path, dict(G=D, D=D, G_ema=D))
    with pytest.raises(
        generator_io.GeneratorLoadError, match=r"G_ema is a Discriminator, not a generator \(it lacks z_dim\)$"
    ):
        generator_io.load_generator_pkl(str(path), torch.device("cpu"))
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(generator_io.GeneratorLoadError, match='cannot load network ".*empty.pkl"'):
        generator_io.load_generator_pkl(str(tmp_path / "empty.pkl"), torch.device("cpu"))


def _command(error: Exception, *failures: type[Exception]) -> click.Command:
    @click.command()
    def command():
        with click_errors(*failures):
            raise error

    return command


def test_click_errors_maps_option_errors_to_usage_and_named_failures_to_errors():
    usage = CliRunner().invoke(_command(OptionError("--x=1: bad"), OSError))
    assert usage.exit_code == 2 and "Error: --x=1: bad" in usage.output
    failed = CliRunner().invoke(_command(FileNotFoundError("no file"), OSError))
    assert failed.exit_code == 1 and usage.output.count("\n") > failed.output.count("\n") == 1
    assert failed.output == "Error: no file\n"
    other = CliRunner().invoke(_command(KeyError("k"), OSError))  # Not named: a bug keeps its traceback.
    assert other.exit_code == 1 and isinstance(other.exception, KeyError)


def test_check_detectors_names_the_option_of_a_missing_detector(tmp_path):
    missing = str(tmp_path / "missing-detector.pt")
    with pytest.raises(OptionError, match=r"^--detector: Detector file not found: .*missing-detector\.pt"):
        detector_check.check_detectors(
            ["kid50k_full", "fid50k_full"], dict(detector=missing), detector_flag="--detector"
        )
    assert detector_check.check_detectors([], dict(detector=missing)) is None  # No metric: nothing to check.
