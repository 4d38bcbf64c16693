"""The CUDA paths of upfirdn2d and bias_act.

* On any machine: the autograd wiring of the CUDA paths (separable passes, adjoint backward, bias_act's
  first/second-order Functions) driven by a stand-in plugin that follows the kernels' documented contract
  (computed here independently with PyTorch), compared with the reference paths.
* With a GPU (`@pytest.mark.cuda`): the real kernels against the reference paths, forward, gradient and
  gradient of gradient, float32 and float16.
"""

import types

import pytest
import torch

from torch_utils import custom_ops
from torch_utils.ops import _plugins, bias_act, conv2d_resample, upfirdn2d

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

UPFIRDN_CASES = [  # (filter, kwargs)
    ([1, 3, 3, 1], dict(up=2, padding=[2, 1, 2, 1], gain=4.0)),
    ([1, 3, 3, 1], dict(down=2, padding=1)),
    ("random", dict(up=[3, 1], down=[1, 2], padding=[-1, 3, 2, 2], gain=0.5, flip_filter=True)),
    ("separable", dict(up=2, down=[1, 3], padding=[3, 2, 0, 4], gain=2.0)),
    (None, dict(up=[1, 2], down=[2, 1], padding=[0, -1, 1, 0])),
]
BIAS_ACT_CASES = [  # (act, shape, dim, alpha, gain, clamp)
    (act, (4, 6, 5, 3), 1, None, None, clamp) for act in bias_act.activation_funcs for clamp in (None, 0.8)
] + [
    ("lrelu", (6, 8), 0, 0.3, 1.5, None),
    ("swish", (3, 4, 7), -1, None, 0.7, 0.5),
    ("tanh", (2, 3, 4), 2, None, 2.0, 1.0),
]


def make_filter(spec, generator):
    if spec == "random":
        return torch.randn(3, 4, generator=generator)
    if spec == "separable":
        return upfirdn2d.setup_filter([1, 2, 4, 1, 3], separable=True)
    return None if spec is None else upfirdn2d.setup_filter(spec)


def value_grad_gradgrad(op, inputs):
    """Forward value, first gradients for a fixed random upstream gradient `dy`, and the gradients of their
    squared norm w.r.t. the inputs and `dy` (second order: the backward pass differentiated once more)."""
    inputs = [t.detach().requires_grad_() for t in inputs]  # detach() keeps the memory layout
    y = op(*inputs)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(y).requires_grad_()
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    penalty = sum(g.float().square().sum() for g in grads)
    grad_grads = torch.autograd.grad(penalty, [*inputs, dy], allow_unused=True)
    grad_grads = [torch.zeros_like(t) if g is None else g for t, g in zip([*inputs, dy], grad_grads)]
    return [y.detach(), *[g.detach() for g in grads], *grad_grads]


def assert_all_close(actual, expected, rtol):
    for a, e in zip(actual, expected):
        a, e = a.double().cpu(), e.double().cpu()
        scale = max(e.abs().max().item(), 1e-3)
        assert (a - e).abs().max().item() <= rtol * scale


# ----------------------------------------------------------------------------
# The CUDA paths' autograd wiring on the CPU, with a stand-in that follows the kernels' contract.


def stand_in_upfirdn2d(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain):
    """Contract of the upfirdn2d kernel: a 2-D float32 filter, gain applied to the sum."""
    assert f.ndim == 2 and f.dtype == torch.float32
    params = upfirdn2d.ResampleParams(up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, 1.0)
    return upfirdn2d._forward_ref(x, f, params) * gain


def stand_in_bias_act(x, b, xref, yref, grad, dim, act, alpha, gain, clamp):
    """Contract of the bias_act kernel (see bias_act.h), with derivatives taken by autograd in float64."""
    name = next(n for n, spec in bias_act.activation_funcs.items() if spec.cuda_idx == act)
    func = bias_act.activation_funcs[name].func
    shape = [-1 if i == dim else 1 for i in range(x.ndim)]
    if grad == 0:
        y = func((x + b.reshape(shape)) if b.numel() else x, alpha) * gain
        return y.clamp(-clamp, clamp) if clamp >= 0 else y
    if name in ("relu", "lrelu"):
        derivative = torch.where(yref > 0, 1.0, alpha if name == "lrelu" else 0.0) if grad == 1 else torch.zeros_like(x)
    elif name == "linear":
        derivative = torch.full_like(x, 1.0 if grad == 1 else 0.0)
    else:
        with torch.enable_grad():  # kernels run inside autograd Functions, where grad mode is off
            v = (xref + b.reshape(shape) if b.numel() else xref).detach().double().requires_grad_()
            (first,) = torch.autograd.grad(func(v, alpha).sum(), v, create_graph=True)
            derivative = first if grad == 1 else torch.autograd.grad(first.sum(), v)[0]
    out = x * gain * derivative.to(x.dtype)
    if clamp >= 0:
        out = torch.where((yref > -clamp) & (yref < clamp), out, torch.zeros_like(out))
    return out.detach()


@pytest.fixture
def stand_in_plugins(monkeypatch):
    plugins = {
        "upfirdn2d": types.SimpleNamespace(upfirdn2d=stand_in_upfirdn2d),
        "bias_act": types.SimpleNamespace(bias_act=stand_in_bias_act),
    }
    monkeypatch.setattr(upfirdn2d, "cuda_plugin", lambda impl, x, name: plugins[name] if impl == "cuda" else None)
    monkeypatch.setattr(bias_act, "cuda_plugin", lambda impl, x, name: plugins[name] if impl == "cuda" else None)


@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
def test_upfirdn2d_cuda_wiring(stand_in_plugins, case):
    generator = torch.Generator().manual_seed(case)
    spec, kwargs = UPFIRDN_CASES[case]
    f = make_filter(spec, generator)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, generator=generator)
    results = {
        impl: value_grad_gradgrad(lambda t, impl=impl: upfirdn2d.upfirdn2d(t, f, impl=impl, **kwargs), [x])
        for impl in ("ref", "cuda")
    }
    assert_all_close(results["cuda"], results["ref"], rtol=1e-6)  # float32 filter scaling differs


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("case", range(len(BIAS_ACT_CASES)))
def test_bias_act_cuda_wiring(stand_in_plugins, case, layout):
    act, shape, dim, alpha, gain, clamp = BIAS_ACT_CASES[case]
    generator = torch.Generator().manual_seed(case)
    x = torch.randn(shape, dtype=torch.float64, generator=generator) * 2
    if layout == "transposed":  # same values, non-contiguous: the CUDA path copies it
        x = x.transpose(0, -1).contiguous().transpose(0, -1)
    b = torch.randn(shape[dim], dtype=torch.float64, generator=generator)

    def op(impl):
        return lambda t, bias: bias_act.bias_act(
            t, bias, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl
        )

    results = {impl: value_grad_gradgrad(op(impl), [x, b]) for impl in ("ref", "cuda")}
    assert_all_close(results["cuda"], results["ref"], rtol=1e-6)


def test_cuda_impl_on_cpu_tensors_uses_reference_silently(capfd):
    assert _plugins.cuda_plugin("cuda", torch.zeros(1), "upfirdn2d") is None
    x = torch.randn(1, 2, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f, impl="cuda"), upfirdn2d.upsample2d(x, f, impl="ref"))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# ----------------------------------------------------------------------------
# The real kernels (GPU only).


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", ["upfirdn2d", "bias_act"])
def test_plugin_builds(name):
    if custom_ops.reference_forced():
        pytest.skip(f"{custom_ops.REFERENCE_ENV} forces the reference path")
    assert _plugins.cuda_plugin("cuda", torch.zeros(1, device="cuda"), name) is not None


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-4), (torch.float16, 2e-2)])
@pytest.mark.parametrize("case", range(len(UPFIRDN_CASES)))
@pytest.mark.parametrize("channels_last", [False, True])
def test_upfirdn2d_cuda_matches_reference(case, dtype, rtol, channels_last):
    generator = torch.Generator().manual_seed(case)
    spec, kwargs = UPFIRDN_CASES[case]
    f = make_filter(spec, generator)
    f = f.cuda() if f is not None else None
    x = torch.randn(3, 5, 9, 8, generator=generator).to("cuda", dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    results = {
        impl: value_grad_gradgrad(lambda t, impl=impl: upfirdn2d.upfirdn2d(t, f, impl=impl, **kwargs), [x])
        for impl in ("ref", "cuda")
    }
    assert results["cuda"][0].dtype == dtype
    assert_all_close(results["cuda"], results["ref"], rtol)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-4), (torch.float16, 2e-2)])
@pytest.mark.parametrize("case", range(len(BIAS_ACT_CASES)))
def test_bias_act_cuda_matches_reference(case, dtype, rtol):
    act, shape, dim, alpha, gain, clamp = BIAS_ACT_CASES[case]
    generator = torch.Generator().manual_seed(case)
    x = (torch.randn(shape, generator=generator) * 2).to("cuda", dtype)
    b = torch.randn(shape[dim], generator=generator).to("cuda", dtype)

    def op(impl):
        return lambda t, bias: bias_act.bias_act(
            t, bias, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl=impl
        )

    # The reference runs in float32 on the GPU (float16 ref would round the intermediate steps).
    ref = value_grad_gradgrad(op("ref"), [x.float(), b.float()])
    cuda = value_grad_gradgrad(op("cuda"), [x, b])
    assert cuda[0].dtype == dtype
    assert_all_close(cuda, ref, rtol)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("up,down,kernel", [(2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
def test_conv2d_resample_on_gpu_matches_cpu(up, down, kernel):
    generator = torch.Generator().manual_seed(up + down + kernel)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=generator)
    w = torch.randn(6, 4, kernel, kernel, dtype=torch.float64, generator=generator)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])

    def op(device):
        return lambda t, weight: conv2d_resample.conv2d_resample(
            t, weight, f=f.to(device), up=up, down=down, padding=kernel // 2
        )

    cpu = value_grad_gradgrad(op("cpu"), [x, w])
    gpu = value_grad_gradgrad(op("cuda"), [x.cuda(), w.cuda()])
    assert_all_close(gpu, cpu, rtol=1e-10)
