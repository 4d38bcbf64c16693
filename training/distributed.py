"""Data-parallel helpers for torch.distributed (NCCL on GPU, gloo on CPU); no-ops in a single process.

Gradients are averaged by one flattened all-reduce per optimizer step instead of DistributedDataParallel,
so modules can be called through any entry point (e.g. `D.features`/`D.head` for AdaptiveMix) and still
train in sync: the authors' AdaptiveMix release, which bypassed DDP's forward, left D's gradients
rank-local; averaging them here is a deliberate fix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank."""
    if not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(tensor.data, src=src)


@torch.no_grad()
def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average `.grad` of `params` over ranks in one all-reduce (a missing gradient counts as zero).

    A parameter that has no gradient on any rank keeps `grad = None`, so the optimizer still skips it.
    """
    if not is_distributed() or not params:
        return
    device = params[0].device
    has_grad = torch.tensor([float(p.grad is not None) for p in params], device=device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params] + [has_grad])
    torch.distributed.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, present in zip(params, flat[-len(params) :].tolist()):
        numel = p.numel()
        p.grad = flat[offset : offset + numel].view_as(p).clone() if present > 0 else None
        offset += numel


def all_gather_objects(obj) -> list:
    """Every rank's `obj` (picklable), in rank order; `[obj]` in a single process."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


# ----------------------------------------------------------------------------
# Devices and process launch, shared by train.py, generate.py and calc_metrics.py.


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when a CUDA GPU is visible, else 'cpu'; 'cpu' and 'cuda' pass through.

    Raises ValueError (a one-line message naming the fix) for 'cuda' without a GPU or an unknown name.
    """
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device is available; use --device=cpu (or auto)")
    return name


def process_device(device: str, rank: int) -> torch.device:
    """The device of process `rank`: the CPU, or this machine's GPU number LOCAL_RANK (torchrun) or `rank`.

    For CUDA it also makes that GPU the current one, so kernels and NCCL use it.
    """
    if device != "cuda":
        return torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def torchrun_rank() -> int | None:
    """This process's rank when started by torchrun (one or more machines), else None."""
    return int(os.environ["RANK"]) if "RANK" in os.environ and "WORLD_SIZE" in os.environ else None


def init_process_group(device: str, rank: int, num_processes: int, init_method: str) -> None:
    """Join the process group: NCCL for CUDA, gloo for the CPU. `init_method`: 'env://' (torchrun) or 'file://...'."""
    backend = "nccl" if device == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank, world_size=num_processes)


def launch(fn: Callable[[int, Any], None], args: Any, num_processes: int, device: str) -> None:
    """Run `fn(rank, args)` once per process of a data-parallel job, with the process group set up around it.

    * Under torchrun this process is one rank already: `fn` runs here, joining the group through 'env://'
      unless the caller joined it before; `num_processes` must equal torchrun's world size.
    * Otherwise one process runs `fn` in-process, and N > 1 processes are spawned on this machine, joined
      through a rendezvous file in a temporary folder that is removed afterwards.
    `fn` must be a module-level function (spawned processes import it). The group is destroyed when `fn` returns.
    """
    rank = torchrun_rank()
    if rank is not None:
        world = int(os.environ["WORLD_SIZE"])
        if num_processes != world:
            raise ValueError(
                f"{num_processes} processes requested but torchrun started {world}; omit --gpus or make them equal"
            )
        _run_rank(rank, fn, args, num_processes, device, "env://")
        return
    with tempfile.TemporaryDirectory() as temp_dir:
        init_method = "file://" + os.path.abspath(os.path.join(temp_dir, ".torch_distributed_init"))
        if num_processes == 1:
            _run_rank(0, fn, args, num_processes, device, init_method)
        else:
            torch.multiprocessing.spawn(
                fn=_run_rank, args=(fn, args, num_processes, device, init_method), nprocs=num_processes
            )


def _run_rank(
    rank: int, fn: Callable[[int, Any], None], args: Any, num_processes: int, device: str, init_method: str
) -> None:
    try:
        if num_processes > 1 and not is_distributed():
            init_process_group(device, rank, num_processes, init_method)
        fn(rank, args)
    finally:
        if is_distributed():
            torch.distributed.destroy_process_group()
