"""The DCGAN lab's training run: networks, optimisers, the step schedule, evaluations and resumable snapshots.

Schedule: every iteration takes one batch of B real images for a D step (B m images packed into B inputs with
packing of m, PacGAN; the fakes likewise); after every `n_critic` D steps G takes
one step on a fresh batch of latents (with the same real batch as reference for feature-based terms). WGAN
clips every D weight into [-clip, clip] after each D step. Progress is counted in real images shown to D
(kimg), so an epoch is one pass of D over the training set, as in the paper's Table 2.

Randomness: the torch and NumPy global generators are seeded with `seed` (latents, AdaptiveMix's pairings and
weights, WGAN-GP's interpolation); the data order has its own generator. Evaluations run under forked RNG state,
so a run with or without evaluations, interrupted and resumed or not, trains identically on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dnnlib import atomic
from dnnlib.progress import ProgressBar
from labs.common import objectives
from labs.common.data import BatchStream, to_float
from labs.common.losses import DCGANLosses, LossSettings
from labs.common.snapshot import LabSnapshot
from labs.dcgan.networks import Discriminator, Generator
from training.saved_names import current_names
from training.techniques.packing import check_pack, pack

SNAPSHOT = "snapshot.pt"
RESULTS = "results.jsonl"

# Per-objective defaults: the optimiser and schedule each objective's paper used.
OBJECTIVE_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgan": {
        "optimizer": "rmsprop",
        "lr": 5e-5,
        "betas": (0.5, 0.999),
        "n_critic": 5,
        "clip": 0.01,
        "d_norm": "bn",
    },
    "wgan-gp": {
        "optimizer": "adam",
        "lr": 1e-4,
        "betas": (0.5, 0.9),
        "n_critic": 5,
        "clip": 0.0,
        "d_norm": "none",
    },
    "ns": {
        "optimizer": "adam",
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "n_critic": 1,
        "clip": 0.0,
        "d_norm": "bn",
    },
    "hinge": {
        "optimizer": "adam",
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "n_critic": 1,
        "clip": 0.0,
        "d_norm": "bn",
    },
    "lsgan": {
        "optimizer": "adam",
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "n_critic": 1,
        "clip": 0.0,
        "d_norm": "bn",
    },
}


@dataclasses.dataclass
class RunConfig:
    """A run's full configuration (stored in the snapshot; a resumed run keeps it, except `kimg`)."""

    objective: str
    kimg: float
    batch: int = 64
    seed: int = 0
    width: int = 64
    z_dim: int = 100
    g_norm: str = "bn"
    d_norm: str = "bn"
    head: str = "conv"
    mbdisc: bool = False
    optimizer: str = "adam"
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)
    n_critic: int = 1
    clip: float = 0.0
    eval_every: float = 0.0  # kimg between evaluations; 0 = only at the end.
    pack: int = 1  # D judges `pack` images at once (PacGAN); a batch is `batch` packed inputs.
    stack: int = 1  # Training images built from `stack` dataset images as channel groups (stacked MNIST).
    losses: dict = dataclasses.field(default_factory=dict)  # LossSettings fields.


def _optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))


class DCGANRun(LabSnapshot):
    """Builds everything for `cfg` on images uint8 [N, C, R, R]; `train(outdir, evaluate)` runs to cfg.kimg."""

    STATEFUL = ("G", "D", "opt_G", "opt_D", "losses", "stream")
    VALUES = {"images_seen": int, "d_steps": int, "train_seconds": float, "results": list}

    def __init__(self, cfg: RunConfig, images: torch.Tensor):
        objectives.check_objective(cfg.objective)
        self.cfg = cfg
        self.images = images
        channels, resolution = images.shape[1], images.shape[2]
        check_pack(cfg.pack)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.G = Generator(
            channels,
            resolution,
            cfg.width,
            cfg.z_dim,
            cfg.g_norm,
            reference_size=cfg.batch,
            seed=cfg.seed,
        )
        self.D = Discriminator(channels * cfg.pack, resolution, cfg.width, cfg.d_norm, cfg.head, cfg.mbdisc)
        self.opt_G = _optimizer(cfg, self.G.parameters())
        self.opt_D = _optimizer(cfg, self.D.parameters())
        self.losses = DCGANLosses(LossSettings(objective=cfg.objective, **cfg.losses), self.G, self.D)
        self.stream = BatchStream(len(images), cfg.batch * cfg.pack, cfg.seed)
        self.images_seen = 0
        self.d_steps = 0
        self.train_seconds = 0.0
        self.results: list[dict] = []

    # ------------------------------------------------------------------ steps
    def step(self) -> None:
        """One D step; a G step after every n_critic-th."""
        cfg = self.cfg
        real = pack(to_float(self.images[self.stream.next()]), cfg.pack)
        z = torch.randn([cfg.batch * cfg.pack, cfg.z_dim])
        with torch.no_grad():
            fake = pack(self.G(z), cfg.pack)
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        self.losses.d_loss(real, fake).backward()
        self.opt_D.step()
        self.losses.end_update("D")
        if cfg.clip > 0:
            objectives.clip_weights(self.D, cfg.clip)
        self.d_steps += 1
        self.images_seen += cfg.batch * cfg.pack
        if self.d_steps % cfg.n_critic == 0:
            self.D.requires_grad_(False)
            self.opt_G.zero_grad(set_to_none=True)
            fake = pack(self.G(torch.randn([cfg.batch * cfg.pack, cfg.z_dim])), cfg.pack)
            self.losses.g_loss(real, fake).backward()
            self.opt_G.step()
            self.losses.end_update("G")

    # ------------------------------------------------------------------ loop
    def train(
        self,
        outdir: str,
        evaluate: Callable[[DCGANRun], dict],
        log: Callable[[str], None] = print,
    ) -> list[dict]:
        """Train until cfg.kimg, evaluating every cfg.eval_every kimg and at the end; snapshot after each
        evaluation. `evaluate(run)` returns the metrics dict of one evaluation. Returns all result lines."""
        cfg = self.cfg
        total = round(cfg.kimg * 1000)
        every = round(cfg.eval_every * 1000) if cfg.eval_every > 0 else total
        next_eval = (self.images_seen // every + 1) * every if every > 0 else total
        with ProgressBar(total, desc=f"{cfg.objective}", unit="img", min_interval=1.0) as bar:
            bar.update(self.images_seen)
            start = time.perf_counter()
            while self.images_seen < total:
                before = self.images_seen
                self.step()
                bar.update(self.images_seen - before)
                if self.images_seen >= min(next_eval, total):
                    self.train_seconds += time.perf_counter() - start
                    self._evaluate(outdir, evaluate, log)
                    next_eval += every
                    start = time.perf_counter()
        return self.results

    def _evaluate(
        self,
        outdir: str,
        evaluate: Callable[[DCGANRun], dict],
        log: Callable[[str], None],
    ) -> None:
        with torch.random.fork_rng(devices=[]):
            np_state = np.random.get_state()
            metrics = evaluate(self)
            np.random.set_state(np_state)
        line = {
            "kimg": self.images_seen / 1000,
            **metrics,
            "seconds": round(self.train_seconds, 2),
        }
        self.results.append(line)
        atomic.write_text(
            os.path.join(outdir, RESULTS),
            "".join(json.dumps(r) + "\n" for r in self.results),
        )
        losses = " ".join(f"{k} {v:.4g}" for k, v in sorted(self.losses.stats.items()))
        fid = "" if metrics.get("fid") is None else f"fid {metrics['fid']:.2f} kid {metrics['kid']:.4f} "
        log(f"kimg {line['kimg']:.2f} {fid}seconds {line['seconds']:.1f} | {losses}")
        self.save(os.path.join(outdir, SNAPSHOT))


def config_from_snapshot(state: dict, kimg: float | None) -> RunConfig:
    """The stored RunConfig, with `kimg` replaced when given (to train a finished run further)."""
    fields = dict(state["config"])
    fields["betas"] = tuple(fields["betas"])
    fields["losses"] = current_names(fields.get("losses", {}))  # Snapshots saved with the old names.
    if kimg is not None:
        fields["kimg"] = kimg
    return RunConfig(**fields)
