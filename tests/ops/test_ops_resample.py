"""setup_filter, upfirdn2d (+ wrappers) and conv2d_resample against brute-force NumPy/SciPy definitions."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from torch_utils.ops import conv2d_resample, upfirdn2d

# ----------------------------------------------------------------------------
# Brute-force definitions, written from the ops' definitions with NumPy loops and SciPy's 2-D convolution.


def np_upfirdn2d(x, f2d, up, down, pad, flip_filter=False, gain=1.0):
    """Zero insertion after each sample, pad/crop, valid FIR (true convolution unless flip_filter), keep every d-th."""
    (ux, uy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
    n, c, h, w = x.shape
    upsampled = np.zeros((n, c, h * uy, w * ux))
    for i in range(h):
        for j in range(w):
            upsampled[:, :, i * uy, j * ux] = x[:, :, i, j]
    hp, wp = h * uy + py0 + py1, w * ux + px0 + px1
    padded = np.zeros((n, c, hp, wp))
    for i in range(hp):
        for j in range(wp):
            si, sj = i - py0, j - px0
            if 0 <= si < h * uy and 0 <= sj < w * ux:
                padded[:, :, i, j] = upsampled[:, :, si, sj]
    fir = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
    filtered = np.array([[fir(padded[a, b], f2d, mode="valid") for b in range(c)] for a in range(n)])
    return gain * filtered[:, :, ::dy, ::dx]


def np_conv2d_resample(x, w, f2d, up, down, pad, groups, flip_weight, flip_filter):
    """The definition, step by step: adjust padding, FIR-upsample (gain up^2) or pad, grouped correlation, FIR-downsample."""
    fh, fw = f2d.shape
    px0, px1, py0, py1 = pad
    if up > 1:
        px0, px1, py0, py1 = (
            px0 + (fw + up - 1) // 2,
            px1 + (fw - up) // 2,
            py0 + (fh + up - 1) // 2,
            py1 + (fh - up) // 2,
        )
    if down > 1:
        px0, px1, py0, py1 = (
            px0 + (fw - down + 1) // 2,
            px1 + (fw - down) // 2,
            py0 + (fh - down + 1) // 2,
            py1 + (fh - down) // 2,
        )
    w_eff = w if flip_weight else w[:, :, ::-1, ::-1]
    if up > 1:
        t = np_upfirdn2d(x, f2d, (up, up), (1, 1), (px0, px1, py0, py1), flip_filter, up**2)
    else:
        t = np_upfirdn2d(x, np.ones((1, 1)), (1, 1), (1, 1), (px0, px1, py0, py1))
    out_ch, in_per_group = w.shape[:2]
    out_per_group = out_ch // groups
    y = np.array(
        [
            [
                sum(
                    scipy.signal.correlate2d(t[n, (o // out_per_group) * in_per_group + i], w_eff[o, i], mode="valid")
                    for i in range(in_per_group)
                )
                for o in range(out_ch)
            ]
            for n in range(t.shape[0])
        ]
    )
    if down > 1:
        y = np_upfirdn2d(y, f2d, (1, 1), (down, down), (0, 0, 0, 0), flip_filter, 1.0)
    return y


def assert_close(actual: torch.Tensor, expected: np.ndarray, rtol: float = 1e-5) -> None:
    assert tuple(actual.shape) == expected.shape
    scale = max(float(np.abs(expected).max()), 1.0)
    err = float(np.abs(actual.detach().double().numpy() - expected).max())
    assert err <= rtol * scale, f"max abs error {err} (scale {scale})"


# ----------------------------------------------------------------------------
# setup_filter.


def test_setup_filter_network_default_is_normalized_outer_product():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    taps = np.array([1, 3, 3, 1], dtype=np.float64)
    assert f.dtype == torch.float32 and f.shape == (4, 4)
    np.testing.assert_allclose(f.numpy(), np.outer(taps, taps) / 64, rtol=0, atol=1e-8)


def test_setup_filter_options():
    taps = np.arange(1, 9, dtype=np.float64)  # 8 taps: separable by default
    f = upfirdn2d.setup_filter(taps, gain=4, flip_filter=True)
    np.testing.assert_allclose(f.numpy(), taps[::-1] / taps.sum() * 2, rtol=1e-6)
    f = upfirdn2d.setup_filter([[1.0, 2.0], [3.0, 4.0]], normalize=False, gain=3)
    np.testing.assert_allclose(f.numpy(), [[3, 6], [9, 12]])
    f = upfirdn2d.setup_filter([1, 2], separable=True, normalize=False)
    assert f.shape == (2,)
    assert upfirdn2d.setup_filter(None).shape == (1, 1)
    assert upfirdn2d.setup_filter(5.0).tolist() == [[1.0]]
    with pytest.raises(ValueError, match="dims"):
        upfirdn2d.setup_filter(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="tap"):
        upfirdn2d.setup_filter([])


# ----------------------------------------------------------------------------
# upfirdn2d.


def _random_upfirdn2d_case(rng: np.random.Generator):
    while True:
        h, w = rng.integers(1, 7, size=2)
        up = tuple(int(v) for v in rng.integers(1, 5, size=2))
        down = tuple(int(v) for v in rng.integers(1, 5, size=2))
        pad = tuple(int(v) for v in rng.integers(-2, 5, size=4))
        kind = rng.choice(["2d", "separable", "none"], p=[0.6, 0.3, 0.1])
        if kind == "2d":
            f = torch.tensor(rng.normal(size=rng.integers(1, 6, size=2)), dtype=torch.float32)
        elif kind == "separable":
            f = upfirdn2d.setup_filter(rng.uniform(0.2, 1.0, size=rng.integers(1, 7)), separable=True)
        else:
            f = None
        fw, fh = upfirdn2d.get_filter_size(f)
        if w * up[0] + pad[0] + pad[1] >= fw and h * up[1] + pad[2] + pad[3] >= fh:  # output size >= 1
            return (h, w), f, up, down, pad, bool(rng.integers(2)), float(rng.uniform(0.5, 3))


def _filter_2d(f):
    if f is None:
        return np.ones((1, 1))
    f = f.double().numpy()
    return np.outer(f, f) if f.ndim == 1 else f


@pytest.mark.parametrize("seed", range(40))
def test_upfirdn2d_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    (h, w), f, up, down, pad, flip, gain = _random_upfirdn2d_case(rng)
    x = torch.tensor(rng.normal(size=(2, 3, h, w)), dtype=torch.float32)
    y = upfirdn2d.upfirdn2d(
        x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=gain, impl="ref"
    )
    assert y.dtype == torch.float32
    assert_close(y, np_upfirdn2d(x.double().numpy(), _filter_2d(f), up, down, pad, flip, gain))


def test_upfirdn2d_scalar_arguments_and_2_padding():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(1, 2, 5, 6)), dtype=torch.float64)
    f = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32)
    y = upfirdn2d.upfirdn2d(x, f, up=2, down=3, padding=[1, -1], impl="ref")
    assert y.dtype == torch.float64
    assert_close(y, np_upfirdn2d(x.numpy(), f.double().numpy(), (2, 2), (3, 3), (1, 1, -1, -1)), rtol=1e-12)


def test_separable_and_2d_setup_describe_the_same_filter():
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    taps = [1.0, 2.0, 5.0, 3.0]
    f1 = upfirdn2d.setup_filter(taps, separable=True, gain=3)
    f2 = upfirdn2d.setup_filter(taps, separable=False, gain=3)
    y1 = upfirdn2d.upfirdn2d(x, f1, up=[2, 1], down=[1, 3], padding=[1, 2, 3, -1], gain=2, impl="ref")
    y2 = upfirdn2d.upfirdn2d(x, f2, up=[2, 1], down=[1, 3], padding=[1, 2, 3, -1], gain=2, impl="ref")
    torch.testing.assert_close(y1, y2, rtol=1e-6, atol=1e-6)


def test_upfirdn2d_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d.upfirdn2d(x, f, impl="fast")
    with pytest.raises(ValueError, match="4-D"):
        upfirdn2d.upfirdn2d(x[0], f)
    with pytest.raises(ValueError, match="up"):
        upfirdn2d.upfirdn2d(x, f, up=0)
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d.upfirdn2d(x, f, padding=[1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        upfirdn2d.upfirdn2d(x, f, padding=-2)
    with pytest.raises(ValueError, match="grad"):
        upfirdn2d.upfirdn2d(x, f.clone().requires_grad_())
    with pytest.raises(ValueError, match="float32"):
        upfirdn2d.upfirdn2d(x, f.double())


@pytest.mark.parametrize("f", [[1, 3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8]])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2)])
def test_upfirdn2d_output_can_be_modified_in_place(f, up, down):
    # The networks add noise in place to conv outputs; that fails if an autograd Function returns a view.
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    y = upfirdn2d.upfirdn2d(x, upfirdn2d.setup_filter(f), up=up, down=down, padding=1, impl="ref")
    y.add_(1)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


# ----------------------------------------------------------------------------
# Wrappers: closed forms with box filters, and the wrappers' default paddings with the network filter.


def test_wrappers_with_box_filters_match_pooling_and_nearest():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    box2 = upfirdn2d.setup_filter([1, 1])
    box3 = upfirdn2d.setup_filter([1, 1, 1])
    torch.testing.assert_close(upfirdn2d.downsample2d(x, box2, impl="ref"), F.avg_pool2d(x, 2))
    torch.testing.assert_close(
        upfirdn2d.upsample2d(x, box2, impl="ref"), F.interpolate(x, scale_factor=2, mode="nearest")
    )
    expected = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    torch.testing.assert_close(upfirdn2d.filter2d(x, box3, impl="ref"), expected)


def test_wrappers_use_the_spec_padding_and_gain():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(1, 2, 6, 5)))
    f = torch.tensor(rng.normal(size=(4, 4)), dtype=torch.float32)  # asymmetric: catches flips and offsets
    xn, fn = x.numpy(), f.double().numpy()
    assert_close(upfirdn2d.upsample2d(x, f, impl="ref"), np_upfirdn2d(xn, fn, (2, 2), (1, 1), (2, 1, 2, 1), gain=4))
    assert_close(
        upfirdn2d.downsample2d(x[..., :4], f, impl="ref"), np_upfirdn2d(xn[..., :4], fn, (1, 1), (2, 2), (1, 1, 1, 1))
    )
    assert_close(
        upfirdn2d.filter2d(x, f, gain=2, impl="ref"), np_upfirdn2d(xn, fn, (1, 1), (1, 1), (2, 1, 2, 1), gain=2)
    )
    f3 = torch.tensor(rng.normal(size=(3, 5)), dtype=torch.float32)
    f3n = f3.double().numpy()
    y = upfirdn2d.upsample2d(x, f3, up=[2, 3], padding=[1, 0, 0, 2], flip_filter=True, impl="ref")
    assert_close(y, np_upfirdn2d(xn, f3n, (2, 3), (1, 1), (1 + 3, 0 + 1, 0 + 2, 2 + 0), True, 6))
    y = upfirdn2d.downsample2d(x, f3, down=[3, 2], padding=1, impl="ref")
    assert_close(y, np_upfirdn2d(xn, f3n, (1, 1), (3, 2), (1 + 1, 1 + 1, 1 + 1, 1 + 0)))


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_wrapper_output_sizes(size):
    x = torch.zeros(1, 1, *size)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    h, w = size
    assert upfirdn2d.filter2d(x, f).shape[2:] == (h, w)
    assert upfirdn2d.upsample2d(x, f).shape[2:] == (2 * h, 2 * w)
    assert upfirdn2d.downsample2d(x, f).shape[2:] == (h // 2, w // 2)


# ----------------------------------------------------------------------------
# conv2d_resample.

# (up, down, kernel (kh, kw), padding, groups): covers the evaluation orders (a)-(f) listed in conv2d_resample's docstring.
CONV_CASES = [
    (1, 2, (1, 1), 0, 1),  # (a)
    (1, 3, (1, 1), [1, 0, 2, 1], 2),  # (a)
    (2, 1, (1, 1), 0, 1),  # (b)
    (3, 1, (1, 1), [0, 1, -1, 2], 2),  # (b)
    (1, 2, (3, 3), 1, 1),  # (c)
    (1, 2, (3, 2), [2, 0, 1, 1], 2),  # (c)
    (2, 1, (3, 3), 1, 1),  # (d), q = t = 0 in the network case
    (2, 1, (3, 3), 1, 2),  # (d), grouped
    (2, 2, (3, 3), 0, 1),  # (d) with downsampling
    (3, 2, (2, 3), [2, -1, 0, 3], 2),  # (d) with t > 0 and downsampling
    (2, 1, (4, 4), [-1, -1, 0, -1], 1),  # (d), negative padding
    (1, 1, (3, 3), 1, 1),  # (e)
    (1, 1, (1, 3), [2, 2, 0, 0], 2),  # (e)
    (1, 1, (3, 3), [1, 0, 2, -1], 1),  # (f)
]


@pytest.mark.parametrize("flip_weight", [True, False])
@pytest.mark.parametrize("flip_filter", [False, True])
@pytest.mark.parametrize("up,down,kernel,padding,groups", CONV_CASES)
def test_conv2d_resample_matches_definition(up, down, kernel, padding, groups, flip_weight, flip_filter):
    rng = np.random.default_rng(up * 100 + down * 10 + kernel[0] + groups)
    x = torch.tensor(rng.normal(size=(2, 4, 6, 7)), dtype=torch.float32)
    w = torch.tensor(rng.normal(size=(6, 4 // groups, *kernel)), dtype=torch.float32)
    f = torch.tensor(rng.uniform(0.1, 1.0, size=(4, 3)), dtype=torch.float32)  # asymmetric, non-square
    y = conv2d_resample.conv2d_resample(
        x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight, flip_filter=flip_filter
    )
    pad = upfirdn2d.parse_padding(padding)
    expected = np_conv2d_resample(
        x.double().numpy(), w.double().numpy(), f.double().numpy(), up, down, pad, groups, flip_weight, flip_filter
    )
    assert_close(y, expected)


def test_conv2d_resample_without_filter_and_bad_arguments():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    y = conv2d_resample.conv2d_resample(x, w, padding=[0, 1, 1, 0])
    assert_close(
        y, np_conv2d_resample(x.numpy(), w.numpy(), np.ones((1, 1)), 1, 1, (0, 1, 1, 0), 1, True, False), rtol=1e-12
    )
    with pytest.raises(ValueError, match="channel"):
        conv2d_resample.conv2d_resample(x, w, groups=2)
    with pytest.raises(ValueError, match="dtype"):
        conv2d_resample.conv2d_resample(x, w.float())
    with pytest.raises(ValueError, match="up"):
        conv2d_resample.conv2d_resample(x, w, up=0)


# ----------------------------------------------------------------------------
# Gradients of the reference paths (float64 CPU): first and second order.


GRAD_UPFIRDN_CASES = [
    dict(f=[1, 3, 3, 1], up=2, padding=[2, 1, 2, 1], gain=4.0),
    dict(f=[1, 3, 3, 1], down=[2, 3], padding=[1, 2, -1, 0], flip_filter=True),
    dict(f="random", up=[3, 1], down=[1, 2], padding=[-1, 3, 2, 2], gain=0.5),
    dict(f="separable", up=2, down=2, padding=[3, 2, 3, 2]),
    dict(f=None, up=[1, 2], down=[2, 1], padding=[0, -1, 1, 0]),
]


@pytest.mark.parametrize("case", range(len(GRAD_UPFIRDN_CASES)))
def test_upfirdn2d_gradcheck_and_gradgradcheck(case):
    kwargs = dict(GRAD_UPFIRDN_CASES[case])
    taps = kwargs.pop("f")
    generator = torch.Generator().manual_seed(case)
    if taps == "random":
        f = torch.randn(3, 4, generator=generator)
    elif taps == "separable":
        f = upfirdn2d.setup_filter([1, 2, 4, 1, 3], separable=True)
    else:
        f = None if taps is None else upfirdn2d.setup_filter(taps)
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, generator=generator, requires_grad=True)

    def op(t):
        return upfirdn2d.upfirdn2d(t, f, impl="ref", **kwargs)

    assert torch.autograd.gradcheck(op, (x,))
    assert torch.autograd.gradgradcheck(op, (x,))


@pytest.mark.parametrize("up,down,kernel,padding,groups", [CONV_CASES[i] for i in (0, 2, 5, 7, 9, 11, 13)])
def test_conv2d_resample_gradcheck_and_gradgradcheck(up, down, kernel, padding, groups):
    generator = torch.Generator().manual_seed(up + down)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    w = torch.randn(2, 4 // groups, *kernel, dtype=torch.float64, generator=generator, requires_grad=True)
    f = torch.rand(4, 3, generator=generator)

    def op(t, weight):
        return conv2d_resample.conv2d_resample(
            t, weight, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=False
        )

    assert torch.autograd.gradcheck(op, (x, w))
    assert torch.autograd.gradgradcheck(op, (x, w))
