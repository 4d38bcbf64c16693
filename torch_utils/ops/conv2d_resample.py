"""2-D convolution with optional FIR upsampling/downsampling.

Mathematically: pad (relative to the upsampled image), FIR-upsample with gain up^2 if `up > 1`, correlate
with `w` (flipped if not `flip_weight`), FIR-downsample if `down > 1`. The evaluation order follows the
original's fast paths for the closest numerical parity, first match wins: (a) 1x1 kernel with down only:
downsample, then 1x1 conv; (b) 1x1 kernel with up only: 1x1 conv, then upsample; (c) down only: FIR filter,
then strided conv; (d) up: transposed conv with stride `up`, then FIR (and FIR-downsample if `down > 1`);
(e) no resampling, symmetric padding: one conv2d; (f) otherwise the definition above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d as _upfirdn2d
from torch_utils.ops.upfirdn2d import Padding, get_filter_size, parse_padding


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolve `x` `[N, I, H, W]` with `w` `[O, I/groups, kh, kw]`, FIR-resampling with `f` by `up`/`down`.

    `flip_weight=True` is a correlation (standard conv2d), False a true convolution. `padding` (int, [px, py]
    or [px0, px1, py0, py1]) is relative to the upsampled image. Returns `[N, O, H', W']`.
    """
    _check_args(x, w, f, up, down, groups)
    kh, kw = w.shape[2], w.shape[3]
    fw, fh = get_filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0, px1, py0, py1 = (
            px0 + (fw + up - 1) // 2,
            px1 + (fw - up) // 2,
            py0 + (fh + up - 1) // 2,
            py1 + (fh - up) // 2,
        )
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    def conv(t: torch.Tensor, stride: int = 1, conv_padding: int | tuple[int, int] = 0) -> torch.Tensor:
        weight = w if flip_weight else w.flip([2, 3])
        return F.conv2d(t, weight, stride=stride, padding=conv_padding, groups=groups)

    # (a) 1x1 kernel, downsampling only: downsample first, then the 1x1 conv.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = _upfirdn2d.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, impl="cuda")
        return conv(x)
    # (b) 1x1 kernel, upsampling only: the 1x1 conv first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = conv(x)
        return _upfirdn2d.upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter, impl="cuda")
    # (c) downsampling only: filter (no resampling), then a strided conv.
    if down > 1 and up == 1:
        x = _upfirdn2d.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, impl="cuda")
        return conv(x, stride=down)
    # (d) upsampling (any downsampling): transposed conv, then FIR filter, then optional downsampling.
    if up > 1:
        qx0, qx1, qy0, qy1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        tx, ty = max(min(-qx0, -qx1), 0), max(min(-qy0, -qy1), 0)
        x = _transposed_conv(x, w, up, groups, flip_weight, conv_padding=(ty, tx))
        x = _upfirdn2d.upfirdn2d(
            x, f, padding=[qx0 + tx, qx1 + tx, qy0 + ty, qy1 + ty], gain=up**2, flip_filter=flip_filter, impl="cuda"
        )
        if down > 1:
            x = _upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="cuda")
        return x
    # (e) no resampling, symmetric non-negative padding: let the conv pad.
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        return conv(x, conv_padding=(py0, px0))
    # (f) the general definition (here up == down == 1): pad/crop, then conv.
    return conv(F.pad(x, pad))


def _transposed_conv(
    x: torch.Tensor, w: torch.Tensor, up: int, groups: int, flip_weight: bool, conv_padding: tuple[int, int]
) -> torch.Tensor:
    """Strided transposed conv of path (d) (weight flipped iff `flip_weight`); the FIR step follows."""
    out_channels, in_per_group, kh, kw = w.shape
    if groups == 1:
        w_t = w.transpose(0, 1)
    else:
        w_t = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w_t = w_t.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    if flip_weight:
        w_t = w_t.flip([2, 3])
    return F.conv_transpose2d(x, w_t, stride=up, padding=conv_padding, groups=groups)


def _check_args(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None, up: int, down: int, groups: int) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"conv2d_resample input must be a 4-D tensor [N, I, H, W], got {getattr(x, 'shape', type(x))}")
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError("conv2d_resample weight must be a 4-D tensor [O, I/groups, kh, kw] of the input's dtype")
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError("conv2d_resample filter must be None or a float32 1-D/2-D tensor (use setup_filter())")
    for name, value in (("up", up), ("down", down), ("groups", groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"conv2d_resample {name} must be an int >= 1, got {value!r}")
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(
            f"conv2d_resample channel mismatch: input has {x.shape[1]} channels, weight {tuple(w.shape)} with groups={groups}"
        )


__all__ = ["conv2d_resample"]
