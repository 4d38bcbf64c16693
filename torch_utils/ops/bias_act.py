"""Fused bias + activation + gain + clamp, in that order: y = clamp(act(x + b; alpha) * gain, -clamp, clamp).

The gain step is skipped when gain == 1 exactly; clamp=None disables clamping. Defaults per activation
(alpha, gain) are in `activation_funcs` (e.g. lrelu: 0.2, sqrt(2), which keeps the signal variance).

* `'ref'`: plain PyTorch, any device and dtype. For the piecewise-linear activations (linear, relu, lrelu) with
  a positive gain it is one autograd Function: the forward works in place on one fresh tensor and the
  backward masks the incoming gradient in one pass per step, reading the slope from the output's sign (as
  the CUDA kernel does); its second derivative is zero, as theirs is almost everywhere. Other activations
  compose differentiable ops (gradients of every order).
* `'cuda'`: the kernel in `bias_act.cu` (CUDA tensors, when the plugin builds; else `'ref'`), float32
  internal math, first- and second-order gradients through custom autograd Functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

import dnnlib
from torch_utils import profiling
from torch_utils.ops import _self_check
from torch_utils.ops._plugins import check_impl, cuda_plugin

# Activation table. `func(x, alpha)` is the reference formula; `cuda_idx` selects it in the kernel; `ref` says
# whether the CUDA gradient reads the input x + b ('x'), the output y ('y': relu/lrelu slope from the output
# sign) or neither; `has_2nd_grad` says whether the derivative depends on x (second derivative not zero a.e.).
activation_funcs: dict[str, dnnlib.EasyDict] = {
    "linear": dnnlib.EasyDict(func=lambda x, alpha: x, def_alpha=0, def_gain=1, cuda_idx=1, ref="", has_2nd_grad=False),
    "relu": dnnlib.EasyDict(
        func=lambda x, alpha: F.relu(x), def_alpha=0, def_gain=math.sqrt(2), cuda_idx=2, ref="y", has_2nd_grad=False
    ),
    "lrelu": dnnlib.EasyDict(
        func=lambda x, alpha: F.leaky_relu(x, alpha),
        def_alpha=0.2,
        def_gain=math.sqrt(2),
        cuda_idx=3,
        ref="y",
        has_2nd_grad=False,
    ),
    "tanh": dnnlib.EasyDict(
        func=lambda x, alpha: torch.tanh(x), def_alpha=0, def_gain=1, cuda_idx=4, ref="x", has_2nd_grad=True
    ),
    "sigmoid": dnnlib.EasyDict(
        func=lambda x, alpha: torch.sigmoid(x), def_alpha=0, def_gain=1, cuda_idx=5, ref="x", has_2nd_grad=True
    ),
    "elu": dnnlib.EasyDict(
        func=lambda x, alpha: F.elu(x), def_alpha=0, def_gain=1, cuda_idx=6, ref="x", has_2nd_grad=True
    ),
    "selu": dnnlib.EasyDict(
        func=lambda x, alpha: F.selu(x), def_alpha=0, def_gain=1, cuda_idx=7, ref="x", has_2nd_grad=True
    ),
    "softplus": dnnlib.EasyDict(
        func=lambda x, alpha: F.softplus(x), def_alpha=0, def_gain=1, cuda_idx=8, ref="x", has_2nd_grad=True
    ),
    "swish": dnnlib.EasyDict(
        func=lambda x, alpha: torch.sigmoid(x) * x,
        def_alpha=0,
        def_gain=math.sqrt(2),
        cuda_idx=9,
        ref="x",
        has_2nd_grad=True,
    ),
}


@profiling.scope("bias_act")
def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "cuda",
) -> torch.Tensor:
    """`clamp(act(x + b, alpha) * gain, -clamp, clamp)`, `b` `[x.shape[dim]]` broadcast along axis `dim`.

    `alpha`/`gain` None mean the activation's defaults (`activation_funcs[act].def_alpha/def_gain`); the gain
    is skipped when exactly 1 and `clamp=None` disables clamping. Output: shape and dtype of `x`.
    """
    check_impl(impl)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"bias_act input must be a tensor, got {type(x).__name__}")
    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(activation_funcs)}")
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"dim={dim} is out of range for a {x.ndim}-D input")
    dim = dim % x.ndim if x.ndim else 0
    if b is not None and (not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(
            f"bias must be a 1-D tensor of length x.shape[{dim}] = {x.shape[dim]}, got {getattr(b, 'shape', b)}"
        )
    if clamp is not None and not clamp >= 0:
        raise ValueError(f"clamp must be None or >= 0, got {clamp}")
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    if act == "linear" and gain == 1 and clamp < 0 and b is None:
        return x
    plugin = cuda_plugin(impl, x, "bias_act")
    if plugin is not None:
        return _bias_act_cuda(plugin, x, b, dim, spec, alpha, gain, clamp)
    if act in _PIECEWISE_LINEAR and gain > 0 and alpha >= 0:
        if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
            return _BiasActPiecewiseLinear.apply(x, b, dim, act, alpha, gain, clamp)
        return _piecewise_linear_forward(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec.func, alpha, gain, clamp)


_PIECEWISE_LINEAR = ("linear", "relu", "lrelu")


def _piecewise_linear_forward(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float, clamp: float
) -> torch.Tensor:
    """The reference order (bias, activation, gain, clamp) on one fresh tensor: the first step allocates, the
    rest work in place, so the result equals `_bias_act_ref` bit for bit. Needs at least one step to do (the
    caller returns `x` for linear, gain 1, no clamp, no bias), so the result is never `x` itself."""
    y = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]) if b is not None else None
    if act == "relu":
        y = F.relu(x) if y is None else y.relu_()
    elif act == "lrelu":
        y = F.leaky_relu(x, alpha) if y is None else F.leaky_relu_(y, alpha)
    if gain != 1:
        y = x * gain if y is None else y.mul_(gain)
    if clamp >= 0:
        y = x.clamp(-clamp, clamp) if y is None else y.clamp_(-clamp, clamp)
    return y


class _BiasActPiecewiseLinear(torch.autograd.Function):
    """bias_act for linear/relu/lrelu with gain > 0, saving only the output y (when a slope or clamp needs it).

    dx = dy * gain * slope * [-clamp < y < clamp] with slope 1 where y > 0 and alpha (relu: 0) elsewhere, since
    a positive gain and the clamp keep the sign of act(x + b); db = dx summed over every axis but `dim`. The
    masks are constants of y, so the backward is linear in dy: differentiating it again (R1, path length)
    gives the same masks for dy and zero for x, which is the exact second derivative away from the kinks.
    """

    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):  # type: ignore[override]
        y = _piecewise_linear_forward(x, b, dim, act, alpha, gain, clamp)
        ctx.save_for_backward(y if act != "linear" or clamp >= 0 else None)
        ctx.args = (dim, act, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        dim, act, alpha, gain, clamp = ctx.args
        y = y.detach() if y is not None else None  # the masks' derivative is zero: keep them off the graph
        dx = dy
        if clamp >= 0:
            dx = torch.ops.aten.hardtanh_backward(dx, y, -clamp, clamp)  # 0 where |y| >= clamp
        if act == "relu":
            dx = torch.ops.aten.threshold_backward(dx, y, 0)  # 0 where y <= 0
        elif act == "lrelu":
            dx = torch.ops.aten.leaky_relu_backward(dx, y, alpha, True)  # * alpha where y <= 0
        if gain != 1:
            dx = dx * gain
        db = None
        if ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != dim])
        return (dx if ctx.needs_input_grad[0] else None), db, None, None, None, None, None


def _bias_act_ref(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, func: Callable, alpha: float, gain: float, clamp: float
) -> torch.Tensor:
    """Reference path in the op's order: bias, activation, gain (unless 1), clamp (unless < 0)."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# ----------------------------------------------------------------------------
# CUDA path. The kernel call `plugin.bias_act(x, b, xref, yref, grad, dim, act, alpha, gain, clamp)` gives
#   grad=0: y = clamp(act(x + b) * gain)
#   grad=1: x * gain * act'(xref + b) * [|yref| < clamp]     (x is the incoming gradient dy)
#   grad=2: x * gain * act''(xref + b) * [|yref| < clamp]    (the derivative of grad=1 w.r.t. xref, times x)
# Empty tensors stand for unused b/xref/yref; without a clamp (clamp < 0) yref only gives the relu/lrelu sign.


def _bias_act_cuda(plugin, x, b, dim, spec, alpha, gain, clamp) -> torch.Tensor:
    # Layout and dtype are fixed outside the Functions, so that the tensors they save are their own inputs
    # (saved copies made inside would be cut off from the graph and lose the second-order terms).
    x = x.contiguous()
    b = b.to(x.dtype).contiguous() if b is not None else None  # the kernel reads b in x's dtype
    return _BiasActCuda.apply(x, b, _CudaArgs(plugin, dim, spec, alpha, gain, clamp))


class _CudaArgs:
    """Constant arguments of one bias_act call, shared by the forward and both gradient Functions."""

    def __init__(self, plugin, dim: int, spec: dnnlib.EasyDict, alpha: float, gain: float, clamp: float):
        self.plugin, self.dim, self.spec = plugin, dim, spec
        self.alpha, self.gain, self.clamp = alpha, gain, clamp

    def kernel(self, x, b, xref, yref, grad: int) -> torch.Tensor:
        empty = x.new_empty([0])
        return self.plugin.bias_act(
            x,
            b if b is not None else empty,
            xref if xref is not None else empty,
            yref if yref is not None else empty,
            grad,
            self.dim,
            self.spec.cuda_idx,
            self.alpha,
            self.gain,
            self.clamp,
        )

    def reduce_bias(self, dx: torch.Tensor) -> torch.Tensor:
        """`db`: `dx` summed over every axis except `dim`."""
        return dx.sum([i for i in range(dx.ndim) if i != self.dim])


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, args):  # type: ignore[override]
        y = args.kernel(x, b, None, None, 0)
        needs_x = args.spec.ref == "x"
        needs_y = args.spec.ref == "y" or args.clamp >= 0
        xref = x if needs_x else None
        ctx.save_for_backward(xref, b if needs_x else None, y if needs_y else None)
        ctx.args = args
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        xref, b, yref = ctx.saved_tensors
        args = ctx.args
        dx = _BiasActCudaGrad.apply(dy.contiguous(), xref, b, yref, args)
        db = args.reduce_bias(dx) if ctx.needs_input_grad[1] else None
        return dx, db, None


class _BiasActCudaGrad(torch.autograd.Function):
    """`dx = dy * G(x + b, y)`: linear in `dy`, and depends on x only for activations with `has_2nd_grad`."""

    @staticmethod
    def forward(ctx, dy, x, b, y, args):  # type: ignore[override]
        dx = args.kernel(dy, b, x, y, 1)
        ctx.save_for_backward(dy if args.spec.has_2nd_grad else None, x, b, y)
        ctx.args = args
        return dx

    @staticmethod
    def backward(ctx, d_dx):  # type: ignore[override]
        dy, x, b, y = ctx.saved_tensors
        args = ctx.args
        d_dx = d_dx.contiguous()
        d_dy = _BiasActCudaGrad.apply(d_dx, x, b, y, args) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if args.spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = args.kernel(d_dx * dy, b, x, y, 2)
            d_b = args.reduce_bias(d_x) if ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None, None


def _self_check_cases() -> list[_self_check.Case]:
    """The compiled kernel's first-use check: lrelu with a clamp (the networks' layers: gradient from the
    output's sign) and swish (gradient from the input)."""

    def case(act: str, gain: float, clamp: float):
        spec = activation_funcs[act]
        b = torch.linspace(-1, 1, 6)

        def run(plugin, x):
            bias = b.to(x.device)
            if plugin is None:
                return _bias_act_ref(x, bias, 1, spec.func, float(spec.def_alpha), gain, clamp)
            return _bias_act_cuda(plugin, x, bias, 1, spec, float(spec.def_alpha), gain, clamp)

        return run

    return [
        ("lrelu clamp", case("lrelu", math.sqrt(2), 1.0), [4, 6, 5, 3]),
        ("swish", case("swish", math.sqrt(2), -1.0), [4, 6, 5, 3]),
    ]


_self_check.register_cases("bias_act", _self_check_cases)


__all__ = ["activation_funcs", "bias_act"]
