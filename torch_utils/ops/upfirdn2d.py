"""FIR resampling of images: upsample by zero insertion, pad/crop, FIR filter, downsample.

`upfirdn2d` is one autograd Function whose gradient is again an `upfirdn2d` (the exact adjoint, with up and
down swapped and the filter flipped), so gradients of every order exist on both implementations:
* `'ref'`: plain PyTorch (zero insertion, `F.pad`, depthwise `conv2d` with stride), any device/dtype;
* `'cuda'`: the fused kernel in `upfirdn2d.cu` (CUDA tensors, when the plugin builds; else `'ref'`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.ops import _self_check
from torch_utils.ops._plugins import check_impl, cuda_plugin

Scaling = int | Sequence[int]
Padding = int | Sequence[int]


class ResampleParams(NamedTuple):
    """Parsed arguments of one upfirdn2d call: factors (x, y), padding [x0, x1, y0, y1], flip and gain."""

    upx: int
    upy: int
    downx: int
    downy: int
    padx0: int
    padx1: int
    pady0: int
    pady1: int
    flip_filter: bool
    gain: float


# ----------------------------------------------------------------------------
# Argument parsing shared with conv2d_resample: scalings `s` or `[sx, sy]`; paddings `p`, `[px, py]` or
# `[px0, px1, py0, py1]` (x first; negative values crop); filter size (fw, fh).


def parse_scaling(scaling: Scaling, name: str = "scaling") -> tuple[int, int]:
    """`s` -> `(s, s)`; `[sx, sy]` -> `(sx, sy)`. Factors must be ints >= 1."""
    values = [scaling] * 2 if isinstance(scaling, (int, np.integer)) else list(scaling)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a pair [x, y] of ints, got {scaling!r}")
    if min(values) < 1:
        raise ValueError(f"{name} factors must be >= 1, got {scaling!r}")
    return int(values[0]), int(values[1])


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """`p` -> `[p]*4`; `[px, py]` -> `[px, px, py, py]`; `[px0, px1, py0, py1]` as is. Negative crops."""
    if isinstance(padding, (int, np.integer)):
        values = [padding] * 4
    else:
        values = list(padding)
        if len(values) == 2:
            values = [values[0], values[0], values[1], values[1]]
    if len(values) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"padding must be an int, [px, py] or [px0, px1, py0, py1] of ints, got {padding!r}")
    return int(values[0]), int(values[1]), int(values[2]), int(values[3])


def get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """Filter size `(fw, fh)`: None -> (1, 1); 1-D with T taps -> (T, T); 2-D `[fh, fw]` -> (fw, fh)."""
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        raise ValueError("filter must be None or a 1-D/2-D tensor from setup_filter()")
    return (f.shape[-1], f.shape[0])


# ----------------------------------------------------------------------------
# Filter setup: to float32, outer product for short 1-D filters, normalise to unit sum, flip, gain^(ndim/2).


def setup_filter(
    f: object,
    device: torch.device | str = torch.device("cpu"),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn taps (list/array/tensor, 0-2 dims, or None = [1]) into a float32 filter `[fh, fw]` or `[T]`.

    1-D filters with < 8 taps (unless `separable=True`) become the 2-D outer product. The result is divided
    by its sum if `normalize`, flipped along every axis if `flip_filter` and scaled by `gain ** (ndim / 2)`.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter must have 0, 1 or 2 dims and at least one tap, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("separable=True needs a 1-D filter")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


# ----------------------------------------------------------------------------
# The op.


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: Scaling = 1,
    down: Scaling = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "cuda",
) -> torch.Tensor:
    """Upsample by zero insertion, pad/crop, FIR-filter and downsample every channel of `x` `[N, C, H, W]`.

    `f` is a float32 filter from `setup_filter` (2-D, or 1-D separable) or None (identity). The filter is a
    true convolution unless `flip_filter` (then a correlation); the output is scaled by `gain`. Output size:
    `Hout = (H*uy + py0 + py1 - fh) // dy + 1`, likewise `Wout`. Differentiable to any order w.r.t. `x`.
    """
    check_impl(impl)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d input must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32:
        raise ValueError("upfirdn2d filter must be None or a float32 1-D/2-D tensor (use setup_filter())")
    if f.requires_grad:
        raise ValueError("upfirdn2d filter must not require grad (no gradient is defined for it)")
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    params = ResampleParams(upx, upy, downx, downy, *parse_padding(padding), bool(flip_filter), float(gain))
    out_h, out_w = _output_size(x.shape, f, params)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"upfirdn2d output would be empty ({out_h}x{out_w}) for input {tuple(x.shape)}, filter "
            f"{tuple(f.shape)}, up {up}, down {down}, padding {padding}: use less cropping or a larger input"
        )
    return _UpFirDn2d.apply(x, f, params, cuda_plugin(impl, x, "upfirdn2d"))


def _output_size(shape: Sequence[int], f: torch.Tensor, p: ResampleParams) -> tuple[int, int]:
    fw, fh = get_filter_size(f)
    out_w = (shape[3] * p.upx + p.padx0 + p.padx1 - fw) // p.downx + 1
    out_h = (shape[2] * p.upy + p.pady0 + p.pady1 - fh) // p.downy + 1
    return out_h, out_w


def _adjoint_params(
    in_shape: Sequence[int], out_shape: Sequence[int], f: torch.Tensor, p: ResampleParams
) -> ResampleParams:
    """Parameters of the upfirdn2d that computes the gradient w.r.t. the input: its exact adjoint.

    Up and down factors swap, the filter flips, the gain stays, and the padding is
    [fw - px0 - 1, W*ux - Wout*dx + px0 - ux + 1, fh - py0 - 1, H*uy - Hout*dy + py0 - uy + 1].
    """
    fw, fh = get_filter_size(f)
    in_h, in_w = in_shape[2], in_shape[3]
    out_h, out_w = out_shape[2], out_shape[3]
    return ResampleParams(
        upx=p.downx,
        upy=p.downy,
        downx=p.upx,
        downy=p.upy,
        padx0=fw - p.padx0 - 1,
        padx1=in_w * p.upx - out_w * p.downx + p.padx0 - p.upx + 1,
        pady0=fh - p.pady0 - 1,
        pady1=in_h * p.upy - out_h * p.downy + p.pady0 - p.upy + 1,
        flip_filter=not p.flip_filter,
        gain=p.gain,
    )


class _UpFirDn2d(torch.autograd.Function):
    """upfirdn2d whose backward is the adjoint upfirdn2d (itself this Function, hence any-order gradients)."""

    @staticmethod
    def forward(ctx, x, f, params, plugin):  # type: ignore[override]
        y = _forward_cuda(plugin, x, f, params) if plugin is not None else _forward_ref(x, f, params)
        ctx.save_for_backward(f)
        ctx.params = params
        ctx.plugin = plugin
        ctx.in_shape = x.shape
        ctx.out_shape = y.shape
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        (f,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            grad_params = _adjoint_params(ctx.in_shape, ctx.out_shape, f, ctx.params)
            dx = _UpFirDn2d.apply(dy, f, grad_params, ctx.plugin)
        return dx, None, None, None


def _forward_ref(x: torch.Tensor, f: torch.Tensor, p: ResampleParams) -> torch.Tensor:
    """Reference path in `x`'s dtype with the gain folded into the filter; the result is never a view."""
    g = (f * (p.gain ** (f.ndim / 2))).to(x.dtype)
    if p.upx == 1 and p.upy == 1:
        return _pad_filter_downsample(x, g, p)
    return _upsample_filter_downsample(x, g, p)


def _depthwise(kernel: torch.Tensor, channels: int, shape: Sequence[int]) -> torch.Tensor:
    return kernel.reshape(1, 1, *shape).repeat(channels, 1, 1, 1)


def _pad_filter_downsample(x: torch.Tensor, g: torch.Tensor, p: ResampleParams) -> torch.Tensor:
    """No upsampling: pad, then crop, then a depthwise correlation with the flipped filter and stride `down`.
    Padding that is the same on both sides of an axis and not negative is left to the convolution (no copy)."""
    c = x.shape[1]
    conv_pady = p.pady0 if p.pady0 == p.pady1 >= 0 else 0
    conv_padx = p.padx0 if p.padx0 == p.padx1 >= 0 else 0
    pads = [p.padx0 - conv_padx, p.padx1 - conv_padx, p.pady0 - conv_pady, p.pady1 - conv_pady]
    if any(pads):
        x = F.pad(x, [max(v, 0) for v in pads])
        x = x[:, :, max(-pads[2], 0) : x.shape[2] - max(-pads[3], 0), max(-pads[0], 0) : x.shape[3] - max(-pads[1], 0)]
    k = g if p.flip_filter else g.flip(list(range(g.ndim)))
    if k.ndim == 2:
        kernel = _depthwise(k, c, k.shape)
        return F.conv2d(x, kernel, stride=(p.downy, p.downx), padding=(conv_pady, conv_padx), groups=c)
    x = F.conv2d(x, _depthwise(k, c, [1, -1]), stride=(1, p.downx), padding=(0, conv_padx), groups=c)
    return F.conv2d(x, _depthwise(k, c, [-1, 1]), stride=(p.downy, 1), padding=(conv_pady, 0), groups=c)


def _upsample_filter_downsample(x: torch.Tensor, g: torch.Tensor, p: ResampleParams) -> torch.Tensor:
    """Upsampling: zero insertion + true convolution as one strided depthwise transposed conv (no work on the
    inserted zeros), then the padding/cropping as a shift of its full output, then keep every `down`-th sample.
    A crop that is the same on both sides of an axis is left to the transposed conv's `padding` (no copy)."""
    c, h, w = x.shape[1:]
    k = g.flip(list(range(g.ndim))) if p.flip_filter else g
    fw, fh = get_filter_size(g)
    # Output sample i (before downsampling) is full[i + fh - 1 - py0], where `full` is the transposed conv's
    # uncropped output ((h - 1) * up + fh rows); zeros outside it.
    start_y, start_x = fh - 1 - p.pady0, fw - 1 - p.padx0
    end_y, end_x = h * p.upy + p.pady1, w * p.upx + p.padx1  # = start + (output size before downsampling)
    full_h, full_w = (h - 1) * p.upy + fh, (w - 1) * p.upx + fw
    pads = [-start_x, end_x - full_w, -start_y, end_y - full_h]  # > 0 pads zeros, < 0 crops
    crop_x = -pads[0] if pads[0] == pads[1] < 0 else 0
    crop_y = -pads[2] if pads[2] == pads[3] < 0 else 0
    pads = [pads[0] + crop_x, pads[1] + crop_x, pads[2] + crop_y, pads[3] + crop_y]
    if k.ndim == 2:
        kernel = _depthwise(k, c, k.shape)
        y = F.conv_transpose2d(x, kernel, stride=(p.upy, p.upx), padding=(crop_y, crop_x), groups=c)
    else:
        y = F.conv_transpose2d(x, _depthwise(k, c, [1, -1]), stride=(1, p.upx), padding=(0, crop_x), groups=c)
        y = F.conv_transpose2d(y, _depthwise(k, c, [-1, 1]), stride=(p.upy, 1), padding=(crop_y, 0), groups=c)
    if any(v > 0 for v in pads):
        y = F.pad(y, [max(v, 0) for v in pads])
    if any(v < 0 for v in pads):
        y = F.pad(y, [min(v, 0) for v in pads])  # a copy, not a view (outputs may be modified in place)
    if p.downx > 1 or p.downy > 1:
        y = y[:, :, :: p.downy, :: p.downx].clone()
    return y


def _forward_cuda(plugin, x: torch.Tensor, f: torch.Tensor, p: ResampleParams) -> torch.Tensor:
    """CUDA path: one fused kernel call for a 2-D filter, an x pass then a y pass for a separable one."""
    if f.ndim == 2:
        return plugin.upfirdn2d(
            x, f, p.upx, p.upy, p.downx, p.downy, p.padx0, p.padx1, p.pady0, p.pady1, p.flip_filter, p.gain
        )
    pass_gain = math.sqrt(p.gain)
    x = plugin.upfirdn2d(x, f[np.newaxis, :], p.upx, 1, p.downx, 1, p.padx0, p.padx1, 0, 0, p.flip_filter, pass_gain)
    return plugin.upfirdn2d(x, f[:, np.newaxis], 1, p.upy, 1, p.downy, 0, 0, p.pady0, p.pady1, p.flip_filter, pass_gain)


# ----------------------------------------------------------------------------
# Wrappers: upfirdn2d with the padding that keeps the image centred (and the gain up^2 that compensates the
# zero insertion when upsampling), plus any user padding on top.


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "cuda",
) -> torch.Tensor:
    """FIR-filter `x` keeping its size (`'same'` padding for the filter, plus `padding`)."""
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    padding = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: Scaling = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "cuda",
) -> torch.Tensor:
    """Upsample `x` by `up` (output `up*H x up*W`), FIR-interpolating with `f`; gain `up**2` keeps the DC level."""
    upx, upy = parse_scaling(up, "up")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    padding = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=[upx, upy], padding=padding, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: Scaling = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "cuda",
) -> torch.Tensor:
    """Downsample `x` by `down` (output `H//down x W//down`), FIR-filtering with `f` first."""
    downx, downy = parse_scaling(down, "down")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    padding = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=[downx, downy], padding=padding, flip_filter=flip_filter, gain=gain, impl=impl)


def _self_check_cases() -> list[_self_check.Case]:
    """The compiled kernel's first-use check: upsampling (G), downsampling (D) and a separable filter with
    uneven factors and a crop."""

    def case(taps, separable: bool | None, up, down, padding, gain: float):
        f = setup_filter(taps, separable=separable)
        params = ResampleParams(
            *parse_scaling(up, "up"), *parse_scaling(down, "down"), *parse_padding(padding), False, gain
        )
        return lambda plugin, x: _UpFirDn2d.apply(x, f.to(x.device), params, plugin)

    return [
        ("up 2", case([1, 3, 3, 1], None, 2, 1, [2, 1, 2, 1], 4.0), [2, 3, 6, 7]),
        ("down 2", case([1, 3, 3, 1], None, 1, 2, 1, 1.0), [2, 3, 8, 9]),
        ("separable", case([1, 2, 4, 1, 3, 2, 1, 1], True, [2, 1], [1, 2], [3, 2, -1, 4], 2.0), [2, 3, 7, 6]),
    ]


_self_check.register_cases("upfirdn2d", _self_check_cases)


__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]
