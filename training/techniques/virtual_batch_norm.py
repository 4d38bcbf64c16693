"""Virtual batch normalisation (Salimans et al. 2016, Sec. 3.4).

Batch normalisation makes an example's output depend on the other examples of its batch. VBN instead
normalises each example x with the statistics of a reference batch R, chosen once at the start of training,
plus the example itself (one more sample of size |R| + 1):

    mu(x)   = (|R| mean_R(h) + h(x)) / (|R| + 1)
    nu(x)   = (|R| mean_R(h^2) + h(x)^2) / (|R| + 1)
    VBN(x)  = gamma * (h(x) - mu(x)) / sqrt(nu(x) - mu(x)^2 + eps) + beta

per channel, where h is the layer input (for [N, C, *spatial] inputs the example's own statistics are taken
over its spatial positions). The reference statistics come from forwarding R through the *current* network
(`ReferenceBatch.refresh`), so they follow the parameters and carry gradients; the reference batch itself is
normalised with its own statistics. Cost: one extra forward pass of R per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class VirtualBatchNorm(torch.nn.Module):
    """Per-channel VBN for [N, C] or [N, C, *spatial] inputs, with learned scale gamma and shift beta."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"virtual batch norm: num_features must be >= 1, got {num_features}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.weight = torch.nn.Parameter(torch.ones(self.num_features))
        self.bias = torch.nn.Parameter(torch.zeros(self.num_features))
        self.recording = False
        self._ref: tuple[torch.Tensor, torch.Tensor, int] | None = None  # (mean [C], mean of squares [C], |R|)

    def _example_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"virtual batch norm expects [N, {self.num_features}, ...], got {tuple(x.shape)}")
        flat = x.flatten(2) if x.ndim > 2 else x[:, :, None]
        return flat.mean(dim=2), flat.square().mean(dim=2)  # [N, C] each

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor, meansq: torch.Tensor) -> torch.Tensor:
        shape = list(mean.shape) + [1] * (x.ndim - mean.ndim)
        var = (meansq - mean.square()).clamp(min=0)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        view = [1, -1] + [1] * (x.ndim - 2)
        return y * self.weight.view(view) + self.bias.view(view)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ex_mean, ex_meansq = self._example_stats(x)
        if self.recording:
            ref_mean, ref_meansq = ex_mean.mean(dim=0), ex_meansq.mean(dim=0)
            self._ref = (ref_mean, ref_meansq, x.shape[0])
            return self._normalise(x, ref_mean[None].expand_as(ex_mean), ref_meansq[None].expand_as(ex_meansq))
        if self._ref is None:
            raise RuntimeError("virtual batch norm has no reference statistics: call ReferenceBatch.refresh(net) first")
        ref_mean, ref_meansq, n = self._ref
        mean = (ref_mean * n + ex_mean) / (n + 1)
        meansq = (ref_meansq * n + ex_meansq) / (n + 1)
        return self._normalise(x, mean, meansq)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, eps={self.eps}"


@contextlib.contextmanager
def recording_reference(net: torch.nn.Module) -> Iterator[None]:
    """Inside the block, every VirtualBatchNorm of `net` records the statistics of its input."""
    layers = [m for m in net.modules() if isinstance(m, VirtualBatchNorm)]
    for layer in layers:
        layer.recording = True
    try:
        yield
    finally:
        for layer in layers:
            layer.recording = False


class ReferenceBatch(torch.nn.Module):
    """The fixed reference batch (a buffer, so it is part of the owner's state_dict) and its refresh pass.

    Call `refresh(net, *args)` once per training step before using `net`: it forwards the reference batch
    through `net` with the current parameters so that every VBN layer holds fresh reference statistics.
    """

    def __init__(self, batch: torch.Tensor):
        super().__init__()
        if batch.ndim < 2 or batch.shape[0] < 1:
            raise ValueError(f"reference batch must be [N, ...] with N >= 1, got {tuple(batch.shape)}")
        self.register_buffer("batch", batch.detach().clone())

    def refresh(self, net: torch.nn.Module, *args: Any) -> torch.Tensor:
        with recording_reference(net):
            return net(self.batch, *args)
