"""Classifier confidence and class coverage: does a classifier of the domain recognise the generated images?

With a classifier as the detector (a domain detector from `python -m metrics.domain_detector`, or Inception's
ImageNet classes by default), for generated and for real images:
    confidence = mean over images of max_k p(k | x)         (how recognisable each image is)
    share_k    = fraction of images whose top class is k      (which classes appear)
The metric reports the generated confidence, the real one, their ratio, the number of classes whose share is
at least `min_share` and the smallest class share. A generator can score a high confidence by drawing one easy
class; the coverage columns show that.
"""

from __future__ import annotations

import numpy as np

from metrics import detectors, metric_utils

MIN_SHARE = 0.03  # A class counts as covered when at least 3 % of the generated images fall in it.


def confidence_and_coverage(gen_probs: np.ndarray, real_probs: np.ndarray, min_share: float = MIN_SHARE) -> dict:
    """Results for class probabilities `gen_probs` [N, K] and `real_probs` [M, K] (rows sum to 1)."""
    gen_probs, real_probs = np.asarray(gen_probs, np.float64), np.asarray(real_probs, np.float64)
    if gen_probs.ndim != 2 or real_probs.ndim != 2 or gen_probs.shape[1] != real_probs.shape[1]:
        raise ValueError(f"probabilities must be [N, K] with one K, got {gen_probs.shape} and {real_probs.shape}")
    gen_conf = float(gen_probs.max(axis=1).mean())
    real_conf = float(real_probs.max(axis=1).mean())
    shares = np.bincount(gen_probs.argmax(axis=1), minlength=gen_probs.shape[1]) / len(gen_probs)
    return dict(
        gen=gen_conf,
        real=real_conf,
        ratio=gen_conf / real_conf,
        classes=int((shares >= min_share).sum()),
        minshare=float(shares.min()),
    )


def compute_confidence(opts: metric_utils.MetricOptions, num_gen: int) -> dict:
    """`confidence_and_coverage` of num_gen generated and as many real images (NaN on ranks other than 0)."""
    detector_url = opts.detector_for(detectors.INCEPTION_URL)
    detector_kwargs = dict(no_output_bias=True)  # Class probabilities (softmax of the logits).
    gen = metric_utils.compute_feature_stats_for_generator(
        opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
    ).get_all()
    real = metric_utils.compute_feature_stats_for_dataset(
        opts, detector_url, detector_kwargs, capture_all=True, max_items=opts.capped(num_gen)
    ).get_all()
    if opts.rank != 0:
        return dict.fromkeys(["gen", "real", "ratio", "classes", "minshare"], float("nan"))
    return confidence_and_coverage(gen, real)
