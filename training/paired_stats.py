"""Paired comparison of two methods run on the same seeds: mean difference, SD, 95 % CI and a two-sided p-value.

For per-seed values a_i and b_i the differences are d_i = a_i - b_i (n of them). With the sample SD s (n - 1 in
the denominator) and the standard error s / sqrt(n), the paired t statistic is t = mean(d) / (s / sqrt(n)) with
n - 1 degrees of freedom; the 95 % confidence interval is mean(d) +- t_{0.975, n-1} s / sqrt(n) and p is the
two-sided tail probability 2 P(T > |t|). This is the paired t-test (scipy.stats.ttest_rel). Beside it, a
percentile bootstrap CI of mean(d) (resampling the n differences with replacement), which assumes no normality
but is crude for n <= 5: it can never be wider than the range of the differences.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import scipy.stats

BOOTSTRAP_RESAMPLES = 10000
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Statistics of d = a - b over n pairs. Values are NaN where they are undefined (n < 2, or sd = 0 for p)."""

    n: int
    mean: float
    sd: float  # Sample SD of the differences (n - 1).
    ci_low: float  # 95 % paired-t confidence interval of the mean difference.
    ci_high: float
    p: float  # Two-sided paired t-test.
    boot_low: float  # 95 % percentile-bootstrap interval of the mean difference.
    boot_high: float

    def describe(self, fmt: str = "{:.3g}") -> str:
        """'mean ± SD, 95 % CI [lo, hi], p = P (bootstrap [lo, hi]), n = N' in one line."""
        f = fmt.format
        if self.n == 0:
            return "no pairs"
        if self.n == 1:
            return f"{f(self.mean)} (one pair: no SD, CI or p)"
        p = "nan" if math.isnan(self.p) else f"{self.p:.3g}"
        return (
            f"{f(self.mean)} ± {f(self.sd)}, 95 % CI [{f(self.ci_low)}, {f(self.ci_high)}], p = {p} "
            f"(bootstrap [{f(self.boot_low)}, {f(self.boot_high)}]), n = {self.n}"
        )


def paired_difference(
    a: Sequence[float], b: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> PairedDifference:
    """Paired t statistics of `a - b` (equal-length sequences, pair i = seed i) and a bootstrap CI beside them.

    The bootstrap draws `resamples` resamples from a generator seeded with `seed`, so the result is reproducible.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired_difference needs two 1-D sequences of equal length, got shapes {a.shape} and {b.shape}"
        )
    d = a - b
    n = len(d)
    nan = float("nan")
    if n == 0:
        return PairedDifference(0, nan, nan, nan, nan, nan, nan, nan)
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(1, mean, nan, nan, nan, nan, mean, mean)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * se
    if se > 0:
        p = float(2 * scipy.stats.t.sf(abs(mean) / se, n - 1))
    else:  # All differences equal: p is 0 for a non-zero difference, undefined for none (as scipy's ttest_rel).
        p = 0.0 if mean != 0 else nan
    boot_low, boot_high = bootstrap_ci(d, resamples, seed)
    return PairedDifference(n, mean, sd, mean - half, mean + half, p, boot_low, boot_high)


def bootstrap_ci(d: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of mean(d): the 2.5 % and 97.5 % quantiles of the means of `resamples`
    resamples of `d` (with replacement, same size)."""
    d = np.asarray(d, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
