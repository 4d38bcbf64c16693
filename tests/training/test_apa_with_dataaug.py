"""--with-dataaug: APA and the augmentation pipe share one p, adapted by APA (train.py options and the loop's set-up)."""

import json

import pytest
import torch
from click.testing import CliRunner

import train
from training.apa import build_augmentation
from training.augment import AUGPIPE_PRESETS

PIPE = dict(class_name="training.augment.AugmentPipe", **AUGPIPE_PRESETS["bgc"])
APA = dict(target=0.6, interval=4, kimg=500)


def dry_run(tmp_path, data, *args):
    return CliRunner().invoke(
        train.main, [f"--outdir={tmp_path}/runs", f"--data={data}", "--cfg=tiny", "--device=cpu", "--dry-run", *args]
    )


def printed_options(output: str) -> dict:
    text = output[output.index("Training options:") + len("Training options:") :]
    return json.loads(text[: text.index("\n}\n") + 2])


def test_dry_run_shows_the_shared_p_options(tiny_zip, tmp_path):
    result = dry_run(tmp_path, tiny_zip, "--apa=1", "--with-dataaug=1")
    assert result.exit_code == 0, result.output
    options = printed_options(result.output)
    assert options["apa_kwargs"] == dict(target=0.6, interval=4, kimg=500, with_dataaug=True)
    assert "ada_target" not in options and options["augment_kwargs"]["class_name"] == PIPE["class_name"]
    assert options["run_dir"].endswith("-apa-wdataaug")


def test_apa_alone_records_with_dataaug_false(tiny_zip, tmp_path):
    result = dry_run(tmp_path, tiny_zip, "--apa=1")
    assert result.exit_code == 0, result.output
    options = printed_options(result.output)
    assert options["apa_kwargs"]["with_dataaug"] is False and options["ada_target"] == 0.6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--with-dataaug=1"], "--with-dataaug=1 needs --apa=1"),
        (["--apa=1", "--with-dataaug=1", "--aug=noaug"], "--with-dataaug=1 cannot be specified with --aug=noaug"),
        (
            ["--apa=1", "--with-dataaug=1", "--aug=fixed", "--p=0.2"],
            "--with-dataaug=1 cannot be specified with --aug=fixed",
        ),
        (["--apa=1", "--with-dataaug=1", "--target=0.5"], "--target cannot be specified with --with-dataaug=1"),
    ],
)
def test_conflicting_options_give_one_line_errors(args, message, tiny_zip, tmp_path):
    result = dry_run(tmp_path, tiny_zip, *args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_with_dataaug_builds_one_p_that_apa_adapts():
    pipe, ada, apa = build_augmentation(PIPE, 0.0, None, 4, 500, dict(APA, with_dataaug=True), "cpu")
    assert pipe is not None and ada is None and apa.p is pipe.p
    apa.accumulate(torch.ones([8]))  # Every real logit positive: r_t = 1 > 0.6, so p rises by 4 * 64 / 500000.
    assert apa.step(batch_idx=4, batch_size=64)
    assert float(pipe.p) == pytest.approx(4 * 64 / 500_000, abs=1e-8)


def test_without_with_dataaug_ada_and_apa_keep_separate_ps():
    pipe, ada, apa = build_augmentation(PIPE, 0.0, 0.6, 4, 500, dict(APA, with_dataaug=False), "cpu")
    assert ada is not None and ada.p is pipe.p and apa.p is not pipe.p
    apa.accumulate(torch.ones([8]))
    apa.step(batch_idx=4, batch_size=64)
    assert float(apa.p) > 0 and float(pipe.p) == 0


def test_apa_alone_builds_no_pipe_and_old_options_still_load():
    pipe, ada, apa = build_augmentation(None, 0.0, None, 4, 500, dict(APA), "cpu")  # No with_dataaug key (older runs).
    assert pipe is None and ada is None and apa.augment_pipe is None


def test_with_dataaug_needs_a_pipe_and_no_ada_target():
    with pytest.raises(ValueError, match="with_dataaug needs an augmentation pipe"):
        build_augmentation(None, 0.0, None, 4, 500, dict(APA, with_dataaug=True), "cpu")
    with pytest.raises(ValueError, match="no ADA target"):
        build_augmentation(PIPE, 0.0, 0.6, 4, 500, dict(APA, with_dataaug=True), "cpu")
