"""Choice between an op's reference path and its CUDA kernel (the `impl` argument of the ops)."""

from __future__ import annotations

import os
import types

import torch

from torch_utils import custom_ops
from torch_utils.ops import _self_check

IMPLS = ("ref", "cuda")
KERNEL_DEVICE_TYPE = "cuda"  # the device type the compiled kernels run on
_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))


def check_impl(impl: str) -> None:
    """Raise ValueError unless `impl` is one of `IMPLS`."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")


def cuda_plugin(impl: str, x: torch.Tensor, name: str) -> types.ModuleType | None:
    """The compiled `<name>_plugin` module when `impl == 'cuda'`, `x` is on a GPU, it builds and it passes its
    self-check; else None (the caller then uses the reference path).

    Sources are `<name>.cpp`, `<name>.cu` and `<name>.h` next to this file. A failed build warns once
    (see `torch_utils.custom_ops`). The first use on each device compares the kernel with the reference path
    on small fixed cases, forward and gradient (`torch_utils.ops._self_check`); a kernel that disagrees
    warns once with the figures and is not used for the rest of the process.
    """
    check_impl(impl)
    if impl != "cuda" or x.device.type != KERNEL_DEVICE_TYPE:
        return None
    plugin = custom_ops.get_plugin(
        f"{name}_plugin",
        sources=[f"{name}.cpp", f"{name}.cu"],
        headers=[f"{name}.h"],
        source_dir=_SOURCE_DIR,
    )
    if plugin is None:
        return None
    return _self_check.checked(name, plugin, x.device)
