"""Metric formulas against closed forms and brute-force computations (metrics/formulas.py)."""

import math

import numpy as np
import pytest
import torch

from metrics import formulas


def _random_spd(rng: np.random.RandomState, dim: int) -> np.ndarray:
    a = rng.randn(dim, dim)
    return a @ a.T / dim + 0.1 * np.eye(dim)


def _sqrt_spd(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(s)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def _closed_form_fid(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), with Tr (S1 S2)^1/2 = sum sqrt eig(S1^1/2 S2 S1^1/2)."""
    r = _sqrt_spd(s1)
    eig = np.linalg.eigvalsh(r @ s2 @ r)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(eig, 0, None))))


def _biased_stats(x: np.ndarray):
    return x.mean(axis=0), np.cov(x, rowvar=False, bias=True)


# ----------------------------------------------------------------------------
# FID.


def test_fid_of_two_gaussians_matches_closed_form():
    rng = np.random.RandomState(0)
    dim, n = 6, 100_000
    mu1, mu2 = rng.randn(dim), rng.randn(dim) * 0.5
    s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
    real = rng.multivariate_normal(mu1, s1, size=n)
    gen = rng.multivariate_normal(mu2, s2, size=n)
    fid = formulas.fid_from_features(real, gen)

    # Statistical: the sample FID estimates the population value (bias and noise are O(dim / n)).
    expected_population = _closed_form_fid(mu1, s1, mu2, s2)
    assert expected_population > 1.0
    assert fid == pytest.approx(expected_population, abs=0.05)

    # Exact: the closed form on the sample statistics (biased covariance).
    expected_sample = _closed_form_fid(*_biased_stats(real), *_biased_stats(gen))
    assert fid == pytest.approx(expected_sample, rel=1e-9, abs=1e-9)


def test_fid_of_diagonal_gaussians_is_mean_and_std_distance():
    # Diagonal covariances commute: FID = sum (mu1 - mu2)^2 + sum (sigma1 - sigma2)^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    fid = formulas.fid_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert fid == pytest.approx(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2), rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.RandomState(1).randn(500, 16).astype(np.float32)
    assert abs(formulas.fid_from_features(x, x)) < 1e-6


# ----------------------------------------------------------------------------
# KID.


def _brute_force_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by explicit loops in float64."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    m, d = x.shape

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m)


def test_kid_matches_direct_unbiased_mmd():
    rng = np.random.RandomState(2)
    real = rng.randn(40, 8).astype(np.float32)
    gen = (rng.randn(40, 8) * 1.3 + 0.4).astype(np.float32)
    # One subset holding every row (a permutation, which MMD ignores).
    kid = formulas.kid_from_features(real, gen, num_subsets=1, max_subset_size=1000)
    expected = _brute_force_mmd2_unbiased(gen, real)
    assert expected > 0.1
    assert kid == pytest.approx(expected, rel=1e-4)


def test_kid_subsets_average_direct_mmd_of_each_subset():
    rng = np.random.RandomState(3)
    real = rng.randn(30, 5).astype(np.float32)
    gen = (rng.randn(25, 5) + 0.5).astype(np.float32)
    kid = formulas.kid_from_features(real, gen, num_subsets=3, max_subset_size=10, seed=7)
    # The documented draw order: per subset, 10 gen rows then 10 real rows, without replacement.
    draw = np.random.RandomState(7)
    values = []
    for _ in range(3):
        x = gen[draw.choice(25, 10, replace=False)]
        y = real[draw.choice(30, 10, replace=False)]
        values.append(_brute_force_mmd2_unbiased(x, y))
    assert kid == pytest.approx(np.mean(values), rel=1e-4)


def test_kid_is_about_zero_for_equal_distributions():
    rng = np.random.RandomState(4)
    real = rng.randn(2000, 16).astype(np.float32)
    same = rng.randn(2000, 16).astype(np.float32)
    shifted = (rng.randn(2000, 16) + 0.3).astype(np.float32)
    kid_same = formulas.kid_from_features(real, same, num_subsets=20, max_subset_size=1000)
    kid_shifted = formulas.kid_from_features(real, shifted, num_subsets=20, max_subset_size=1000)
    assert kid_shifted > 0.05
    assert abs(kid_same) < 0.02 * kid_shifted


def test_kid_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        formulas.kid_from_features(np.zeros([1, 4]), np.zeros([5, 4]))


# ----------------------------------------------------------------------------
# Inception score.


def test_is_of_constant_predictions_is_one():
    probs = np.tile(np.array([0.1, 0.6, 0.3]), (50, 1))
    mean, std = formulas.is_from_probs(probs, num_splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_is_of_uniform_one_hot_predictions_is_num_classes():
    num_classes, num_splits, repeats = 7, 10, 3
    # Every split holds each class `repeats` times: confident and uniformly spread predictions.
    labels = np.tile(np.arange(num_classes), num_splits * repeats)
    probs = np.eye(num_classes)[labels]
    mean, std = formulas.is_from_probs(probs, num_splits=num_splits)
    assert mean == pytest.approx(num_classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_is_matches_direct_kl_per_split():
    rng = np.random.RandomState(5)
    logits = rng.randn(40, 6) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = []
    for part in np.split(probs, 4):
        marginal = part.mean(axis=0)
        kl = [sum(p[k] * math.log(p[k] / marginal[k]) for k in range(6)) for p in part]
        scores.append(math.exp(np.mean(kl)))
    mean, std = formulas.is_from_probs(probs, num_splits=4)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


# ----------------------------------------------------------------------------
# Precision and recall.


def _brute_force_coverage(manifold: np.ndarray, probes: np.ndarray, k: int) -> float:
    """Fraction of probes within the distance to the k-th nearest other point of some manifold point."""
    manifold = manifold.astype(np.float64)
    probes = probes.astype(np.float64)
    radii = []
    for point in manifold:
        dists = sorted(float(np.linalg.norm(point - other)) for other in manifold)
        radii.append(dists[k])  # dists[0] is the point itself.
    inside = 0
    for probe in probes:
        inside += any(float(np.linalg.norm(probe - point)) <= r for point, r in zip(manifold, radii))
    return inside / len(probes)


def test_pr_of_identical_sets_is_one():
    x = np.random.RandomState(6).randn(50, 10).astype(np.float32)
    assert formulas.pr_from_features(x, x, nhood_size=3) == (1.0, 1.0)


def test_pr_of_disjoint_far_sets_is_zero():
    rng = np.random.RandomState(7)
    real = rng.randn(50, 10).astype(np.float32)
    gen = (rng.randn(60, 10) + 100).astype(np.float32)
    assert formulas.pr_from_features(real, gen, nhood_size=3) == (0.0, 0.0)


@pytest.mark.parametrize("nhood_size", [1, 3])
def test_pr_matches_brute_force_knn(nhood_size):
    rng = np.random.RandomState(8 + nhood_size)
    real = rng.randn(70, 6).astype(np.float32)
    gen = (rng.randn(60, 6) * 1.2 + 0.5).astype(np.float32)
    precision, recall = formulas.pr_from_features(real, gen, nhood_size=nhood_size)
    assert precision == pytest.approx(_brute_force_coverage(real, gen, nhood_size), abs=1e-6)
    assert recall == pytest.approx(_brute_force_coverage(gen, real, nhood_size), abs=1e-6)
    assert 0 < precision < 1 and 0 < recall < 1


def test_pr_is_independent_of_row_and_column_blocks():
    rng = np.random.RandomState(11)
    real = torch.from_numpy(rng.randn(37, 5).astype(np.float32))
    gen = torch.from_numpy((rng.randn(29, 5) + 0.3).astype(np.float32))
    whole = formulas.pr_from_torch_features(real, gen, nhood_size=3)
    blocked = formulas.pr_from_torch_features(real, gen, nhood_size=3, row_batch_size=8, col_batch_size=6)
    assert blocked == whole


# ----------------------------------------------------------------------------
# PPL filtering.


def test_ppl_mean_excludes_values_outside_1st_and_99th_percentiles():
    rng = np.random.RandomState(12)
    dist = rng.exponential(size=1001)
    ordered = np.sort(dist)
    lo = ordered[int(math.floor(0.01 * 1000))]  # 'lower' percentile: the sample at or below the position.
    hi = ordered[int(math.ceil(0.99 * 1000))]  # 'higher' percentile: the sample at or above the position.
    kept = [d for d in dist if lo <= d <= hi]
    assert len(kept) == 1001 - 10 - 10
    assert formulas.ppl_from_distances(dist) == pytest.approx(np.mean(kept), rel=1e-12)
