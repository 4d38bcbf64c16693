"""Gradients w.r.t. selected inputs only, for regularizers such as R1 and path length.

The original code had a global "no weight gradients" switch in a conv wrapper. With current PyTorch it is
not needed: `torch.autograd.grad(..., inputs=[...])` runs only the parts of the backward graph that lead to
the requested inputs, and convolution backward is told not to compute weight gradients that nobody asked
for. `input_gradients` spells this out, with `create_graph=True` so that the penalty built from the result
can be back-propagated to the weights (double backward) as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def input_gradients(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    grad_outputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    create_graph: bool = True,
) -> tuple[torch.Tensor, ...]:
    """d(outputs)/d(inputs) without computing any parameter gradients (e.g. R1: `inputs=[real_img]`).

    `outputs` are usually a scalar such as `logits.sum()`; `grad_outputs` defaults to ones for scalars.
    With `create_graph=True` (default) the returned gradients are differentiable, so a penalty built from
    them back-propagates to the network parameters. Returns one gradient per input, shaped like it.
    """
    return torch.autograd.grad(outputs=outputs, inputs=inputs, grad_outputs=grad_outputs, create_graph=create_graph)


__all__ = ["input_gradients"]
