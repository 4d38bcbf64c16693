"""Frechet Inception Distance (Heusel et al. 2017): ||mu_g - mu_r||^2 + tr(S_g + S_r - 2 sqrtm(S_g S_r)) of the
feature means and (biased) covariances of generated and real images."""

from __future__ import annotations

from metrics import detectors, formulas, metric_utils


def compute_fid(
    opts: metric_utils.MetricOptions,
    max_real: int | None,
    num_gen: int,
    default_detector: str = detectors.INCEPTION_URL,
) -> float:
    """Frechet distance between the real dataset (first max_real images; None = all) and num_gen generated images.

    Uses Inception pool3 features (FID) unless another default_detector is given (DINOv2 for FD_DINOv2) or
    opts.detector overrides it. Ranks other than 0 return NaN.
    """
    detector_url = opts.detector_for(default_detector)
    detector_kwargs = dict(return_features=True)
    mu_real, sigma_real = metric_utils.compute_feature_stats_for_dataset(
        opts, detector_url, detector_kwargs, max_items=opts.capped(max_real), capture_mean_cov=True
    ).get_mean_cov()
    mu_gen, sigma_gen = metric_utils.compute_feature_stats_for_generator(
        opts, detector_url, detector_kwargs, capture_mean_cov=True, max_items=opts.capped(num_gen)
    ).get_mean_cov()
    if opts.rank != 0:
        return float("nan")
    return formulas.fid_from_stats(mu_real, sigma_real, mu_gen, sigma_gen)
