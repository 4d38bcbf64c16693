"""Faults: a full disk (injected ENOSPC) at a network snapshot and at an image grid, a read-only --outdir, a hostile
training state, SIGTERM during generate.py and calc_metrics.py. Each ends in one line, leaves nothing half-written,
and a run resumes once space is back."""

import errno
import os
import signal
import subprocess
import sys
import time

import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from test_generate import save_tiny_network
from test_train_resume import finished_run, run_copy  # noqa: F401 - fixtures used below.

import train
from dnnlib import atomic
from tests.conftest import REPO_ROOT
from training import checkpoint, run_control
from training.resume import state as resume_state

REPO = REPO_ROOT


def _train(*args):
    return CliRunner().invoke(train.main, list(args))


def _one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def _no_temp_files(folder) -> bool:
    return not [name for name in os.listdir(folder) if atomic.is_temp_name(name)]


def _full_disk(monkeypatch, target, name):
    """Make `target.name` write part of its file, then fail as a full disk does."""

    def write_then_fail(obj, file, *args, **kwargs):
        file = file if hasattr(file, "write") else open(file, "wb")  # noqa: SIM115 - closed by the failure.
        file.write(b"partial" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target, name, write_then_fail)


@pytest.mark.parametrize("where", ["network snapshot", "image grid"])
@pytest.mark.slow
def test_full_disk_is_one_line_and_the_run_resumes_when_space_is_back(run_copy, tmp_path, monkeypatch, where):
    run_dir, _data = run_copy
    with monkeypatch.context() as patch:
        if where == "network snapshot":
            _full_disk(patch, checkpoint.pickle, "dump")
        else:
            _full_disk(patch, PIL.Image.Image, "save")
        result = _train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008", "--snap=1")
    assert result.exit_code == 1, result.output
    error = _one_error(result)
    assert "no space left on device" in error and "kept training-state-000000.pt" in error, error
    assert ("network-snapshot" if where == "network snapshot" else "fakes") in error
    assert _no_temp_files(run_dir)
    assert resume_state.load_training_state(str(run_dir / "training-state-000000.pt"))["cur_nimg"] == 4  # The old one.
    again = _train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")  # Space is back.
    assert again.exit_code == 0, again.output
    assert resume_state.load_training_state(str(run_dir / "training-state-000000.pt"))["cur_nimg"] == 8
    with open(run_dir / "network-snapshot-000000.pkl", "rb") as f:
        assert checkpoint.load_network_pkl(f)["G_ema"] is not None
    assert _no_temp_files(run_dir)


def test_read_only_outdir_is_one_line_before_anything_is_written(tiny_zip, tmp_path, monkeypatch):
    outdir = tmp_path / "readonly"
    outdir.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(outdir) else real_access(path, mode))
    for dry_run in ([], ["--dry-run"]):
        result = _train(f"--outdir={outdir}", f"--data={tiny_zip}", "--cfg=tiny", "--device=cpu", *dry_run)
        assert result.exit_code == 2 and f"cannot write in {outdir}" in _one_error(result)
    assert os.listdir(outdir) == []


def test_read_only_file_system_found_late_is_still_one_line(tiny_zip, tmp_path, monkeypatch):
    """A folder that looks writable but is not (a read-only mount seen by a root process): the real writes fail."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(train.os, "makedirs", read_only)
    result = _train(f"--outdir={tmp_path / 'runs'}", f"--data={tiny_zip}", "--cfg=tiny", "--device=cpu")
    assert result.exit_code == 1 and "Read-only file system" in _one_error(result)


def test_read_only_run_directory_on_resume_is_one_line(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy
    real_open = os.open

    def read_only_lock(path, flags, *args):
        if str(path).endswith(run_control.LOCK_NAME) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(run_control.os, "open", read_only_lock)
    before = sorted(os.listdir(run_dir))
    result = _train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--kimg=0.008")
    assert result.exit_code == 1 and "Read-only file system" in _one_error(result)
    assert sorted(os.listdir(run_dir)) == before


class _Hostile:
    def __reduce__(self):
        return (os.system, ("touch HOSTILE_STATE_RAN",))


def test_hostile_training_state_is_one_line_that_does_not_advise_loading_it(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy
    monkeypatch.chdir(tmp_path)
    state = run_dir / "training-state-000000.pt"
    torch.save(dict(format_version=1, G=_Hostile()), state)
    result = _train(f"--outdir={tmp_path}", f"--resume={state}")
    error = _one_error(result)
    assert result.exit_code == 2 and "Cannot read training state" in error and "posix.system" in error, error
    assert "weights_only" not in error and not (tmp_path / "HOSTILE_STATE_RAN").exists()


def _sigterm_when(command, ready, cwd, **env):
    """Start `command`, SIGTERM it once `ready()` holds; (return code, output)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    try:
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, output


@pytest.mark.slow
def test_sigterm_during_generate_is_one_line_and_leaves_only_whole_images(tmp_path):
    network = tmp_path / "net.pkl"
    save_tiny_network(network)
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "generate.py"), f"--network={network}", "--seeds=0-99999"]
    command += [f"--outdir={out}", "--device=cpu"]
    code, output = _sigterm_when(command, lambda: out.is_dir() and len(os.listdir(out)) >= 5, tmp_path)
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith(("Generating", "Loading"))]
    assert code != 0 and lines == ["Aborted!"], output
    assert _no_temp_files(out)
    for name in os.listdir(out):
        with PIL.Image.open(out / name) as image:
            image.load()  # Every PNG under its final name is complete.


@pytest.mark.slow
def test_sigterm_during_calc_metrics_is_one_line_and_leaves_no_temp_files(tmp_path):
    from test_metrics_domain_detector import write_labelled_image_folder

    from metrics import domain_classifier

    data = tmp_path / "data"
    write_labelled_image_folder(str(data), num_images=400, resolution=16, channels=3)
    detector = str(tmp_path / "det.pt")
    torch.manual_seed(0)
    model = domain_classifier.DomainClassifier(num_classes=2, in_channels=3, resolution=16, channels=(4, 6), hidden=6)
    domain_classifier.save(model, detector, info={})
    network = tmp_path / "net.pkl"
    save_tiny_network(network)
    cache = tmp_path / "cache"
    command = [sys.executable, str(REPO / "calc_metrics.py"), f"--network={network}", "--metrics=fid50k_full"]
    command += [f"--data={data}", f"--detector={detector}"]
    ready = lambda: (cache / "gan-metrics").is_dir()  # noqa: E731 - the real statistics are written: now G runs.
    code, output = _sigterm_when(command, ready, tmp_path, DNNLIB_CACHE_DIR=str(cache))
    last = [line for line in output.splitlines() if line.strip()][-1]
    assert code != 0 and last == "Aborted!" and "Traceback" not in output, output
    assert _no_temp_files(cache / "gan-metrics") and os.listdir(cache / "gan-metrics")  # The statistics, whole.
    assert '"results"' not in output and "fid50k_full " not in output  # No result line for a stopped metric.
