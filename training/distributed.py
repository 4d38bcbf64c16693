"""Data-parallel helpers for torch.distributed (NCCL on GPU, gloo on CPU); no-ops in a single process.

Gradients are averaged by one flattened all-reduce per optimizer step instead of DistributedDataParallel,
so modules can be called through any entry point (e.g. `D.features`/`D.head` for AdaptiveMix) and still
train in sync: the authors' AdaptiveMix release, which bypassed DDP's forward, left D's gradients
rank-local; averaging them here is a deliberate fix.
"""

from __future__ import annotations

import torch


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
    for p, present in zip(params, flat[-len(params):].tolist()):
        numel = p.numel()
        p.grad = flat[offset:offset + numel].view_as(p).clone() if present > 0 else None
        offset += numel


def all_gather_objects(obj) -> list:
    """Every rank's `obj` (picklable), in rank order; `[obj]` in a single process."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered
