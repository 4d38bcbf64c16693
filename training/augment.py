"""ADA: the differentiable augmentation pipeline (`AugmentPipe`) and its p controller (`AdaController`).

Images are float32 [N, C, H, W] in [-1, 1]. Every op's per-sample probability is
(op multiplier) * p, where `p` is a scalar buffer of the pipe. All random draws come from
the global torch RNG on the images' device, in a fixed order, so a run is reproducible from
`torch.manual_seed` and matches the original pipe draw for draw: stages run blit ->
geometric -> colour -> filter -> noise -> cutout; each op draws its value first and then its
gate uniform (cutout: gate first), and an op whose multiplier is 0 draws nothing. The ops,
their strengths and the presets are described in docs/data.md.

Training-loop wiring (what the loss and loop do with these):
    pipe = AugmentPipe(**AUGPIPE_PRESETS['bgc']).train().requires_grad_(False).to(device)
    pipe.p.copy_(torch.as_tensor(augment_p))
    ada = AdaController(pipe, target=ada_target, interval=ada_interval, kimg=ada_kimg)  # target None = fixed p
    # loss, Dmain and Dreg real part:  real_logits = D(pipe(real_img), c);  ada.accumulate(real_logits)
    # loop, after `batch_idx += 1`:    ada.step(batch_idx, batch_size)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import misc
from torch_utils.ops import upfirdn2d
from training.augment_matrices import (
    rotate2d,
    rotate3d,
    scale2d,
    scale3d,
    translate2d,
    translate3d,
)

# ----------------------------------------------------------------------------
# Wavelet coefficients (low-pass decomposition filters).

SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
SYM6 = [
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
]

# Relative power of the four image-filter bands (lowest first): the per-sample band gains are normalised so that
# sum_i power_i * gain_i^2 = 1, which keeps the expected image energy unchanged.
IMGFILTER_EXPECTED_POWER = [10 / 13, 1 / 13, 1 / 13, 1 / 13]

# ----------------------------------------------------------------------------
# The `--augpipe` presets, named by their stages in order (b blit, g geom, c color, f filter, n noise, c cutout):
# every listed op gets multiplier 1.

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)

AUGPIPE_PRESETS: dict[str, dict[str, int]] = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": dict(**_BLIT, **_GEOM),
    "bgc": dict(**_BLIT, **_GEOM, **_COLOR),
    "bgcf": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1),
    "bgcfn": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1),
    "bgcfnc": dict(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1, cutout=1),
}


def make_imgfilter_bank() -> np.ndarray:
    """The [4, 43] float64 image-filter bank (row 0 = lowest band; the rows add up to a unit impulse).

    From the sym2 wavelet h: L2 = (h * reverse(h)) / 2 and H2 likewise for the high-pass h_hi[k] = (-1)^k h[k].
    Start from rows [1, 0, 0, 0]; three times: upsample every row by 2 (zero insertion), convolve it with L2, and
    add H2 centred to row i (i = 1, 2, 3). Widths grow 1 -> 7 -> 19 -> 43.
    """
    h = np.asarray(SYM2)
    h_hi = h * (-1.0) ** np.arange(h.size)
    lo2 = np.convolve(h, h[::-1]) / 2
    hi2 = np.convolve(h_hi, h_hi[::-1]) / 2
    bank = np.eye(4, 1)  # column [1, 0, 0, 0]
    for i in range(1, 4):
        up = np.zeros([4, bank.shape[1] * 2 - 1])
        up[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in up])
        start = (bank.shape[1] - hi2.size) // 2
        bank[i, start : start + hi2.size] += hi2
    return bank


def _debug_fill(value: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like `value` holding the 0-d `fill` everywhere."""
    return torch.zeros_like(value) + fill


def _gate(
    value: torch.Tensor, prob: torch.Tensor, identity: float, gate_shape: list[int] | None = None
) -> torch.Tensor:
    """Keep `value` where a fresh U(0,1) draw (shape `gate_shape`, default value.shape) is < prob."""
    u = torch.rand(gate_shape if gate_shape is not None else value.shape, device=value.device)
    return torch.where(u < prob, value, torch.full_like(value, identity))


# ----------------------------------------------------------------------------


class AugmentPipe(torch.nn.Module):
    """ADA augmentation pipe: blit -> geometric -> colour -> image filter -> noise -> cutout.

    Arguments are the per-op probability multipliers (0 switches an op off) and strengths, named as in the
    original (docs/data.md lists them). Buffers: `p` (scalar overall strength, 1.0 at construction),
    `Hz_geom` ([12] sym6 low-pass) and `Hz_fbank` ([4, 43] image-filter bank).
    Differentiable (to second order) w.r.t. the input images; the random parameters are not.
    """

    def __init__(
        self,
        xflip: float = 0,
        rotate90: float = 0,
        xint: float = 0,
        xint_max: float = 0.125,
        scale: float = 0,
        rotate: float = 0,
        aniso: float = 0,
        xfrac: float = 0,
        scale_std: float = 0.2,
        rotate_max: float = 1,
        aniso_std: float = 0.2,
        xfrac_std: float = 0.125,
        brightness: float = 0,
        contrast: float = 0,
        lumaflip: float = 0,
        hue: float = 0,
        saturation: float = 0,
        brightness_std: float = 0.2,
        contrast_std: float = 0.5,
        hue_max: float = 1,
        saturation_std: float = 1,
        imgfilter: float = 0,
        imgfilter_bands: list[float] = (1, 1, 1, 1),
        imgfilter_std: float = 1,
        noise: float = 0,
        cutout: float = 0,
        noise_std: float = 0.1,
        cutout_size: float = 0.5,
    ):
        super().__init__()
        self.init_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.init_kwargs["imgfilter_bands"] = list(imgfilter_bands)
        if len(imgfilter_bands) != 4:
            raise ValueError(f"imgfilter_bands must have exactly 4 entries, got {len(imgfilter_bands)}")
        self.register_buffer("p", torch.ones([]))

        # Pixel blitting.
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)
        # General geometric transforms.
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)
        self.rotate_max = float(rotate_max)
        self.aniso_std = float(aniso_std)
        self.xfrac_std = float(xfrac_std)
        # Colour transforms.
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)
        self.hue_max = float(hue_max)
        self.saturation_std = float(saturation_std)
        # Image-space filtering.
        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = [float(x) for x in imgfilter_bands]
        self.imgfilter_std = float(imgfilter_std)
        # Image-space corruptions.
        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)

        self.register_buffer("Hz_geom", upfirdn2d.setup_filter(SYM6))
        self.register_buffer("Hz_fbank", torch.as_tensor(make_imgfilter_bank(), dtype=torch.float32))

    # ------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, debug_percentile: float | None = None) -> torch.Tensor:
        """Augment `images` [N, C, H, W] float32; `debug_percentile` q in (0, 1) fixes every enabled op fully on."""
        if not (isinstance(images, torch.Tensor) and images.ndim == 4):
            raise ValueError(
                f"AugmentPipe expects a 4-D image tensor [N, C, H, W], got "
                f"{type(images).__name__}{list(images.shape) if isinstance(images, torch.Tensor) else ''}"
            )
        batch_size, num_channels, height, width = images.shape
        device = images.device
        if debug_percentile is not None and not 0 < debug_percentile < 1:
            raise ValueError(f"debug_percentile must lie strictly between 0 and 1, got {debug_percentile}")
        q = None if debug_percentile is None else torch.as_tensor(debug_percentile, dtype=torch.float32, device=device)

        if any(x > 0 for x in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac)):
            G_inv = self._geometric_matrix(batch_size, width, height, device, q)
            images = self._apply_geometric(images, G_inv)

        C = self._colour_matrix(batch_size, num_channels, device, q)
        if C is not None:
            images = self._apply_colour(images, C)

        if self.imgfilter > 0:
            images = self._apply_imgfilter(images, q)
        if self.noise > 0:
            images = self._apply_noise(images, q)
        if self.cutout > 0:
            images = self._apply_cutout(images, q)
        return images

    # ------------------------------------------------------------------------
    # Geometric stage: each op right-multiplies its factor onto G_inv (output -> input pixel coordinates, origin at
    # the image centre); then one resampling: reflect-pad by the margins the corners need, 2x upsample with the
    # sym6 filter, bilinear grid_sample through G_inv, 2x downsample with the same filter.

    def _geometric_matrix(self, N: int, W: int, H: int, device: torch.device, q: torch.Tensor | None) -> torch.Tensor:
        """Draw the blit and general geometric parameters; returns G_inv [N, 3, 3] (output -> input pixels)."""
        G_inv = torch.eye(3, device=device).repeat([N, 1, 1])
        p = self.p
        if self.xflip > 0:
            i = torch.floor(torch.rand([N], device=device) * 2)
            i = _gate(i, self.xflip * p, 0)
            if q is not None:
                i = _debug_fill(i, torch.floor(q * 2))
            G_inv = G_inv @ scale2d(1 - 2 * i, 1)
        if self.rotate90 > 0:
            i = torch.floor(torch.rand([N], device=device) * 4)
            i = _gate(i, self.rotate90 * p, 0)
            if q is not None:
                i = _debug_fill(i, torch.floor(q * 4))
            G_inv = G_inv @ rotate2d(i * (np.pi / 2))
        if self.xint > 0:
            t = (torch.rand([N, 2], device=device) * 2 - 1) * self.xint_max
            t = _gate(t, self.xint * p, 0, [N, 1])
            if q is not None:
                t = _debug_fill(t, (q * 2 - 1) * self.xint_max)
            G_inv = G_inv @ translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H))
        if self.scale > 0:
            s = torch.exp2(torch.randn([N], device=device) * self.scale_std)
            s = _gate(s, self.scale * p, 1)
            if q is not None:
                s = _debug_fill(s, torch.exp2(torch.erfinv(q * 2 - 1) * self.scale_std))
            G_inv = G_inv @ scale2d(1 / s, 1 / s)
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))  # P(pre or post rotation) = rotate * p
        if self.rotate > 0:
            theta = (torch.rand([N], device=device) * 2 - 1) * np.pi * self.rotate_max
            theta = _gate(theta, p_rot, 0)
            if q is not None:
                theta = _debug_fill(theta, (q * 2 - 1) * np.pi * self.rotate_max)
            G_inv = G_inv @ rotate2d(theta)
        if self.aniso > 0:
            s = torch.exp2(torch.randn([N], device=device) * self.aniso_std)
            s = _gate(s, self.aniso * p, 1)
            if q is not None:
                s = _debug_fill(s, torch.exp2(torch.erfinv(q * 2 - 1) * self.aniso_std))
            inv_s = 1 / s
            G_inv = G_inv @ scale2d(inv_s, 1 / inv_s)  # inverse of S(s, 1/s), as the reference rounds it
        if self.rotate > 0:
            theta = (torch.rand([N], device=device) * 2 - 1) * np.pi * self.rotate_max
            theta = _gate(theta, p_rot, 0)
            if q is not None:
                theta = torch.zeros_like(theta)
            G_inv = G_inv @ rotate2d(theta)
        if self.xfrac > 0:
            t = torch.randn([N, 2], device=device) * self.xfrac_std
            t = _gate(t, self.xfrac * p, 0, [N, 1])
            if q is not None:
                t = _debug_fill(t, torch.erfinv(q * 2 - 1) * self.xfrac_std)
            G_inv = G_inv @ translate2d(-t[:, 0] * W, -t[:, 1] * H)
        return G_inv

    def _apply_geometric(self, images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
        """Resample `images` through G_inv: reflect-pad, 2x upsample, bilinear grid sample, 2x downsample."""
        N, C, H, W = images.shape
        device = images.device
        Hz_pad = self.Hz_geom.shape[0] // 4

        # Margins: where the transformed output corners land, over the whole batch.
        cx, cy = (W - 1) / 2, (H - 1) / 2
        corners = misc.constant(
            [[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=torch.float32, device=device
        )
        corners = G_inv @ corners.t()  # [N, 3, 4]
        corners = corners[:, :2, :].permute(1, 0, 2).flatten(1)  # [2, N*4]
        margin = torch.cat([-corners, corners]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + misc.constant([Hz_pad * 2 - cx, Hz_pad * 2 - cy] * 2, dtype=torch.float32, device=device)
        margin = margin.max(misc.constant([0, 0] * 2, dtype=torch.float32, device=device))
        margin = margin.min(misc.constant([W - 1, H - 1] * 2, dtype=torch.float32, device=device))
        mx0, my0, mx1, my1 = margin.ceil().to(torch.int32).tolist()

        # Pad, upsample, and move G_inv into the upsampled pixel grid.
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        G_inv = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, device=device) @ G_inv
        images = upfirdn2d.upsample2d(images, self.Hz_geom, up=2)
        G_inv = scale2d(2, 2, device=device) @ G_inv @ scale2d(0.5, 0.5, device=device)
        G_inv = translate2d(-0.5, -0.5, device=device) @ G_inv @ translate2d(0.5, 0.5, device=device)

        # Bilinear resampling in normalized coordinates.
        out_shape = [N, C, (H + Hz_pad * 2) * 2, (W + Hz_pad * 2) * 2]
        G_inv = (
            scale2d(2 / images.shape[3], 2 / images.shape[2], device=device)
            @ G_inv
            @ scale2d(out_shape[3] / 2, out_shape[2] / 2, device=device)
        )
        grid = F.affine_grid(G_inv[:, :2, :], out_shape, align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Downsample and crop back to [N, C, H, W].
        return upfirdn2d.downsample2d(images, self.Hz_geom, down=2, padding=-Hz_pad * 2, flip_filter=True)

    # ------------------------------------------------------------------------
    # Colour stage: each op left-multiplies a 4x4 homogeneous matrix onto C, applied to RGB (or luma) once.

    def _colour_matrix(
        self, N: int, num_channels: int, device: torch.device, q: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Draw the colour parameters; returns C [N, 4, 4] acting on (r, g, b, 1), or None if no op is enabled."""
        C = torch.eye(4, device=device).repeat([N, 1, 1])
        enabled = False
        p = self.p
        luma = misc.constant(np.asarray([1, 1, 1, 0]) / np.sqrt(3), dtype=torch.float32, device=device)
        luma_outer = luma.outer(luma)
        eye4 = torch.eye(4, device=device)
        if self.brightness > 0:
            b = torch.randn([N], device=device) * self.brightness_std
            b = _gate(b, self.brightness * p, 0)
            if q is not None:
                b = _debug_fill(b, torch.erfinv(q * 2 - 1) * self.brightness_std)
            C = translate3d(b, b, b) @ C
            enabled = True
        if self.contrast > 0:
            c = torch.exp2(torch.randn([N], device=device) * self.contrast_std)
            c = _gate(c, self.contrast * p, 1)
            if q is not None:
                c = _debug_fill(c, torch.exp2(torch.erfinv(q * 2 - 1) * self.contrast_std))
            C = scale3d(c, c, c) @ C
            enabled = True
        if self.lumaflip > 0:
            i = torch.floor(torch.rand([N, 1, 1], device=device) * 2)
            i = _gate(i, self.lumaflip * p, 0)
            if q is not None:
                i = _debug_fill(i, torch.floor(q * 2))
            C = (eye4 - 2 * luma_outer * i) @ C
            enabled = True
        if self.hue > 0 and num_channels > 1:
            theta = (torch.rand([N], device=device) * 2 - 1) * np.pi * self.hue_max
            theta = _gate(theta, self.hue * p, 0)
            if q is not None:
                theta = _debug_fill(theta, (q * 2 - 1) * np.pi * self.hue_max)
            C = rotate3d(luma, theta) @ C
            enabled = True
        if self.saturation > 0 and num_channels > 1:
            s = torch.exp2(torch.randn([N, 1, 1], device=device) * self.saturation_std)
            s = _gate(s, self.saturation * p, 1)
            if q is not None:
                s = _debug_fill(s, torch.exp2(torch.erfinv(q * 2 - 1) * self.saturation_std))
            C = (luma_outer + (eye4 - luma_outer) * s) @ C
            enabled = True
        return C if enabled else None

    @staticmethod
    def _apply_colour(images: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """Apply the per-sample colour matrix C [N, 4, 4] to RGB or grayscale images."""
        N, num_channels, H, W = images.shape
        images = images.reshape([N, num_channels, H * W])
        if num_channels == 3:
            images = C[:, :3, :3] @ images + C[:, :3, 3:]
        elif num_channels == 1:
            C = C[:, :3, :].mean(dim=1, keepdim=True)
            images = images * C[:, :, :3].sum(dim=2, keepdim=True) + C[:, :, 3:]
        else:
            raise ValueError("Image must be RGB (3 channels) or L (1 channel)")
        return images.reshape([N, num_channels, H, W])

    # ------------------------------------------------------------------------
    # Image-space filtering (per-sample band gains on the filter bank) and corruptions (additive noise, cutout).

    def _apply_imgfilter(self, images: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        """Amplify/attenuate four frequency bands by random per-sample gains (separable 43-tap filter)."""
        N, num_channels, H, W = images.shape
        device = images.device
        num_bands, num_taps = self.Hz_fbank.shape
        if min(H, W) <= num_taps // 2:
            raise ValueError(
                f"imgfilter needs images larger than {num_taps // 2} pixels per side (reflect padding), "
                f"got {H}x{W}; disable imgfilter for smaller images"
            )
        expected_power = misc.constant(IMGFILTER_EXPECTED_POWER, dtype=torch.float32, device=device)
        g = torch.ones([N, num_bands], device=device)
        for i, band_strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(torch.randn([N], device=device) * self.imgfilter_std)
            t_i = _gate(t_i, self.imgfilter * self.p * band_strength, 1)
            if q is not None:
                t_i = (
                    _debug_fill(t_i, torch.exp2(torch.erfinv(q * 2 - 1) * self.imgfilter_std))
                    if band_strength > 0
                    else torch.ones_like(t_i)
                )
            t = torch.ones([N, num_bands], device=device)
            t[:, i] = t_i
            t = t / (expected_power * t.square()).sum(dim=-1, keepdim=True).sqrt()
            g = g * t

        # Per-sample filter h' = g . bank, the same for every channel: one depthwise conv per axis.
        kernel = (g @ self.Hz_fbank).unsqueeze(1).repeat([1, num_channels, 1]).reshape([N * num_channels, 1, num_taps])
        pad = num_taps // 2
        images = F.pad(images, [pad, pad, pad, pad], mode="reflect")
        images = images.reshape([1, N * num_channels, H + 2 * pad, W + 2 * pad])
        images = F.conv2d(images, kernel.unsqueeze(2), groups=N * num_channels)
        images = F.conv2d(images, kernel.unsqueeze(3), groups=N * num_channels)
        return images.reshape([N, num_channels, H, W])

    def _apply_noise(self, images: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        """Add Gaussian noise with a per-sample std sigma = |N(0,1)| * noise_std."""
        N, num_channels, H, W = images.shape
        device = images.device
        sigma = torch.randn([N, 1, 1, 1], device=device).abs() * self.noise_std
        sigma = _gate(sigma, self.noise * self.p, 0)
        if q is not None:
            sigma = _debug_fill(sigma, torch.erfinv(q) * self.noise_std)
        return images + torch.randn([N, num_channels, H, W], device=device) * sigma

    def _apply_cutout(self, images: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
        """Zero a square of side cutout_size (relative) at a uniform random centre, per sample."""
        N, num_channels, H, W = images.shape
        device = images.device
        size = torch.full([N, 2, 1, 1, 1], self.cutout_size, device=device)
        size = _gate(size, self.cutout * self.p, 0, [N, 1, 1, 1, 1])
        center = torch.rand([N, 2, 1, 1, 1], device=device)
        if q is not None:
            size = torch.full_like(size, self.cutout_size)
            center = _debug_fill(center, q)
        coord_x = torch.arange(W, device=device).reshape([1, 1, 1, -1])
        coord_y = torch.arange(H, device=device).reshape([1, 1, -1, 1])
        keep_x = ((coord_x + 0.5) / W - center[:, 0]).abs() >= size[:, 0] / 2
        keep_y = ((coord_y + 0.5) / H - center[:, 1]).abs() >= size[:, 1] / 2
        mask = torch.logical_or(keep_x, keep_y).to(torch.float32)
        return images * mask


# ----------------------------------------------------------------------------


class AdaController:
    """Adaptive p: moves `owner.p` so that r_t = E[sign(D(real))] tracks `target`.

    `owner` is any object with a scalar float32 tensor attribute `p` (an AugmentPipe, or the
    APA state of training/apa.py); p is read through it at every update, so moving the owner
    to another device is fine. `accumulate` adds the signs of D's real logits (call it in
    Dmain *and* Dreg); `update` (or `step`, which checks the interval) sets
    p <- max(p + sign(r_t - target) * batch_size * interval / (kimg * 1000), 0), where r_t is
    the mean sign since the previous update over all ranks (the accumulators are summed with
    torch.distributed.all_reduce when a process group is initialized). p has no upper clamp.
    target=None is fixed-p mode: nothing is accumulated and p never changes.
    """

    def __init__(self, owner: Any, target: float | None = 0.6, interval: int = 4, kimg: float = 500):
        if not isinstance(getattr(owner, "p", None), torch.Tensor):
            raise ValueError("AdaController needs an owner with a tensor attribute `p` (e.g. an AugmentPipe)")
        if int(interval) != interval or interval < 1:
            raise ValueError(f"ADA interval must be a positive integer (batches), got {interval}")
        if not kimg > 0:
            raise ValueError(f"ADA kimg must be positive (kimg for p to change by 1.0), got {kimg}")
        self.owner = owner
        self.target = None if target is None else float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.last_rt: float | None = None  # r_t used by the latest update (for logging)
        self._stats = torch.zeros([2], dtype=torch.float64, device=owner.p.device)  # [sum of signs, count]

    @property
    def p(self) -> torch.Tensor:
        """The controlled probability (0-d float32 tensor, shared with the owner)."""
        return self.owner.p

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add sign(real_logits) (any shape, one entry per sample) to the statistic; no GPU sync."""
        if self.target is None:
            return
        signs = torch.sign(real_logits.detach()).to(torch.float64)
        if self._stats.device != signs.device:
            self._stats = self._stats.to(signs.device)
        count = torch.as_tensor(float(signs.numel()), dtype=torch.float64, device=signs.device)
        self._stats += torch.stack([signs.sum(), count])

    def step(self, batch_idx: int, batch_size: int) -> bool:
        """Call after `batch_idx += 1`: updates p iff batch_idx % interval == 0; returns whether it did."""
        if self.target is None or batch_idx % self.interval != 0:
            return False
        self.update(batch_size)
        return True

    def update(self, batch_size: int) -> None:
        """Adjust p from the signs accumulated since the previous update (all ranks), then reset them.

        `batch_size` is the total batch per iteration over all GPUs. With no accumulated samples
        (on any rank) p is left unchanged.
        """
        if self.target is None:
            return
        stats = self._stats.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_backend() == "nccl" and stats.device.type != "cuda":
                stats = stats.to(torch.device("cuda", torch.cuda.current_device()))  # NCCL reduces CUDA tensors only
            torch.distributed.all_reduce(stats)  # sum over ranks
        self._stats.zero_()
        sign_sum, count = stats.tolist()
        if count == 0:
            return
        self.last_rt = sign_sum / count
        adjust = float(np.sign(self.last_rt - self.target)) * (batch_size * self.interval) / (self.kimg * 1000)
        self.p.copy_((self.p + adjust).clamp(min=0))

    def state_dict(self) -> dict[str, Any]:
        """This rank's resumable state: p and the (local, not yet reduced) accumulators."""
        sign_sum, count = self._stats.tolist()
        return dict(p=float(self.p), sign_sum=sign_sum, count=count, last_rt=self.last_rt)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore p (into the owner's buffer) and the accumulators saved by `state_dict`."""
        missing = {"p", "sign_sum", "count"} - set(state)
        if missing:
            raise ValueError(f"AdaController state is missing {sorted(missing)}; pass a dict from state_dict()")
        self.p.copy_(torch.as_tensor(state["p"], dtype=self.p.dtype))
        self._stats = torch.as_tensor([state["sign_sum"], state["count"]], dtype=torch.float64, device=self.p.device)
        self.last_rt = state.get("last_rt")
