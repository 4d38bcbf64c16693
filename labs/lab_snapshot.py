"""The resumable training state of a lab run (`labs.dcgan`, `labs.ssl`): one snapshot file per run.

A run class lists its parts in two class attributes and inherits `state_dict`, `load_state_dict` and `save`:

* `STATEFUL`: attribute names of objects with `state_dict()`/`load_state_dict()` (networks, optimisers, data
  streams, loss modules);
* `VALUES`: attribute name -> type of plain counters and lists (images seen, epoch, results so far).

The snapshot also holds the run's config (a dataclass, `self.cfg`) and every RNG state (Python, NumPy, torch),
so a resumed run continues bit-exactly on the CPU. It is written atomically (a crash keeps the previous file)
and read with `weights_only=True`, so loading one never executes code from it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from dnnlib import atomic
from training import run_state


class LabSnapshot:
    """Mixin: full training state of a lab run from `STATEFUL` parts, `VALUES` and the RNGs."""

    STATEFUL: ClassVar[tuple[str, ...]] = ()
    VALUES: ClassVar[dict[str, type]] = {}

    def state_dict(self) -> dict:
        state = {"config": dataclasses.asdict(self.cfg)}
        state.update({name: getattr(self, name).state_dict() for name in self.STATEFUL})
        state["rng"] = run_state.capture_rng_state()
        state.update({name: getattr(self, name) for name in self.VALUES})
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in self.STATEFUL:
            getattr(self, name).load_state_dict(state[name])
        run_state.restore_rng_state(state["rng"])
        for name, kind in self.VALUES.items():
            setattr(self, name, kind(state[name]))

    def save(self, path: str) -> None:
        """Write the full training state atomically (a crash leaves the previous snapshot)."""
        with atomic.atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)


def load_snapshot(path: str) -> dict:
    """A snapshot's state dict, read without executing code (`weights_only=True`)."""
    return torch.load(path, map_location="cpu", weights_only=True)
