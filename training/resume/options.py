"""The run's own value of every train.py option that shapes the training math, read back from training_options.json.

An exact resume (`--resume=latest`, a state file or a run directory) may repeat the run's command line: an option
whose value equals the run's own, after defaults are applied, is accepted; a changed one is refused in one line
naming the option, the run's value and the given one. `training_options.json` holds the resolved options (the
loop's keyword arguments), not the command line, so each option's value is read back from where
`training.options.build_training_options` puts it; `--cfg` is the preset whose sizes, learning rate and EMA
reproduce the saved ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import click

from adaptivemix import DEFAULT_FORM, WEIGHT
from training import options as opts
from training.saved_names import adaptivemix_options

# Options that may differ on an exact resume: they change what is logged, measured or read, not the math.
RESUME_OVERRIDES = (
    "kimg",
    "metrics",
    "metric_detector",
    "detector_dir",
    "metric_images",
    "metric_data",
    "data",
    "snap",
    "tick",
    "workers",
)
# Options that are not part of a run's saved options at all.
SESSION_OPTIONS = ("outdir", "resume", "dry_run", "device", "trust_module", "trust_detector")


def _saved(args: dict, key: str) -> Any:
    """A top-level saved option, or the training loop's default for it when the options leave it out."""
    if key in args:
        return args[key]
    from training.training_loop import training_loop

    return inspect.signature(training_loop).parameters[key].default


def _aug(args: dict) -> str:
    if "augment_kwargs" not in args:
        return "noaug"
    return "fixed" if "augment_p" in args else "ada"


def _augpipe(args: dict) -> str | None:
    from training.augment import AUGPIPE_PRESETS

    kwargs = {k: v for k, v in args.get("augment_kwargs", {}).items() if k != "class_name"}
    if not kwargs and "augment_kwargs" not in args:
        return None
    return next((name for name, preset in AUGPIPE_PRESETS.items() if dict(preset) == kwargs), "custom")


def _amix(args: dict, key: str, default: Any) -> Any:
    """An AdaptiveMix option of the run (`loss_kwargs`); `default` when AdaptiveMix is off."""
    return (adaptivemix_options(args) or {}).get(key, default)


def _loss(args: dict, key: str, default: Any) -> Any:
    return args.get("loss_kwargs", {}).get(key, default)


def _apa(args: dict, key: str, default: Any) -> Any:
    return args.get("apa_kwargs", {}).get(key, default)


# Option name -> its value in a run's saved options (what the command line gave, or the default it got).
RUN_VALUES: dict[str, Callable[[dict], Any]] = {
    "gpus": lambda a: _saved(a, "num_gpus"),
    "seed": lambda a: _saved(a, "random_seed"),
    "cond": lambda a: bool(a["training_set_kwargs"].get("use_labels", False)),
    "subset": lambda a: a["training_set_kwargs"].get("max_size"),
    "mirror": lambda a: bool(a["training_set_kwargs"].get("xflip", False)),
    "gamma": lambda a: _loss(a, "r1_gamma", None),
    "batch": lambda a: _saved(a, "batch_size"),
    "aug": _aug,
    "p": lambda a: a.get("augment_p"),
    "target": lambda a: a.get("ada_target"),
    "augpipe": _augpipe,
    "apa": lambda a: "apa_kwargs" in a,
    "apa_target": lambda a: _apa(a, "target", None),
    "with_dataaug": lambda a: bool(_apa(a, "with_dataaug", False)),
    "adaptivemix": lambda a: adaptivemix_options(a) is not None,
    "noise_std": lambda a: _amix(a, "noise_std", None),
    "adaptivemix_form": lambda a: _amix(a, "adaptivemix_form", DEFAULT_FORM),
    "adaptivemix_weight": lambda a: _amix(a, "adaptivemix_weight", WEIGHT),
    "fm_weight": lambda a: _loss(a, "fm_weight", 0.0),
    "label_smoothing": lambda a: _loss(a, "label_smoothing", 1.0),
    "bures_weight": lambda a: _loss(a, "bures_weight", 0.0),
    "bures_alt": lambda a: bool(_loss(a, "bures_alt", False)),
    "hist_avg_weight": lambda a: _loss(a, "hist_avg_weight", 0.0),
    "mbdisc": lambda a: bool(a["D_kwargs"].get("epilogue_kwargs", {}).get("mbdisc_kernels", 0)),
    "freezed": lambda a: a["D_kwargs"].get("block_kwargs", {}).get("freeze_layers", 0),
    "fp32": lambda a: a["D_kwargs"].get("num_fp16_res", 4) == 0,
    "nhwc": lambda a: bool(a["D_kwargs"].get("block_kwargs", {}).get("fp16_channels_last", False)),
    "nobench": lambda a: not a.get("cudnn_benchmark", True),
    "allow_tf32": lambda a: bool(a.get("allow_tf32", False)),
    "deterministic": lambda a: bool(a.get("deterministic", False)),
}
MATH_OPTIONS = ("cfg", *RUN_VALUES)


def _preset_fingerprint(args: dict) -> tuple:
    """What a preset alone decides: network sizes, minibatch-std group, learning rate, EMA, loss defaults."""
    G, D = args["G_kwargs"], args["D_kwargs"]
    synthesis = G.get("synthesis_kwargs", {})
    return (
        G.get("z_dim"),
        G.get("w_dim"),
        G.get("mapping_kwargs", {}).get("num_layers"),
        synthesis.get("channel_base"),
        synthesis.get("channel_max"),
        D.get("channel_base"),
        D.get("channel_max"),
        D.get("architecture"),
        D.get("epilogue_kwargs", {}).get("mbstd_group_size"),
        args["G_opt_kwargs"].get("lr"),
        _saved(args, "ema_kimg"),
        _loss(args, "pl_weight", None),
        _loss(args, "style_mixing_prob", None),
    )


def run_cfgs(args: dict) -> list[str]:
    """The `--cfg` choices whose preset reproduces the run's saved options (empty for hand-made options).

    Presets that differ only in R1 gamma or minibatch size (stylegan2 and paper1024) are told apart by those
    values unless --gamma/--batch replaced them; then each of them gives the same options and all are listed.
    """
    import dnnlib

    res, gpus = args["training_set_kwargs"].get("resolution"), _saved(args, "num_gpus")
    found, exact = [], []
    for cfg in opts.CFG_CHOICES:
        preset = dnnlib.EasyDict()
        opts.apply_preset(preset, cfg, res, gpus)
        if _preset_fingerprint(preset) == _preset_fingerprint(args):
            found.append(cfg)
            if (preset.loss_kwargs.r1_gamma, preset.batch_size) == (
                _loss(args, "r1_gamma", None),
                args.get("batch_size"),
            ):
                exact.append(cfg)
    return exact or found


def _same(given: Any, run: Any) -> bool:
    if isinstance(given, float) and isinstance(run, (int, float)) and not isinstance(run, bool):
        return math.isclose(given, run, rel_tol=1e-9, abs_tol=0.0)
    return given == run


def _text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_given_options(args: dict, given: dict) -> None:
    """Refuse the first option in `given` (name -> command-line value) that differs from the run's own value.

    Raises click.UsageError: `--NAME cannot change when resuming exactly: this run has X, the command line gives Y`.
    Options in RESUME_OVERRIDES and SESSION_OPTIONS are not checked here.
    """
    for name, value in given.items():
        if name in RESUME_OVERRIDES or name in SESSION_OPTIONS:
            continue
        if name == "cfg":
            cfgs = run_cfgs(args)
            if value in cfgs:
                continue
            run_text = cfgs[0] if cfgs else "a configuration of no preset"
        elif name in RUN_VALUES:
            run_value = RUN_VALUES[name](args)
            if _same(value, run_value):
                continue
            run_text = _text(run_value)
        else:
            raise click.UsageError(f"{opts.flag(name)} cannot be given when resuming exactly (start a new run)")
        raise click.UsageError(
            f"{opts.flag(name)} cannot change when resuming exactly: this run has {run_text}, the command line gives "
            f"{_text(value)} (it changes the training itself; repeat the run's own value or leave it out, start a "
            "new run, or --resume=SNAPSHOT.pkl to start one from these weights)"
        )
