"""Small PyTorch helpers: shape assertions, the infinite data sampler, parameter copies, summaries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

# ----------------------------------------------------------------------------
# Constants cached per (value, shape, dtype, device, memory format).

_constant_cache: dict[tuple, torch.Tensor] = {}


def constant(
    value: Any,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    memory_format: torch.memory_format | None = None,
) -> torch.Tensor:
    """A cached constant tensor (do not modify it in place)."""
    value = np.asarray(value)
    shape = tuple(shape) if shape is not None else None
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    device = torch.device(device if device is not None else "cpu")
    memory_format = memory_format if memory_format is not None else torch.contiguous_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, device, memory_format)
    tensor = _constant_cache.get(key)
    if tensor is None:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor, _ = torch.broadcast_tensors(tensor, torch.empty(shape))
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor


# ----------------------------------------------------------------------------
# Shape checks.


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | torch.Tensor | None]) -> None:
    """Raise AssertionError unless `tensor.shape` matches `ref_shape` (None entries match any size)."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(
            f"Wrong number of dimensions: got {tensor.ndim} (shape {tuple(tensor.shape)}), expected {len(ref_shape)} "
            f"(shape {tuple(ref_shape)})"
        )
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            ref_size = int(ref_size)
        if size != ref_size:
            raise AssertionError(
                f"Wrong size for dimension {idx}: got {size}, expected {ref_size} "
                f"(shape {tuple(tensor.shape)} vs {tuple(ref_shape)})"
            )


# ----------------------------------------------------------------------------
# Endless sampler with windowed re-shuffling.


class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices, split across ranks, gradually re-shuffled.

    The order starts as a seeded permutation; after each step the current slot is swapped with one at a
    random distance below `window_size * len(dataset)` behind it. Rank r of R yields positions r, r+R, ...
    The sampler's position (`state_dict`) lets training resume exactly where it stopped.
    """

    def __init__(
        self,
        dataset: Sequence,
        rank: int = 0,
        num_replicas: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        window_size: float = 0.5,
    ):
        if len(dataset) <= 0:
            raise ValueError("InfiniteSampler needs a non-empty dataset")
        if num_replicas <= 0 or not 0 <= rank < num_replicas:
            raise ValueError(f"InfiniteSampler: rank {rank} must lie in [0, num_replicas={num_replicas})")
        if not 0 <= window_size <= 1:
            raise ValueError(f"InfiniteSampler: window_size must lie in [0, 1], got {window_size}")
        super().__init__()
        self.dataset_len = len(dataset)
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size
        self._start_idx = 0

    def state_dict(self, num_yielded: int) -> dict:
        """State after this rank has yielded `num_yielded` indices (resume with `load_state_dict`)."""
        return dict(start_idx=self._start_idx + num_yielded * self.num_replicas)

    def load_state_dict(self, state: dict) -> None:
        self._start_idx = int(state["start_idx"])

    def __iter__(self) -> Iterator[int]:
        order = np.arange(self.dataset_len)
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))
        idx = 0
        while True:
            i = idx % order.size
            if idx >= self._start_idx and idx % self.num_replicas == self.rank:
                yield int(order[i])
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            idx += 1


# ----------------------------------------------------------------------------
# Parameters and buffers.


def named_params_and_buffers(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(
    src_module: torch.nn.Module, dst_module: torch.nn.Module, require_all: bool = False
) -> None:
    """Copy every parameter/buffer of `dst_module` whose name exists in `src_module` (all of them if `require_all`)."""
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name in src_tensors:
            src = src_tensors[name]
            if src.shape != tensor.shape:
                raise ValueError(f'Cannot copy "{name}": shape {tuple(src.shape)} does not match {tuple(tensor.shape)}')
            tensor.copy_(src.detach())
            tensor.requires_grad_(tensor.requires_grad)
        elif require_all:
            raise ValueError(f'"{name}" is missing from the source module')


# ----------------------------------------------------------------------------
# Module summary table.


def print_module_summary(
    module: torch.nn.Module, inputs: Sequence[Any], max_nesting: int = 3, skip_redundant: bool = True
) -> Any:
    """Run `module(*inputs)` once and print a table of submodules: parameters, buffers, output shapes, dtypes.

    Returns the module's outputs. Submodules nested deeper than `max_nesting` are folded into their parent.
    """
    if isinstance(module, torch.jit.ScriptModule):
        raise ValueError("print_module_summary needs a Python nn.Module, not a TorchScript module")
    entries: list[dict[str, Any]] = []
    nesting = [0]

    def pre_hook(_mod: torch.nn.Module, _inputs: Any) -> None:
        nesting[0] += 1

    def post_hook(mod: torch.nn.Module, _inputs: Any, outputs: Any) -> None:
        nesting[0] -= 1
        if nesting[0] <= max_nesting:
            outs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            entries.append(dict(mod=mod, outputs=[t for t in outs if isinstance(t, torch.Tensor)]))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in module.modules()]
    hooks += [m.register_forward_hook(post_hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Attribute each parameter/buffer to the innermost reported module that holds it.
    seen: set[int] = set()
    for entry in entries:
        entry["params"] = [t for t in entry["mod"].parameters() if id(t) not in seen]
        entry["buffers"] = [t for t in entry["mod"].buffers() if id(t) not in seen]
        seen |= {id(t) for t in entry["params"] + entry["buffers"]}
    if skip_redundant:
        entries = [e for e in entries if len(e["params"]) or len(e["buffers"]) or len(e["outputs"])]

    names = {mod: name for name, mod in module.named_modules()}
    rows = [[type(module).__name__, "Parameters", "Buffers", "Output shape", "Datatype"], ["---"] * 5]
    param_total = buffer_total = 0
    for entry in entries:
        name = "<top-level>" if entry["mod"] is module else names.get(entry["mod"], "?")
        num_params = sum(t.numel() for t in entry["params"])
        num_buffers = sum(t.numel() for t in entry["buffers"])
        shapes = [str(list(t.shape)) for t in entry["outputs"]] or ["-"]
        dtypes = [str(t.dtype).split(".")[-1] for t in entry["outputs"]] or ["-"]
        rows.append(
            [
                name,
                str(num_params) if num_params else "-",
                str(num_buffers) if num_buffers else "-",
                shapes[0],
                dtypes[0],
            ]
        )
        rows += [["", "", "", shape, dtype] for shape, dtype in zip(shapes[1:], dtypes[1:])]
        param_total += num_params
        buffer_total += num_buffers
    rows += [["---"] * 5, ["Total", str(param_total), str(buffer_total), "", ""]]
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    print()
    for row in rows:
        print("  ".join(cell + " " * (width - len(cell)) for cell, width in zip(row, widths)))
    print()
    return outputs
