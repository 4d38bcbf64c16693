"""Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the cubic kernel (x.y / n + 1)^3
between generated and real features, averaged over random subsets."""

from __future__ import annotations

from metrics import detectors, formulas, metric_utils


def compute_kid(
    opts: metric_utils.MetricOptions, max_real: int | None, num_gen: int, num_subsets: int, max_subset_size: int
) -> float:
    """KID of num_gen generated images against up to max_real real ones (Inception pool3 features).

    Subsets are drawn with NumPy's global RNG, as in the original. Ranks other than 0 return NaN.
    """
    detector_url = opts.detector_for(detectors.INCEPTION_URL)
    detector_kwargs = dict(return_features=True)
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts, detector_url, detector_kwargs, max_items=opts.capped(max_real), capture_all=True
    ).get_all()
    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
    ).get_all()
    if opts.rank != 0:
        return float("nan")
    return formulas.kid_from_features(real_features, gen_features, num_subsets, max_subset_size, seed=None)
