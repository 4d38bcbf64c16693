"""Improved precision and recall (Kynkaanniemi et al. 2019) on VGG16 features.

Each manifold point gets a radius, the distance to its k-th nearest neighbour in its own set; precision is the
fraction of generated points inside some real radius, recall the fraction of real points inside some generated one.
"""

from __future__ import annotations

import torch

from metrics import detectors, formulas, metric_utils


def compute_pr(
    opts: metric_utils.MetricOptions,
    max_real: int | None,
    num_gen: int,
    nhood_size: int,
    row_batch_size: int,
    col_batch_size: int,
) -> tuple[float, float]:
    """(precision, recall) with VGG16 features (unless opts.detector overrides it).

    Distances are computed in float16 on CUDA, as the original does, and in float32 on CPU (where PyTorch
    has no float16 cdist). The column chunks are shared among ranks; ranks other than 0 return NaN.
    """
    detector_url = opts.detector_for(detectors.VGG16_URL)
    detector_kwargs = dict(return_features=True)
    dtype = torch.float16 if opts.device.type == "cuda" else torch.float32
    real_features = (
        metric_utils.compute_feature_stats_for_dataset(
            opts, detector_url, detector_kwargs, max_items=opts.capped(max_real), capture_all=True
        )
        .get_all_torch()
        .to(dtype)
        .to(opts.device)
    )
    gen_features = (
        metric_utils.compute_feature_stats_for_generator(
            opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
        )
        .get_all_torch()
        .to(dtype)
        .to(opts.device)
    )
    return formulas.pr_from_torch_features(
        real_features, gen_features, nhood_size, row_batch_size, col_batch_size, opts.num_gpus, opts.rank
    )


def compute_prdc(
    opts: metric_utils.MetricOptions, max_real: int | None, num_gen: int, nearest_k: int, row_batch_size: int
) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with VGG16 features (unless overridden).

    Distances in float32 on every device (density counts ball memberships, so float16 radii would move it).
    Computed on rank 0 only; other ranks return NaNs.
    """
    detector_url = opts.detector_for(detectors.VGG16_URL)
    detector_kwargs = dict(return_features=True)
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts, detector_url, detector_kwargs, max_items=opts.capped(max_real), capture_all=True
    ).get_all_torch()
    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
    ).get_all_torch()
    if opts.rank != 0:
        return dict.fromkeys(("precision", "recall", "density", "coverage"), float("nan"))
    real_features = real_features.to(torch.float32).to(opts.device)
    gen_features = gen_features.to(torch.float32).to(opts.device)
    return formulas.prdc_from_torch_features(real_features, gen_features, nearest_k, row_batch_size)
