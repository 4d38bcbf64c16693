"""The compiled ops' first-use self-check (`torch_utils.ops._self_check`), driven on the CPU by stand-in
plugins: ones that follow the kernels' contract pass, deliberately wrong ones are caught (forward or gradient),
warned about once with the figures, and replaced by the reference path."""

import types

import pytest
import torch
from test_ops_cuda import stand_in_bias_act, stand_in_upfirdn2d

from torch_utils import custom_ops
from torch_utils.ops import _plugins, _self_check, bias_act, upfirdn2d

CPU = torch.device("cpu")


def upfirdn2d_without_gain(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain):
    """Wrong kernel: forgets the gain."""
    return stand_in_upfirdn2d(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, 1.0)


def bias_act_gradient_ignores_clamp(x, b, xref, yref, grad, dim, act, alpha, gain, clamp):
    """Wrong kernel with a right forward pass: its gradient passes through clamped outputs."""
    return stand_in_bias_act(x, b, xref, yref, grad, dim, act, alpha, gain, clamp if grad == 0 else -1.0)


GOOD = {
    "upfirdn2d": types.SimpleNamespace(upfirdn2d=stand_in_upfirdn2d),
    "bias_act": types.SimpleNamespace(bias_act=stand_in_bias_act),
}
WRONG = {
    "upfirdn2d": types.SimpleNamespace(upfirdn2d=upfirdn2d_without_gain),
    "bias_act": types.SimpleNamespace(bias_act=bias_act_gradient_ignores_clamp),
}


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    monkeypatch.setattr(_self_check, "_verdicts", {})


def test_every_op_with_a_kernel_registers_its_self_check():
    assert sorted(_self_check.checked_ops()) == sorted(GOOD)


def output_lines(capfd) -> list[str]:
    captured = capfd.readouterr()
    return [line for line in (captured.out + captured.err).splitlines() if line.strip()]


@pytest.mark.parametrize("name", _self_check.checked_ops())
def test_kernel_that_follows_the_contract_passes_silently(name, capfd):
    state = torch.get_rng_state()
    with torch.no_grad():  # the check computes gradients whatever the caller's mode
        assert _self_check.checked(name, GOOD[name], CPU) is GOOD[name]
    assert output_lines(capfd) == []
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG stream is not consumed


@pytest.mark.parametrize("name,output", [("upfirdn2d", "forward"), ("bias_act", "gradient")])
def test_wrong_kernel_warns_once_with_figures_and_is_dropped(name, output, capfd):
    assert _self_check.checked(name, WRONG[name], CPU) is None
    assert _self_check.checked(name, WRONG[name], CPU) is None  # remembered: no second check, no second warning
    lines = output_lines(capfd)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"WARNING: custom op '{name}' disagrees with the reference path on cpu")
    assert "using the reference PyTorch implementation" in line
    worst = line.split("worst relative error ")[1].split(" ")[0]
    assert float(worst) > 10 * _self_check.TOLERANCE and f"{output} {worst}" in line


def test_bias_act_gradient_error_is_measured_against_an_independent_value(capfd):
    """The figure reported is max|kernel - reference| / max|reference| of the first case's gradient, computed
    here by hand: lrelu(x + b) * sqrt(2) clamped to 1 passes dy * sqrt(2) * slope only where |y| < 1."""
    assert _self_check.checked("bias_act", WRONG["bias_act"], CPU) is None
    line = output_lines(capfd)[0]
    reported = float(line.split("lrelu clamp gradient ")[1].split(",")[0].split(";")[0])
    generator = torch.Generator().manual_seed(_self_check._SEED)
    x = torch.randn([4, 6, 5, 3], generator=generator).double()
    dy = torch.randn([4, 6, 5, 3], generator=torch.Generator().manual_seed(_self_check._SEED + 1)).double()
    v = x + torch.linspace(-1, 1, 6).double().reshape(1, -1, 1, 1)
    slope = torch.where(v > 0, 1.0, 0.2).double() * 2**0.5
    inside = (v * slope).abs() < 1
    right, wrong = dy * slope * inside, dy * slope
    expected = (wrong - right).abs().max().item() / right.abs().max().item()
    assert reported == pytest.approx(expected, rel=1e-2)


def test_kernel_that_raises_is_dropped(capfd):
    broken = types.SimpleNamespace(upfirdn2d=lambda *args: torch.zeros(1, 2))
    assert _self_check.checked("upfirdn2d", broken, CPU) is None
    (line,) = output_lines(capfd)
    assert "up 2 raised" in line or "up 2 forward inf" in line


@pytest.fixture
def plugins_on_cpu(monkeypatch):
    """Make `cuda_plugin` treat CPU tensors as kernel tensors and load the plugins from `loaded` (counting calls)."""
    loaded = {}
    monkeypatch.setattr(_plugins, "KERNEL_DEVICE_TYPE", "cpu")
    monkeypatch.setattr(
        custom_ops, "get_plugin", lambda module_name, **kwargs: loaded[module_name.removesuffix("_plugin")]
    )
    return loaded


def counting(plugin: types.SimpleNamespace, counter: list) -> types.SimpleNamespace:
    (name,) = vars(plugin)
    func = getattr(plugin, name)
    return types.SimpleNamespace(**{name: lambda *args: counter.append(1) or func(*args)})


def test_ops_fall_back_to_the_reference_path_after_a_failed_check(plugins_on_cpu, capfd):
    calls = []
    plugins_on_cpu["upfirdn2d"] = counting(WRONG["upfirdn2d"], calls)
    plugins_on_cpu["bias_act"] = counting(WRONG["bias_act"], calls)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for _ in range(2):
        y = bias_act.bias_act(upfirdn2d.upsample2d(x, f, impl="cuda"), act="lrelu", clamp=0.5, impl="cuda")
        calls_after_checks = len(calls)
        expected = bias_act.bias_act(upfirdn2d.upsample2d(x, f, impl="ref"), act="lrelu", clamp=0.5, impl="ref")
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        (dx,) = torch.autograd.grad(y.sum(), x)
        (dx_ref,) = torch.autograd.grad(expected.sum(), x)
        torch.testing.assert_close(dx, dx_ref, rtol=0, atol=0)
        assert len(calls) == calls_after_checks  # the wrong kernels ran only inside their checks
    lines = output_lines(capfd)
    assert len(lines) == 2 and "'upfirdn2d'" in lines[0] and "'bias_act'" in lines[1], lines


def test_ops_use_a_kernel_that_passes(plugins_on_cpu, capfd):
    calls = []
    plugins_on_cpu["upfirdn2d"] = counting(GOOD["upfirdn2d"], calls)
    x = torch.randn(2, 3, 8, 8)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    upfirdn2d.upsample2d(x, f, impl="cuda")  # first use: the check
    before = len(calls)
    y = upfirdn2d.upsample2d(x, f, impl="cuda")
    assert len(calls) == before + 1  # the kernel itself computed y
    torch.testing.assert_close(y, upfirdn2d.upsample2d(x, f, impl="ref"))
    assert output_lines(capfd) == []
