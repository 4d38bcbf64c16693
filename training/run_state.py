"""Exact resume: the training-state file written beside every network snapshot, and RNG state capture.

A state file `training-state-NNNNNN.pt` holds everything a run needs to continue as if never stopped:
G, D and G_ema weights, optimizer moments, augmentation/APA controller state, the path-length mean,
counters (cur_nimg, cur_tick, batch_idx), and each rank's RNG states. It is a plain dict of tensors and
Python scalars, loaded with `torch.load(weights_only=True)` (no code from the file runs), and written
atomically (`dnnlib.atomic`: temp file, fsync, rename), so a run killed at any moment leaves either the old
or the new file.
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
from typing import Any

import numpy as np
import torch

import dnnlib
from dnnlib import atomic

STATE_PREFIX = "training-state-"
STATE_FORMAT_VERSION = 1


def state_file_name(cur_nimg: int) -> str:
    return f"{STATE_PREFIX}{cur_nimg // 1000:06d}.pt"


def capture_rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), NumPy and Python RNG states as plain tensors/scalars."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return dict(
        torch_cpu=torch.get_rng_state(),
        torch_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        numpy=dict(
            name=np_name,
            keys=torch.from_numpy(np_keys.astype(np.int64)),
            pos=int(np_pos),
            has_gauss=int(np_has_gauss),
            cached_gaussian=float(np_gauss),
        ),
        python=dict(version=py_version, state=torch.tensor(py_state, dtype=torch.int64), gauss=py_gauss),
    )


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    pyst = state["python"]
    random.setstate((pyst["version"], tuple(int(v) for v in pyst["state"].tolist()), pyst["gauss"]))


def save_training_state(path: str, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically."""
    with atomic.atomic_path(path) as tmp_path:
        torch.save(dict(state, format_version=STATE_FORMAT_VERSION), tmp_path)


def load_training_state(path: str) -> dict[str, Any]:
    """Read a training-state file without executing code from it."""
    try:
        state = dnnlib.util.load_weights_only(path)
    except Exception as err:  # torch's message runs over many lines (a refused pickle explains weights_only).
        reason = dnnlib.util.load_error_reason(err)
        raise ValueError(
            f'Cannot read training state "{path}" ({reason}); pass another state file or a run directory'
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError(f'"{path}" is not a training-state file of this version; resume from a snapshot .pkl instead')
    return state


def _kimg_of(path: str) -> int:
    match = re.search(rf"{STATE_PREFIX}(\d+)\.pt$", path)
    return int(match.group(1)) if match else -1


def latest_state_in_run(run_dir: str) -> str | None:
    """The training-state file with the most kimg in one run directory, or None."""
    paths = glob.glob(os.path.join(glob.escape(run_dir), f"{STATE_PREFIX}*.pt"))
    return max(paths, key=_kimg_of) if paths else None


def find_latest_state(outdir: str) -> str | None:
    """The newest training-state file under `outdir`: the highest-numbered run that has one, most kimg."""
    if not os.path.isdir(outdir):
        return None
    runs = []
    for name in os.listdir(outdir):
        match = re.match(r"^\d+", name)
        if match and os.path.isdir(os.path.join(outdir, name)):
            runs.append((int(match.group()), name))
    for _run_id, name in sorted(runs, reverse=True):
        path = latest_state_in_run(os.path.join(outdir, name))
        if path is not None:
            return path
    return None


def truncate_stats_log(path: str, next_tick: int) -> None:
    """Keep the complete lines of stats.jsonl for ticks before `next_tick` (the state's `cur_tick`).

    Drops what a killed run wrote after its last state. Ticks are compared as integers ("Progress/tick" holds
    a small integer exactly), never through the float kimg, which float32 logging rounds (0.208 -> 0.20800000429).
    """
    if not os.path.isfile(path):
        return
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # A line cut short by a kill.
            try:
                tick = int(round(json.loads(line)["Progress/tick"]["mean"]))
            except (ValueError, KeyError, TypeError):
                break
            if tick >= next_tick:
                break
            kept.append(line)
    atomic.write_text(path, "".join(kept))


def resume_hint(run_dir: str) -> str:
    """What a resume of `run_dir` continues from, as one phrase for messages."""
    state = latest_state_in_run(run_dir)
    if state is None:
        return "no training state was kept yet (nothing to resume; start the run again)"
    return f"kept {os.path.basename(state)} and its snapshot; --resume={run_dir} continues from there"
