"""Each AugmentPipe op against its definition, computed independently in the test.

Random draws are replicated by re-seeding and drawing in the pipe's order (per op: value, then gate), so the
expected output is built from the same random numbers without using the pipe's code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.special import erfinv

from training.augment import AUGPIPE_PRESETS, AugmentPipe


def _images(shape: list[int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


def _pipe(p: float, **kwargs) -> AugmentPipe:
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


def _run(pipe: AugmentPipe, x: torch.Tensor, seed: int, **kwargs) -> torch.Tensor:
    torch.manual_seed(seed)
    return pipe(x, **kwargs)


# ----------------------------------------------------------------------------
# Identity and switching off.


@pytest.mark.parametrize("preset", sorted(AUGPIPE_PRESETS))
def test_p_zero_is_identity(preset: str) -> None:
    x = _images([3, 3, 32, 32])
    y = _run(_pipe(0, **AUGPIPE_PRESETS[preset]), x, seed=1)
    if any(op in AUGPIPE_PRESETS[preset] for op in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")):
        # The geometric stage still resamples (orthogonal wavelet pair): identity up to float rounding.
        assert float((y - x).abs().max()) < 1e-5
    else:
        assert torch.equal(y, x)


def test_disabled_ops_draw_nothing_and_change_nothing() -> None:
    x = _images([2, 3, 24, 24])
    pipe = _pipe(1, xflip=-1, rotate90=0, hue=-0.5, imgfilter=-1, noise=0, cutout=-2)
    torch.manual_seed(5)
    y = pipe(x)
    after = torch.rand([4])
    torch.manual_seed(5)
    assert torch.equal(y, x) and torch.equal(after, torch.rand([4]))


def test_determinism_under_seed() -> None:
    x = _images([4, 3, 32, 32])
    pipe = _pipe(0.8, **AUGPIPE_PRESETS["bgcfnc"])
    assert torch.equal(_run(pipe, x, seed=3), _run(pipe, x, seed=3))
    assert not torch.equal(_run(pipe, x, seed=3), _run(pipe, x, seed=4))


# ----------------------------------------------------------------------------
# Pixel blitting.
#
# Every geometric op runs through one resampler: reflect pad, 2x upsample
# with the asymmetric sym6 low-pass, sampling through G_inv, 2x downsample. For flips and
# 90-degree rotations the sampling positions are exact integers in the 2x domain, but the
# asymmetric filter pair is not mirror-symmetric, so the result is torch.flip / torch.rot90
# up to a small fixed sub-pixel blur (the reference pipe does the same: augment_1.pt's blit
# case deviates from exact flips by ~0.25 on noise images). Integer translations are exact.
# `_blit_definition` evaluates that resampler for such integer maps in float64 with numpy, independently
# of the pipe's code (explicit FIR sums and integer gathers instead of conv / grid_sample).

SYM6 = np.array(
    [
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
)
SYM6 = SYM6.astype(np.float32).astype(np.float64) / SYM6.astype(np.float32).sum(dtype=np.float32)


def _upsample_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """u[m] = 2 * sum_i f[m - 2i + 5] x[i], m = 0 .. 2L-1: the resampler's 2x upsampling along one axis."""
    x = np.moveaxis(x, axis, -1)
    L = x.shape[-1]
    weights = np.zeros([2 * L, L])
    for m in range(2 * L):
        for i in range(L):
            if 0 <= m - 2 * i + 5 < 12:
                weights[m, i] = 2 * SYM6[m - 2 * i + 5]
    return np.moveaxis(x @ weights.T, -1, axis)


def _downsample_axis(v: np.ndarray, axis: int) -> np.ndarray:
    """y[n] = sum_k f[k] v[2n + 1 + k], n = 0 .. L-1, for len(v) = 2(L + 6) (step 5)."""
    v = np.moveaxis(v, axis, -1)
    L = v.shape[-1] // 2 - 6
    out = np.stack([v[..., 2 * n + 1 : 2 * n + 13] @ SYM6 for n in range(L)], axis=-1)
    return np.moveaxis(out, -1, axis)


def _blit_definition(x: np.ndarray, G_inv: np.ndarray) -> np.ndarray:
    """Geometric stage for one image [C, H, W] and an integer-valued G_inv (3x3, output -> input pixels).

    Pads by the largest reflect margin, so everything the filters reach is mirrored content.
    """
    C, H, W = x.shape
    pad = min(H, W) - 1
    up = _upsample_axis(_upsample_axis(np.pad(x, [(0, 0), (pad, pad), (pad, pad)], mode="reflect"), 1), 2)
    jy, jx = np.meshgrid(np.arange(2 * (H + 6)), np.arange(2 * (W + 6)), indexing="ij")
    c_out = np.stack([(jx + 1) / 2 - (W + 6) / 2, (jy + 1) / 2 - (H + 6) / 2, np.ones_like(jx, dtype=float)])
    c_in = np.einsum("ij,jhw->ihw", G_inv, c_out)
    ux = 2 * c_in[0] - 0.5 + (up.shape[2] - 1) / 2  # upsampled pixel index (u = 2c - 1/2)
    uy = 2 * c_in[1] - 0.5 + (up.shape[1] - 1) / 2
    assert np.allclose(ux, np.round(ux)) and np.allclose(uy, np.round(uy))
    v = up[:, np.round(uy).astype(int), np.round(ux).astype(int)]
    return _downsample_axis(_downsample_axis(v, 1), 2)


def _rot(k: int) -> np.ndarray:
    c, s = [1, 0, -1, 0][k % 4], [0, 1, 0, -1][k % 4]
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=float)


def _smooth_images(N: int, H: int, W: int) -> torch.Tensor:
    yy, xx = np.meshgrid(np.arange(H) / H, np.arange(W) / W, indexing="ij")
    img = [
        [np.sin(2 * np.pi * (xx + 0.3 * c + 0.1 * n)) * np.cos(2 * np.pi * (0.7 * yy + 0.2 * c)) for c in range(3)]
        for n in range(N)
    ]
    return torch.tensor(np.array(img), dtype=torch.float32)


def test_blit_combination_matches_definition() -> None:
    N, H, W = 6, 16, 16
    x = _images([N, 3, H, W])
    y = _run(_pipe(0.8, xflip=1, rotate90=1, xint=1, xint_max=0.25), x, seed=10)
    torch.manual_seed(10)
    flip = torch.floor(torch.rand([N]) * 2) * (torch.rand([N]) < 0.8)
    k = torch.floor(torch.rand([N]) * 4) * (torch.rand([N]) < 0.8)
    t = (torch.rand([N, 2]) * 2 - 1) * 0.25 * (torch.rand([N, 1]) < 0.8)
    shift = np.round(t.double().numpy() * [W, H])
    assert len(set(k.tolist())) > 1 and 0 < int(flip.sum()) < N and np.any(shift != 0)
    for n in range(N):
        G_inv = (
            np.diag([1 - 2 * float(flip[n]), 1, 1])
            @ _rot(int(k[n]))
            @ np.array([[1, 0, -shift[n, 0]], [0, 1, -shift[n, 1]], [0, 0, 1]])
        )
        expected = _blit_definition(x[n].double().numpy(), G_inv)
        assert float(np.abs(y[n].double().numpy() - expected).max()) < 1e-5


def test_xflip_and_rotate90_follow_torch_flip_and_rot90() -> None:
    """Direction and per-sample decisions: on smooth images, y = flip / rot90 up to the small blur."""
    N = 8
    x = _smooth_images(N, 24, 24)
    y = _run(_pipe(0.7, xflip=1), x, seed=11)
    torch.manual_seed(11)
    flip = (torch.floor(torch.rand([N]) * 2) == 1) & (torch.rand([N]) < 0.7)
    assert 0 < int(flip.sum()) < N
    expected = torch.where(flip[:, None, None, None], x.flip(3), x)
    assert float((y - expected).abs().max()) < 0.05

    y = _run(_pipe(1, rotate90=1), x, seed=12)
    torch.manual_seed(12)
    k = torch.floor(torch.rand([N]) * 4).long()  # the gate (always open at p = 1) is drawn after
    assert len(set(k.tolist())) > 2
    expected = torch.stack([torch.rot90(x[n], int(k[n]), dims=[1, 2]) for n in range(N)])
    assert float((y - expected).abs().max()) < 0.05


def test_xint_matches_reflect_roll() -> None:
    N, H, W = 6, 16, 24
    x = _images([N, 3, H, W])
    xint_max = 0.2
    y = _run(_pipe(0.8, xint=1, xint_max=xint_max), x, seed=13)
    torch.manual_seed(13)
    t = (torch.rand([N, 2]) * 2 - 1) * xint_max
    t = torch.where(torch.rand([N, 1]) < 0.8, t, torch.zeros_like(t))
    dx = np.round(t[:, 0].numpy().astype(np.float64) * W).astype(int)  # round half to even, as numpy
    dy = np.round(t[:, 1].numpy().astype(np.float64) * H).astype(int)
    expected = torch.empty_like(x)
    for n in range(N):  # content moves by (+dx, +dy); pixels entering come from the mirror image
        m = max(abs(dx[n]), abs(dy[n]))
        padded = np.pad(x[n].numpy(), [(0, 0), (m, m), (m, m)], mode="reflect")
        expected[n] = torch.from_numpy(padded[:, m - dy[n] : m - dy[n] + H, m - dx[n] : m - dx[n] + W])
    assert np.any(dx != 0) and np.any(dy != 0)
    assert float((y - expected).abs().max()) < 1e-5


# ----------------------------------------------------------------------------
# Colour: against direct per-pixel matrix algebra.

LUMA = np.ones(3) / np.sqrt(3)


def _apply_rgb(matrix: np.ndarray, offset: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """Per sample n: rgb' = matrix[n] @ rgb + offset[n] (float64)."""
    out = np.einsum("nij,njhw->nihw", matrix, x.double().numpy()) + offset[:, :, None, None]
    return torch.from_numpy(out).float()


def _colour_case(x: torch.Tensor, seed: int, p: float, **ops) -> torch.Tensor:
    return _run(_pipe(p, **ops), x, seed)


@pytest.mark.parametrize("constant", [False, True])
def test_brightness_and_contrast(constant: bool) -> None:
    N = 6
    x = _images([N, 3, 8, 8]) if not constant else torch.tensor([0.2, -0.3, 0.5]).reshape(1, 3, 1, 1).repeat(N, 1, 8, 8)
    y = _colour_case(x, 21, 0.6, brightness=1, contrast=1)
    torch.manual_seed(21)
    b = torch.randn([N]) * 0.2
    b = torch.where(torch.rand([N]) < 0.6, b, torch.zeros_like(b)).double().numpy()
    c = torch.exp2(torch.randn([N]) * 0.5)
    c = torch.where(torch.rand([N]) < 0.6, c, torch.ones_like(c)).double().numpy()
    # Contrast is applied after brightness: rgb' = c * (rgb + b).
    expected = _apply_rgb(c[:, None, None] * np.eye(3), c[:, None] * b[:, None] * np.ones(3), x)
    assert float((y - expected).abs().max()) < 1e-5


def test_lumaflip_hue_saturation() -> None:
    N = 6
    x = _images([N, 3, 8, 8])
    y = _colour_case(x, 22, 0.9, lumaflip=1, hue=1, saturation=1)
    torch.manual_seed(22)
    i = torch.floor(torch.rand([N]) * 2)
    i = torch.where(torch.rand([N]) < 0.9, i, torch.zeros_like(i)).double().numpy()
    theta = (torch.rand([N]) * 2 - 1) * np.pi
    theta = torch.where(torch.rand([N]) < 0.9, theta, torch.zeros_like(theta)).double().numpy()
    s = torch.exp2(torch.randn([N]))
    s = torch.where(torch.rand([N]) < 0.9, s, torch.ones_like(s)).double().numpy()
    proj = np.outer(LUMA, LUMA)
    matrices = []
    for n in range(N):
        flip = np.eye(3) - 2 * i[n] * proj  # Householder reflection of the luma component
        hue = Rotation.from_rotvec(LUMA * theta[n]).as_matrix()  # rotation about the grey axis
        sat = proj + (np.eye(3) - proj) * s[n]
        matrices.append(sat @ hue @ flip)
    expected = _apply_rgb(np.stack(matrices), np.zeros([N, 3]), x)
    assert float((y - expected).abs().max()) < 1e-5


def test_colour_on_grayscale_uses_row_mean() -> None:
    N = 4
    x = _images([N, 1, 8, 8])
    y = _colour_case(x, 23, 1.0, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    torch.manual_seed(23)  # hue and saturation draw nothing for C = 1
    b = (torch.randn([N]) * 0.2).double().numpy()
    torch.rand([N])
    c = torch.exp2(torch.randn([N]) * 0.5).double().numpy()
    torch.rand([N])
    i = torch.floor(torch.rand([N]) * 2).double().numpy()
    rows = []
    for n in range(N):  # full 4x4 matrix on (r, g, b, 1), then the mean of its three colour rows
        v = np.append(LUMA, 0)
        M = (
            (np.eye(4) - 2 * i[n] * np.outer(v, v))
            @ np.diag([c[n]] * 3 + [1])
            @ np.array([[1, 0, 0, b[n]], [0, 1, 0, b[n]], [0, 0, 1, b[n]], [0, 0, 0, 1]])
        )
        rows.append(M[:3].mean(axis=0))
    rows = np.stack(rows)
    expected = x.double().numpy() * rows[:, :3].sum(1)[:, None, None, None] + rows[:, 3][:, None, None, None]
    assert float((y - torch.from_numpy(expected).float()).abs().max()) < 1e-5


def test_colour_debug_percentile() -> None:
    q = 0.7
    e = float(erfinv(2 * q - 1))
    x = _images([2, 3, 8, 8])
    y = _run(_pipe(0.0, brightness=1, contrast=1, hue=1, saturation=1), x, 24, debug_percentile=q)  # p = 0: forced on
    b, c, theta, s = e * 0.2, 2 ** (e * 0.5), (2 * q - 1) * np.pi, 2**e
    proj = np.outer(LUMA, LUMA)
    M = (proj + (np.eye(3) - proj) * s) @ Rotation.from_rotvec(LUMA * theta).as_matrix() @ (c * np.eye(3))
    expected = _apply_rgb(np.stack([M, M]), np.stack([M @ (b * np.ones(3))] * 2), x)  # M (rgb + b)
    assert float((y - expected).abs().max()) < 1e-5


def test_colour_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="RGB"):
        _pipe(1, brightness=1)(torch.zeros([1, 2, 8, 8]))
    with pytest.raises(ValueError, match="RGB"):
        _pipe(1, saturation=1)(torch.zeros([1, 4, 8, 8]))
    assert _pipe(1, xflip=1, noise=1)(torch.zeros([1, 5, 8, 8])).shape == (1, 5, 8, 8)


# ----------------------------------------------------------------------------
# Image-space filter: against a frequency-domain computation of the 4-band filter bank.


def _band_responses(M: int) -> np.ndarray:
    """Zero-phase DFT responses [4, M] of the four bands, built from sym2 with numpy.fft."""
    h = np.array([-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025])
    h_hi = h * np.array([1, -1, 1, -1])
    k = np.arange(M)
    phase = np.exp(2j * np.pi * k * 3 / M)  # centre the 7-tap kernels
    lo = np.fft.fft(np.convolve(h, h[::-1]) / 2, M) * phase
    hi = np.fft.fft(np.convolve(h_hi, h_hi[::-1]) / 2, M) * phase

    def at(response: np.ndarray, factor: int) -> np.ndarray:  # response(factor * omega)
        return response[(k * factor) % M]

    return np.real(
        np.stack(
            [
                at(lo, 4) * at(lo, 2) * lo,
                at(hi, 4) * at(lo, 2) * lo,
                at(hi, 2) * lo,
                hi,
            ]
        )
    )


def _fft_filter(x: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Reflect-pad by 21, filter each sample separably in the frequency domain, crop back."""
    N, C, H, W = x.shape
    out = np.empty_like(x)
    for n in range(N):
        padded = np.pad(x[n], [(0, 0), (21, 21), (21, 21)], mode="reflect")
        ry = gains[n] @ _band_responses(H + 42)
        rx = gains[n] @ _band_responses(W + 42)
        spectrum = np.fft.fft2(padded) * ry[None, :, None] * rx[None, None, :]
        out[n] = np.real(np.fft.ifft2(spectrum))[:, 21 : 21 + H, 21 : 21 + W]
    return out


def _normalized_gain(t: np.ndarray) -> np.ndarray:
    return t / np.sqrt(np.sum(np.array([10, 1, 1, 1]) / 13 * t**2))


def test_imgfilter_matches_fft() -> None:
    N, bands = 5, [1, 0.5, 1, 2]
    x = _images([N, 3, 24, 28])
    y = _run(_pipe(0.8, imgfilter=1, imgfilter_bands=bands), x, seed=31)
    torch.manual_seed(31)
    gains = np.ones([N, 4])
    for i, strength in enumerate(bands):
        t_i = torch.exp2(torch.randn([N]))
        t_i = torch.where(torch.rand([N]) < 0.8 * strength, t_i, torch.ones_like(t_i)).double().numpy()
        for n in range(N):
            t = np.ones(4)
            t[i] = t_i[n]
            gains[n] *= _normalized_gain(t)
    assert np.any(gains != 1)
    expected = _fft_filter(x.double().numpy(), gains)
    assert float(np.abs(y.double().numpy() - expected).max()) < 1e-5


def test_imgfilter_debug_percentile_skips_zero_bands() -> None:
    q, bands = 0.8, [1, 0, 1, 0]
    x = _images([2, 1, 22, 22])
    y = _run(_pipe(0.0, imgfilter=1, imgfilter_bands=bands), x, seed=32, debug_percentile=q)
    amp = 2 ** float(erfinv(2 * q - 1))
    g = np.ones(4)
    for i, strength in enumerate(bands):
        t = np.ones(4)
        t[i] = amp if strength > 0 else 1
        g *= _normalized_gain(t)
    expected = _fft_filter(x.double().numpy(), np.stack([g, g]))
    assert float(np.abs(y.double().numpy() - expected).max()) < 1e-5


# ----------------------------------------------------------------------------
# Corruptions.


def test_noise_matches_definition() -> None:
    N = 6
    x = _images([N, 3, 8, 8])
    y = _run(_pipe(0.5, noise=1, noise_std=0.3), x, seed=41)
    torch.manual_seed(41)
    sigma = torch.randn([N, 1, 1, 1]).abs() * 0.3
    sigma = torch.where(torch.rand([N, 1, 1, 1]) < 0.5, sigma, torch.zeros_like(sigma))
    expected = x + torch.randn([N, 3, 8, 8]) * sigma
    assert 0 < int((sigma == 0).sum()) < N
    assert float((y - expected).abs().max()) < 1e-6


def test_cutout_matches_definition() -> None:
    N, H, W, size = 8, 12, 10, 0.4
    x = _images([N, 3, H, W])
    y = _run(_pipe(0.7, cutout=1, cutout_size=size), x, seed=42)
    torch.manual_seed(42)
    on = (torch.rand([N]) < 0.7).numpy()
    centre = torch.rand([N, 2]).double().numpy()
    expected = x.clone()
    for n in range(N):
        for row in range(H):
            for col in range(W):
                inside_x = abs((col + 0.5) / W - centre[n, 0]) < size / 2
                inside_y = abs((row + 0.5) / H - centre[n, 1]) < size / 2
                inside = inside_x and inside_y
                if on[n] and inside:
                    expected[n, :, row, col] = 0
    assert 0 < on.sum() < N
    assert torch.equal(y, expected)


# ----------------------------------------------------------------------------
# Gradients.


def test_gradients_flow_through_full_pipe() -> None:
    x = _images([4, 3, 32, 32]).requires_grad_(True)
    pipe = _pipe(1.0, **AUGPIPE_PRESETS["bgcfnc"])
    torch.manual_seed(51)
    pipe(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_gradient_is_the_adjoint() -> None:
    """For fixed draws the pipe is affine in x: <w, f(x + d) - f(x)> equals <J^T w, d> from autograd."""
    x, d, w = _images([3, 3, 32, 32], 1), _images([3, 3, 32, 32], 2), _images([3, 3, 32, 32], 3)
    pipe = _pipe(0.9, **AUGPIPE_PRESETS["bgcfnc"])
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((w * _run(pipe, xr, 52)).sum(), xr)
    forward_diff = float((w.double() * (_run(pipe, x + d, 52).double() - _run(pipe, x, 52).double())).sum())
    adjoint = float((grad.double() * d.double()).sum())
    assert abs(forward_diff - adjoint) <= 1e-4 * max(1.0, abs(adjoint))


def test_second_order_gradient_r1_through_pipe() -> None:
    """R1-style penalty through the pipe reaches a downstream parameter with finite, non-zero gradient."""
    x = _images([2, 3, 32, 32]).requires_grad_(True)
    conv = torch.nn.Conv2d(3, 4, 3)
    pipe = _pipe(1.0, **AUGPIPE_PRESETS["bgcf"])
    torch.manual_seed(53)
    logits = torch.nn.functional.leaky_relu(conv(pipe(x)), 0.2).mean(dim=[1, 2, 3])
    (r,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    r.square().sum().backward()
    assert torch.isfinite(conv.weight.grad).all() and float(conv.weight.grad.abs().sum()) > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_with_debug_percentile() -> None:
    """Draws differ between devices, but debug_percentile fixes every parameter except the noise tensor."""
    x = _images([4, 3, 32, 32])
    ops = {k: v for k, v in AUGPIPE_PRESETS["bgcfnc"].items() if k != "noise"}
    pipe = _pipe(0.5, **ops)
    y_cpu = pipe(x, debug_percentile=0.3)
    x_gpu = x.cuda().requires_grad_(True)
    y_gpu = pipe.cuda()(x_gpu, debug_percentile=0.3)
    assert float((y_gpu.cpu() - y_cpu).abs().max()) < 1e-4
    (r,) = torch.autograd.grad(y_gpu.square().sum(), x_gpu, create_graph=True)
    r.square().sum().backward()
    assert torch.isfinite(x_gpu.grad).all()
