"""Rebuilding networks from pickles written by the original StyleGAN2-ADA code, without running their code.

The original pickles each network as a call `torch_utils.persistence._reconstruct_persistent_obj(meta)`, where
`meta` carries the full source text of the defining module, the class name and the instance `__dict__`.
Here that call only records `class_name` and `state`; the source text is
dropped unread. The top-level record's `_init_args`/`_init_kwargs` build this project's class of the same
name, and the tensors found under `_parameters`/`_buffers` (merged, for Freeze-D layers) are copied in by
their dotted names, which equal the `state_dict` keys.
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
from typing import Any

import torch

PERSISTENT_GLOBAL = ("torch_utils.persistence", "_reconstruct_persistent_obj")
PERSISTENT_VERSION = 6
NETWORK_MODULE = "training.networks"
CLASS_MODULES = {"AugmentPipe": "training.augment"}


@dataclasses.dataclass
class PersistentRecord:
    """One persistent object of an original pickle: its class name and instance state (`__dict__`)."""

    class_name: str
    state: dict


def reconstruct_persistent_record(meta: Any) -> PersistentRecord:
    """Stand-in for the original's reconstruct function: returns a record, never executes `module_src`."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("malformed persistent object: expected a meta dict with type 'class'")
    if meta.get("version") != PERSISTENT_VERSION:
        raise pickle.UnpicklingError(f"unsupported persistent object version {meta.get('version')!r} (expected 6)")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("malformed persistent object: class_name must be a str and state a dict")
    return PersistentRecord(class_name=class_name, state=state)


ORIGINAL_GLOBALS = {PERSISTENT_GLOBAL: reconstruct_persistent_record}


def project_class(class_name: str) -> type:
    """This project's module class for an original class name (networks and AugmentPipe)."""
    module = importlib.import_module(CLASS_MODULES.get(class_name, NETWORK_MODULE))
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"the pickle holds a {class_name!r} object, which this project cannot rebuild")
    return cls


def collect_tensors(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of a record tree, keyed by dotted `state_dict` names."""
    tensors = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in (record.state.get(group) or {}).items():
            if tensor is not None:
                tensors[prefix + name] = tensor
    for name, child in (record.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise ValueError(f"submodule {prefix + name!r} is a {type(child).__name__}, not a persistent object")
        tensors.update(collect_tensors(child, prefix + name + "."))
    return tensors


def load_tensors(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` into `module` by `state_dict` name; every name and shape must match exactly.

    Parameters keep the stored `requires_grad` flag.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{name} {tuple(tensors[name].shape)} vs {tuple(expected[name].shape)}"
        for name in expected
        if name in tensors and tensors[name].shape != expected[name].shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"stored tensors do not fit {type(module).__name__}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatch {mismatched[:5]}"
        )
    module.load_state_dict(tensors, strict=True)
    for name, param in module.named_parameters():
        param.requires_grad_(tensors[name].requires_grad)


def build_module(
    cls: type, args: tuple, kwargs: dict, tensors: dict[str, torch.Tensor], training: bool = False
) -> torch.nn.Module:
    """Construct `cls(*args, **kwargs)` (without consuming the global RNG) and load `tensors` into it."""
    with torch.random.fork_rng(devices=[]):
        try:
            module = cls(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"cannot rebuild {cls.__name__} from the stored constructor arguments: {error}") from None
    load_tensors(module, tensors)
    return module.train(training)


def module_from_record(record: PersistentRecord) -> torch.nn.Module:
    """This project's module equivalent to a top-level persistent record (e.g. G, D, G_ema, augment_pipe)."""
    args = record.state.get("_init_args", ())
    kwargs = record.state.get("_init_kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise ValueError(f"{record.class_name}: malformed constructor arguments in the pickle")
    training = bool(record.state.get("training", False))
    return build_module(project_class(record.class_name), tuple(args), dict(kwargs), collect_tensors(record), training)
