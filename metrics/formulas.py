"""The metric formulas on feature arrays (FID, KID, precision/recall, IS, PPL), independent of networks and datasets.

All public functions take NumPy arrays: features `[N, F]` (float) or class probabilities `[N, K]`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.special
import torch

# ----------------------------------------------------------------------------
# FID.


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and biased covariance [F, F] (divided by N) in float64."""
    x = np.asarray(features, dtype=np.float64)
    mu = x.mean(axis=0)
    sigma = x.T @ x / x.shape[0] - np.outer(mu, mu)
    return mu, sigma


def fid_from_stats(mu_real: np.ndarray, sigma_real: np.ndarray, mu_gen: np.ndarray, sigma_gen: np.ndarray) -> float:
    """Frechet distance ||mu_g - mu_r||^2 + tr(S_g + S_r - 2 sqrtm(S_g S_r)); real part taken at the end."""
    m = np.square(mu_gen - mu_real).sum()
    s = _sqrtm_quiet(np.dot(sigma_gen, sigma_real))
    if not np.isfinite(s).all():
        # sqrtm failed on a (numerically) singular product, typical with fewer images than features: add
        # eps to both diagonals, a change far below FID's sampling noise, and retry.
        offset = np.eye(sigma_gen.shape[0]) * _SQRTM_EPS
        s = _sqrtm_quiet(np.dot(sigma_gen + offset, sigma_real + offset))
    fid = np.real(m + np.trace(sigma_gen + sigma_real - s * 2))
    return float(fid)


_SQRTM_EPS = 1e-6


def _sqrtm_quiet(matrix: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm without its "Matrix is singular" warning.

    A singular Sigma_g Sigma_r is expected when there are fewer images than feature dimensions (rank <= N - 1);
    its square root is still well defined and computed, so the warning would only alarm the user. Non-finite
    results are left to the caller.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*singular.*")
        return scipy.linalg.sqrtm(matrix)


def fid_from_features(real: np.ndarray, gen: np.ndarray) -> float:
    """FID between two feature sets [N_r, F] and [N_g, F] (biased covariances, float64)."""
    return fid_from_stats(*mean_cov(real), *mean_cov(gen))


# ----------------------------------------------------------------------------
# KID.


def kid_from_features(
    real: np.ndarray,
    gen: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int | None = 0,
) -> float:
    """Kernel inception distance: unbiased MMD^2 with the cubic kernel (x.y/n + 1)^3, averaged over subsets.

    Each subset draws m = min(N_r, N_g, max_subset_size) rows of gen, then of real, without replacement
    (`np.random.RandomState(seed)`; seed=None uses NumPy's global RNG as the original does). float32 arithmetic.
    """
    real = np.asarray(real, dtype=np.float32)
    gen = np.asarray(gen, dtype=np.float32)
    n = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 real and 2 generated samples, got {real.shape[0]} and {gen.shape[0]}")
    rng = np.random if seed is None else np.random.RandomState(seed)
    t = 0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    kid = t / num_subsets / m
    return float(kid)


# ----------------------------------------------------------------------------
# Precision and recall.


def pairwise_distances(
    rows: torch.Tensor,
    manifold: torch.Tensor,
    col_batch_size: int = 10000,
    num_gpus: int = 1,
    rank: int = 0,
) -> torch.Tensor | None:
    """Euclidean distances [R, M] from `rows` to every manifold point, in the inputs' dtype.

    With several processes the manifold is split into column chunks (a multiple of num_gpus, zero-padded);
    rank k computes chunks k, k+G, ... and rank 0 receives all of them. Other ranks return None.
    """
    num_cols = manifold.shape[0]
    num_batches = -(-num_cols // col_batch_size)
    num_batches = -(-num_batches // num_gpus) * num_gpus
    chunk_size = -(-num_cols // num_batches)
    padded = torch.nn.functional.pad(manifold, [0, 0, 0, num_batches * chunk_size - num_cols])
    chunks = padded.split(chunk_size)
    results = []
    for group_start in range(0, len(chunks), num_gpus):
        mine = torch.cdist(rows.unsqueeze(0), chunks[group_start + rank].unsqueeze(0))[0]
        if num_gpus > 1:
            gathered = [torch.empty_like(mine) for _ in range(num_gpus)]
            torch.distributed.all_gather(gathered, mine)
            mine = torch.cat(gathered, dim=1)
        results.append(mine)
    if rank != 0:
        return None
    return torch.cat(results, dim=1)[:, :num_cols]


def _manifold_coverage(
    manifold: torch.Tensor,
    probes: torch.Tensor,
    nhood_size: int,
    row_batch_size: int,
    col_batch_size: int,
    num_gpus: int,
    rank: int,
) -> float:
    """Fraction of probes within the k-NN radius (k = nhood_size) of at least one manifold point (rank 0)."""
    radii = []
    for block in manifold.split(row_batch_size):
        dist = pairwise_distances(block, manifold, col_batch_size, num_gpus, rank)
        if rank == 0:
            # The (k+1)-th smallest distance: the +1 skips the zero distance of a point to itself.
            radii.append(dist.to(torch.float32).kthvalue(nhood_size + 1, dim=1).values.to(manifold.dtype))
    inside = []
    radii_all = torch.cat(radii) if rank == 0 else None
    for block in probes.split(row_batch_size):
        dist = pairwise_distances(block, manifold, col_batch_size, num_gpus, rank)
        if rank == 0:
            inside.append((dist <= radii_all.unsqueeze(0)).any(dim=1))
    if rank != 0:
        return float("nan")
    return float(torch.cat(inside).to(torch.float32).mean())


def pr_from_torch_features(
    real: torch.Tensor,
    gen: torch.Tensor,
    nhood_size: int = 3,
    row_batch_size: int = 10000,
    col_batch_size: int = 10000,
    num_gpus: int = 1,
    rank: int = 0,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) on feature tensors of equal dtype/device.

    Precision: fraction of gen inside the real manifold; recall: fraction of real inside the gen manifold.
    Ranks other than 0 return NaN.
    """
    if min(real.shape[0], gen.shape[0]) <= nhood_size:
        raise ValueError(f"precision/recall needs more than nhood_size={nhood_size} real and generated samples")
    args = (nhood_size, row_batch_size, col_batch_size, num_gpus, rank)
    precision = _manifold_coverage(real, gen, *args)
    recall = _manifold_coverage(gen, real, *args)
    return precision, recall


def pr_from_features(real: np.ndarray, gen: np.ndarray, nhood_size: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features [N_g, F] against real features [N_r, F] (float32 on CPU)."""
    real_t = torch.as_tensor(np.asarray(real, dtype=np.float32))
    gen_t = torch.as_tensor(np.asarray(gen, dtype=np.float32))
    return pr_from_torch_features(real_t, gen_t, nhood_size=nhood_size)


# ----------------------------------------------------------------------------
# Precision, recall, density and coverage (Naeem et al. 2020).


def _knn_radii(points: torch.Tensor, nearest_k: int, row_batch_size: int) -> torch.Tensor:
    """Distance [N] from each point to its k-th nearest other point (the (k+1)-th smallest: self is at 0)."""
    return torch.cat(
        [torch.cdist(block, points).kthvalue(nearest_k + 1, dim=1).values for block in points.split(row_batch_size)]
    )


def prdc_from_torch_features(
    real: torch.Tensor, gen: torch.Tensor, nearest_k: int = 5, row_batch_size: int = 10000
) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of gen [M, F] against real [N, F].

    With r_i the distance from real point i to its k-th nearest real neighbour, s_j likewise among gen, and
    d_ij the distance from real i to gen j (all comparisons strict, as in the paper):
        precision = mean_j 1[exists i: d_ij < r_i]        recall   = mean_i 1[exists j: d_ij < s_j]
        density   = 1/(k M) sum_j sum_i 1[d_ij < r_i]      coverage = mean_i 1[min_j d_ij < r_i]
    Identical sets (distinct distances) give density = 1 and coverage = 1; density can exceed 1 where gen
    crowds dense real regions. The distance matrix is processed in blocks of row_batch_size rows.
    """
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"features must be [N, F] and [M, F], got {list(real.shape)} and {list(gen.shape)}")
    if min(real.shape[0], gen.shape[0]) <= nearest_k:
        raise ValueError(
            f"density/coverage needs more than nearest_k={nearest_k} real and generated samples, got {real.shape[0]} and {gen.shape[0]}"
        )
    real_radii = _knn_radii(real, nearest_k, row_batch_size)
    gen_radii = _knn_radii(gen, nearest_k, row_batch_size)
    in_real_balls = []  # Per gen point: how many real balls contain it.
    for block in gen.split(row_batch_size):
        in_real_balls.append((torch.cdist(block, real) < real_radii[None]).sum(dim=1))
    in_real_balls = torch.cat(in_real_balls).to(torch.float64)
    recalled, covered = [], []
    for block, radii in zip(real.split(row_batch_size), real_radii.split(row_batch_size)):
        dist = torch.cdist(block, gen)
        recalled.append((dist < gen_radii[None]).any(dim=1))
        covered.append(dist.min(dim=1).values < radii)
    return dict(
        precision=float((in_real_balls > 0).to(torch.float64).mean()),
        recall=float(torch.cat(recalled).to(torch.float64).mean()),
        density=float(in_real_balls.sum() / (nearest_k * gen.shape[0])),
        coverage=float(torch.cat(covered).to(torch.float64).mean()),
    )


def prdc_from_features(real: np.ndarray, gen: np.ndarray, nearest_k: int = 5) -> dict[str, float]:
    """{'precision', 'recall', 'density', 'coverage'} of gen features [M, F] against real [N, F] (float64, CPU).

    See prdc_from_torch_features for the definitions. float64 keeps ties exact enough that identical sets
    give density 1 (float32 distances through matrix products misorder near-equal distances).
    """
    real_t = torch.as_tensor(np.asarray(real, dtype=np.float64))
    gen_t = torch.as_tensor(np.asarray(gen, dtype=np.float64))
    return prdc_from_torch_features(real_t, gen_t, nearest_k=nearest_k)


# ----------------------------------------------------------------------------
# Inception score.


def is_from_probs(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Inception score (mean, population std over splits) of class probabilities [N, K].

    Split i takes rows [i*N//s, (i+1)*N//s); score = exp(mean_rows KL(p(y|x) || p(y))). 0 log 0 counts as 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if n < num_splits:
        raise ValueError(f"Inception score needs at least num_splits={num_splits} samples, got {n}")
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.xlogy(part, part) - scipy.special.xlogy(part, marginal)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ----------------------------------------------------------------------------
# Perceptual path length.


def ppl_from_distances(dist: np.ndarray) -> float:
    """Mean of the scaled path distances between the 1st ('lower') and 99th ('higher') percentiles."""
    dist = np.asarray(dist, dtype=np.float64)
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())
