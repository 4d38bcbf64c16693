"""`train.py --resume=latest|STATE.pt|RUN_DIR`: the options of a run to continue exactly, checked before anything.

The state file must load, every `class_name` in the run's `training_options.json` must pass the allow-list of
`dnnlib.trust` (a shared run directory is data, never code), and command-line options override the saved ones
only where they leave the training math unchanged (`options.RESUME_OVERRIDES`); any other option is accepted
only with the run's own value (`options.check_given_options`), so the run's full command line may be repeated.
Each problem is one click.UsageError line.
"""

from __future__ import annotations

import json
import os

import click

import dnnlib
from dnnlib import trust
from training.options import check_metrics, check_upper_limits, metric_kwargs
from training.resume.options import check_given_options
from training.resume.state import (
    TrainingState,
    find_latest_state,
    latest_state_in_run,
    load_training_state,
    state_shapes,
)
from training.saved_names import move_adaptivemix_kwargs


def is_exact_resume(resume: str | None) -> bool:
    """Whether `--resume` names a training state to continue (latest, a .pt file, a run directory), not a pickle."""
    return resume is not None and (resume == "latest" or resume.endswith(".pt") or os.path.isdir(resume))


def exact_resume_options(resume: str, outdir: str, given: dict) -> dnnlib.EasyDict:
    """Options to continue a run exactly, from `latest` (newest state in `outdir`), a state file or a run dir.

    `given`: the options the user gave on the command line (name -> value), applied as overrides.
    """
    if resume == "latest":
        state_path = find_latest_state(outdir)
        if state_path is None:
            raise click.UsageError(f"--resume=latest: no training-state-*.pt in any run under --outdir={outdir}")
    elif os.path.isdir(resume):
        state_path = latest_state_in_run(resume)
        if state_path is None:
            raise click.UsageError(f"--resume={resume}: that run directory has no training-state-*.pt yet")
    else:
        state_path = resume
    if not os.path.isfile(state_path):
        raise click.UsageError(f"--resume={resume}: no such training-state file")
    try:
        state = load_training_state(state_path)
    except ValueError as err:
        raise click.UsageError(f"--resume: {err}") from None
    run_dir = os.path.dirname(os.path.abspath(state_path))
    options_path = os.path.join(run_dir, "training_options.json")
    if not os.path.isfile(options_path):
        raise click.UsageError(f"--resume={resume}: {options_path} is missing; is {run_dir} a run directory?")
    try:
        with open(options_path, encoding="utf-8") as f:
            args = json.load(f, object_hook=dnnlib.EasyDict)
        trust.check_class_names(args, options_path)
        move_adaptivemix_kwargs(args)  # Options saved before AdaptiveMix's settings moved into loss_kwargs.
    except (OSError, ValueError) as err:  # UntrustedNameError is a ValueError.
        raise click.UsageError(f"--resume: {err}") from None
    args.run_dir = run_dir
    args.resume_state = state_path
    args.pop("resume_pkl", None)
    _apply_overrides(args, given, state)
    return args


def _apply_overrides(args: dnnlib.EasyDict, given: dict, state: TrainingState) -> None:
    check_given_options(args, given)
    check_upper_limits(given)
    if "kimg" in given:
        if not given["kimg"] > 0:
            raise click.UsageError("--kimg must be positive (thousands of real images to train for)")
        args.total_kimg = given["kimg"]
    if "snap" in given:
        if given["snap"] < 1:
            raise click.UsageError("--snap must be at least 1")
        args.image_snapshot_ticks = args.network_snapshot_ticks = given["snap"]
    if "tick" in given:
        if not given["tick"] > 0:
            raise click.UsageError("--tick must be positive (kimg between status lines)")
        args.kimg_per_tick = given["tick"]
    if "workers" in given:
        if given["workers"] < 1:
            raise click.UsageError("--workers must be at least 1")
        args.data_loader_kwargs.num_workers = given["workers"]
    if "metrics" in given:
        args.metrics = check_metrics(given["metrics"])
    if any(name in given for name in ("metrics", "metric_detector", "detector_dir", "metric_images", "metric_data")):
        saved = args.get("metric_kwargs", {})
        metric_data = given.get("metric_data", saved.get("real_dataset_kwargs", {}).get("path"))
        channels, _labels = state_shapes(state)
        args.metric_kwargs = metric_kwargs(
            args.metrics,
            given.get("metric_detector", saved.get("detector")),
            given.get("detector_dir", saved.get("detector_dir")),
            given.get("metric_images", saved.get("num_images")),
            metric_data,
            args.training_set_kwargs.get("resolution"),
            channels,
        )
    if "data" in given:
        args.training_set_kwargs = same_dataset(args.training_set_kwargs, given["data"], state)


def same_dataset(saved: dict, path: str, state: TrainingState) -> dnnlib.EasyDict:
    """The saved dataset options with `path` replaced, after checking that `path` holds the same dataset: the run's
    resolution, channel count and labels, and (without --subset) the same number of images."""
    kwargs = dnnlib.EasyDict(saved, path=path)
    try:
        dataset = dnnlib.util.construct_class_by_name(**dict(kwargs, max_size=None, xflip=False, random_seed=0))
        count, channels, label_dim = len(dataset), dataset.num_channels, dataset.label_dim
    except (OSError, ValueError) as err:
        raise click.UsageError(f"--data: {err}") from None
    run_channels, run_labels = state_shapes(state)
    subset = "random_seed" in saved
    problems = []
    if run_channels is not None and channels != run_channels:
        problems.append(f"{channels} channel(s) instead of {run_channels}")
    if saved.get("use_labels") and label_dim != run_labels:
        problems.append(f"{label_dim} label dimensions instead of {run_labels}")
    if (count != saved.get("max_size")) if not subset else (count < saved.get("max_size", 0)):
        problems.append(f"{count} images instead of {saved.get('max_size')}")
    if problems:
        raise click.UsageError(
            f"--data={path} is not the dataset this run trained on ({'; '.join(problems)}); "
            "resume with the same dataset, moved or copied"
        )
    return kwargs
