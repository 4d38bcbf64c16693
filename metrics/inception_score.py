"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), per split of the generated images.

score_i = exp(mean_rows sum_classes P (log P - log mean_rows P)) over 10 equal splits; reports the mean and the
population std of the scores.
"""

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
