"""op_family_times: every op of a traced step lands in the family of the forward op it serves."""

import torch
import torch.nn.functional as F

from torch_utils import profiling
from torch_utils.ops import bias_act, upfirdn2d


def traced_families(step) -> dict[str, float]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return profiling.op_family_times(prof.events())


def test_scope_is_free_without_a_profiler_and_named_with_one():
    @profiling.scope("modulated_conv2d")
    def scaled(x):
        return x * 2

    assert torch.equal(scaled(torch.ones(3)), torch.full([3], 2.0))
    with torch.profiler.profile() as prof:
        scaled(torch.ones(3))
    assert "modulated_conv2d" in {event.name for event in prof.events()}


def test_backward_and_double_backward_count_with_their_forward_op():
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    w = torch.randn(8, 8, 3, 3, requires_grad=True)
    b = torch.zeros(8, requires_grad=True)
    big = torch.randn(256, 256, 64)

    @profiling.scope("modulated_conv2d")
    def scale(t):
        return t * 3.0  # a large elementwise op: modulation

    def step():
        scaled = scale(big)
        y = F.conv2d(x, w, padding=1)  # convolution, and its gradients too
        y = bias_act.bias_act(y, b, act="lrelu", clamp=256, impl="ref")
        y = upfirdn2d.filter2d(y, upfirdn2d.setup_filter([1, 3, 3, 1]), impl="ref")  # a depthwise conv: upfirdn2d
        (g,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)  # R1's shape
        g.square().sum().backward()
        return scaled

    times = traced_families(step)
    assert set(times) == set(profiling.FAMILIES)
    assert all(times[family] > 0 for family in ("convolution", "bias_act", "upfirdn2d", "modulation"))
    # The elementwise products stay out of the convolution family; the 4M-element product dominates modulation.
    assert times["modulation"] > times["bias_act"]


def test_optimiser_steps_are_their_own_family():
    w = torch.nn.Parameter(torch.randn(1000, 1000))
    opt = torch.optim.Adam([w])
    w.grad = torch.randn_like(w)
    times = traced_families(opt.step)
    assert times["optimiser"] > 0.9 * sum(times.values())


def test_lineage_follows_the_sequence_number_of_the_forward_op():
    # A hand-made trace: a backward node whose forward op ran inside an upfirdn2d call counts as upfirdn2d,
    # even though it sits at the top of the trace with a convolution op inside it.
    class Event:
        def __init__(self, id, name, start, self_us, parent=None, seq=-1):
            self.id, self.name, self.self_cpu_time_total, self.cpu_parent, self.sequence_nr = (
                id,
                name,
                self_us,
                parent,
                seq,
            )
            self.time_range = type("Range", (), {"start": start})()

    fir = Event(1, "_UpFirDn2d", 0, 1.0)
    fwd_conv = Event(2, "aten::convolution", 1, 10.0, parent=fir, seq=7)
    node = Event(3, "autograd::engine::evaluate_function: ConvolutionBackward0", 5, 0.5, seq=7)
    bwd_conv = Event(4, "aten::convolution_backward", 6, 20.0, parent=node)
    lonely = Event(5, "aten::mul", 9, 3.0)
    plain_conv = Event(6, "aten::mkldnn_convolution", 10, 4.0)
    times = profiling.op_family_times([lonely, bwd_conv, node, fwd_conv, fir, plain_conv])
    assert times["upfirdn2d"] == 31.5 and times["other"] == 3.0 and times["convolution"] == 4.0
