"""train.py's defaults are written once (training/options.py; the loop's own in training/loop_defaults.py) and read
by the help texts, the options and the loop."""

import inspect

import pytest

import adaptivemix
import train
from training import loop_defaults
from training import options as opts
from training.augment import AUGPIPE_PRESETS
from training.training_loop import training_loop


def help_of(name: str) -> str:
    return next(param.help for param in train.main.params if param.name == name)


@pytest.mark.parametrize(
    "option, text",
    [
        ("snap", f"[default: {loop_defaults.SNAP_TICKS} ticks]"),
        ("seed", f"[default: {loop_defaults.RANDOM_SEED}]"),
        ("tick", f"[default: {loop_defaults.KIMG_PER_TICK};"),
        ("aug", f"[default: {opts.AUG}]"),
        ("target", f"[default: {opts.ADA_TARGET}]"),
        ("augpipe", f"[default: {opts.AUGPIPE}]"),
        ("apa_target", f"[default: {opts.APA_TARGET}]"),
        ("noise_std", f"[default: {adaptivemix.NOISE_STD}]"),
        ("adaptivemix_weight", f"[default: {adaptivemix.WEIGHT:g}]"),
        ("workers", f"[default: {loop_defaults.NUM_WORKERS}]"),
        ("adaptivemix_form", f"[default: {adaptivemix.DEFAULT_FORM}]"),
    ],
)
def test_help_texts_quote_the_constants(option, text):
    assert text in help_of(option)


def test_the_loop_defaults_are_the_constants():
    defaults = {name: p.default for name, p in inspect.signature(training_loop).parameters.items()}
    assert defaults["image_snapshot_ticks"] == defaults["network_snapshot_ticks"] == loop_defaults.SNAP_TICKS
    assert (
        defaults["kimg_per_tick"] == loop_defaults.KIMG_PER_TICK
        and defaults["random_seed"] == loop_defaults.RANDOM_SEED
    )
    assert defaults["ada_interval"] == loop_defaults.P_INTERVAL and defaults["ada_kimg"] == loop_defaults.P_KIMG


def test_options_without_overrides_use_the_constants(tiny_zip, tmp_path):
    args, _desc = opts.build_training_options(
        outdir=str(tmp_path), data=str(tiny_zip), cfg="tiny", apa=True, adaptivemix=True
    )
    assert args.image_snapshot_ticks == args.network_snapshot_ticks == loop_defaults.SNAP_TICKS
    assert args.random_seed == loop_defaults.RANDOM_SEED and args.ada_target == opts.ADA_TARGET
    assert args.apa_kwargs.target == opts.APA_TARGET
    assert (args.apa_kwargs.interval, args.apa_kwargs.kimg) == (loop_defaults.P_INTERVAL, loop_defaults.P_KIMG)
    assert (
        args.loss_kwargs.adaptivemix is True
        and args.loss_kwargs.noise_std == adaptivemix.NOISE_STD
        and args.loss_kwargs.adaptivemix_weight == adaptivemix.WEIGHT
    )
    assert args.data_loader_kwargs.num_workers == loop_defaults.NUM_WORKERS
    assert args.loss_kwargs.adaptivemix_form == adaptivemix.DEFAULT_FORM
    assert {k: v for k, v in args.augment_kwargs.items() if k != "class_name"} == AUGPIPE_PRESETS[opts.AUGPIPE]
    transfer, _ = opts.build_training_options(
        outdir=str(tmp_path), data=str(tiny_zip), cfg="tiny", apa=True, resume="some.pkl"
    )
    assert transfer.ada_kimg == transfer.apa_kwargs.kimg == loop_defaults.P_KIMG_TRANSFER
