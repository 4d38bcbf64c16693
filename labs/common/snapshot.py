"""The resumable training state of a lab run (`labs.dcgan`, `labs.ssl`): one snapshot file per run.

A run class lists its parts in two class attributes and inherits `state_dict`, `load_state_dict` and `save`:

* `STATEFUL`: attribute names of objects with `state_dict()`/`load_state_dict()` (networks, optimisers, data
  streams, loss modules);
* `VALUES`: attribute name -> type of plain counters and lists (images seen, epoch, results so far).

The snapshot also holds the run's config (a dataclass, `self.cfg`) and every RNG state (Python, NumPy, torch),
so a resumed run continues bit-exactly on the CPU. It is written atomically (a crash keeps the previous file)
and read with `weights_only=True`, so loading one never executes code from it. A file that is not such a
snapshot (empty, truncated, a pickle naming code, another lab's snapshot, tensors of other shapes) ends in one
line naming the file and what is wrong: `load_snapshot` raises click.UsageError, `load_state_dict` ValueError.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import click
import torch

from dnnlib import atomic
from dnnlib.util import load_error_reason, load_weights_only
from training.resume.rng import capture_rng_state, restore_rng_state


class LabSnapshot:
    """Mixin: full training state of a lab run from `STATEFUL` parts, `VALUES` and the RNGs."""

    STATEFUL: ClassVar[tuple[str, ...]] = ()
    VALUES: ClassVar[dict[str, type]] = {}

    def state_dict(self) -> dict:
        state = {"config": dataclasses.asdict(self.cfg)}
        state.update({name: getattr(self, name).state_dict() for name in self.STATEFUL})
        state["rng"] = capture_rng_state()
        state.update({name: getattr(self, name) for name in self.VALUES})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore every part; ValueError (one line) when the state does not fit this run's parts."""
        try:
            for name in self.STATEFUL:
                getattr(self, name).load_state_dict(state[name])
            restore_rng_state(state["rng"])
            for name, kind in self.VALUES.items():
                setattr(self, name, kind(state[name]))
        except KeyError as err:
            raise ValueError(f"the snapshot lacks {err} of this run ({type(self).__name__}); {_HINT}") from None
        except (RuntimeError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise ValueError(f"the snapshot does not fit this run ({load_error_reason(err)}); {_HINT}") from None

    def save(self, path: str) -> None:
        """Write the full training state atomically (a crash leaves the previous snapshot)."""
        with atomic.atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)


_HINT = "resume from the snapshot.pt this lab wrote, or start a new run in another --outdir"
_RNG_KEYS = ("torch_cpu", "torch_cuda", "numpy", "python")


def _problem(state: Any, config_type: type | None) -> str | None:
    """What makes `state` no lab snapshot (of `config_type`'s lab when given), or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a lab's training state"
    if not isinstance(state.get("config"), dict):
        return "it has no run configuration"
    if not isinstance(state.get("rng"), dict) or any(key not in state["rng"] for key in _RNG_KEYS):
        return "it has no complete RNG state"
    if config_type is not None:
        unknown = sorted(set(state["config"]) - {field.name for field in dataclasses.fields(config_type)})
        if unknown:
            return f"its configuration has fields this lab does not know ({', '.join(map(str, unknown[:5]))})"
    return None


def load_snapshot(path: str, config_type: type | None = None, renamed: dict[str, str] | None = None) -> dict:
    """A snapshot's state dict, read without executing code (`weights_only=True`).

    `config_type`: the lab's config dataclass; a snapshot whose config has other fields (another lab's) is
    refused. `renamed`: config fields saved under an older name -> today's name, renamed before that check.
    Raises click.UsageError, one line naming the file and what is wrong.
    """
    try:
        state = load_weights_only(path)
    except Exception as err:  # noqa: BLE001 - whatever torch raises for a bad file, the user gets one line.
        raise click.UsageError(f"--resume: {path} is not a lab snapshot ({load_error_reason(err)}); {_HINT}") from None
    if renamed and isinstance(state, dict) and isinstance(state.get("config"), dict):
        state["config"] = {renamed.get(name, name): value for name, value in state["config"].items()}
    problem = _problem(state, config_type)
    if problem is not None:
        raise click.UsageError(f"--resume: {path} is not a lab snapshot: {problem}; {_HINT}")
    return state
