"""The training-state file written beside every network snapshot: its schema, reading, writing and finding it.

A state file `training-state-NNNNNN.pt` (NNNNNN = kimg) holds everything a run needs to continue as if never
stopped (`TrainingState`). It is a plain dict of tensors and Python scalars, loaded with
`torch.load(weights_only=True)` (no code from the file runs), and written atomically (`dnnlib.atomic`: temp file,
fsync, rename), so a run killed at any moment leaves either the old or the new file.
"""

import glob
import json
import os
import re
from typing import Any, NotRequired, TypedDict

import torch

import dnnlib
from dnnlib import atomic

STATE_PREFIX = "training-state-"
STATE_FORMAT_VERSION = 1


class TrainingState(TypedDict):
    """What a training-state file holds (format version 1). Tensors are on the CPU.

    Per-rank entries (`ada`, `apa`, `rng`) are lists indexed by rank, gathered from every process.
    """

    format_version: int  # STATE_FORMAT_VERSION.
    G: dict[str, torch.Tensor]  # state_dict of the generator being trained ...
    D: dict[str, torch.Tensor]  # ... of the discriminator ...
    G_ema: dict[str, torch.Tensor]  # ... and of the generator's moving average.
    optimizers: dict[str, dict[str, Any]]  # Optimizer state_dict by phase name (Gmain/Dmain, or Gboth/Dboth).
    pl_mean: torch.Tensor  # The path-length regularizer's running mean, shape [].
    augment_p: float  # The augmentation pipe's p (0 without a pipe).
    ada: list[dict[str, Any] | None]  # Per rank: ADA's state_dict (pending sign statistics), None without ADA.
    apa: list[dict[str, Any] | None]  # Per rank: APA's state_dict (its p and statistics), None without APA.
    rng: list[dict[str, Any]]  # Per rank: `rng.capture_rng_state()` taken at the snapshot.
    loss: NotRequired[dict[str, Any]]  # Technique state (historical averages, Alt-Bures updates); older files lack it.
    cur_nimg: int  # Real images shown so far.
    cur_tick: int  # The tick that comes next.
    batch_idx: int  # Iterations so far; also the data sampler's position in batches.


def state_file_name(cur_nimg: int) -> str:
    return f"{STATE_PREFIX}{cur_nimg // 1000:06d}.pt"


def save_training_state(path: str, state: dict[str, Any]) -> None:
    """Write `state` (a TrainingState without its format_version) to `path` atomically."""
    with atomic.atomic_path(path) as tmp_path:
        torch.save(dict(state, format_version=STATE_FORMAT_VERSION), tmp_path)


def load_training_state(path: str) -> TrainingState:
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


def state_shapes(state: TrainingState) -> tuple[int | None, int | None]:
    """(image channels, label dimensions) of the run's generator, read off its saved tensors."""
    G = state.get("G", {})
    torgb = [(int(m.group(1)), key) for key in G if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", key))]
    channels = int(G[max(torgb)[1]].shape[0]) if torgb else None
    embed = G.get("mapping.embed.weight")
    return channels, (int(embed.shape[1]) if embed is not None else 0)


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
