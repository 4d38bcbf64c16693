"""Grouping runs by options minus seed, pairing by seed, final/best/equal-time summaries, and labs.compare."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from test_report_runs import make_train_run, metric_line, tick_line

from labs.compare import main as compare_main
from training import report_compare as rc
from training.paired_stats import paired_difference
from training.report_runs import read_runs

AMIX = {"adaptivemix_kwargs": {"noise_std": 0.05, "variant": "release"}}  # The layout saved before loss_kwargs.


def fid_run(folder, seed, fids, options=None, sec=10.0, lock_pid=None):
    """A run with ticks every 1 kimg (`sec` seconds each) and a FID at each kimg in `fids` ({kimg: value})."""
    last = max(fids) if fids else 4
    ticks = [tick_line(t, float(t), sec, sec * (t + 1)) for t in range(int(last) + 1)]
    metrics = {"fid50k_full": [metric_line(k, v) for k, v in fids.items()]} if fids else None
    return make_train_run(folder, seed=seed, ticks=ticks, metrics=metrics, options=options, lock_pid=lock_pid)


@pytest.fixture
def experiment(tmp_path):
    """Plain seeds 0-2; AdaptiveMix seeds 0, 1 and 3 (seed 2 missing), AdaptiveMix seed 1 without metrics and
    seed 3 still going; AdaptiveMix ticks take twice as long."""
    fid_run(tmp_path / "plain-s0", 0, {0: 400.0, 2: 100.0, 4: 90.0, 6: 80.0, 8: 70.0})
    fid_run(tmp_path / "plain-s1", 1, {0: 410.0, 2: 120.0, 4: 100.0, 6: 95.0, 8: 90.0})
    fid_run(tmp_path / "plain-s2", 2, {0: 420.0, 2: 110.0, 4: 60.0, 6: 65.0, 8: 70.0})
    fid_run(tmp_path / "amix-s0", 0, {0: 400.0, 2: 90.0, 4: 60.0, 6: 50.0, 8: 40.0}, AMIX, sec=20.0)
    fid_run(tmp_path / "amix-s1", 1, {}, AMIX, sec=20.0)
    fid_run(tmp_path / "amix-s3", 3, {0: 400.0, 2: 95.0}, AMIX, sec=20.0, lock_pid=os.getpid())
    return read_runs([str(tmp_path)])


def test_groups_by_options_minus_seed(experiment):
    groups = rc.group_runs(experiment)
    assert [(g.label, g.seeds) for g in groups] == [("A", [0, 1, 3]), ("B", [0, 1, 2])]  # Folder order.
    keys = rc.differing_options(groups)
    assert keys == [f"loss_kwargs.{k}" for k in ("adaptivemix", "adaptivemix_form", "adaptivemix_weight", "noise_std")]
    assert rc.describe_group(groups[1], keys) == "B: plain-s0"  # No option of A's: named by its first run.


def test_summaries_final_best_equal_time(experiment):
    plain_s0 = next(r for r in experiment if r.name == "plain-s0")
    # Common time T: the shortest run's last evaluation, amix-s3 at kimg 2 = 3 ticks x 20 s = 60 s.
    time_h = rc.common_time(experiment, "fid50k_full")
    assert time_h * 3600 == pytest.approx(60.0)
    s = rc.summarize_run(plain_s0, "fid50k_full", time_h)
    assert s.final == pytest.approx((90 + 80 + 70) / 3) and s.best == 70.0 and s.best_at == 8.0
    # Plain at 60 s: evaluations at 30 s (kimg 2) and 50 s (kimg 4); the untrained start's (kimg 0) is left out.
    assert s.equal_time == pytest.approx((100 + 90) / 2) and s.evaluations == 5
    assert rc.summarize_run(next(r for r in experiment if r.name == "amix-s1"), "fid50k_full", time_h) is None
    assert rc.lower_is_better("fid50k_full") and not rc.lower_is_better("pr50k3_full_recall")
    # A run with only its start evaluated keeps it.
    start_only = next(r for r in experiment if r.name == "amix-s3")
    start_only.metrics["fid50k_full"] = type(start_only.metrics["fid50k_full"])(
        np.array([0.0]), np.array([0.01]), np.array([400.0])
    )
    assert rc.summarize_run(start_only, "fid50k_full", time_h).final == 400.0


def test_pairs_by_seed_with_missing_seed_and_metric(experiment):
    amix, plain = rc.group_runs(experiment)
    time_h = rc.common_time(experiment, "fid50k_full")
    pair = rc.compare_pair(plain, amix, "fid50k_full", time_h)
    assert pair.seeds == [0]  # Seed 1 of AdaptiveMix has no FID, seed 2 only plain, seed 3 only AdaptiveMix.
    assert sorted(pair.unpaired) == ["seed 1 in A has no fid50k_full", "seed 2 only in B", "seed 3 only in A"]
    assert pair.differences["final"] == pytest.approx([(60 + 50 + 40) / 3 - 80.0])
    assert pair.differences["best"] == pytest.approx([40.0 - 70.0])
    # At 60 s AdaptiveMix seed 0 has its kimg-2 evaluation (60 s), plain seed 0 those at kimg 2 and 4 (30, 50 s).
    assert pair.differences["equal_time"] == pytest.approx([90.0 - (100 + 90) / 2])
    assert pair.stats["final"].n == 1


def test_pair_statistics_are_paired_difference(tmp_path):
    for seed, (p, a) in enumerate([(100.0, 80.0), (90.0, 85.0), (120.0, 90.0)]):
        fid_run(tmp_path / f"p{seed}", seed, {2: p, 4: p})
        fid_run(tmp_path / f"a{seed}", seed, {2: a, 4: a}, AMIX)
    runs = read_runs([str(tmp_path)])
    first, second = rc.group_runs(runs)
    pair = rc.compare_pair(first, second, "fid50k_full", rc.common_time(runs, "fid50k_full"))
    assert pair.seeds == [0, 1, 2]
    assert pair.differences["final"] == pytest.approx([20.0, 5.0, 30.0])
    assert pair.stats["final"] == paired_difference([100.0, 90.0, 120.0], [80.0, 85.0, 90.0])


def test_many_groups_compare_pairs_that_differ_in_one_option(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    lines = [
        {
            "run": f"{d}-{o}-{v}-s0",
            "dataset": d,
            "objective": o,
            "variant": v,
            "seed": 0,
            "steps": 10,
            "modes": 1.0,
            "seconds": 1.0,
        }
        for d in ("grid9", "ring8")
        for o in ("std", "wgan")
        for v in ("plain", "adaptivemix", "bures")
    ]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    groups = rc.group_runs(read_runs([str(folder)]))
    pairs = rc.group_pairs(groups)
    assert len(groups) == 12 and len(pairs) == 12 * (1 + 1 + 2) // 2  # Neighbours: dataset, objective, 2 variants.
    # Groups without the metric take no part: the 4 'bures' groups lose their 'modes', and the 8 left are few
    # enough for all 28 pairs.
    for group in groups:
        if group.options["variant"] == "bures":
            for run in group.runs:
                del run.metrics["modes"]
    assert len(rc.group_pairs(groups, "modes")) == 28 and len(rc.group_pairs(groups, "mmd")) == 0


def test_labs_compare_prints_groups_and_pairs(experiment, tmp_path):
    result = CliRunner().invoke(compare_main, [str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "A: adaptivemix=True, adaptivemix_form=release, adaptivemix_weight=1.0,..." in out and "B: plain-s0" in out
    assert "== fid50k_full (lower is better" in out and "T = 0.01667 h" in out
    # Group B's final FID: seeds 0-2 end with 80, 95 and 65 (means of their last three): 80 ± 15.
    assert np.std([80.0, 95.0, 65.0], ddof=1) == 15.0 and "80 ± 15 (n=3)" in out
    assert "B - A (fid50k_full, lower is better), seeds [0]:" in out
    assert "seed 3 only in A" in out and "running" in out
    bad = CliRunner().invoke(compare_main, [str(tmp_path / "nothing")])
    assert bad.exit_code != 0 and "no run here" in bad.output


def test_step_costs_turn_equal_time_into_equal_compute(experiment):
    """With AdaptiveMix costing 2x per kimg, the clock is kimg x cost: amix-s3's last evaluation (kimg 2) sets
    T = 4 plain-kimg, so plain runs are compared up to kimg 4 and AdaptiveMix runs up to kimg 2."""
    costs = [rc.parse_step_cost("adaptivemix=True:2")]
    assert costs == [("adaptivemix", "True", 2.0)]
    runs = rc.with_step_costs(experiment, costs)
    by_name = {r.name: r for r in runs}
    assert [rc.run_step_cost(r, costs) for r in (by_name["plain-s0"], by_name["amix-s0"])] == [1.0, 2.0]
    np.testing.assert_array_equal(by_name["amix-s0"].metrics["fid50k_full"].hours, [0, 4, 8, 12, 16])
    time = rc.common_time(runs, "fid50k_full")
    assert time == 4.0
    # Plain seed 0 up to kimg 4: 100 and 90 (the start left out); AdaptiveMix seed 0 up to kimg 2: 90.
    assert rc.summarize_run(by_name["plain-s0"], "fid50k_full", time).equal_time == pytest.approx(95.0)
    assert rc.summarize_run(by_name["amix-s0"], "fid50k_full", time).equal_time == pytest.approx(90.0)
    # The originals keep their wall-clock hours.
    assert next(r for r in experiment if r.name == "amix-s0").metrics["fid50k_full"].hours[1] * 3600 == 60.0


@pytest.mark.parametrize("spec", ["adaptivemix:2", "adaptivemix=True", "adaptivemix=True:0", "adaptivemix=True:x"])
def test_bad_step_cost_is_one_line(spec, experiment, tmp_path):
    with pytest.raises(ValueError, match="OPTION=VALUE:FACTOR"):
        rc.parse_step_cost(spec)
    result = CliRunner().invoke(compare_main, [str(tmp_path), f"--step-cost={spec}"])
    assert result.exit_code == 2 and "OPTION=VALUE:FACTOR" in result.output


def test_labs_compare_with_step_cost(experiment, tmp_path):
    result = CliRunner().invoke(compare_main, [str(tmp_path), "--step-cost=adaptivemix=True:2"])
    assert result.exit_code == 0, result.output
    assert "equal time = at T = 4 kimg at cost 1 (--step-cost)" in result.output


def test_group_description_names_each_setting_once():
    options = {"D_kwargs.channel_base": 512, "G_kwargs.synthesis_kwargs.channel_base": 512, "G_opt_kwargs.lr": 0.005}
    group = rc.Group("A", options, [])
    assert rc.describe_group(group, sorted(options)) == "A: channel_base=512, lr=0.005"
