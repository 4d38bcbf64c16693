"""What train.py checks before it creates or touches a run directory; each problem is one click.UsageError line.

* `exact_resume_options`: the options of a run to continue exactly. The state file must load, every
  `class_name` in `training_options.json` must pass the allow-list of `dnnlib.trust` (a shared run directory
  is data, never code), and command-line options override the saved ones only where they leave the training
  math unchanged (`resume_options.RESUME_OVERRIDES`); any other option is accepted only with the run's own
  value (`resume_options.check_given_options`), so the run's full command line may be repeated.
* `check_transfer_pickle`: `--resume=PKL` (transfer learning) must be a readable network pickle.
* `check_detectors`: every metric's detector file must be at hand now, not at the first snapshot.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import re

import click

import dnnlib
from dnnlib import trust
from training import resume_options, run_control, run_state
from training.options import check_metrics, check_upper_limits, metric_kwargs


def exact_resume_options(resume: str, outdir: str, given: dict) -> dnnlib.EasyDict:
    """Options to continue a run exactly, from `latest` (newest state in `outdir`), a state file or a run dir.

    `given`: the options the user gave on the command line (name -> value), applied as overrides.
    """
    if resume == "latest":
        state_path = run_state.find_latest_state(outdir)
        if state_path is None:
            raise click.UsageError(f"--resume=latest: no training-state-*.pt in any run under --outdir={outdir}")
    elif os.path.isdir(resume):
        state_path = run_state.latest_state_in_run(resume)
        if state_path is None:
            raise click.UsageError(f"--resume={resume}: that run directory has no training-state-*.pt yet")
    else:
        state_path = resume
    if not os.path.isfile(state_path):
        raise click.UsageError(f"--resume={resume}: no such training-state file")
    try:
        state = run_state.load_training_state(state_path)
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
    except (OSError, ValueError) as err:  # UntrustedNameError is a ValueError.
        raise click.UsageError(f"--resume: {err}") from None
    args.run_dir = run_dir
    args.resume_state = state_path
    args.pop("resume_pkl", None)
    _apply_overrides(args, given, state)
    return args


def _apply_overrides(args: dnnlib.EasyDict, given: dict, state: dict) -> None:
    resume_options.check_given_options(args, given)
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
        channels, _labels = _state_shapes(state)
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


def _state_shapes(state: dict) -> tuple[int | None, int | None]:
    """(image channels, label dimensions) of the run's generator, read off its saved tensors."""
    G = state.get("G", {})
    torgb = [(int(m.group(1)), key) for key in G if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", key))]
    channels = int(G[max(torgb)[1]].shape[0]) if torgb else None
    embed = G.get("mapping.embed.weight")
    return channels, (int(embed.shape[1]) if embed is not None else 0)


def same_dataset(saved: dict, path: str, state: dict) -> dnnlib.EasyDict:
    """The saved dataset options with `path` replaced, after checking that `path` holds the same dataset: the run's
    resolution, channel count and labels, and (without --subset) the same number of images."""
    kwargs = dnnlib.EasyDict(saved, path=path)
    try:
        dataset = dnnlib.util.construct_class_by_name(**dict(kwargs, max_size=None, xflip=False, random_seed=0))
        count, channels, label_dim = len(dataset), dataset.num_channels, dataset.label_dim
    except (OSError, ValueError) as err:
        raise click.UsageError(f"--data: {err}") from None
    run_channels, run_labels = _state_shapes(state)
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


def check_transfer_pickle(resume_pkl: str) -> None:
    """Load `--resume=PKL` once (safely) so that a bad file is refused before the run directory exists."""
    from training.checkpoint import load_network_pkl_from_url

    try:
        load_network_pkl_from_url(resume_pkl, verbose=False)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise click.UsageError(f"--resume={resume_pkl}: not a usable network pickle ({reason})") from None


def check_detectors(
    metrics: list[str],
    kwargs: dict,
    resize: str = "legacy",
    resolution: int = 64,
    detector_flag: str = "--metric-detector",
) -> None:
    """Make sure every metric's detector is at hand (local path, detector folder or download cache) and fit.

    A detector that is not one of the published ones (a file or URL the user named) is also loaded, on the CPU,
    and called once the way each of its metrics calls it, on images of `resolution`: an unreadable file, an
    untrusted TorchScript file or a module with another call convention fails now with one line instead of a
    traceback inside the metric's process. With resize='clean' every detector is loaded to learn its input
    size. `detector_flag` names the option that gave `kwargs['detector']` in messages.
    """
    from metrics import detectors, metric_main

    uses: dict[str, list[str]] = {}
    for metric in metrics:
        uses.setdefault(kwargs.get("detector") or metric_main.default_detector(metric), []).append(metric)
    for url in sorted(uses):
        flag = detector_flag if url == kwargs.get("detector") else "--metrics"
        try:
            detectors.locate(url, kwargs.get("detector_dir"))
            if resize == "clean" or url not in metric_main.PUBLISHED_DETECTORS:
                detector = detectors.get_detector(url, "cpu", kwargs.get("detector_dir"))
                if resize == "clean":
                    detectors.input_size(detector, url)
                if url not in metric_main.PUBLISHED_DETECTORS:
                    calls = {tuple(metric_main.detector_call(m).items()) for m in uses[url]}
                    detectors.check_calls(detector, url, resolution, [dict(call) for call in sorted(calls)])
        except detectors.DetectorUnavailableError as err:
            raise click.UsageError(f"{flag}: {err}") from None
        except ValueError as err:  # Unreadable or untrusted file, unfit module, unknown input size for clean.
            raise click.UsageError(f"{flag}: {err}") from None


def check_writable_folder(folder: str) -> None:
    """`folder`, or the nearest folder above it that exists, must be a folder this process can write in."""
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise click.UsageError(f"--outdir: {path} is a file, not a folder; choose another location")
    if not os.access(path, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"--outdir: cannot write in {path} (read-only or no permission); choose a writable location"
        )


def check_run_dir_free(run_dir: str) -> None:
    """Refuse a run directory whose lock another train.py holds, without taking or changing the lock file."""
    path = os.path.join(run_dir, run_control.LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # No lock file yet: nobody holds it.
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        raise click.UsageError(
            f"run directory {run_dir} is in use by process {holder} (another train.py); wait for it to finish"
        ) from None
    finally:
        os.close(fd)
