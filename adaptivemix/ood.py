"""AdaptiveMix OOD detection (paper Eq. 10) and the detection metrics.

Class representatives: v_k* is the first right singular vector (unit norm) of the matrix whose rows are
the training features F(x_i) of the samples *predicted* as class k. OOD score of a test feature f:
    phi(f) = min_k arccos(|f . v_k*| / |f|)      (radians in [0, pi/2]; larger = more likely OOD)
i.e. the smallest angle between f and any class line. The maximum-softmax-probability baseline scores
-max_k softmax(logits)_k, so that for both scores larger means "more likely OOD".

Metrics treat OOD as the positive class and "score >= threshold" as the OOD decision:
AUROC (area under the ROC curve, ties counted half), FPR95 (share of in-distribution samples flagged at
the largest threshold that still flags >= 95 % of the OOD samples) and the best F1 over all thresholds.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def class_representatives(features: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """First right singular vector of each predicted class's features: [K', D] for the K' classes that occur.

    Classes that no sample is predicted as have no representative and are left out (their rows would be
    undefined). The sign of each vector is arbitrary (Eq. 10 uses |f . v|).
    """
    features = features.double()
    reps = []
    for k in range(num_classes):
        rows = features[predictions == k]
        if rows.shape[0] > 0:
            reps.append(torch.linalg.svd(rows, full_matrices=False).Vh[0])
    if not reps:
        raise ValueError("OOD: no training sample was assigned to any class; cannot build class representatives")
    return torch.stack(reps).float()


def angle_score(features: torch.Tensor, reps: torch.Tensor) -> torch.Tensor:
    """phi = min_k arccos(|f . v_k| / |f|) [N] for features [N, D] and unit representatives [K, D]."""
    cos = (features.double() @ reps.double().t()).abs() / features.double().norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.arccos(cos.clamp(0, 1)).min(dim=1).values.float()


def msp_score(logits: torch.Tensor) -> torch.Tensor:
    """-max softmax probability [N] (larger = more likely OOD)."""
    return -torch.softmax(logits.double(), dim=1).max(dim=1).values.float()


def _counts(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flagged OOD / in-dist counts (TP, FP) at every distinct threshold, from the highest to the lowest."""
    thresholds = np.unique(np.concatenate([in_scores, out_scores]))[::-1]
    out_sorted, in_sorted = np.sort(out_scores), np.sort(in_scores)
    tp = out_sorted.size - np.searchsorted(out_sorted, thresholds, side="left")
    fp = in_sorted.size - np.searchsorted(in_sorted, thresholds, side="left")
    return tp, fp


def _check(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    in_scores = np.asarray(in_scores, dtype=np.float64).ravel()
    out_scores = np.asarray(out_scores, dtype=np.float64).ravel()
    if in_scores.size == 0 or out_scores.size == 0:
        raise ValueError("OOD metrics need at least one in-distribution and one OOD score")
    if not (np.all(np.isfinite(in_scores)) and np.all(np.isfinite(out_scores))):
        raise ValueError("OOD metrics: scores must be finite")
    return in_scores, out_scores


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve (trapezoids between the points of all distinct thresholds)."""
    in_scores, out_scores = _check(in_scores, out_scores)
    tp, fp = _counts(in_scores, out_scores)
    tpr = np.concatenate([[0.0], tp / out_scores.size])
    fpr = np.concatenate([[0.0], fp / in_scores.size])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def fpr_at_tpr(in_scores, out_scores, tpr_level: float = 0.95) -> float:
    """Share of in-distribution samples flagged at the highest threshold whose TPR is >= `tpr_level`."""
    in_scores, out_scores = _check(in_scores, out_scores)
    tp, fp = _counts(in_scores, out_scores)
    first = int(np.argmax(tp >= math.ceil(tpr_level * out_scores.size - 1e-9)))
    return float(fp[first] / in_scores.size)


def best_f1(in_scores, out_scores) -> float:
    """Largest F1 = 2TP / (2TP + FP + FN) of the OOD decision over all thresholds."""
    in_scores, out_scores = _check(in_scores, out_scores)
    tp, fp = _counts(in_scores, out_scores)
    fn = out_scores.size - tp
    return float(np.max(2 * tp / (2 * tp + fp + fn)))


def detection_metrics(in_scores, out_scores) -> dict[str, float]:
    """{'auroc', 'fpr95', 'f1'} for one in-distribution / OOD pair of score arrays."""
    return {
        "auroc": auroc(in_scores, out_scores),
        "fpr95": fpr_at_tpr(in_scores, out_scores),
        "f1": best_f1(in_scores, out_scores),
    }
