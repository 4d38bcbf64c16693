"""Toy 2D lab: metrics on hand-made sample sets, variants, and a run end to end in seconds."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labs import toy
from labs.toy_data import make_dataset, mmd2, toy_metrics
from labs.toy_run import ToyConfig, ToyRun, check_variant, technique_set
from labs.toy_tables import format_tables


def _around_modes(dataset, modes, per_mode, spread, rng):
    """Points near the given mode indices: at the centre plus noise, or on the circle with radial noise."""
    parts = []
    for k in modes:
        if dataset.centres is not None:
            parts.append(dataset.centres[k] + rng.normal(0, spread, size=(per_mode, 2)))
        else:
            angle = rng.uniform(0, 2 * np.pi, per_mode)
            radius = dataset.radii[k] + rng.normal(0, spread, per_mode)
            parts.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1))
    return np.concatenate(parts)


@pytest.mark.parametrize("name", ["grid9", "ring8", "circles"])
def test_metrics_all_modes_one_mode_none(name):
    data = make_dataset(name)
    rng = np.random.default_rng(0)
    per_mode = 900 // data.num_modes
    full = toy_metrics(_around_modes(data, range(data.num_modes), per_mode, 0.01, rng), data)
    assert full["modes"] == data.num_modes and full["hq_pct"] > 99
    one = toy_metrics(_around_modes(data, [0], 900, 0.01, rng), data)
    assert one["modes"] == 1 and one["hq_pct"] > 99
    none = toy_metrics(rng.uniform(2.8, 3.2, (900, 2)), data)  # a blob away from every mode
    assert none["modes"] == 0 and none["hq_pct"] == 0
    assert full["mmd"] < min(one["mmd"], none["mmd"])
    assert abs(full["mmd"]) < 2e-3


def test_metrics_hq_threshold_and_min_count_by_hand():
    data = make_dataset("grid9")
    # 25 points 0.05 from centre 0 (inside 3 sigma = 0.06), 19 points at centre 1, 10 points 0.07 off centre 2.
    pts = np.concatenate(
        [
            np.tile(data.centres[0] + [0.05, 0.0], (25, 1)),
            np.tile(data.centres[1], (19, 1)),
            np.tile(data.centres[2] + [0.0, 0.07], (10, 1)),
        ]
    )
    m = toy_metrics(pts, data, reference=data.sample(100, np.random.default_rng(0)))
    assert m["hq_pct"] == pytest.approx(100 * 44 / 54)
    assert m["modes"] == 1  # 19 HQ points are not enough for centre 1; centre 2's points are not HQ
    with pytest.raises(ValueError, match="points"):
        toy_metrics(np.zeros((5, 3)), data)
    nan = np.full((10, 2), np.nan)
    assert toy_metrics(nan, data)["hq_pct"] == 0


def test_mmd_against_direct_double_sum():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)) + 0.5

    def k(a, b):
        return np.mean([np.exp(-np.sum((a - b) ** 2) / (2 * h * h)) for h in (0.05, 0.2, 0.8)])

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_variants_and_objectives_are_validated():
    assert technique_set("plain") == set()
    assert technique_set("adaptivemix+bures") == {"adaptivemix", "bures"}
    with pytest.raises(ValueError, match="unknown technique 'dropout'"):
        technique_set("dropout")
    with pytest.raises(ValueError, match="alt-bures"):
        technique_set("bures+alt-bures")
    assert check_variant("ls", "std") and not check_variant("ls", "wgan", strict=False)
    with pytest.raises(ValueError, match="objective=std"):
        check_variant("ls", "hinge")
    assert ToyConfig("grid9", "wgan", "adaptivemix", 0).amix_form == "paper"
    assert ToyConfig("grid9", "hinge", "adaptivemix", 0).amix_form == "release"


@pytest.mark.parametrize(
    "objective, variant",
    [
        ("std", "ls+fm+ha"),
        ("wgan", "adaptivemix+bures"),
        ("wgan-gp", "mbdisc"),
        ("hinge", "vbn+alt-bures"),
        ("std", "amix-release"),
        ("hinge", "amix-paper"),
    ],
)
def test_every_technique_trains_a_few_steps(objective, variant):
    run = ToyRun(ToyConfig("ring8", objective, variant, 0, steps=3, batch=16, mbdisc_kernels=4))
    before = [p.detach().clone() for p in run.G.parameters()]
    run.train()
    assert all(torch.isfinite(p).all() for p in run.G.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, run.G.parameters()))
    if objective == "wgan":
        assert all(p.abs().max() <= 0.01 + 1e-7 for p in run.D.parameters())
    if "ha" in variant:
        assert run.losses.hist_G.count == 3 and run.losses.hist_D.count == 3
    conf = run.confidence_map(size=8)
    assert conf.shape == (8, 8) and conf.min() >= 0 and conf.max() <= 1


def test_vbn_reference_is_in_the_generator_state():
    run = ToyRun(ToyConfig("grid9", "std", "vbn", 3, steps=1, batch=8))
    assert "reference.batch" in run.G.state_dict()


def test_toy_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        toy.main, ["--runs", "grid9:std,wgan:plain,ls:0-1", "--steps", "5", "--batch", "32", "--outdir", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["run"] for r in lines} == {
        "grid9-std-plain-s0",
        "grid9-std-plain-s1",
        "grid9-wgan-plain-s0",
        "grid9-wgan-plain-s1",
        "grid9-std-ls-s0",
        "grid9-std-ls-s1",
    }  # no ls with wgan
    samples = np.load(out / "samples-grid9-std-plain-s0.npy")
    assert samples.shape == (2500, 2) and samples.dtype == np.float32
    assert toy_metrics(samples, make_dataset("grid9"))["hq_pct"] == lines[0]["hq_pct"]
    assert (out / "figure-grid9.png").exists() and (out / "fig-grid9-wgan-plain-s1.png").exists()
    assert "| ls | " in result.output and "n/a" in result.output
    # The same seed gives the same samples.
    again = CliRunner().invoke(
        toy.main, ["--runs", "grid9:std:plain:0", "--steps", "5", "--batch", "32", "--outdir", str(tmp_path / "again")]
    )
    assert again.exit_code == 0
    assert np.array_equal(np.load(tmp_path / "again" / "samples-grid9-std-plain-s0.npy"), samples)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "moons"], "unknown toy dataset"),
        (["--variant", "ls", "--objective", "wgan"], "objective=std"),
        (["--seed", "a-b"], "--seed"),
        (["--runs", "grid9:std"], "--runs"),
    ],
)
def test_toy_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(toy.main, [*args, "--steps", "1", "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_format_tables_mean_and_sd():
    rows = [
        dict(dataset="grid9", objective="std", variant="plain", seed=s, modes=m, hq_pct=h, mmd=0.001, num_modes=9)
        for s, m, h in ((0, 9, 50.0), (1, 7, 30.0))
    ]
    text = format_tables(rows)
    assert "| plain | 8.0 ± 1.0 |" in text and "| plain | 40.0 ± 10.0 |" in text and "| plain | 1.00 ± 0.00 |" in text


def test_adaptivemix_flag_joins_adaptivemix_to_every_variant(tmp_path):
    assert [toy.with_adaptivemix(v) for v in ("plain", "fm", "adaptivemix+bures", "amix-paper")] == [
        "adaptivemix",
        "adaptivemix+fm",
        "adaptivemix+bures",
        "amix-paper",
    ]
    result = CliRunner().invoke(
        toy.main, ["--variant=plain,fm", "--adaptivemix", "--steps=2", "--batch=16", f"--outdir={tmp_path}"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(line["variant"] for line in lines) == ["adaptivemix", "adaptivemix+fm"]
