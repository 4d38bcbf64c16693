"""First-use self-check of the compiled ops: each kernel must agree with the reference path before it is used.

The first time a process asks for a plugin on a device, `checked(name, plugin, device)` runs a few small
fixed cases through the kernel and through the reference path on that device and compares the forward
values and the input gradients (for a fixed random upstream gradient). The error of one output is
`max|kernel - reference| / max(max|reference|, 1e-3)`, a relative error against the output's scale. If any
error exceeds `TOLERANCE` (or the kernel raises), it prints ONE warning line with the worst figures and
returns None, so the op uses its reference path for the rest of the process; otherwise it returns the plugin.
The verdict is remembered per (op, device), so the check runs once.

The cases draw their inputs from a private `torch.Generator` (the global RNG streams are left untouched, so a
run's random draws are the same whether or not a check ran) and are computed in float32 with autocast off and
grad mode on, whatever the caller's context.
"""

from __future__ import annotations

import functools
import math
import sys
import types
from collections.abc import Callable

import torch

# Float32 kernels differ from the reference by rounding only (about 1e-6 relative on these sizes); a wrong
# kernel (a bad index, a missing term, a wrong build) errs by O(1).
TOLERANCE = 1e-3
_SEED = 123

# (op name, device) -> the plugin, or None after a failed check.
_verdicts: dict[tuple[str, str], types.ModuleType | None] = {}

Case = tuple[str, Callable[[types.ModuleType | None, torch.Tensor], torch.Tensor], list[int]]


def checked(name: str, plugin: types.ModuleType, device: torch.device) -> types.ModuleType | None:
    """`plugin` if its kernel agrees with the reference path on `device` (checked once per process), else None."""
    key = (name, str(device))
    if key not in _verdicts:
        errors, failure = _measure(name, plugin, device)
        worst = max(errors, key=lambda item: item[1]) if errors else None
        if failure is not None or (worst is not None and worst[1] > TOLERANCE):
            cause = failure if failure is not None else f"worst relative error {worst[1]:.3g} in {worst[0]}"
            figures = ", ".join(f"{what} {error:.3g}" for what, error in errors)
            print(
                f"WARNING: custom op '{name}' disagrees with the reference path on {device} ({cause}; tolerance "
                f"{TOLERANCE:g}{'; ' + figures if figures else ''}); using the reference PyTorch implementation instead.",
                file=sys.stderr,
                flush=True,
            )
            _verdicts[key] = None
        else:
            _verdicts[key] = plugin
    return _verdicts[key]


def _measure(name: str, plugin: types.ModuleType, device: torch.device) -> tuple[list[tuple[str, float]], str | None]:
    """Relative errors `[(case/output, error)]` of the kernel against the reference, and the kernel's exception."""
    errors: list[tuple[str, float]] = []
    generator = torch.Generator().manual_seed(_SEED)
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for case_name, run, shape in _CASES[name]():  # Registered by the op's module (register_cases).
            x = torch.randn(shape, generator=generator).to(device)
            try:
                kernel = _value_and_gradient(functools.partial(run, plugin), x)
            except Exception as error:  # noqa: BLE001 - a kernel that fails is as unusable as a wrong one
                message = (str(error).splitlines() or [""])[0][:200]
                return errors, f"{case_name} raised {type(error).__name__}: {message}"
            reference = _value_and_gradient(functools.partial(run, None), x)
            for output, k, r in zip(("forward", "gradient"), kernel, reference):
                errors.append((f"{case_name} {output}", _relative_error(k, r)))
    return errors, None


def _value_and_gradient(
    op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`op(x)` and `d(sum(op(x) * dy))/dx` for a fixed random upstream gradient `dy`."""
    x = x.detach().requires_grad_()
    y = op(x)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(_SEED + 1)).to(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    return y.detach(), dx.detach()


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    if actual.shape != expected.shape:
        return math.inf
    diff = (actual.double() - expected.double()).abs().max().item()
    error = diff / max(expected.double().abs().max().item(), 1e-3)
    return math.inf if math.isnan(error) else error


def register_cases(name: str, cases: Callable[[], list[Case]]) -> None:
    """Register op `name`'s self-check: `cases()` returns `[(case name, run(plugin or None, x), input shape)]`.

    Each op module registers its own cases when it is imported, so this module imports no op (the ops import
    `_plugins`, which imports this module: one direction only).
    """
    _CASES[name] = cases


def checked_ops() -> tuple[str, ...]:
    """Names of the ops whose self-check is registered (those imported so far)."""
    return tuple(_CASES)


_CASES: dict[str, Callable[[], list[Case]]] = {}
