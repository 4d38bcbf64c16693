"""Inception Score (Salimans et al. 2016), spec/metrics.md §8."""

from __future__ import annotations

from metrics import detectors, formulas, metric_utils


def compute_is(opts: metric_utils.MetricOptions, num_gen: int, num_splits: int) -> tuple[float, float]:
    """(mean, std) of the Inception score over num_splits splits of num_gen generated images.

    Probabilities are the softmax of the Inception logits without the output bias (`no_output_bias=True`),
    as in the original TF code. Ranks other than 0 return NaN.
    """
    detector_url = opts.detector_for(detectors.INCEPTION_URL)
    detector_kwargs = dict(no_output_bias=True)
    probs = metric_utils.compute_feature_stats_for_generator(
        opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
    ).get_all()
    if opts.rank != 0:
        return float("nan"), float("nan")
    return formulas.is_from_probs(probs, num_splits)
