"""Toy 2D data sets (the AdaptiveMix paper's Fig. 3 and the VEEGAN/PacGAN protocol) and their metrics.

The lab's own data sets (Gaussian noise sigma = 0.02):
- `grid9`: nine Gaussians centred on {-2, 0, 2}^2 (Fig. 3a);
- `ring8`: eight Gaussians centred on the circle of radius 2, at angles 2 pi k / 8;
- `circles`: three concentric circles of radii 0.5, 1.25 and 2 (Fig. 3b), uniform angle, radial noise.
The published protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018):
- `pacgan-ring`: eight Gaussians centred on the unit circle at angles 2 pi k / 8, sigma = 0.01;
- `pacgan-grid`: 25 Gaussians centred on {-4, -2, 0, 2, 4}^2, sigma = 0.05.

A mode is a Gaussian's centre or a circle. Metrics of a generated set, each point assigned to its nearest mode:
- `hq_pct`: % of points within 3 sigma of their nearest mode (distance to the centre, or to the circle);
- `modes`: how many modes have at least `min_hq_per_mode` high-quality points assigned to them (out of
  `num_modes`): 20 for the lab's sets; 1 for the published protocol ("the number of mixture components whose
  mean is nearest to at least one high-quality sample", VEEGAN);
- `kl`: the reverse KL divergence KL(p || u) = sum_k p_k log(K p_k) of the histogram p of all finite points over
  their nearest modes to the uniform distribution u over the K modes (0 log 0 = 0; PacGAN's third column);
- `mmd`: squared maximum mean discrepancy (unbiased estimate) between the first `MMD_POINTS` (1000) generated
  points and as many fresh data points (a 2500 x 2500 kernel costs seconds per run on a busy CPU), with the fixed kernel k(a, b) = mean over h in (0.05, 0.2, 0.8) of exp(-||a - b||^2 / (2 h^2)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATASETS = ("grid9", "circles", "ring8", "pacgan-ring", "pacgan-grid")
SIGMA = 0.02
HQ_SIGMAS = 3.0
MIN_HQ_PER_MODE = 20
MMD_BANDWIDTHS = (0.05, 0.2, 0.8)
MMD_POINTS = 1000


@dataclass(frozen=True)
class ToyDataset:
    """Either Gaussian centres [K, 2] or circle radii [K]; `sigma` is the noise standard deviation; a mode counts
    as covered with at least `min_hq_per_mode` high-quality points."""

    name: str
    centres: np.ndarray | None = None
    radii: np.ndarray | None = None
    sigma: float = SIGMA
    min_hq_per_mode: int = MIN_HQ_PER_MODE

    @property
    def extent(self) -> float:
        """Half the side of a square view [-e, e]^2 that holds every mode with a margin."""
        reach = np.abs(self.centres).max() if self.centres is not None else self.radii.max()
        return float(1.25 * reach + 0.5)

    @property
    def num_modes(self) -> int:
        return len(self.centres) if self.centres is not None else len(self.radii)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points [n, 2] float32: a uniformly chosen mode plus noise."""
        k = rng.integers(self.num_modes, size=n)
        if self.centres is not None:
            return (self.centres[k] + rng.normal(0, self.sigma, size=(n, 2))).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi, size=n)
        radius = self.radii[k] + rng.normal(0, self.sigma, size=n)
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)

    def nearest_mode(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index [N] of the nearest mode, distance [N] to it) for points [N, 2]."""
        points = np.asarray(points, dtype=np.float64)
        if self.centres is not None:
            dist = np.linalg.norm(points[:, None, :] - self.centres[None], axis=2)
        else:
            dist = np.abs(np.linalg.norm(points, axis=1)[:, None] - self.radii[None])
        index = dist.argmin(axis=1)
        return index, dist[np.arange(len(points)), index]


def make_dataset(name: str) -> ToyDataset:
    """The named toy data set (see the module docstring); ValueError for an unknown name."""
    if name == "grid9":
        grid = np.array([-2.0, 0.0, 2.0])
        return ToyDataset(name, centres=np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2))
    if name == "ring8":
        angle = 2 * np.pi * np.arange(8) / 8
        return ToyDataset(name, centres=2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1))
    if name == "circles":
        return ToyDataset(name, radii=np.array([0.5, 1.25, 2.0]))
    if name == "pacgan-ring":
        angle = 2 * np.pi * np.arange(8) / 8
        return ToyDataset(name, centres=np.stack([np.cos(angle), np.sin(angle)], axis=1), sigma=0.01, min_hq_per_mode=1)
    if name == "pacgan-grid":
        grid = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        centres = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
        return ToyDataset(name, centres=centres, sigma=0.05, min_hq_per_mode=1)
    raise ValueError(f"unknown toy dataset {name!r}: choose one of {', '.join(DATASETS)}")


def mmd2(x: np.ndarray, y: np.ndarray, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> float:
    """Unbiased MMD^2 between point sets x [N, D] and y [M, D] with the mixture-of-Gaussians kernel."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def kernel_sum(a, b, exclude_diagonal):
        sq = np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)
        total = sum(float(np.exp(sq * (-0.5 / (h * h))).sum()) for h in bandwidths) / len(bandwidths)
        return total - (len(a) if exclude_diagonal else 0)  # k(a, a) = 1 on the diagonal

    n, m = len(x), len(y)
    return (
        kernel_sum(x, x, True) / (n * (n - 1))
        + kernel_sum(y, y, True) / (m * (m - 1))
        - 2 * kernel_sum(x, y, False) / (n * m)
    )


def toy_metrics(
    points: np.ndarray,
    dataset: ToyDataset,
    reference: np.ndarray | None = None,
    seed: int = 12345,
    with_mmd: bool = True,
) -> dict:
    """{'hq_pct', 'modes', 'num_modes', 'kl', 'mmd'} of generated points [N, 2] (see the module docstring).

    `reference` (data points for the MMD) defaults to min(N, MMD_POINTS) fresh samples drawn with `seed`;
    without `with_mmd` the (slower) MMD is left out.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"toy metrics need points [N >= 2, 2], got {points.shape}")
    finite = np.isfinite(points).all(axis=1)
    index, dist = dataset.nearest_mode(np.where(finite[:, None], points, 1e6))
    hq = finite & (dist <= HQ_SIGMAS * dataset.sigma)
    per_mode = np.bincount(index[hq], minlength=dataset.num_modes)
    result = {
        "hq_pct": 100.0 * hq.mean(),
        "modes": int((per_mode >= dataset.min_hq_per_mode).sum()),
        "num_modes": dataset.num_modes,
        "kl": mode_kl(np.bincount(index[finite], minlength=dataset.num_modes)),
    }
    if with_mmd:
        if reference is None:
            reference = dataset.sample(min(len(points), MMD_POINTS), np.random.default_rng(seed))
        head = points[:MMD_POINTS][finite[:MMD_POINTS]]
        result["mmd"] = mmd2(head, reference) if len(head) >= 2 else float("inf")
    return result


def mode_kl(counts: np.ndarray) -> float:
    """KL(p || uniform) = sum_k p_k log(K p_k) of a histogram of counts [K] (0 log 0 = 0); inf for no counts."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        return float("inf")
    p = counts / counts.sum()
    nonzero = p > 0
    return float((p[nonzero] * np.log(len(p) * p[nonzero])).sum())
