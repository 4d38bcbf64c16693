"""input_gradients: no weight gradients are computed, and the penalty's gradient w.r.t. the weights is right."""

import functools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from torch_utils.ops import bias_act, conv2d_resample, upfirdn2d
from torch_utils.ops.grad import input_gradients

FILTER = upfirdn2d.setup_filter([1, 3, 3, 1])


def make_params(dtype: torch.dtype) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(6, 3, 3, 3), (6,), (8, 6, 3, 3), (8,), (8, 3, 1, 1), (1, 8 * 4 * 4)]
    return [(torch.randn(shape, generator=generator, dtype=dtype) * 0.3).requires_grad_() for shape in shapes]


def small_discriminator(img: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """A 'skip'-style D in miniature: conv + bias_act, downsampling conv, FIR-downsampled 1x1 skip, FC."""
    w0, b0, w1, b1, w_skip, w_fc = params
    x = bias_act.bias_act(conv2d_resample.conv2d_resample(img, w0, padding=1), b0, act="lrelu", impl="ref")
    x = conv2d_resample.conv2d_resample(x, w1, f=FILTER, down=2, padding=1)
    x = bias_act.bias_act(x, b1, act="lrelu", impl="ref")
    x = x + conv2d_resample.conv2d_resample(upfirdn2d.downsample2d(img, FILTER, impl="ref"), w_skip)
    return x.flatten(1) @ w_fc.t()


def conv_backward_flops(compute) -> int:
    with FlopCounterMode(display=False) as counter:
        compute()
    return sum(count for op, count in counter.get_flop_counts()["Global"].items() if "convolution_backward" in str(op))


def test_input_gradients_skip_weight_gradient_work():
    params = make_params(torch.float32)
    img = torch.randn(2, 3, 8, 8, requires_grad=True)
    logits = small_discriminator(img, params).sum()
    input_only = conv_backward_flops(lambda: input_gradients(logits, [img]))
    everything = conv_backward_flops(
        lambda: torch.autograd.grad(logits, [img, *params], create_graph=True, retain_graph=True)
    )
    assert input_only > 0
    # Every conv here has a weight gradient as expensive as its input gradient; input_gradients skips all of them.
    assert everything == 2 * input_only


def r1_penalty(img: torch.Tensor, params: list[torch.Tensor], use_helper: bool) -> torch.Tensor:
    logits = small_discriminator(img, params).sum()
    if use_helper:
        (grad_img,) = input_gradients(logits, [img])
    else:
        grad_img = torch.autograd.grad(logits, [img, *params], create_graph=True)[0]
    return grad_img.square().sum()


def test_penalty_weight_gradients_match_full_autograd():
    params = make_params(torch.float32)
    img = torch.randn(2, 3, 8, 8, requires_grad=True)
    # The lrelu biases enter the penalty only through the activation's slope, whose derivative is zero: bias_act
    # keeps them off the penalty's graph (as its CUDA kernel does), so they read as unused, i.e. zero.
    grad = functools.partial(torch.autograd.grad, allow_unused=True, materialize_grads=True)
    with_helper = grad(r1_penalty(img, params, True), params)
    plain = grad(r1_penalty(img, params, False), params)
    for a, b in zip(with_helper, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index", [0, 1, 4, 5])
def test_penalty_weight_gradients_match_finite_differences(index):
    params = [p.detach() for p in make_params(torch.float64)]
    img = torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)

    def penalty(param):
        return r1_penalty(img, params[:index] + [param] + params[index + 1 :], True)

    assert torch.autograd.gradcheck(penalty, (params[index].clone().requires_grad_(),))
