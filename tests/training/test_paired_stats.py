"""paired_difference against scipy's paired t-test, a hand case, and the bootstrap against exact enumeration."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from training.paired_stats import bootstrap_ci, paired_difference


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_matches_scipy_ttest_rel_on_random_data(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        a = rng.normal(50, 10, size=n)
        b = a + rng.normal(rng.normal(0, 3), 4, size=n)
        result = paired_difference(a, b, resamples=200)
        ref = scipy.stats.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        assert result.n == n
        assert result.mean == pytest.approx(np.mean(a - b), rel=1e-12)
        assert result.sd == pytest.approx(np.std(a - b, ddof=1), rel=1e-12)
        assert result.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_hand_case_two_degrees_of_freedom():
    # d = [1, 2, 3]: mean 2, SD 1, SE 1/sqrt(3), t = 2 sqrt(3), df = 2. The t distribution with 2 df has the
    # closed form P(|T| > t) = 1 - t / sqrt(t^2 + 2), so p = 1 - sqrt(12 / 14) = 1 - sqrt(6 / 7); its 97.5 %
    # quantile is q = (2P - 1) / sqrt(2 P (1 - P)) with P = 0.975.
    result = paired_difference([1, 2, 3], [0, 0, 0])
    assert (result.mean, result.sd) == pytest.approx((2.0, 1.0))
    assert result.p == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    q = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    half = q / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half, 2 + half), rel=1e-9)
    # The sign follows a - b.
    assert paired_difference([0, 0, 0], [1, 2, 3]).mean == pytest.approx(-2.0)


def test_bootstrap_matches_exact_enumeration():
    # For n = 3 the bootstrap distribution of the mean is the mean over all 27 equally likely resamples.
    d = np.array([1.0, 4.0, 10.0])
    exact = np.array([np.mean(s) for s in itertools.product(d, repeat=3)])
    low, high = bootstrap_ci(d, resamples=200_000, seed=1)
    # The percentile points of a discrete distribution: compare with the exact CDF around them.
    assert np.mean(exact < low) <= 0.025 + 0.01 and np.mean(exact <= low) >= 0.025 - 0.01
    assert np.mean(exact < high) <= 0.975 + 0.01 and np.mean(exact <= high) >= 0.975 - 0.01
    result = paired_difference(d, np.zeros(3))
    assert d.min() <= result.boot_low <= result.mean <= result.boot_high <= d.max()


def test_edge_cases():
    none = paired_difference([], [])
    assert none.n == 0 and math.isnan(none.mean)
    one = paired_difference([3.0], [1.0])
    assert one.n == 1 and one.mean == 2.0 and math.isnan(one.sd) and math.isnan(one.p)
    assert "one pair" in one.describe()
    constant = paired_difference([2.0, 3.0], [1.0, 2.0])  # Every difference is 1: SD 0.
    assert constant.sd == 0 and constant.p == 0.0 and constant.ci_low == constant.ci_high == 1.0
    assert math.isnan(paired_difference([1.0, 2.0], [1.0, 2.0]).p)
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0])


def test_describe_quotes_every_number():
    text = paired_difference([1, 2, 3], [0, 0, 0]).describe()
    assert text.startswith("2 ± 1, 95 % CI [-0.484, 4.48], p = 0.0742") and text.endswith("n = 3")
