"""Metric registry (names, parameters, result keys as in the original; see docs/metrics.md), evaluation and
reporting (one JSON line per result, appended to `metric-<name>.jsonl` in the run directory).

The training loop and calc_metrics.py share this code path:
    result = metric_main.calc_metric('fid50k_full', G=G_ema, dataset_kwargs=..., num_gpus=..., rank=..., device=...)
    metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)   # rank 0
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch

import dnnlib
from metrics import (
    classifier_confidence,
    detectors,
    frechet_inception_distance,
    inception_score,
    kernel_inception_distance,
    metric_utils,
    ppl,
    precision_recall,
)

_metric_dict: dict[str, Callable[[metric_utils.MetricOptions], dict[str, float]]] = {}
_metric_help: dict[str, str] = {}
_metric_detector: dict[str, str] = {}
_metric_call: dict[str, dict[str, bool]] = {}
FEATURES = dict(return_features=True)  # How the metrics call their detector: features (FID, KID, PR, FD),
PROBABILITIES = dict(no_output_bias=True)  # class probabilities (IS),
LPIPS = dict(resize_images=False, return_lpips=True)  # the LPIPS embedding of float images (PPL).
# The metrics' default detectors: published files, known to follow the calls above.
PUBLISHED_DETECTORS = (
    detectors.INCEPTION_URL,
    detectors.VGG16_URL,
    detectors.DINOV2_URL,
    detectors.NATIVE_INCEPTION_URL,
)


def register_metric(help_text: str, detector: str = detectors.INCEPTION_URL, call: dict[str, bool] = FEATURES):
    """Decorator adding fn(opts) -> {result key: value} to the registry under fn's name.

    `detector` is the feature network the metric loads unless the user names another (`--detector`), and
    `call` the keyword arguments it calls it with; the start-of-run checks use both to find missing or unfit
    detector files before any work begins.
    """

    def decorator(fn):
        _metric_dict[fn.__name__] = fn
        _metric_help[fn.__name__] = help_text
        _metric_detector[fn.__name__] = detector
        _metric_call[fn.__name__] = call
        return fn

    return decorator


def is_valid_metric(metric: str) -> bool:
    return metric in _metric_dict


def list_valid_metrics() -> list[str]:
    """Metric names in registry order."""
    return list(_metric_dict.keys())


def metric_help(metric: str) -> str:
    return _metric_help[metric]


def default_detector(metric: str) -> str:
    """URL of the detector `metric` uses when no --detector is given."""
    return _metric_detector[metric]


def detector_call(metric: str) -> dict[str, bool]:
    """The keyword arguments `metric` calls its detector with."""
    return dict(_metric_call[metric])


def calc_metric(metric: str, **kwargs: Any) -> dnnlib.EasyDict:
    """Evaluate one metric; kwargs are MetricOptions arguments (G, dataset_kwargs, num_gpus, rank, device, ...).

    Returns EasyDict(results={key: float}, metric, total_time, total_time_str, num_gpus, then what was used:
    detector (file name), num_real / num_gen (image counts; PPL: path samples), resize (feature metrics),
    real_data (file name of the real images' dataset) [, num_images: the --num-images cap]). With several
    processes every rank must call this; values are broadcast from rank 0 as float64.
    """
    if not is_valid_metric(metric):
        raise ValueError(f"Unknown metric {metric!r}; valid metrics: {', '.join(list_valid_metrics())}")
    opts = metric_utils.MetricOptions(**kwargs)

    start_time = time.time()
    results = _metric_dict[metric](opts)
    total_time = time.time() - start_time

    for key, value in list(results.items()):
        if opts.num_gpus > 1:
            value = torch.as_tensor(value, dtype=torch.float64, device=opts.device)
            torch.distributed.broadcast(tensor=value, src=0)
            value = float(value.cpu())
        results[key] = value

    record = dnnlib.EasyDict(
        results=dnnlib.EasyDict(results),
        metric=metric,
        total_time=total_time,
        total_time_str=dnnlib.util.format_time(total_time),
        num_gpus=opts.num_gpus,
    )
    for key in ("detector", "num_real", "num_gen", "resize", "real_data"):
        if key in opts.provenance:
            record[key] = opts.provenance[key]
    if opts.num_images is not None:
        record.num_images = opts.num_images  # Marks a capped (quick-check) evaluation.
    return record


def report_metric(result_dict: dict, run_dir: str | None = None, snapshot_pkl: str | None = None) -> None:
    """Print the result's JSON line and its summary line; append the JSON line to `<run_dir>/metric-<name>.jsonl`
    if run_dir exists.

    snapshot_pkl is stored relative to run_dir when both are given, else as given (may be None).
    """
    metric = result_dict["metric"]
    if not is_valid_metric(metric):
        raise ValueError(f"Unknown metric {metric!r} in result")
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    jsonl_line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(jsonl_line)
    print(summary_line(result_dict))
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f"metric-{metric}.jsonl"), "a") as f:
            f.write(jsonl_line + "\n")


def summary_line(result_dict: dict) -> str:
    """One human-readable line: the values, then the image counts, detector, resize protocol and real dataset used.

    A capped run says so, so that e.g. FID on 2000 images with a domain detector cannot be mistaken for a
    50k Inception FID. KID is the raw MMD^2 (the original's unit); with the Inception detector papers quote
    it x10^3, which is added; with other detectors its scale follows the features' (see docs/metrics.md).
    """
    values = []
    for key, value in result_dict["results"].items():
        text = f"{key} {value:.6g}"
        if key.startswith("kid") and result_dict.get("detector", "").startswith("inception"):
            text += f" (x10^3: {value * 1e3:.4g})"
        values.append(text)
    used = []
    counts = [
        f"{result_dict[k]} {name}" for k, name in (("num_real", "real"), ("num_gen", "generated")) if k in result_dict
    ]
    if counts:
        used.append(" / ".join(counts) + " images")
    if "num_images" in result_dict:
        used.append(f"capped by --num-images={result_dict['num_images']}: not comparable with 50k results")
    if "detector" in result_dict:
        used.append(f"detector {result_dict['detector']}")
    if "resize" in result_dict:
        used.append(f"resize {result_dict['resize']}")
    if "real_data" in result_dict:
        used.append(f"real images from {result_dict['real_data']}")
    return ", ".join(values) + (f"  [{'; '.join(used)}]" if used else "")


# ----------------------------------------------------------------------------
# Recommended metrics.


def _with_dataset_override(opts: metric_utils.MetricOptions, **overrides: Any) -> metric_utils.MetricOptions:
    """A shallow copy of opts whose dataset kwargs (a copy) carry the overrides."""
    opts = copy.copy(opts)
    opts.dataset_kwargs = dnnlib.EasyDict(opts.dataset_kwargs, **overrides)
    return opts


@register_metric("Frechet inception distance against the full dataset")
def fid50k_full(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=50000)
    return dict(fid50k_full=fid)


@register_metric("Frechet inception distance of 5k generated images against the full dataset (small-data studies)")
def fid5k_full(opts):
    # FID's bias grows as the generated count falls (about 1/N), so fid5k_full values are higher than
    # fid50k_full ones and comparable only with each other; 5k keeps an evaluation of a CPU run under a minute.
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=5000)
    return dict(fid5k_full=fid)


@register_metric("Frechet distance of DINOv2 ViT-L/14 features against the full dataset", detectors.DINOV2_URL)
def fd_dinov2_50k_full(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    fd = frechet_inception_distance.compute_fid(
        opts, max_real=None, num_gen=50000, default_detector=detectors.DINOV2_URL
    )
    return dict(fd_dinov2_50k_full=fd)


@register_metric("Kernel inception distance against the full dataset")
def kid50k_full(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    kid = kernel_inception_distance.compute_kid(
        opts, max_real=1000000, num_gen=50000, num_subsets=100, max_subset_size=1000
    )
    return dict(kid50k_full=kid)


@register_metric("Precision and recall againt the full dataset", detectors.VGG16_URL)
def pr50k3_full(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    precision, recall = precision_recall.compute_pr(
        opts, max_real=200000, num_gen=50000, nhood_size=3, row_batch_size=10000, col_batch_size=10000
    )
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric("Precision, recall, density and coverage (k = 5) against up to 50k real images", detectors.VGG16_URL)
def prdc50k_full(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    values = precision_recall.compute_prdc(opts, max_real=50000, num_gen=50000, nearest_k=5, row_batch_size=10000)
    return {f"prdc50k_full_{key}": value for key, value in values.items()}


@register_metric("Perceptual path length in W at path endpoints against full image", detectors.VGG16_URL, call=LPIPS)
def ppl2_wend(opts):
    value = ppl.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space="w", sampling="end", crop=False, batch_size=2)
    return dict(ppl2_wend=value)


@register_metric("Inception score for CIFAR-10", call=PROBABILITIES)
def is50k(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    mean, std = inception_score.compute_is(opts, num_gen=50000, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)


@register_metric(
    "Classifier confidence (mean top-class probability, generated / real) and class coverage (classes with "
    ">= 3 % of 10k generated images); meant for a domain classifier as --detector",
    call=PROBABILITIES,
)
def conf10k(opts):
    opts = _with_dataset_override(opts, max_size=None, xflip=False)
    result = classifier_confidence.compute_confidence(opts, num_gen=10000)
    return {f"conf10k_{key}": value for key, value in result.items()}


# ----------------------------------------------------------------------------
# Legacy metrics.


@register_metric("Frechet inception distance against 50k real images")
def fid50k(opts):
    opts = _with_dataset_override(opts, max_size=None)
    fid = frechet_inception_distance.compute_fid(opts, max_real=50000, num_gen=50000)
    return dict(fid50k=fid)


@register_metric("Kernel inception distance against 50k real images")
def kid50k(opts):
    opts = _with_dataset_override(opts, max_size=None)
    kid = kernel_inception_distance.compute_kid(
        opts, max_real=50000, num_gen=50000, num_subsets=100, max_subset_size=1000
    )
    return dict(kid50k=kid)


@register_metric("Precision and recall against 50k real images", detectors.VGG16_URL)
def pr50k3(opts):
    opts = _with_dataset_override(opts, max_size=None)
    precision, recall = precision_recall.compute_pr(
        opts, max_real=50000, num_gen=50000, nhood_size=3, row_batch_size=10000, col_batch_size=10000
    )
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


def _legacy_ppl(opts, space: str, sampling: str) -> float:
    return ppl.compute_ppl(
        opts, num_samples=50000, epsilon=1e-4, space=space, sampling=sampling, crop=True, batch_size=2
    )


@register_metric("Perceptual path length in Z for full paths against cropped image", detectors.VGG16_URL, call=LPIPS)
def ppl_zfull(opts):
    return dict(ppl_zfull=_legacy_ppl(opts, "z", "full"))


@register_metric("Perceptual path length in W for full paths against cropped image", detectors.VGG16_URL, call=LPIPS)
def ppl_wfull(opts):
    return dict(ppl_wfull=_legacy_ppl(opts, "w", "full"))


@register_metric("Perceptual path length in Z at path endpoints against cropped image", detectors.VGG16_URL, call=LPIPS)
def ppl_zend(opts):
    return dict(ppl_zend=_legacy_ppl(opts, "z", "end"))


@register_metric("Perceptual path length in W at path endpoints against cropped image", detectors.VGG16_URL, call=LPIPS)
def ppl_wend(opts):
    return dict(ppl_wend=_legacy_ppl(opts, "w", "end"))
