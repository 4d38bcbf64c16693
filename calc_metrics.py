"""Calculate quality metrics (FID, KID, precision/recall, IS, PPL) for a network snapshot.

Examples:
    python calc_metrics.py --network=runs/00000-x/network-snapshot-000100.pkl --metrics=fid50k_full,kid50k_full
    python calc_metrics.py --network=net.pkl --data=fmnist32.zip --detector=fmnist-detector.pt --metrics=fid50k_full,is50k

Results are printed as JSON lines and appended to `metric-<name>.jsonl` beside the snapshot when it sits in
a training run directory (one that holds `training_options.json`).
"""

from __future__ import annotations

import copy
import json
import os
import pickle

import click
import torch

import dnnlib
from dnnlib import atomic, trust
from dnnlib.cli import click_errors
from metrics import detector_check, detectors, metric_main, metric_utils
from torch_utils import misc
from training import distributed
from training.checkpoint import load_network_pkl

# ----------------------------------------------------------------------------
# Checks and option resolution.


def parse_metric_list(text: str) -> list[str]:
    """'a,b' -> ['a', 'b']; 'none' or '' -> []. Unknown names raise click.UsageError listing the valid ones."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if unknown:
        raise click.UsageError(
            f"--metrics: unknown metric {unknown[0]!r}; --metrics can only contain the following values:\n"
            + "\n".join(metric_main.list_valid_metrics())
        )
    return metrics


def resolve_dataset_kwargs(
    data: str | None, mirror: bool | None, training_set_kwargs: dict | None, G: torch.nn.Module
) -> dnnlib.EasyDict:
    """Dataset kwargs from --data or the snapshot's training_set_kwargs, fitted to G (resolution, labels)."""
    if data is not None:
        dataset_kwargs = dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset", path=data)
    elif training_set_kwargs is not None:
        try:  # The snapshot is data: its class_name must be one the allow-list admits (dnnlib.trust).
            trust.check_class_names(training_set_kwargs, "the snapshot's training_set_kwargs")
        except trust.UntrustedNameError as err:
            raise click.UsageError(f"{err}; or pass --data") from None
        dataset_kwargs = dnnlib.EasyDict(copy.deepcopy(training_set_kwargs))
    else:
        raise click.UsageError("Could not look up dataset options; please specify --data")
    dataset_kwargs.resolution = G.img_resolution
    dataset_kwargs.use_labels = G.c_dim != 0
    if mirror is not None:
        dataset_kwargs.xflip = mirror
    return dataset_kwargs


def check_dataset(dataset_kwargs: dict, G: torch.nn.Module) -> None:
    """Raise click.UsageError when the dataset is missing or does not match G's resolution, channels or labels."""
    path = dataset_kwargs.get("path")
    if path is not None and not os.path.exists(path):
        raise click.UsageError(f'--data: "{path}" does not exist; give a dataset zip or folder made by dataset_tool.py')
    try:
        dataset = dnnlib.util.construct_class_by_name(**dict(dataset_kwargs, resolution=None))
        channels, height, width = dataset.image_shape
        label_dim = dataset.label_dim
    except (OSError, ValueError, KeyError) as err:
        raise click.UsageError(f'--data: cannot read dataset "{path}": {err}') from None
    if (height, width) != (G.img_resolution, G.img_resolution) or channels != G.img_channels:
        raise click.UsageError(
            f"--data: dataset images are {width}x{height} with {channels} channel(s) but the network makes "
            f"{G.img_resolution}x{G.img_resolution} with {G.img_channels}; use a dataset of the same resolution and channels"
        )
    if G.c_dim != 0 and label_dim != G.c_dim:
        raise click.UsageError(
            f"--data: the network is conditional with {G.c_dim} classes but the dataset has {label_dim} label dimensions; use the labelled training dataset"
        )


def find_run_dir(network_pkl: str) -> str | None:
    """The snapshot's directory if it is a training run directory (holds training_options.json)."""
    if not os.path.isfile(network_pkl):
        return None
    run_dir = os.path.dirname(os.path.abspath(network_pkl))
    return run_dir if os.path.isfile(os.path.join(run_dir, "training_options.json")) else None


# ----------------------------------------------------------------------------
# Per-process evaluation.


def subprocess_fn(rank: int, args: dnnlib.EasyDict) -> None:
    """Evaluate every metric in process `rank` of `args.num_gpus` (inside the group `distributed.launch` set up)."""
    device = distributed.process_device(args.device, rank)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    G = copy.deepcopy(args.G).eval().requires_grad_(False).to(device)
    if rank == 0 and args.verbose:
        z = torch.zeros([1, G.z_dim], device=device)
        c = torch.zeros([1, G.c_dim], device=device)
        misc.print_module_summary(G, [z, c])

    for metric in args.metrics:
        if rank == 0 and args.verbose:
            print(f"Calculating {metric}...")
        progress = metric_utils.ProgressMonitor(verbose=args.verbose)
        result_dict = metric_main.calc_metric(
            metric=metric,
            G=G,
            dataset_kwargs=args.dataset_kwargs,
            num_gpus=args.num_gpus,
            rank=rank,
            device=device,
            progress=progress,
            detector=args.detector,
            detector_dir=args.detector_dir,
            num_images=args.num_images,
            resize=args.resize,
        )
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)
        if rank == 0 and args.verbose:
            print()
    if rank == 0 and args.verbose:
        print("Exiting...")


# ----------------------------------------------------------------------------
# Command line.


_HELP = (
    "Calculate quality metrics for a previous training run or a pretrained network pickle.\n\n\b\nMetrics:\n"
    + "\n".join(f"  {name:<12s} {metric_main.metric_help(name)}" for name in metric_main.list_valid_metrics())
)


@click.command(help=_HELP)
@click.option("--network", "network_pkl", help="Network pickle filename or URL", metavar="PATH", required=True)
@click.option(
    "--metrics",
    "metrics_text",
    help="Comma-separated list of metrics, or 'none'",
    metavar="LIST",
    default="fid50k_full",
    show_default=True,
)
@click.option("--data", help="Dataset to evaluate against  [default: the snapshot's training set]", metavar="PATH")
@click.option(
    "--mirror",
    help="Whether the dataset was augmented with x-flips during training  [default: from the snapshot]",
    type=bool,
    metavar="BOOL",
)
@click.option(
    "--gpus",
    "num_gpus",
    help="Number of processes (one per GPU; CPU processes without CUDA)",
    type=int,
    default=1,
    show_default=True,
    metavar="INT",
)
@click.option(
    "--detector",
    help="Feature detector file or URL used by every metric instead of its default (e.g. a domain detector)",
    metavar="PATH",
)
@click.option(
    "--detector-dir", help=f"Folder of local detector copies  [default: ${detectors.DETECTOR_DIR_ENV}]", metavar="DIR"
)
@click.option(
    "--num-images",
    help="Cap the real/generated image counts (quick checks; not comparable with 50k results)",
    type=int,
    metavar="INT",
)
@click.option(
    "--resize",
    help="How images reach the detector's input size: the original's protocol, or PIL bicubic in float (clean-fid)",
    type=click.Choice(["legacy", "clean"]),
    default="legacy",
    show_default=True,
)
@click.option(
    "--verbose", help="Print progress and details", type=bool, default=True, show_default=True, metavar="BOOL"
)
@click.option(
    "--trust-module",
    help="Module whose network classes the pickle may name (your own networks); repeatable "
    "[default: $GAN_TRUSTED_MODULES]",
    metavar="NAME",
    multiple=True,
)
@click.option(
    "--trust-detector",
    help="Detector file/URL trusted to hold TorchScript (code); repeatable [default: $GAN_TRUSTED_DETECTORS]",
    metavar="PATH",
    multiple=True,
)
def calc_metrics(
    network_pkl,
    metrics_text,
    data,
    mirror,
    num_gpus,
    detector,
    detector_dir,
    num_images,
    resize,
    verbose,
    trust_module,
    trust_detector,
):
    metrics = parse_metric_list(metrics_text)
    with click_errors():
        trust.trust_module_option(trust_module)
    detectors.trust_detectors(trust_detector)
    if num_gpus < 1:
        raise click.UsageError("--gpus must be at least 1")
    if torch.cuda.is_available() and num_gpus > torch.cuda.device_count():
        raise click.UsageError(f"--gpus={num_gpus} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if num_images is not None and num_images < 1:
        raise click.UsageError("--num-images must be at least 1")
    if not (dnnlib.util.is_url(network_pkl, allow_file_urls=True) or os.path.isfile(network_pkl)):
        raise click.UsageError("--network must point to a file or URL")
    if detector is not None and not dnnlib.util.is_url(detector, allow_file_urls=True) and not os.path.isfile(detector):
        raise click.UsageError(f'--detector: no such file "{detector}"')

    if verbose:
        print(f'Loading network from "{network_pkl}"...')
    try:
        with dnnlib.util.open_url(network_pkl, verbose=verbose) as f:
            network_dict = load_network_pkl(f)
    except (OSError, ValueError, pickle.UnpicklingError) as err:
        raise click.ClickException(f'cannot load network "{network_pkl}": {err}') from None
    G = network_dict["G_ema"]

    dataset_kwargs = resolve_dataset_kwargs(data, mirror, network_dict.get("training_set_kwargs"), G)
    check_dataset(dataset_kwargs, G)
    if verbose:
        print("Dataset options:")
        print(json.dumps(dataset_kwargs, indent=2))

    args = dnnlib.EasyDict(
        G=G,
        metrics=metrics,
        dataset_kwargs=dataset_kwargs,
        num_gpus=num_gpus,
        verbose=verbose,
        network_pkl=network_pkl,
        run_dir=find_run_dir(network_pkl),
        detector=detector,
        detector_dir=detector_dir,
        num_images=num_images,
        resize=resize,
        device=distributed.resolve_device("auto"),
    )
    with click_errors():  # One line now, not a traceback from inside the metric's process.
        detector_check.check_detectors(
            metrics, dict(detector=detector, detector_dir=detector_dir), resize, G.img_resolution, "--detector"
        )
    # The statistics cache may hold what a killed calc_metrics.py or train.py left half-written.
    atomic.remove_temp_files(dnnlib.make_cache_dir_path("gan-metrics"), dead_writers_only=True)
    if verbose:
        print("Launching processes...")
    try:
        distributed.launch(subprocess_fn, args, num_gpus, args.device)
    except detectors.DetectorUnavailableError as err:
        raise click.ClickException(str(err)) from None


if __name__ == "__main__":
    with dnnlib.util.sigterm_as_interrupt():  # SIGTERM then removes the temp file of a write in progress.
        calc_metrics()
