"""train.py around a run directory: resume overrides and refusals, validation before creating anything, the
lock, class names in training_options.json, stats.jsonl truncation by tick, a full disk, and clean stops."""

import json
import os
import shutil
import signal
import zipfile

import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip
from test_training_loop import tiny_loop_kwargs

import train
from dnnlib import atomic, util
from training import run_control
from training import training_loop as training_loop_module
from training.resume import state as resume_state
from training.resume.state import TrainingState
from training.training_loop import training_loop

TINY = ["--cfg=tiny", "--batch=4", "--kimg=0.004", "--tick=0.004", "--device=cpu", "--aug=noaug"]


def run_train(*args):
    return CliRunner().invoke(train.main, list(args))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of one tick (4 images) with a snapshot and a training state: (outdir, run_dir, data zip).

    Made as train.py makes it (training_options.json, then the loop) but with the small networks of
    test_training_loop, so that it takes seconds.
    """
    root = tmp_path_factory.mktemp("run")
    data = make_image_zip(root / "tiny16.zip")
    run_dir = root / "runs" / "00000-tiny16"
    run_dir.mkdir(parents=True)
    args = tiny_loop_kwargs(data, run_dir, total_kimg=0.004, kimg_per_tick=0.004)
    args["training_set_kwargs"]["max_size"] = 32
    args.update(num_gpus=1, metrics=[], metric_kwargs={})
    (run_dir / "training_options.json").write_text(json.dumps({k: v for k, v in args.items() if k != "device"}))
    with pytest.MonkeyPatch.context() as patch:  # The 32x32 image grids are the slow part, and not needed here.
        patch.setattr(training_loop_module, "export_fakes", lambda *args: None)
        patch.setattr(training_loop_module, "save_image_grid", lambda *args, **kwargs: None)
        training_loop(**args)
    return root / "runs", run_dir, data


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A private copy of the finished run (tests may change it), and its data zip."""
    outdir, run_dir, data = finished_run
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy, data


def test_resume_obeys_options_that_leave_the_math_alone(run_copy, tmp_path, monkeypatch):
    run_dir, data = run_copy
    moved = tmp_path / "moved.zip"
    shutil.copy(data, moved)  # The same dataset elsewhere (the run's own path is gone in a real move).
    calls = {}
    monkeypatch.setattr(train.distributed, "launch", lambda fn, args, n, device: calls.setdefault("args", args))
    result = run_train(
        f"--outdir={tmp_path}",
        f"--resume={run_dir}",
        "--kimg=0.008",
        "--metrics=none",
        f"--data={moved}",
        "--snap=3",
        "--workers=2",
    )
    assert result.exit_code == 0, result.output
    args = calls["args"]
    assert args.metrics == [] and args.total_kimg == 0.008 and args.training_set_kwargs.path == str(moved)
    assert args.network_snapshot_ticks == args.image_snapshot_ticks == 3 and args.data_loader_kwargs.num_workers == 2
    saved = json.loads((run_dir / "training_options.json").read_text())
    assert saved["total_kimg"] == 0.004  # The saved options are not rewritten.


# One changed value per option that shapes the training math (the run: tiny_loop_kwargs, no augmentation).
CHANGED = [
    "--gpus=2",
    "--seed=3",
    "--cond=0",
    "--subset=16",
    "--mirror=1",
    "--cfg=paper256",
    "--gamma=5",
    "--batch=8",
    "--aug=ada",
    "--p=0.5",
    "--target=0.5",
    "--augpipe=bg",
    "--apa=1",
    "--apa-target=0.5",
    "--with-dataaug=1",
    "--adaptivemix=1",
    "--noise-std=0.1",
    "--adaptivemix-form=paper",
    "--adaptivemix-weight=2",
    "--fm-weight=1",
    "--label-smoothing=0.9",
    "--bures-weight=1",
    "--bures-alt=1",
    "--hist-avg-weight=1",
    "--mbdisc=1",
    "--freezed=1",
    "--fp32=0",
    "--nhwc=1",
    "--nobench=1",
    "--allow-tf32=1",
    "--deterministic=0",
]


@pytest.mark.parametrize("option", CHANGED)
def test_resume_refuses_options_that_change_the_math(run_copy, tmp_path, option):
    run_dir, _data = run_copy
    before = sorted(os.listdir(run_dir))
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", option)
    assert result.exit_code == 2 and "cannot change when resuming exactly" in result.output, result.output
    flag, value = option.split("=")
    error = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and error[0].startswith(f"Error: {flag} cannot change"), result.output
    assert f"the command line gives {value}" in error[0] and "this run has " in error[0]
    assert "Traceback" not in result.output and sorted(os.listdir(run_dir)) == before


def test_resume_refuses_an_absurd_duration(run_copy, tmp_path):
    run_dir, _data = run_copy
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=1e30")
    assert result.exit_code == 2 and "--kimg=1e+30 is too large" in result.output, result.output


def test_resume_refuses_a_different_dataset(run_copy, tmp_path):
    run_dir, _data = run_copy
    other = make_image_zip(tmp_path / "gray.zip", channels=1)
    fewer = make_image_zip(tmp_path / "fewer.zip", num_images=8)
    for path, message in [(other, "1 channel(s) instead of 3"), (fewer, "8 images instead of 32")]:
        result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", f"--data={path}")
        assert result.exit_code == 2 and "is not the dataset this run trained on" in result.output, result.output
        assert message in result.output


def test_resume_with_a_hostile_class_name_runs_nothing(run_copy, tmp_path):
    run_dir, _data = run_copy
    marker = tmp_path / "pwned"
    options = json.loads((run_dir / "training_options.json").read_text())
    options["augment_kwargs"] = dict(class_name="os.system", command=f"touch {marker}")
    (run_dir / "training_options.json").write_text(json.dumps(options))
    before = sorted(os.listdir(run_dir))
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}")
    assert result.exit_code == 2 and 'refusing "os.system"' in result.output
    assert "training_options.json" in result.output
    assert not marker.exists() and sorted(os.listdir(run_dir)) == before


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["start", "dry-run"])
def test_second_run_on_a_locked_directory_names_the_holder(run_copy, tmp_path, dry_run):
    run_dir, _data = run_copy
    with run_control.RunLock(str(run_dir)):
        lock_file = (run_dir / run_control.LOCK_NAME).read_bytes()
        result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008", *dry_run)
        assert (run_dir / run_control.LOCK_NAME).read_bytes() == lock_file  # The holder's pid stays.
    assert result.exit_code in (1, 2) and f"is in use by process {os.getpid()}" in result.output, result.output
    assert "Dry run; exiting." not in result.output
    assert (
        resume_state.load_training_state(resume_state.latest_state_in_run(str(run_dir)))["cur_nimg"] == 4
    )  # Untouched.


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["start", "dry-run"])
@pytest.mark.parametrize("content", [b"", b"<html><body>404 Not Found</body></html>", b"just some text\n", "truncated"])
def test_bad_transfer_pickle_is_refused_before_the_run_dir_exists(finished_run, tmp_path, content, dry_run):
    _outdir, run_dir, data = finished_run
    bad = tmp_path / "bad.pkl"
    good = (run_dir / "network-snapshot-000000.pkl").read_bytes()
    bad.write_bytes(good[: len(good) // 2] if content == "truncated" else content)
    result = run_train(f"--outdir={tmp_path / 'runs'}", f"--data={data}", f"--resume={bad}", *TINY, *dry_run)
    assert result.exit_code == 2 and "not a usable network pickle" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_corrupt_state_file_is_one_line(run_copy, tmp_path):
    run_dir, _data = run_copy
    state = run_dir / "training-state-000000.pt"
    state.write_bytes(state.read_bytes()[:1000])
    result = run_train(f"--outdir={tmp_path}", f"--resume={state}")
    assert result.exit_code == 2 and "Cannot read training state" in result.output and "Traceback" not in result.output


def test_state_file_holds_the_documented_schema(finished_run):
    _outdir, run_dir, _data = finished_run
    state = resume_state.load_training_state(resume_state.latest_state_in_run(str(run_dir)))
    assert set(state) == TrainingState.__required_keys__ | TrainingState.__optional_keys__
    assert state["format_version"] == resume_state.STATE_FORMAT_VERSION
    assert len(state["rng"]) == len(state["ada"]) == len(state["apa"]) == 1  # One entry per rank.
    counters = (state["cur_nimg"], state["cur_tick"], state["batch_idx"])
    assert counters == (4, 1, 1)  # cur_tick: the tick that comes next.


def test_state_without_technique_entry_resumes(run_copy, tmp_path):
    """A version-1 state written before the loss kept technique state (no "loss" entry) still resumes."""
    run_dir, _data = run_copy
    path = run_dir / "training-state-000000.pt"
    state = resume_state.load_training_state(str(path))
    del state["loss"]
    torch.save(state, path)
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")
    assert result.exit_code == 0, result.output
    assert resume_state.load_training_state(str(path))["cur_nimg"] == 8


@pytest.mark.parametrize("option", ["--gamma=nan", "--kimg=inf", "--tick=nan", "--p=nan"])
def test_non_finite_options_are_refused(tiny_zip, tmp_path, option):
    result = run_train(f"--outdir={tmp_path}", f"--data={tiny_zip}", "--device=cpu", "--dry-run", option)
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output


def test_missing_detector_is_refused_at_start(tiny_zip, tmp_path, monkeypatch):
    monkeypatch.setenv(util.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("GAN_DETECTOR_DIR", raising=False)

    def offline(url, num_attempts, verbose):
        raise util.DownloadError("network unreachable")

    monkeypatch.setattr(util, "_download", offline)
    result = run_train(f"--outdir={tmp_path / 'runs'}", f"--data={tiny_zip}", *TINY, "--metrics=fid50k_full")
    assert result.exit_code == 2 and 'Detector "inception-2015-12-05.pt" is not available' in result.output
    assert not (tmp_path / "runs").exists()


def test_unused_broken_dataset_json_does_not_block_unconditional_training(tmp_path):
    source = make_image_zip(tmp_path / "source.zip")
    data = tmp_path / "d.zip"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(data, "w") as archive:
        for name in original.namelist():
            archive.writestr(name, original.read(name) if name != "dataset.json" else b"{not json")
    ok = run_train(f"--outdir={tmp_path}", f"--data={data}", "--device=cpu", "--dry-run")
    assert ok.exit_code == 0, ok.output
    cond = run_train(f"--outdir={tmp_path}", f"--data={data}", "--device=cpu", "--dry-run", "--cond=1")
    assert cond.exit_code == 2 and "Cannot read" in cond.output and "dataset.json" in cond.output


def test_stats_truncation_compares_ticks_not_float_kimg(tmp_path):
    path = tmp_path / "stats.jsonl"
    lines = [
        json.dumps({"Progress/tick": {"mean": float(t)}, "Progress/kimg": {"mean": kimg}}) + "\n"
        for t, kimg in enumerate([0.104, 0.20800000429, 0.312])
    ]  # float32-logged kimg of 208 images.
    path.write_text("".join(lines) + '{"Progress/tick": {"mean": 3')  # And a line cut short by a kill.
    resume_state.truncate_stats_log(str(path), next_tick=2)  # The state written at tick 1 (208 images).
    assert path.read_text() == "".join(lines[:2])


def test_full_disk_at_a_snapshot_is_one_line_and_keeps_the_last_state(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy
    original = resume_state.torch.save

    def save_until_full(obj, path, *args, **kwargs):
        if not isinstance(path, str):  # Pickling a tensor storage calls torch.save on a buffer: let it be.
            return original(obj, path, *args, **kwargs)
        with open(path, "wb") as f:  # The training-state file: part of it, then torch's full-disk error.
            f.write(b"partial" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 320 vs 294")

    monkeypatch.setattr(resume_state.torch, "save", save_until_full)
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")
    monkeypatch.setattr(resume_state.torch, "save", original)
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "no space left on device" in error and "kept training-state-000000.pt" in error, error
    assert not [p for p in os.listdir(run_dir) if atomic.is_temp_name(p)]
    assert resume_state.load_training_state(str(run_dir / "training-state-000000.pt"))["cur_nimg"] == 4  # The old one.
    log = (run_dir / "log.txt").read_text().strip().splitlines()
    assert "no space left on device" in log[-1]  # log.txt ends with the reason the run died.
    # Another temp file left by a kill does not stop the next resume, which cleans up before writing.
    open(atomic.temp_path_for(run_dir / "network-snapshot-000000.pkl"), "wb").close()
    again = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")
    assert again.exit_code == 0, again.output
    assert resume_state.load_training_state(str(run_dir / "training-state-000000.pt"))["cur_nimg"] == 8
    assert not [p for p in os.listdir(run_dir) if atomic.is_temp_name(p)]


def test_stop_request_writes_a_final_snapshot_and_says_what_resumes(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy
    original = training_loop_module.fetch_phase_inputs
    calls = []

    def signal_on_second_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # Handled by StopSignals: stop after this iteration.
        return original(*args, **kwargs)

    monkeypatch.setattr(training_loop_module, "fetch_phase_inputs", signal_on_second_iteration)
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.1", "--tick=0.1")
    assert result.exit_code == 0, result.output
    assert "SIGTERM received" in result.output and len(calls) == 2
    final = resume_state.load_training_state(resume_state.latest_state_in_run(str(run_dir)))
    assert final["cur_nimg"] == 12  # 4 before, 2 iterations of 4 images after: written at the stop.
    log = (run_dir / "log.txt").read_text().strip().splitlines()
    assert log[-1].startswith("Stopped at 0.012 kimg on request; kept training-state-000000.pt")
    assert not [p for p in os.listdir(run_dir) if atomic.is_temp_name(p)]


def test_second_signal_stops_at_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with run_control.StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested() and stop.reason == "SIGINT"
        with pytest.raises(KeyboardInterrupt, match="second SIGTERM: stopping at once"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_lock_is_released_with_its_holder(tmp_path):
    with run_control.RunLock(str(tmp_path)):
        with pytest.raises(run_control.RunDirBusyError, match=f"in use by process {os.getpid()}"):
            run_control.RunLock(str(tmp_path)).acquire()
    with run_control.RunLock(str(tmp_path)):  # Free again once released (or once the holder died).
        pass


def test_log_ends_with_the_traceback_of_an_unexpected_error(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy

    def broken(*args, **kwargs):
        raise ValueError("boom in the data pipeline")

    monkeypatch.setattr(training_loop_module, "fetch_phase_inputs", broken)
    result = run_train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")
    assert isinstance(result.exception, ValueError)
    log = (run_dir / "log.txt").read_text().strip().splitlines()
    assert log[-1] == "ValueError: boom in the data pipeline" and "Traceback (most recent call last):" in log
