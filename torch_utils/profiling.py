"""Where training time goes: named profiler scopes and a per-op-family split of a `torch.profiler` trace.

    @profiling.scope("bias_act")             # a named range in traces, around every call of the function
    def bias_act(...): ...

    with torch.profiler.profile() as prof:
        train_some_steps()
    shares = op_family_times(prof.events())   # {'convolution': us, 'bias_act': us, ...}

An op's family comes from its lineage: its caller chain in the trace, where a backward op continues through
the forward op that created its autograd node (the profiler gives both the same sequence number), so the
gradient of an op, and the gradient of that gradient (R1, path length), count with the op. Precedence:
`upfirdn2d` (its FIR filter is a depthwise convolution, counted as resampling), then `convolution`, then the
innermost named scope (`bias_act`, `modulation`, `optimiser`), then `other`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch

FAMILIES = ("convolution", "bias_act", "upfirdn2d", "modulation", "optimiser", "other")

_UPFIRDN2D_NAME = "_UpFirDn2d"  # upfirdn2d's autograd Function (its backward calls it again)
_CONVOLUTION_NAMES = (
    "aten::convolution",
    "aten::convolution_backward",
    "aten::_convolution_double_backward",
    "aten::mkldnn_convolution",
)
_SCOPE_FAMILIES = {"bias_act": "bias_act", "modulated_conv2d": "modulation"}
_BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


def scope(name: str) -> Callable[[Callable], Callable]:
    """Decorator: each call of the function is a range named `name` in a `torch.profiler` trace. Without a
    running profiler the wrapper only checks a flag and calls the function (these wrap per-layer hot paths)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not torch.autograd._profiler_enabled():
                return fn(*args, **kwargs)
            with torch.profiler.record_function(name):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _direct_family(name: str) -> tuple[int, str] | None:
    """(precedence rank, family) that an event's own name implies, or None."""
    if name == _UPFIRDN2D_NAME:
        return 0, "upfirdn2d"
    if name in _CONVOLUTION_NAMES:
        return 1, "convolution"
    if name in _SCOPE_FAMILIES:
        return 2, _SCOPE_FAMILIES[name]
    if name.startswith("Optimizer."):
        return 2, "optimiser"
    return None


def op_family_times(events: Iterable) -> dict[str, float]:
    """Self CPU time (microseconds) per family of `FAMILIES` over the `FunctionEvent`s of a profiler trace."""
    events = sorted(events, key=lambda e: e.time_range.start)
    creator = {}  # sequence number -> the first (forward) event that carries it
    for event in events:
        if event.sequence_nr >= 0 and not event.name.startswith(_BACKWARD_PREFIX):
            creator.setdefault(event.sequence_nr, event)
    memo: dict[int, tuple[int, str] | None] = {}

    def family(event) -> tuple[int, str] | None:
        # The lineage only steps to events that started earlier (a caller or a creator), so it ends.
        if event.id in memo:
            return memo[event.id]
        if event.name.startswith(_BACKWARD_PREFIX) and event.sequence_nr in creator:
            up = creator[event.sequence_nr]
        else:
            up = event.cpu_parent
        best = family(up) if up is not None else None
        own = _direct_family(event.name)
        # A lower rank wins; between equal ranks the innermost (own) name wins.
        if own is not None and (best is None or own[0] <= best[0]):
            best = own
        memo[event.id] = best
        return best

    totals = dict.fromkeys(FAMILIES, 0.0)
    for event in events:
        found = family(event)
        totals[found[1] if found else "other"] += event.self_cpu_time_total
    return totals
