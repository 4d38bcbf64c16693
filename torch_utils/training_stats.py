"""Training statistics: `report()` scalars anywhere, read their count/mean/std per interval with a `Collector`.

`report(name, value)` adds count, sum and sum of squares (float64) to a per-name, per-device counter
without synchronising the GPU. A `Collector` turns the counters into per-interval statistics on
`update()`, summing over devices and, when torch.distributed is initialised, over ranks.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np
import torch

_NUM_MOMENTS = 3  # [count, sum(x), sum(x**2)]
_REDUCE_DTYPE = torch.float32  # Each value is reduced in float32 ...
_COUNTER_DTYPE = torch.float64  # ... and accumulated in float64.

_rank = 0
_sync_device: torch.device | None = None  # Device for all_reduce (cuda for NCCL); None = single process.
_counters: dict[str, dict[torch.device, torch.Tensor]] = defaultdict(dict)  # Insertion order = first report.
_cumulative: dict[str, torch.Tensor] = {}


def init_multiprocessing(rank: int, sync_device: torch.device | None) -> None:
    """Call once per process after torch.distributed is initialised (sync_device: cuda for NCCL, cpu for gloo)."""
    global _rank, _sync_device
    _rank = rank
    _sync_device = sync_device


def report(name: str, value: Any) -> Any:
    """Add `value` (tensor, array, list or scalar; flattened) to the statistic `name`; returns `value`.

    An empty value only registers the name, so all ranks agree on the set of names.
    """
    counters = _counters[name]
    if value is None:
        return value
    elems = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    if elems.numel() == 0:
        return value
    elems = elems.detach().flatten().to(_REDUCE_DTYPE)
    moments = torch.stack([torch.ones_like(elems).sum(), elems.sum(), elems.square().sum()]).to(_COUNTER_DTYPE)
    device = moments.device
    if device not in counters:
        counters[device] = torch.zeros_like(moments)
    counters[device].add_(moments)
    return value


def report0(name: str, value: Any) -> Any:
    """Like `report`, but only rank 0 contributes (other ranks just register the name)."""
    report(name, value if _rank == 0 else [])
    return value


def _gather_deltas() -> list[tuple[str, torch.Tensor]]:
    """Move all device counters into the cumulative totals (all-reduced over ranks) and reset them."""
    names = sorted(_counters.keys())  # The same row order on every rank.
    device = _sync_device if _sync_device is not None else torch.device("cpu")
    stacked = torch.zeros([len(names), _NUM_MOMENTS], dtype=_COUNTER_DTYPE, device=device)
    for row, name in enumerate(names):
        for counter in _counters[name].values():
            stacked[row] += counter.to(device)
            counter.zero_()
    if _sync_device is not None and torch.distributed.is_initialized():
        torch.distributed.all_reduce(stacked)
    stacked = stacked.cpu()
    for row, name in enumerate(names):
        if name not in _cumulative:
            _cumulative[name] = torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE)
        _cumulative[name].add_(stacked[row])
    return [(name, _cumulative[name]) for name in _counters]  # Order of first report.


class Collector:
    """Per-interval statistics of the reported names that fully match `regex`.

    `update()` takes the data reported since this collector's previous update (all devices, all ranks).
    With `keep_previous`, a name that got no new data keeps its previous interval's statistics.
    Every rank must call `update()` at the same points when training is distributed.
    """

    def __init__(self, regex: str = ".*", keep_previous: bool = True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative: dict[str, torch.Tensor] = {}
        self._moments: dict[str, torch.Tensor] = {}
        self.update()
        self._moments.clear()

    def names(self) -> list[str]:
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self) -> None:
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _gather_deltas():
            if not self._regex.fullmatch(name):
                continue
            previous = self._cumulative.get(name, torch.zeros_like(cumulative))
            delta = cumulative - previous
            self._cumulative[name] = cumulative.clone()
            if delta[0] != 0 or name not in self._moments:
                self._moments[name] = delta

    def num(self, name: str) -> float:
        moments = self._moments.get(name)
        return float(moments[0]) if moments is not None else 0.0

    def mean(self, name: str) -> float:
        moments = self._moments.get(name)
        if moments is None or moments[0] == 0:
            return float("nan")
        return float(moments[1] / moments[0])

    def std(self, name: str) -> float:
        moments = self._moments.get(name)
        if moments is None or moments[0] == 0 or not np.isfinite(float(moments[1])):
            return float("nan")
        if moments[0] == 1:
            return 0.0
        mean = float(moments[1] / moments[0])
        raw_var = float(moments[2] / moments[0])
        return float(np.sqrt(max(raw_var - mean**2, 0.0)))

    def as_dict(self) -> dict[str, dict[str, float]]:
        """`{name: {num, mean, std}}` in the order the names were first reported."""
        return {name: dict(num=self.num(name), mean=self.mean(name), std=self.std(name)) for name in self.names()}

    def __getitem__(self, name: str) -> float:
        return self.mean(name)
