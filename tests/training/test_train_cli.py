"""train.py: option validation (one-line errors), presets, --dry-run, run directory naming."""

import json

import pytest
from click.testing import CliRunner

import train
from training.options import TINY, auto_preset, next_run_dir


def run_train(*args):
    return CliRunner().invoke(train.main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "res, gpus, expected",
    [  # The original StyleGAN2-ADA's 'auto' config for these inputs: mb, batch_gpu, mbstd, channel_base, lrate, gamma, ema.
        (32, 1, (32, 32, 4, 16384, 0.0025, 0.0064, 10.0)),
        (64, 2, (64, 32, 4, 16384, 0.0025, 0.0128, 20.0)),
        (256, 1, (16, 16, 4, 16384, 0.0025, 0.8192, 5.0)),
        (256, 8, (64, 8, 4, 16384, 0.0025, 0.2048, 20.0)),
        (512, 4, (32, 8, 4, 32768, 0.0025, 1.6384, 10.0)),
        (1024, 1, (4, 4, 4, 32768, 0.002, 52.4288, 1.25)),
        (1024, 8, (32, 4, 4, 32768, 0.002, 6.5536, 10.0)),
    ],
)
def test_auto_preset_vectors(res, gpus, expected):
    spec = auto_preset(res, gpus)
    got = (
        spec["mb"],
        spec["mb"] // spec["ref_gpus"],
        spec["mbstd"],
        int(spec["fmaps"] * 32768),
        spec["lrate"],
        spec["gamma"],
        spec["ema"],
    )
    assert got[:5] == expected[:5] and got[5] == pytest.approx(expected[5]) and got[6] == pytest.approx(expected[6])


def test_dry_run_prints_resolved_options(tiny_zip, tmp_path):
    result = run_train(
        f"--outdir={tmp_path}/runs",
        f"--data={tiny_zip}",
        "--cfg=tiny",
        "--adaptivemix=1",
        "--noise_std=0.1",
        "--apa=1",
        "--device=cpu",
        "--dry-run",
        "--mirror=1",
        "--kimg=2",
    )
    assert result.exit_code == 0, result.output
    text = result.output
    options = json.loads(text[text.index("{") : text.index("\n}\n") + 2])
    loss = options["loss_kwargs"]
    assert loss["adaptivemix"] is True and loss["noise_std"] == 0.1 and loss["adaptivemix_form"] == "release"
    assert options["apa_kwargs"]["target"] == 0.6 and options["ada_target"] == 0.6
    assert options["training_set_kwargs"]["xflip"] is True and options["total_kimg"] == 2
    assert options["G_kwargs"]["synthesis_kwargs"]["channel_base"] == TINY["channel_base"] and options["metrics"] == []
    assert options["loss_kwargs"]["pl_weight"] == TINY["pl_weight"] == 0
    assert options["run_dir"].endswith("00000-tiny16-mirror-tiny-kimg2-apa")
    assert "Dry run; exiting." in text
    assert not (tmp_path / "runs").exists()


def test_plain_run_without_adaptivemix_is_allowed(tiny_zip, tmp_path):
    result = run_train(f"--outdir={tmp_path}", f"--data={tiny_zip}", "--cfg=tiny", "--device=cpu", "--dry-run")
    assert (
        result.exit_code == 0 and '"adaptivemix' not in result.output and "AdaptiveMix:        False" in result.output
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpus=3"], "--gpus must be a power of two"),
        (["--snap=0"], "--snap must be at least 1"),
        (["--metrics=fid51k"], "--metrics: unknown metric 'fid51k'"),
        (["--cond=1", "--data=NOLABELS"], "--cond=True requires labels specified in dataset.json"),
        (["--subset=100"], "--subset must be between 1 and 32"),
        (["--gamma=-1"], "--gamma must be non-negative"),
        (["--kimg=0"], "--kimg must be positive"),
        (["--kimg=1e30"], "--kimg=1e+30 is too large: at most 1e+06"),
        (["--batch=100000"], "--batch=100000 is too large: at most 65536"),
        (["--workers=1000"], "--workers=1000 is too large"),
        (["--seed=-1"], "--seed must be between 0 and 2147483647"),
        (["--seed=4294967296"], "--seed=4294967296 is too large: at most 2147483647"),
        (["--batch=3", "--gpus=2"], "--batch must be at least 1 and divisible by --gpus"),
        (["--aug=fixed"], "--aug=fixed requires specifying --p"),
        (["--p=0.5"], "--p can only be specified with --aug=fixed"),
        (["--aug=fixed", "--p=2"], "--p must be between 0 and 1"),
        (["--aug=noaug", "--target=0.5"], "--target can only be specified with --aug=ada"),
        (["--target=1.5"], "--target must be between 0 and 1"),
        (["--aug=noaug", "--augpipe=bg"], "--augpipe cannot be specified with --aug=noaug"),
        (["--freezed=-1"], "--freezed must be non-negative"),
        (["--workers=0"], "--workers must be at least 1"),
        (["--noise_std=0.1"], "--noise-std needs --adaptivemix=1"),
        (["--adaptivemix=1", "--noise-std=-1"], "--noise-std must be non-negative"),
        (["--apa-target=0.5"], "--apa-target can only be specified with --apa=1"),
        (["--apa=1", "--apa-target=3"], "--apa-target must be between 0 and 1"),
        (["--data=MISSING"], "--data:"),
        (["--device=cuda"], "--device=cuda: no CUDA device is available"),
        (["--resume=latest"], "--resume=latest: no training-state-*.pt"),
    ],
)
def test_bad_options_give_one_line_errors(args, message, tiny_zip, tmp_path):
    from conftest import make_image_zip

    data = str(tiny_zip)
    if "--data=NOLABELS" in args:
        data = str(make_image_zip(tmp_path / "nolabels.zip", num_images=4, num_classes=0))
    if "--data=MISSING" in args:
        data = str(tmp_path / "missing.zip")
    args = [a for a in args if not a.startswith("--data=")]
    if "--device=cuda" in args and train.torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = CliRunner().invoke(
        train.main, [f"--outdir={tmp_path}/runs", f"--data={data}", "--cfg=tiny", "--dry-run", *args]
    )
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output


def test_next_run_dir_numbers_after_existing(tmp_path):
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "00009.txt").write_text("a file, not a run")
    assert next_run_dir(str(tmp_path), "desc").endswith("00008-desc")
