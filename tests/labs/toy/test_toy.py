"""Toy 2D lab: metrics on hand-made sample sets, variants, and a run end to end in seconds."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labs.toy import cli as toy
from labs.toy.data import make_dataset, mmd2, mode_kl, toy_metrics
from labs.toy.networks import Maxout
from labs.toy.run import PRESETS, ToyConfig, ToyRun, check_variant, technique_set
from labs.toy.tables import PUBLISHED, format_published_comparison, format_tables


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
    assert check_variant("ls", "ns") and not check_variant("ls", "wgan", strict=False)
    with pytest.raises(ValueError, match="objective=ns"):
        check_variant("ls", "hinge")
    assert ToyConfig("grid9", "wgan", "adaptivemix", 0).adaptivemix_form == "paper"
    assert ToyConfig("grid9", "hinge", "adaptivemix", 0).adaptivemix_form == "release"


@pytest.mark.parametrize(
    "objective, variant",
    [
        ("ns", "ls+fm+ha"),
        ("wgan", "adaptivemix+bures"),
        ("wgan-gp", "mbdisc"),
        ("hinge", "vbn+alt-bures"),
        ("ns", "amix-release"),
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
        assert run.losses.terms.hist["G"].count == 3 and run.losses.terms.hist["D"].count == 3
    conf = run.confidence_map(size=8)
    assert conf.shape == (8, 8) and conf.min() >= 0 and conf.max() <= 1


def test_vbn_reference_is_in_the_generator_state():
    run = ToyRun(ToyConfig("grid9", "ns", "vbn", 3, steps=1, batch=8))
    assert "reference.batch" in run.G.state_dict()


@pytest.mark.slow
def test_toy_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        toy.main, ["--runs", "grid9:ns,wgan:plain,ls:0-1", "--steps", "5", "--batch", "32", "--outdir", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["run"] for r in lines} == {
        "grid9-ns-plain-s0",
        "grid9-ns-plain-s1",
        "grid9-wgan-plain-s0",
        "grid9-wgan-plain-s1",
        "grid9-ns-ls-s0",
        "grid9-ns-ls-s1",
    }  # no ls with wgan
    samples = np.load(out / "samples-grid9-ns-plain-s0.npy")
    assert samples.shape == (2500, 2) and samples.dtype == np.float32
    assert toy_metrics(samples, make_dataset("grid9"))["hq_pct"] == lines[0]["hq_pct"]
    assert (out / "figure-grid9.png").exists() and (out / "fig-grid9-wgan-plain-s1.png").exists()
    assert "| ls | " in result.output and "n/a" in result.output
    # The same seed gives the same samples.
    again = CliRunner().invoke(
        toy.main, ["--runs", "grid9:ns:plain:0", "--steps", "5", "--batch", "32", "--outdir", str(tmp_path / "again")]
    )
    assert again.exit_code == 0
    assert np.array_equal(np.load(tmp_path / "again" / "samples-grid9-ns-plain-s0.npy"), samples)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "moons"], "unknown toy dataset"),
        (["--variant", "ls", "--objective", "wgan"], "objective=ns"),
        (["--seed", "a-b"], "--seed"),
        (["--runs", "grid9:ns"], "--runs"),
    ],
)
def test_toy_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(toy.main, [*args, "--steps", "1", "--outdir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_format_tables_mean_and_sd():
    rows = [
        dict(dataset="grid9", objective="ns", variant="plain", seed=s, modes=m, hq_pct=h, mmd=0.001, num_modes=9)
        for s, m, h in ((0, 9, 50.0), (1, 7, 30.0))
    ]
    text = format_tables(rows)
    assert "| plain | 8.0 ± 1.0 |" in text and "| plain | 40.0 ± 10.0 |" in text and "| plain | 1.00 ± 0.00 |" in text
    assert "reverse KL" not in text  # lines without the metric get no table
    text = format_tables([dict(r, kl=0.5 * r["seed"]) for r in rows])
    assert "reverse KL" in text and "| plain | 0.25 ± 0.25 |" in text


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


def test_pacgan_datasets_centres_and_sigma():
    ring, grid = make_dataset("pacgan-ring"), make_dataset("pacgan-grid")
    angles = 2 * np.pi * np.arange(8) / 8
    assert np.allclose(ring.centres, np.stack([np.cos(angles), np.sin(angles)], 1)) and ring.sigma == 0.01
    expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in grid.centres.tolist()} == expected and grid.sigma == 0.05
    for data in (ring, grid):
        points = data.sample(20000, np.random.default_rng(0))
        index, _ = data.nearest_mode(points)
        offsets = points - data.centres[index]
        assert offsets.std(axis=0) == pytest.approx([data.sigma] * 2, rel=0.03)
        assert np.bincount(index, minlength=data.num_modes).min() > 0.8 * 20000 / data.num_modes


@pytest.mark.parametrize("name", ["pacgan-ring", "pacgan-grid"])
def test_published_metrics_on_hand_made_sets(name):
    data = make_dataset(name)
    k = data.num_modes
    rng = np.random.default_rng(3)
    # All modes, 100 points each, within 1 sigma: every mode covered, all high quality, KL 0.
    full = toy_metrics(_around_modes(data, range(k), 100, data.sigma / 3, rng), data)
    assert full["modes"] == k and full["hq_pct"] == 100 and full["kl"] == pytest.approx(0, abs=1e-12)
    # One mode: KL(p || u) = 1 * log(K * 1).
    one = toy_metrics(_around_modes(data, [0], 2500, data.sigma / 3, rng), data)
    assert one["modes"] == 1 and one["hq_pct"] == 100 and one["kl"] == pytest.approx(np.log(k))
    # Points off every mode (4 sigma from centres 0 and 1): nothing high quality, no mode covered.
    off = np.concatenate(
        [
            np.tile(data.centres[0] + [4 * data.sigma, 0], (30, 1)),
            np.tile(data.centres[1] - [0, 4 * data.sigma], (10, 1)),
        ]
    )
    m = toy_metrics(off, data)
    assert m["modes"] == 0 and m["hq_pct"] == 0
    p = np.array([30, 10]) / 40  # The KL counts every point at its nearest mode, high quality or not.
    assert m["kl"] == pytest.approx(float((p * np.log(k * p)).sum()))
    # A single high-quality point covers its mode in the published protocol (at least one HQ sample).
    single = np.concatenate([off, data.centres[2:3] + [2.9 * data.sigma, 0]])
    assert toy_metrics(single, data)["modes"] == 1


def test_mode_kl_against_direct_sum():
    counts = np.array([5, 0, 3, 2])
    p = counts / 10
    direct = sum(pi * np.log(pi / 0.25) for pi in p if pi > 0)
    assert mode_kl(counts) == pytest.approx(direct, rel=1e-12)
    assert mode_kl(np.zeros(3)) == float("inf")


def test_pacgan_preset_networks_and_optimiser():
    cfg = ToyConfig("pacgan-grid", "ns", "plain", 0)
    assert (cfg.arch, cfg.batch, cfg.lr, cfg.betas, cfg.steps) == (
        "pacgan",
        100,
        1e-4,
        (0.8, 0.999),
        PRESETS["pacgan"][0],
    )
    run = ToyRun(cfg)
    linears = [m for m in run.G.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 400),
        (400, 400),
        (400, 400),
        (400, 400),
        (400, 2),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in run.G.net) == 4 and run.G.z_dim == 2
    maxouts = [m for m in run.D.body if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.linear.out_features, m.pieces) for m in maxouts] == [
        (2, 1000, 5),
        (200, 1000, 5),
        (200, 1000, 5),
    ]
    assert run.opt_G.param_groups[0]["betas"] == (0.8, 0.999) and run.opt_D.param_groups[0]["lr"] == 1e-4
    assert ToyConfig("grid9", "ns", "plain", 0).arch == "lab"
    assert ToyConfig("pacgan-ring", "ns", "plain", 0, arch="lab", batch=32).batch == 32


def test_maxout_is_the_max_over_pieces():
    layer = Maxout(3, 4, 5)
    x = torch.randn(6, 3)
    with torch.no_grad():
        z = layer.linear(x)
        direct = torch.tensor([[float(z[i, j * 5 : (j + 1) * 5].max()) for j in range(4)] for i in range(6)])
        assert torch.equal(layer(x), direct)


def test_packed_d_sees_the_m_points_in_order():
    run = ToyRun(ToyConfig("pacgan-ring", "ns", "pack3", 0, steps=1, batch=4))
    points = np.arange(24, dtype=np.float32).reshape(12, 2)

    class FixedData:  # Stands in for the data set: the first n of the known points.
        def sample(self, n, rng):
            return points[:n]

    run.data = FixedData()
    seen = []
    run.D.body.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    run.d_step()
    real = seen[0]  # D's first call of the step is on the real batch.
    assert real.shape == (4, 6)
    for j in range(4):
        assert torch.equal(real[j], torch.from_numpy(np.concatenate(points[3 * j : 3 * j + 3])))


def test_pack1_is_the_plain_gan_bit_for_bit():
    runs = []
    for variant in ("plain", "pack1"):  # Built and trained one after the other: both draw from the global RNGs.
        runs.append(ToyRun(ToyConfig("pacgan-ring", "ns", variant, 5, steps=4, batch=16)))
        runs[-1].train()
    for a, b in zip(runs[0].G.state_dict().values(), runs[1].G.state_dict().values()):
        assert torch.equal(a, b)
    assert np.array_equal(runs[0].samples(), runs[1].samples())


def test_learning_curve_points_and_pack_option(tmp_path):
    run = ToyRun(ToyConfig("pacgan-ring", "ns", "plain", 0, steps=5, batch=8, curve_every=2))
    run.train()
    assert [p["step"] for p in run.curve] == [2, 4, 5]
    assert run.curve[-1]["hq_pct"] == toy_metrics(run.samples(), run.data)["hq_pct"]
    assert [toy.with_pack(v, 2) for v in ("plain", "fm", "bures")] == ["pack2", "fm+pack2", "bures+pack2"]
    result = CliRunner().invoke(
        toy.main, ["--runs=pacgan-grid:ns:plain:1", "--pack=2", "--steps=2", "--batch=8", f"--outdir={tmp_path}"]
    )
    assert result.exit_code == 0, result.output
    line = json.loads((tmp_path / "results.jsonl").read_text())
    assert line["variant"] == "pack2" and line["pack"] == 2 and line["arch"] == "pacgan" and "kl" in line
    assert np.load(tmp_path / "samples-pacgan-grid-ns-pack2-s1.npy").shape == (2500, 2)


def test_runs_without_matplotlib_say_once_that_figures_are_off(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    lines = []
    configs = toy.build_configs(["grid9"], ["ns"], ["plain"], [0, 1], steps=2, batch=8)
    results = toy.run_grid(configs, str(tmp_path), log=lines.append)
    assert len(results) == 2 and sum("figures are off" in line for line in lines) == 1
    assert not list(tmp_path.glob("*.png")) and (tmp_path / "samples-grid9-ns-plain-s1.npy").exists()


def test_maxout_gradient_reaches_only_the_winning_piece():
    layer = Maxout(3, 4, 5)
    x = torch.randn(6, 3)
    weights = torch.randn(6, 4)
    (layer(x) * weights).sum().backward()
    with torch.no_grad():
        winners = layer.linear(x).view(6, 4, 5).argmax(dim=2)  # [6, 4]
    expected = torch.zeros(20, 3)  # d/dW of sum_ij weights_ij z_i,(j, winner): weights_ij x_i on the winning row.
    for i in range(6):
        for j in range(4):
            expected[j * 5 + winners[i, j]] += weights[i, j] * x[i]
    assert torch.allclose(layer.linear.weight.grad, expected, atol=1e-6)


def test_grid_resumes_from_its_results_and_jobs_do_not_change_numbers(tmp_path, monkeypatch):
    configs = toy.build_configs(["pacgan-ring"], ["ns"], ["plain"], [0, 1], steps=3, batch=8)
    first = toy.run_grid(configs, str(tmp_path / "serial"), log=lambda line: None)
    parallel = toy.run_grid(configs, str(tmp_path / "parallel"), log=lambda line: None, jobs=2)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in first] == [
        {k: v for k, v in r.items() if k not in drop} for r in parallel
    ]
    for cfg in configs:
        name = f"samples-{cfg.name}.npy"
        assert np.array_equal(np.load(tmp_path / "serial" / name), np.load(tmp_path / "parallel" / name))

    def no_training(cfg):
        raise AssertionError(f"{cfg.name} was trained again")

    monkeypatch.setattr(toy, "run_toy", no_training)
    lines = []
    again = toy.run_grid(configs, str(tmp_path / "serial"), log=lines.append)
    assert again == first and sum("read back" in line for line in lines) == 2
    assert len((tmp_path / "serial" / "results.jsonl").read_text().splitlines()) == 2
    longer = toy.build_configs(["pacgan-ring"], ["ns"], ["plain"], [0], steps=4, batch=8)
    with pytest.raises(AssertionError, match="trained again"):  # Another budget is another run.
        toy.run_grid(longer, str(tmp_path / "serial"), log=lambda line: None)


def test_published_comparison_puts_our_cells_above_pacgans_rows():
    base = {"dataset": "pacgan-ring", "objective": "ns", "num_modes": 8, "mmd": 0.1}
    rows = [
        dict(base, variant="plain", seed=0, modes=8, hq_pct=80.0, kl=0.02),
        dict(base, variant="plain", seed=1, modes=7, hq_pct=70.0, kl=0.04),
        dict(base, variant="pack4", seed=0, modes=8, hq_pct=90.0, kl=0.01),
        dict(base, variant="plain", seed=0, objective="hinge", modes=1, hq_pct=1.0, kl=2.0),  # Another objective.
        dict(base, dataset="grid9", variant="plain", seed=0, modes=9, hq_pct=50.0, kl=0.1, num_modes=9),
    ]
    lines = format_published_comparison(rows).splitlines()
    assert lines[0] == "### pacgan-ring: this lab (ns) beside the published numbers"
    assert lines[4:] == [
        "| plain | 2 | 7.5 ± 0.5 | 75.0 ± 5.0 | 0.03 ± 0.01 |",
        "| pack4 | 1 | 8.0 | 90.0 | 0.01 |",
        "| GAN (PacGAN Table 1) | 10 | 6.3 | 98.2 | 0.45 |",
        "| PacGAN4 (PacGAN Table 1) | 10 | 7.8 | 95.9 | 0.07 |",
    ]
    assert format_published_comparison([rows[-1]]) == ""  # No published numbers for the lab's own sets.
    assert set(PUBLISHED) == {"pacgan-ring", "pacgan-grid"}
