"""Snapshots of a running loop: packing its live state into a training-state file and restoring it from one.

`LiveState` is what the training loop changes as it trains; `save_snapshot` writes it (with the network pickle
that goes beside it) and `restore_live_state` puts a loaded `TrainingState` back into it. The RNG streams are
restored separately (`rng.restore_rng_state`), at the point of set-up where a run that never stopped has
them, so that set-up steps in between draw nothing from them.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import torch

from training import distributed
from training.checkpoint import save_network_pkl
from training.resume import rng
from training.resume.state import TrainingState, save_training_state, state_file_name


@dataclass
class LiveState:
    """The loop's modules, controllers and counters: everything a training-state file captures."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]  # By phase name; a main and its reg phase share one optimizer.
    loss: Any  # The loss object: `pl_mean` tensor and `state_dict()`/`load_state_dict()` of technique state.
    augment_pipe: Any | None = None  # Module with a tensor `p`.
    ada: Any | None = None  # ADA controller (`state_dict()`/`load_state_dict()`).
    apa: Any | None = None  # APA controller (same).
    cur_nimg: int = 0  # Real images shown so far.
    cur_tick: int = 0  # The current tick.
    batch_idx: int = 0  # Iterations so far.


def snapshot_networks(training_set_kwargs: dict, modules: dict[str, torch.nn.Module | None]) -> dict[str, Any]:
    """The snapshot dict: training_set_kwargs, then deep copies of the networks (CPU, eval, no grad)."""
    data: dict[str, Any] = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in modules.items():
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        data[name] = module
    return data


def save_snapshot(live: LiveState, run_dir: str, rank: int, training_set_kwargs: dict) -> str:
    """Write `network-snapshot-NNNNNN.pkl` and the exact-resume `training-state-NNNNNN.pt` (rank 0), atomically.

    Every rank takes part (RNG and controller states are gathered); returns the snapshot path. The state's
    `cur_tick` is the tick after this one: a resume continues with it.
    """
    rng_states = distributed.all_gather_objects(rng.capture_rng_state())
    ada_states = distributed.all_gather_objects(live.ada.state_dict() if live.ada is not None else None)
    apa_states = distributed.all_gather_objects(live.apa.state_dict() if live.apa is not None else None)
    snapshot_pkl = os.path.join(run_dir, f"network-snapshot-{live.cur_nimg // 1000:06d}.pkl")
    if rank == 0:
        modules = dict(G=live.G, D=live.D, G_ema=live.G_ema, augment_pipe=live.augment_pipe)
        save_network_pkl(snapshot_pkl, snapshot_networks(training_set_kwargs, modules))
        state = dict(
            G=live.G.state_dict(),
            D=live.D.state_dict(),
            G_ema=live.G_ema.state_dict(),
            optimizers={name: opt.state_dict() for name, opt in live.optimizers.items()},
            pl_mean=live.loss.pl_mean.detach().cpu(),
            augment_p=float(live.augment_pipe.p) if live.augment_pipe is not None else 0.0,
            ada=ada_states,
            apa=apa_states,
            rng=rng_states,
            loss=live.loss.state_dict(),
            cur_nimg=live.cur_nimg,
            cur_tick=live.cur_tick + 1,
            batch_idx=live.batch_idx,
        )
        save_training_state(os.path.join(run_dir, state_file_name(live.cur_nimg)), state)
    return snapshot_pkl


def restore_live_state(live: LiveState, state: TrainingState, rank: int) -> None:
    """Load `state` into `live`: weights, optimizer moments, loss and controller state, counters (not the RNGs)."""
    for name in ("G", "D", "G_ema"):
        getattr(live, name).load_state_dict(state[name])
    for name, opt in live.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    live.loss.pl_mean.copy_(state["pl_mean"])
    if "loss" in state:  # Technique state: historical averages, Alt-Bures update count.
        live.loss.load_state_dict(state["loss"])
    if live.augment_pipe is not None:
        live.augment_pipe.p.copy_(torch.as_tensor(state["augment_p"]))
    if live.ada is not None:
        live.ada.load_state_dict(state["ada"][rank])
    if live.apa is not None:
        live.apa.load_state_dict(state["apa"][rank])
    live.cur_nimg, live.cur_tick, live.batch_idx = state["cur_nimg"], state["cur_tick"], state["batch_idx"]
