"""bias_act, fma and normalize_2nd_moment against direct NumPy formulas."""

import math
import zlib

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act, fma, normalize_2nd_moment

SELU_LAMBDA = 1.0507009873554804934
SELU_ALPHA = 1.6732632423543772848
SPEC_DEFAULTS = {  # act: (default alpha, default gain), as in the original; sqrt(2) keeps the variance of ReLU-like outputs
    "linear": (0, 1),
    "relu": (0, math.sqrt(2)),
    "lrelu": (0.2, math.sqrt(2)),
    "tanh": (0, 1),
    "sigmoid": (0, 1),
    "elu": (0, 1),
    "selu": (0, 1),
    "softplus": (0, 1),
    "swish": (0, math.sqrt(2)),
}


def np_act(act, x, alpha):
    """The activation's value and derivative at x (float64)."""
    sig = 1 / (1 + np.exp(-x))
    if act == "linear":
        return x, np.ones_like(x)
    if act == "relu":
        return np.maximum(x, 0), (x > 0).astype(np.float64)
    if act == "lrelu":
        return np.where(x > 0, x, alpha * x), np.where(x > 0, 1.0, alpha)
    if act == "tanh":
        return np.tanh(x), 1 - np.tanh(x) ** 2
    if act == "sigmoid":
        return sig, sig * (1 - sig)
    if act == "elu":
        return np.where(x >= 0, x, np.expm1(x)), np.where(x >= 0, 1.0, np.exp(x))
    if act == "selu":
        return SELU_LAMBDA * np.where(x >= 0, x, SELU_ALPHA * np.expm1(x)), SELU_LAMBDA * np.where(
            x >= 0, 1.0, SELU_ALPHA * np.exp(x)
        )
    if act == "softplus":
        return np.logaddexp(0, x), sig
    if act == "swish":
        return x * sig, sig + x * sig * (1 - sig)
    raise AssertionError(act)


def np_bias_act(x, b, dim, act, alpha, gain, clamp, dy):
    """Forward value and the gradients (dx, db) for upstream gradient dy, from the direct formulas."""
    def_alpha, def_gain = SPEC_DEFAULTS[act]
    alpha = def_alpha if alpha is None else alpha
    gain = def_gain if gain is None else gain
    shape = [-1 if i == dim % x.ndim else 1 for i in range(x.ndim)]
    xb = x + b.reshape(shape)
    value, deriv = np_act(act, xb, alpha)
    y = value * gain
    passes = np.ones_like(y)
    if clamp is not None:
        passes = (np.abs(y) <= clamp).astype(np.float64)
        y = np.clip(y, -clamp, clamp)
    dx = dy * gain * deriv * passes
    db = dx.sum(axis=tuple(i for i in range(x.ndim) if i != dim % x.ndim))
    return y, dx, db


def test_activation_table_matches_spec():
    assert set(bias_act.activation_funcs) == set(SPEC_DEFAULTS)
    for act, (def_alpha, def_gain) in SPEC_DEFAULTS.items():
        spec = bias_act.activation_funcs[act]
        assert spec.def_alpha == def_alpha and spec["def_gain"] == def_gain


@pytest.mark.parametrize("act", list(SPEC_DEFAULTS))
@pytest.mark.parametrize(
    "shape,dim,alpha,gain,clamp",
    [
        ((3, 5, 4, 2), 1, None, None, None),
        ((3, 5, 4, 2), 1, None, None, 0.7),
        ((4, 6), 0, 0.3, 2.5, 1.1),
        ((2, 3, 7), -1, 0.05, 1.0, None),
        ((2, 3, 5), 2, None, 0.5, 0.2),
    ],
)
def test_bias_act_forward_and_gradients_match_formulas(act, shape, dim, alpha, gain, clamp):
    rng = np.random.default_rng(zlib.crc32(repr((act, shape, dim)).encode()))
    x = rng.normal(scale=2, size=shape)
    b = rng.normal(size=shape[dim])
    dy = rng.normal(size=shape)
    y_np, dx_np, db_np = np_bias_act(x, b, dim, act, alpha, gain, clamp, dy)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float32, requires_grad=True)
    y = bias_act.bias_act(xt, bt, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl="ref")
    assert y.dtype == torch.float32 and y.shape == shape
    np.testing.assert_allclose(y.detach().numpy(), y_np, rtol=1e-5, atol=1e-5)
    dx, db = torch.autograd.grad(y, [xt, bt], torch.tensor(dy, dtype=torch.float32))
    np.testing.assert_allclose(dx.numpy(), dx_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db.numpy(), db_np, rtol=1e-5, atol=1e-4)


def test_bias_act_special_cases():
    x = torch.randn(2, 3, 4)
    assert bias_act.bias_act(x) is x  # linear, gain 1, no clamp, no bias: unchanged
    assert torch.equal(bias_act.bias_act(x, act="relu", clamp=0), torch.zeros_like(x))
    y = bias_act.bias_act(x, torch.ones(3), act="linear", gain=-2.0, impl="ref")
    torch.testing.assert_close(y, (x + 1) * -2)
    lrelu_without_bias = bias_act.bias_act(x, act="lrelu", alpha=0.1, gain=1, impl="cuda")  # CPU: falls back to ref
    torch.testing.assert_close(lrelu_without_bias, torch.where(x > 0, x, 0.1 * x))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(act="gelu"), "unknown activation"),
        (dict(act=None), "unknown activation"),
        (dict(b=torch.zeros(4)), "bias"),
        (dict(b=torch.zeros(3, 1)), "bias"),
        (dict(clamp=-1), "clamp"),
        (dict(dim=3), "dim"),
        (dict(impl="triton"), "impl"),
    ],
)
def test_bias_act_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bias_act.bias_act(torch.zeros(2, 3, 4), **kwargs)


@pytest.mark.parametrize("act", list(SPEC_DEFAULTS))
def test_bias_act_gradcheck_and_gradgradcheck(act):
    generator = torch.Generator().manual_seed(len(act))
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, generator=generator, requires_grad=True)

    def op(t, bias):
        return bias_act.bias_act(t, bias, act=act, gain=1.7, clamp=5.0, impl="ref")

    assert torch.autograd.gradcheck(op, (x, b))
    assert torch.autograd.gradgradcheck(op, (x, b))


@pytest.mark.parametrize("act,clamp", [("lrelu", 0.8), ("relu", None), ("linear", 0.5), ("lrelu", None)])
def test_piecewise_linear_path_equals_composed_ops(act, clamp):
    """The one-Function path (in-place forward, masked backward) against the plain composition of torch ops:
    the same output bit for bit, and the same second-order gradient through an upstream weight (R1's shape)."""
    spec = bias_act.activation_funcs[act]
    generator = torch.Generator().manual_seed(3)
    img = torch.randn(4, 5, 6, generator=generator, requires_grad=True)
    w = torch.randn(5, 5, generator=generator, requires_grad=True)
    b = torch.randn(5, generator=generator, requires_grad=True)
    v = torch.randn(4, 5, 6, generator=generator)

    def penalty(fused: bool):
        x = torch.einsum("oi,nil->nol", w, img)
        if fused:
            y = bias_act.bias_act(x, b, act=act, clamp=clamp, impl="ref")
        else:
            y = bias_act._bias_act_ref(
                x, b, 1, spec.func, spec.def_alpha, spec.def_gain, -1 if clamp is None else clamp
            )
        (g,) = torch.autograd.grad((y * v).sum(), [img], create_graph=True)
        return y, torch.autograd.grad(g.square().sum(), [w])[0]

    (y_fused, dw_fused), (y_plain, dw_plain) = penalty(True), penalty(False)
    assert torch.equal(y_fused, y_plain)
    torch.testing.assert_close(dw_fused, dw_plain, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------
# fma and normalize_2nd_moment.


def test_fma_value_and_broadcast_gradients():
    rng = np.random.default_rng(0)
    a, b, c, dout = (
        rng.normal(size=(2, 3, 1)),
        rng.normal(size=(1, 3, 4)),
        rng.normal(size=(2, 1, 4)),
        rng.normal(size=(2, 3, 4)),
    )
    at, bt, ct = (torch.tensor(v, requires_grad=True) for v in (a, b, c))
    out = fma.fma(at, bt, ct)
    np.testing.assert_allclose(out.detach().numpy(), a * b + c, rtol=1e-12)
    da, db, dc = torch.autograd.grad(out, [at, bt, ct], torch.tensor(dout))
    np.testing.assert_allclose(da.numpy(), (dout * b).sum(axis=2, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(db.numpy(), (dout * a).sum(axis=0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(dc.numpy(), dout.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("dim", [1, 0, -1])
def test_normalize_2nd_moment(dim):
    x = np.random.default_rng(dim + 5).normal(size=(4, 6, 3))
    expected = x / np.sqrt((x**2).mean(axis=dim, keepdims=True) + 1e-8)
    actual = normalize_2nd_moment(torch.tensor(x), dim=dim).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    zeros = normalize_2nd_moment(torch.zeros(2, 3), eps=1e-8)
    assert torch.equal(zeros, torch.zeros(2, 3))
