"""Choice between an op's reference path and its CUDA kernel (the `impl` argument of the ops)."""

from __future__ import annotations

import os
import types

import torch

from torch_utils import custom_ops

IMPLS = ("ref", "cuda")
_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))


def check_impl(impl: str) -> None:
    """Raise ValueError unless `impl` is one of `IMPLS`."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")


def cuda_plugin(impl: str, x: torch.Tensor, name: str) -> types.ModuleType | None:
    """The compiled `<name>_plugin` module when `impl == 'cuda'`, `x` is on a GPU and it builds; else None.

    Sources are `<name>.cpp`, `<name>.cu` and `<name>.h` next to this file. A failed build warns once
    (see `torch_utils.custom_ops`), after which the caller silently uses the reference path.
    """
    check_impl(impl)
    if impl != "cuda" or not x.is_cuda:
        return None
    return custom_ops.get_plugin(
        f"{name}_plugin",
        sources=[f"{name}.cpp", f"{name}.cu"],
        headers=[f"{name}.h"],
        source_dir=_SOURCE_DIR,
    )
