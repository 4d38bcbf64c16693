"""A run killed with SIGKILL mid-tick leaves no corrupt file and continues with --resume=latest."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import legacy
from dnnlib import atomic
from tests.conftest import REPO_ROOT
from training.resume import state as resume_state

REPO = REPO_ROOT


def train_command(outdir, *args):
    return [sys.executable, str(REPO / "train.py"), f"--outdir={outdir}", "--device=cpu", *args]


def stats_lines(run_dir):
    path = run_dir / "stats.jsonl"
    return path.read_text().splitlines(keepends=True) if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_tick_then_resume_latest(tiny_zip, tmp_path):
    outdir = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    args = [
        f"--data={tiny_zip}",
        "--cfg=tiny",
        "--batch=4",
        "--kimg=0.2",
        "--tick=0.008",
        "--snap=1",
        "--workers=1",
        "--aug=ada",
        "--adaptivemix=1",
        "--deterministic=1",
    ]
    proc = subprocess.Popen(
        train_command(outdir, *args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        run_dir = None
        while time.time() < deadline:  # Kill once two ticks (each with a snapshot) are done, inside the third.
            runs = list(outdir.glob("00000-*")) if outdir.exists() else []
            run_dir = runs[0] if runs else None
            if run_dir is not None and len(stats_lines(run_dir)) >= 2:
                break
            time.sleep(0.05)
        assert run_dir is not None and proc.poll() is None, "training did not reach its second tick in time"
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    # Every file under its final name is complete.
    for pkl in run_dir.glob("network-snapshot-*.pkl"):
        with open(pkl, "rb") as f:
            assert "G_ema" in legacy.load_network_pkl(f)
    states = [resume_state.load_training_state(str(p)) for p in run_dir.glob("training-state-*.pt")]
    assert states and all(s["batch_idx"] >= 2 for s in states)
    killed_at = max(s["batch_idx"] for s in states)
    # A kill during a snapshot write leaves a temp file of the atomic writer; the resume must remove them all.
    for name in ("network-snapshot-000000.pkl", "training-state-000000.pt", "stats.jsonl"):
        with open(atomic.temp_path_for(run_dir / name), "wb") as f:
            f.write(b"partial")

    result = subprocess.run(
        train_command(outdir, "--resume=latest", "--kimg=0.04"), env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Continuing run" in result.stdout
    final = resume_state.load_training_state(str(resume_state.latest_state_in_run(str(run_dir))))
    assert final["batch_idx"] == 10 and final["batch_idx"] > killed_at
    assert not [p for p in run_dir.iterdir() if atomic.is_temp_name(p.name) or ".tmp" in p.name]  # No temp of any kind.
    lines = stats_lines(run_dir)
    assert all(line.endswith("\n") for line in lines)
    kimgs = [json.loads(line)["Progress/kimg"]["mean"] for line in lines]
    assert kimgs == sorted(kimgs) and len(set(kimgs)) == len(kimgs) and kimgs[-1] == pytest.approx(0.04)

    # Resuming a finished run changes nothing and says how to extend it.
    again = subprocess.run(
        train_command(outdir, "--resume=latest", "--kimg=0.04"), env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "pass a larger --kimg to extend it" in again.stdout
    assert stats_lines(run_dir) == lines


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_stops_cleanly_with_a_final_snapshot(tiny_zip, tmp_path, target):
    """`kill PID`, and `kill -TERM -PGID` / `timeout` / Ctrl-C, which also reach the DataLoader's worker."""
    outdir = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    args = [
        f"--data={tiny_zip}",
        "--cfg=tiny",
        "--batch=4",
        "--kimg=100",
        "--tick=0.008",
        "--snap=1000",
        "--workers=1",
        "--aug=noaug",
    ]
    proc = subprocess.Popen(
        train_command(outdir, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:  # Past tick 0 (a snapshot), inside later ticks.
            runs = list(outdir.glob("00000-*")) if outdir.exists() else []
            if runs and len(stats_lines(runs[0])) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be stopped"
        if target == "main process":
            proc.send_signal(signal.SIGTERM)  # As `kill PID` does.
        else:
            os.killpg(proc.pid, signal.SIGTERM)  # The worker ignores it; the main process stops the run.
        output = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    run_dir = runs[0]
    final = resume_state.load_training_state(str(resume_state.latest_state_in_run(str(run_dir))))
    assert final["cur_tick"] >= 3  # Written at the stop, not only the tick-0 snapshot (--snap=1000).
    last = (run_dir / "log.txt").read_text().strip().splitlines()[-1]
    assert last.startswith("Stopped at ") and "kept training-state-000000.pt and its snapshot" in last, last
    assert "SIGTERM received" in output and "Traceback" not in output
    assert not [p for p in run_dir.iterdir() if atomic.is_temp_name(p.name)]
