"""Reading run folders for the reports: hand-made train.py runs (resumed, still going, without metrics, old) and
the labs' results.jsonl folders, each point at its own kimg and training time."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from training.report_runs import read_lab_folder, read_runs, read_train_run
from training.resume.rng import capture_rng_state

BASE_OPTIONS = {
    "random_seed": 0,
    "total_kimg": 4,
    "run_dir": "/somewhere",
    "metrics": [],
    "image_snapshot_ticks": 2,
    "augment_kwargs": {"class_name": "training.augment.AugmentPipe", "xflip": 1},
    "loss_kwargs": {"class_name": "training.loss.StyleGAN2Loss", "r1_gamma": 0.01},
    "adaptivemix_kwargs": None,
}


def tick_line(tick: int, kimg: float, sec: float, total_sec: float, g_loss: float = 1.0) -> dict:
    stat = lambda v: {"num": 1.0, "mean": v, "std": 0.0}  # noqa: E731
    return {
        "Progress/tick": stat(tick),
        "Progress/kimg": stat(kimg),
        "Timing/sec_per_tick": stat(sec),
        "Timing/total_sec": stat(total_sec),
        "Timing/sec_per_kimg": stat(sec / 0.5),
        "Progress/augment": stat(0.1 * tick),
        "Loss/G/loss": {"num": 8.0, "mean": g_loss, "std": 0.1},
        "Loss/D/loss": {"num": 8.0, "mean": 1.3, "std": 0.1},
        "timestamp": 1e9 + total_sec,
    }


def metric_line(kimg: int, value: float, metric: str = "fid50k_full") -> dict:
    return {
        "results": {metric: value},
        "metric": metric,
        "snapshot_pkl": f"network-snapshot-{kimg:06d}.pkl",
        "timestamp": 2e9,
    }


def make_train_run(folder, seed=0, ticks=None, metrics=None, options=None, partial_line=False, lock_pid=None):
    """A train.py run folder: training_options.json, stats.jsonl (`ticks`: tick_line dicts), metric lines."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "training_options.json"), "w") as f:
        json.dump({**BASE_OPTIONS, **(options or {}), "random_seed": seed}, f)
    if ticks is None:
        ticks = [tick_line(t, 0.5 * t, 10.0, 20.0 + 10 * t) for t in range(9)]
    with open(os.path.join(folder, "stats.jsonl"), "w") as f:
        f.write("".join(json.dumps(t) + "\n" for t in ticks))
        if partial_line:
            f.write(json.dumps(tick_line(99, 99.0, 1.0, 1.0))[:40])  # A line being written right now.
    for metric, lines in (metrics or {}).items():
        with open(os.path.join(folder, f"metric-{metric}.jsonl"), "w") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines))
    if lock_pid is not None:
        with open(os.path.join(folder, ".run.lock"), "w") as f:
            f.write(f"{lock_pid}\n")
    return str(folder)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resumed_run_places_each_point_at_its_kimg(tmp_path):
    # Ticks of 0.512 kimg. The first process wrote ticks 0-5 and was killed after tick 5 (its last state was at
    # tick 3, so it left ticks 4-5 that the resumed run writes again). The resumed process restarts
    # Timing/total_sec from zero and writes ticks 4-8.
    first = [tick_line(t, 0.016 + 0.512 * t, 10.0, 20.0 + 10 * t, g_loss=1.0) for t in range(6)]
    resumed = [tick_line(t, 0.016 + 0.512 * t, 12.0, 5.0 + 12 * (t - 3), g_loss=2.0) for t in range(4, 9)]
    metrics = {"fid50k_full": [metric_line(0, 500.0), metric_line(2, 300.0), metric_line(4, 200.0)]}
    run = read_train_run(make_train_run(tmp_path / "run", ticks=first + resumed, metrics=metrics))
    kimg = run.stats["Progress/kimg"]
    np.testing.assert_allclose(kimg.x, 0.016 + 0.512 * np.arange(9))
    # Ticks 4 and 5 are the resumed process's (G loss 2), once each; training time is the sum of tick durations.
    np.testing.assert_allclose(run.stats["Loss/G/loss"].y, [1.0] * 4 + [2.0] * 5)
    np.testing.assert_allclose(kimg.hours * 3600, np.cumsum([10.0] * 4 + [12.0] * 5))
    # Each metric sits at the first tick at or past its snapshot's whole kimg (snapshot 2 -> tick 4 at 2.064).
    fid = run.metrics["fid50k_full"]
    np.testing.assert_allclose(fid.x, [0.016, 2.064, 4.112])
    np.testing.assert_allclose(fid.hours * 3600, [10.0, 40.0 + 12.0, 40.0 + 60.0])
    np.testing.assert_allclose(fid.y, [500.0, 300.0, 200.0])
    assert run.seed == 0 and run.kind == "train" and run.unit == "kimg"
    assert run.status == "finished"  # Reached total_kimg = 4.


def test_run_still_going_and_without_metrics(tmp_path):
    ticks = [tick_line(t, 0.5 * t, 10.0, 10.0 * t) for t in range(3)]
    folder = make_train_run(tmp_path / "going", ticks=ticks, partial_line=True, lock_pid=os.getpid())
    run = read_train_run(folder)
    assert run.status == "running" and run.metrics == {} and run.notes == []
    np.testing.assert_allclose(run.stats["Progress/kimg"].x, [0.0, 0.5, 1.0])  # The cut line is left out.
    stopped = read_train_run(make_train_run(tmp_path / "stopped", ticks=ticks, lock_pid=dead_pid()))
    assert stopped.status == "stopped"


def test_metric_computed_later_and_twice_keeps_the_last(tmp_path):
    # calc_metrics.py on snapshot 2 twice, long after training: the later line wins, the point sits at kimg 2.
    metrics = {"kid50k_full": [metric_line(2, 0.5, "kid50k_full"), metric_line(2, 0.4, "kid50k_full")]}
    run = read_train_run(make_train_run(tmp_path / "run", metrics=metrics))
    np.testing.assert_allclose(run.metrics["kid50k_full"].x, [2.0])
    np.testing.assert_allclose(run.metrics["kid50k_full"].y, [0.4])
    np.testing.assert_allclose(run.metrics["kid50k_full"].hours * 3600, [50.0])  # Ticks 0-4, 10 s each.


def test_old_run_without_options_and_bad_lines(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    with open(folder / "stats.jsonl", "w") as f:
        f.write(
            json.dumps(tick_line(0, 0.0, 5.0, 5.0)) + "\nnot json\n" + json.dumps(tick_line(1, 4.0, 5.0, 10.0)) + "\n"
        )
    with open(folder / "metric-fid50k_full.jsonl", "w") as f:
        f.write(json.dumps({"results": {"fid50k_full": 9.0}, "snapshot_pkl": None}) + "\n")
    run = read_train_run(str(folder))
    assert run.options == {} and run.seed is None and run.status == "unknown"
    assert len(run.stats["Progress/kimg"].x) == 2 and run.metrics == {}
    assert any("no training_options.json" in n for n in run.notes)
    assert any("line 2 is not JSON" in n for n in run.notes)
    assert any("network-snapshot" in n for n in run.notes)


def test_options_drop_seed_and_bookkeeping(tmp_path):
    run = read_train_run(make_train_run(tmp_path / "run", seed=7, options={"total_kimg": 100}))
    assert run.seed == 7
    assert "random_seed" not in run.options and "total_kimg" not in run.options and "run_dir" not in run.options
    assert run.options["loss_kwargs.r1_gamma"] == 0.01 and "adaptivemix_kwargs" not in run.options


def save_lab_snapshot(folder, config):
    torch.save({"config": config, "rng": capture_rng_state()}, os.path.join(folder, "snapshot.pt"))


def test_lab_folders(tmp_path):
    dcgan = tmp_path / "dcgan"
    dcgan.mkdir()
    lines = [{"kimg": k, "fid": 100.0 / k, "kid": 0.1 / k, "seconds": 60.0 * k} for k in (1, 2, 3)]
    (dcgan / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    save_lab_snapshot(dcgan, {"objective": "ns", "seed": 3, "kimg": 3.0, "eval_every": 1.0, "lr": 2e-4})
    (run,) = read_lab_folder(str(dcgan))
    assert (run.kind, run.unit, run.seed, run.status) == ("dcgan", "kimg", 3, "finished")
    assert run.options == {"objective": "ns", "lr": 2e-4, "pack": 1, "stack": 1}  # Options added since: filled.
    np.testing.assert_allclose(run.metrics["fid"].hours, [1 / 60, 2 / 60, 3 / 60])
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    lines = [{"epoch": e, "test_error": 50.0 - e, "seconds": 10.0 * e, "loss_sup": 0.5} for e in (1, 2)]
    (ssl / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run,) = read_lab_folder(str(ssl))  # No snapshot: options unknown, noted.
    assert run.kind == "ssl" and set(run.metrics) == {"test_error"} and set(run.stats) == {"loss_sup"}
    assert run.status == "unknown" and any("no snapshot.pt" in n for n in run.notes)
    (ssl / "snapshot.pt").write_bytes(b"<html>not a snapshot</html>")  # Damaged: compared without options.
    (run,) = read_lab_folder(str(ssl))
    assert run.options == {} and any("could not read its config" in n for n in run.notes)
    toy = tmp_path / "toy"
    toy.mkdir()
    lines = [
        {
            "run": f"grid9-std-{v}-s{s}",
            "dataset": "grid9",
            "objective": "std",
            "variant": v,
            "seed": s,
            "steps": 400,
            "modes": 5 + s,
            "num_modes": 9,
            "hq_pct": 50.0,
            "mmd": 0.01,
            "seconds": 3.0,
        }
        for v in ("plain", "adaptivemix")
        for s in (0, 1)
    ]
    (toy / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    runs = read_lab_folder(str(toy))
    assert [r.seed for r in runs] == [0, 1, 0, 1] and {r.options["variant"] for r in runs} == {"plain", "adaptivemix"}
    assert "num_modes" not in runs[0].options and runs[1].metrics["modes"].y.tolist() == [6.0]


def test_read_runs_finds_nested_folders_and_names_a_bad_path(tmp_path):
    make_train_run(tmp_path / "outdir" / "00000-a")
    make_train_run(tmp_path / "outdir" / "00001-b", seed=1)
    runs = read_runs([str(tmp_path / "outdir")])
    assert [r.name for r in runs] == ["outdir/00000-a", "outdir/00001-b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run here"):
        read_runs([str(tmp_path / "empty")])
