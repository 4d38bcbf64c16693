"""Exact resume with the run's own command line: every option's value read back from training_options.json, the
refusal of a changed one, and a full command line that resumes bit-exactly."""

import json

import click
import pytest
import torch
from click.testing import CliRunner

import train
from training import options as opts
from training import training_loop as training_loop_module
from training.resume import options as resume_options
from training.resume import state as resume_state
from training.saved_names import move_adaptivemix_kwargs

# Command lines (option name -> value) covering every math option; built with build_training_options, each
# option's value must read back from the built options.
COMMAND_LINES = [
    dict(cfg="tiny", aug="noaug", seed=7, batch=8, gamma=0.5, mirror=True, subset=16, cond=True),
    dict(cfg="auto", aug="fixed", p=0.25, augpipe="bg", apa=True, apa_target=0.7, freezed=2, fp32=True),
    dict(cfg="paper256", aug="ada", target=0.4, adaptivemix=True, noise_std=0.1, adaptivemix_weight=2.0),
    dict(cfg="cifar", apa=True, with_dataaug=True, adaptivemix=True, adaptivemix_form="paper", nhwc=True),
    dict(cfg="stylegan2", fm_weight=1.5, label_smoothing=0.9, bures_weight=0.5, hist_avg_weight=0.1, mbdisc=True),
    dict(cfg="paper512", bures_alt=True, nobench=True, allow_tf32=True, deterministic=True, gpus=2),
    dict(cfg="paper1024"),
]


def build(tiny_zip, line):
    args, _desc = opts.build_training_options(outdir="unused", data=str(tiny_zip), **line)
    return json.loads(json.dumps(args))  # As training_options.json gives them back.


def test_every_train_option_is_classified():
    names = {param.name for param in train.main.params}
    classified = set(resume_options.MATH_OPTIONS) | set(resume_options.RESUME_OVERRIDES)
    assert names == classified | set(resume_options.SESSION_OPTIONS)
    assert not set(resume_options.MATH_OPTIONS) & set(resume_options.RESUME_OVERRIDES)


@pytest.mark.parametrize("line", COMMAND_LINES, ids=[line["cfg"] for line in COMMAND_LINES])
def test_each_option_reads_back_as_given(tiny_zip, line):
    args = build(tiny_zip, line)
    for name, value in line.items():
        run_value = resume_options.run_cfgs(args) if name == "cfg" else resume_options.RUN_VALUES[name](args)
        assert (value in run_value) if name == "cfg" else (run_value == value), (name, run_value, value)
    resume_options.check_given_options(args, line)  # The full command line is accepted.


@pytest.mark.parametrize("cfg", opts.CFG_CHOICES)
def test_the_preset_of_a_run_is_recognised_and_no_other(tiny_zip, cfg):
    args = build(tiny_zip, dict(cfg=cfg))
    assert resume_options.run_cfgs(args) == [cfg]
    overridden = build(tiny_zip, dict(cfg=cfg, gamma=3.0, batch=12))
    found = resume_options.run_cfgs(overridden)  # stylegan2 and paper1024 differ only in gamma and batch.
    assert cfg in found and all(build(tiny_zip, dict(cfg=c, gamma=3.0, batch=12)) == overridden for c in found)
    other = "tiny" if cfg != "tiny" else "cifar"
    with pytest.raises(
        click.UsageError, match=f"--cfg cannot change .*this run has {cfg}, the command line gives {other}"
    ):
        resume_options.check_given_options(args, dict(cfg=other))


def test_defaults_compare_as_values(tiny_zip):
    """An option left at its default may be given explicitly; the auto preset's computed gamma compares by value."""
    args = build(tiny_zip, dict(cfg="auto"))
    gamma = 0.0002 * 16**2 / args["batch_size"]  # The auto preset's formula, as a user would type its value.
    same = dict(aug="ada", target=0.6, augpipe="bgc", seed=0, mirror=False, apa=False, adaptivemix=False, gamma=gamma)
    same.update(subset=32, freezed=0, fm_weight=0.0, label_smoothing=1.0, adaptivemix_form="release")
    resume_options.check_given_options(args, same)
    with pytest.raises(click.UsageError, match="--target cannot change .*this run has 0.6, the command line gives 0.5"):
        resume_options.check_given_options(args, dict(target=0.5))


def old_layout(args: dict) -> dict:
    """Training options as train.py saved them before AdaptiveMix's settings moved into loss_kwargs: the loop
    unpacked `adaptivemix_kwargs` (the call's noise_std/alpha/distance/stop_gradient plus variant and weight)."""
    args = json.loads(json.dumps(args))
    loss = args["loss_kwargs"]
    if loss.pop("adaptivemix", False):
        form = loss.pop("adaptivemix_form")
        args["adaptivemix_kwargs"] = dict(
            noise_std=loss.pop("noise_std"),
            alpha=1.0,
            distance="cosine" if form == "release" else "l2",
            stop_gradient=form == "release",
            variant=form,
            weight=loss.pop("adaptivemix_weight"),
        )
    return args


@pytest.mark.parametrize("line", COMMAND_LINES[2:4], ids=["release", "paper"])
def test_options_of_the_old_adaptivemix_layout_read_back_and_move_into_loss_kwargs(tiny_zip, line):
    args = build(tiny_zip, line)
    old = old_layout(args)
    assert "adaptivemix_kwargs" in old and "adaptivemix" not in old["loss_kwargs"]
    move_adaptivemix_kwargs(old)
    assert old == args
    for name in ("adaptivemix", "noise_std", "adaptivemix_form", "adaptivemix_weight"):
        assert resume_options.RUN_VALUES[name](old) == resume_options.RUN_VALUES[name](args), name
    resume_options.check_given_options(old, line)


def test_old_adaptivemix_layout_with_another_alpha_is_refused(tiny_zip):
    old = old_layout(build(tiny_zip, COMMAND_LINES[2]))
    old["adaptivemix_kwargs"]["alpha"] = 0.5
    with pytest.raises(ValueError, match="alpha=0.5; only the release's alpha 1 can be resumed"):
        move_adaptivemix_kwargs(old)


def _state_tensors(run_dir):
    state = resume_state.load_training_state(resume_state.latest_state_in_run(str(run_dir)))
    return state["cur_nimg"], {f"{net}.{k}": v for net in ("G", "D", "G_ema") for k, v in state[net].items()}


@pytest.mark.slow
def test_the_full_command_line_resumes_bit_exactly(tiny_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(training_loop_module, "export_fakes", lambda *args: None)
    monkeypatch.setattr(training_loop_module, "save_image_grid", lambda *args, **kwargs: None)
    line = [f"--data={tiny_zip}", "--cfg=tiny", "--batch=4", "--tick=0.004", "--snap=1", "--device=cpu"]
    line += ["--aug=ada", "--target=0.5", "--mirror=1", "--seed=5", "--gamma=0.5", "--adaptivemix=1", "--workers=1"]
    line += ["--deterministic=1", "--metrics=none"]

    def run(outdir, *extra):
        result = CliRunner().invoke(train.main, [f"--outdir={outdir}", *line, *extra])
        assert result.exit_code == 0, result.output
        return result.output

    run(tmp_path / "straight", "--kimg=0.008")
    run(tmp_path / "split", "--kimg=0.004")
    output = run(tmp_path / "split", "--kimg=0.008", "--resume=latest")
    assert "Resuming exactly from" in output
    (straight_dir,) = (tmp_path / "straight").iterdir()
    (split_dir,) = (tmp_path / "split").iterdir()
    nimg_a, tensors_a = _state_tensors(straight_dir)
    nimg_b, tensors_b = _state_tensors(split_dir)
    assert nimg_a == nimg_b == 8 and tensors_a.keys() == tensors_b.keys()
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)


@pytest.mark.slow
def test_a_run_saved_in_the_old_adaptivemix_layout_resumes_bit_exactly(tiny_zip, tmp_path, monkeypatch):
    """training_options.json written before AdaptiveMix's settings moved into loss_kwargs still resumes exactly."""
    monkeypatch.setattr(training_loop_module, "export_fakes", lambda *args: None)
    monkeypatch.setattr(training_loop_module, "save_image_grid", lambda *args, **kwargs: None)
    line = [f"--data={tiny_zip}", "--cfg=tiny", "--batch=4", "--tick=0.004", "--snap=1", "--device=cpu"]
    line += ["--seed=3", "--adaptivemix=1", "--noise_std=0.1", "--adaptivemix-weight=0.5", "--workers=1"]
    line += ["--deterministic=1", "--metrics=none", "--aug=noaug"]

    def run(outdir, *extra):
        result = CliRunner().invoke(train.main, [f"--outdir={outdir}", *line, *extra])
        assert result.exit_code == 0, result.output
        return result.output

    run(tmp_path / "straight", "--kimg=0.008")
    run(tmp_path / "split", "--kimg=0.004")
    (split_dir,) = (tmp_path / "split").iterdir()
    options_path = split_dir / "training_options.json"
    options_path.write_text(json.dumps(old_layout(json.loads(options_path.read_text())), indent=2))
    output = run(tmp_path / "split", "--kimg=0.008", "--resume=latest", "--noise_std=0.1")
    assert "Resuming exactly from" in output and "AdaptiveMix:        True" in output
    assert '"adaptivemix_kwargs"' in options_path.read_text()  # The run's file is read, not rewritten.
    (straight_dir,) = (tmp_path / "straight").iterdir()
    nimg_a, tensors_a = _state_tensors(straight_dir)
    nimg_b, tensors_b = _state_tensors(split_dir)
    assert nimg_a == nimg_b == 8 and tensors_a.keys() == tensors_b.keys()
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
