"""conf10k's formula: confidence (mean top-class probability) and class coverage, on hand cases and brute force."""

import numpy as np
import pytest

from metrics.classifier_confidence import confidence_and_coverage


def test_hand_case():
    gen = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    real = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]])
    result = confidence_and_coverage(gen, real, min_share=0.25)
    assert result["gen"] == pytest.approx((0.9 + 0.6 + 0.7 + 0.5) / 4)
    assert result["real"] == pytest.approx(0.9)
    assert result["ratio"] == pytest.approx(0.675 / 0.9)
    # Top classes 0, 0, 1, 0: shares 3/4, 1/4, 0 -> two classes reach 25 %, the smallest share is 0.
    assert result["classes"] == 2 and result["minshare"] == 0.0


def test_against_a_loop_over_images():
    rng = np.random.default_rng(0)
    gen = rng.dirichlet(np.full(10, 0.3), size=500)
    real = rng.dirichlet(np.full(10, 0.1), size=300)
    result = confidence_and_coverage(gen, real)
    counts = [0] * 10
    for row in gen:
        counts[max(range(10), key=lambda k: row[k])] += 1
    assert result["gen"] == pytest.approx(sum(max(row) for row in gen) / 500)
    assert result["real"] == pytest.approx(sum(max(row) for row in real) / 300)
    assert result["classes"] == sum(count / 500 >= 0.03 for count in counts)
    assert result["minshare"] == pytest.approx(min(counts) / 500)


def test_class_counts_must_agree():
    with pytest.raises(ValueError, match="one K"):
        confidence_and_coverage(np.full((4, 3), 1 / 3), np.full((4, 5), 0.2))
