"""Density and coverage (Naeem et al. 2020) against a brute-force loop and the closed cases; quiet sqrtm."""

import json
import warnings

import numpy as np
import pytest
import torch
from test_calc_metrics import _invoke, setup  # noqa: F401 - setup is a module-scoped fixture.

from metrics import formulas


def _brute_force_prdc(real: np.ndarray, gen: np.ndarray, k: int) -> dict[str, float]:
    """Direct transcription of the paper's definitions with Python loops over float64 distances."""

    def dist(a, b):
        return float(np.sqrt(((a.astype(np.float64) - b.astype(np.float64)) ** 2).sum()))

    def radius(points, i):
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r = [radius(real, i) for i in range(len(real))]
    s = [radius(gen, j) for j in range(len(gen))]
    d = [[dist(real[i], gen[j]) for j in range(len(gen))] for i in range(len(real))]
    n, m = len(real), len(gen)
    precision = sum(any(d[i][j] < r[i] for i in range(n)) for j in range(m)) / m
    recall = sum(any(d[i][j] < s[j] for j in range(m)) for i in range(n)) / n
    density = sum(d[i][j] < r[i] for i in range(n) for j in range(m)) / (k * m)
    coverage = sum(min(d[i]) < r[i] for i in range(n)) / n
    return dict(precision=precision, recall=recall, density=density, coverage=coverage)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_brute_force(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 6)).astype(np.float32)
    gen = (rng.normal(size=(30, 6)) * 1.3 + 0.4).astype(np.float32)
    got = formulas.prdc_from_features(real, gen, nearest_k=k)
    want = _brute_force_prdc(real, gen, k)
    assert set(got) == {"precision", "recall", "density", "coverage"}
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert 0 < want["precision"] < 1 and 0 < want["coverage"] < 1  # The case is not degenerate.


def test_prdc_blocks_do_not_change_the_result():
    rng = np.random.default_rng(7)
    real = torch.as_tensor(rng.normal(size=(50, 4)), dtype=torch.float32)
    gen = torch.as_tensor(rng.normal(size=(45, 4)) + 0.5, dtype=torch.float32)
    assert formulas.prdc_from_torch_features(real, gen, 5, row_batch_size=7) == formulas.prdc_from_torch_features(
        real, gen, 5, row_batch_size=1000
    )


def test_identical_sets_give_density_one_and_full_coverage():
    real = np.random.default_rng(1).normal(size=(60, 8)).astype(np.float32)
    got = formulas.prdc_from_features(real, real.copy(), nearest_k=5)
    assert got["density"] == pytest.approx(1.0)  # Each ball holds its centre and k - 1 neighbours.
    assert got["coverage"] == 1.0 and got["precision"] == 1.0 and got["recall"] == 1.0


def test_disjoint_sets_give_zero():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(30, 3)).astype(np.float32)
    gen = (rng.normal(size=(30, 3)) + 100).astype(np.float32)
    assert formulas.prdc_from_features(real, gen, nearest_k=5) == dict(
        precision=0.0, recall=0.0, density=0.0, coverage=0.0
    )


def test_prdc_rejects_too_few_samples():
    with pytest.raises(ValueError, match="nearest_k=5"):
        formulas.prdc_from_features(np.zeros((5, 2)), np.zeros((10, 2)), nearest_k=5)


def test_fid_of_singular_covariances_is_quiet_and_correct():
    # Rank-1 covariances (sqrtm's "Matrix is singular" case): FID of identical statistics is 0, and of
    # diag(a, 0) vs diag(b, 0) it is (sqrt(a) - sqrt(b))^2 plus the squared mean difference.
    a, b = np.diag([4.0, 0.0, 0.0]), np.diag([1.0, 0.0, 0.0])
    mu = np.array([0.0, 1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert formulas.fid_from_stats(np.zeros(3), a, np.zeros(3), a) == pytest.approx(0.0, abs=1e-9)
        assert formulas.fid_from_stats(np.zeros(3), a, mu, b) == pytest.approx(1.0 + 1.0, abs=1e-9)


def test_prdc_metric_from_the_command_line_with_clean_resize(setup, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(setup["root"] / "cache-prdc"))
    result = _invoke(
        f"--network={setup['network']}",
        "--metrics=prdc50k_full",
        f"--detector={setup['detector']}",
        "--num-images=24",
        "--resize=clean",
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads((setup["run_dir"] / "metric-prdc50k_full.jsonl").read_text().splitlines()[-1])
    values = record["results"]
    assert set(values) == {f"prdc50k_full_{k}" for k in ("precision", "recall", "density", "coverage")}
    assert (
        all(0 <= values[f"prdc50k_full_{k}"] <= 1 for k in ("precision", "recall", "coverage"))
        and values["prdc50k_full_density"] >= 0
    )
    assert (record["detector"], record["num_real"], record["num_gen"], record["resize"]) == ("det.pt", 24, 24, "clean")
    assert "[24 real / 24 generated images; capped by --num-images=24" in result.output
