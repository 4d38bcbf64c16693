"""How images reach a detector's input size: the original's `legacy` protocol or clean-fid's `clean` one.

* `legacy`: uint8 images go to the detector unchanged and the detector resizes them itself (Inception: the
  TF-1.x bilinear rule without antialiasing; VGG16: its own resize; the domain detector: antialiased
  bilinear). These are the numbers of the original and of published StyleGAN2 results.
* `clean` (Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation"): each
  channel of each uint8 image is converted to float and resized with PIL's bicubic filter (Keys cubic,
  a = -0.5, widened by the scale factor when downsampling, i.e. antialiased), clipped to [0, 255] and passed
  to the detector as float without re-quantising. The detector sees its own input size and skips its resize.

`clean_resize` computes PIL's separable filter as two float64 matrix products (one per axis), so it runs
batched on any device; tests compare it with PIL itself.
"""

from __future__ import annotations

import functools

import torch

RESIZE_MODES = ("legacy", "clean")
_BICUBIC_A = -0.5  # PIL's cubic coefficient (OpenCV and torch's non-antialiased bicubic use -0.75).
_BICUBIC_SUPPORT = 2.0


def check_resize_mode(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    return mode


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel with a = -0.5 on |x| (0 beyond 2)."""
    a = _BICUBIC_A
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((x - 5) * x + 8) * x * a - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


@functools.lru_cache(maxsize=16)
def pil_bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """float64 [n_out, n_in] weights of PIL's bicubic resampling along one axis (cached; do not modify).

    Output sample j is centred at source coordinate c = (j + 0.5) * s with s = n_in / n_out; it takes source
    pixels i in [int(c - R + 0.5), int(c + R + 0.5)) with R = 2 * max(s, 1), weighted by
    cubic((i - c + 0.5) / max(s, 1)) and normalised to sum 1 (PIL's ImagingResample coefficient rule).
    """
    scale = n_in / n_out
    filter_scale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filter_scale
    weights = torch.zeros([n_out, n_in], dtype=torch.float64)
    for j in range(n_out):
        center = (j + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = torch.arange(lo, hi, dtype=torch.float64)
        w = _bicubic((taps - center + 0.5) / filter_scale)
        weights[j, lo:hi] = w / w.sum()
    return weights


def clean_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (or float 0..255) [N, C, H, W] -> float32 [N, C, size, size] by PIL bicubic per channel, clipped.

    Rows first then columns, in float64 (PIL filters horizontally then vertically; the order changes the
    result only by rounding).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {list(images.shape)}")
    _, _, h, w = images.shape
    x = images.to(torch.float64)
    if (h, w) != (size, size):
        rows = pil_bicubic_matrix(w, size).to(images.device)
        cols = pil_bicubic_matrix(h, size).to(images.device)
        x = torch.einsum("nchw,vw->nchv", x, rows)
        x = torch.einsum("nchv,uh->ncuv", x, cols)
    return x.clamp(0, 255).to(torch.float32)
