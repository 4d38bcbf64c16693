"""Alternatives to pieces of the training step, each timed against the form the project uses, in one process.

Each case alternates the two forms `--rounds` times (forward and backward, one thread by default) and prints
the median milliseconds of each and their ratio. docs/performance.md quotes these cases:

    python benchmarks/alternatives.py --case=joint-features    # F(x_hat) and F(x) as one call of 2N vs two of N
    python benchmarks/alternatives.py --case=bias-fold         # D's bias inside conv2d vs in bias_act
    python benchmarks/alternatives.py --case=fused-modconv     # grouped per-sample weights vs x * styles
    python benchmarks/alternatives.py --case=channels-last     # D's blocks in channels-last fp32 vs contiguous

Shapes are those of the ref32 config of benchmarks/train.py (batch 16; D at 32, 16 and 8 pixels).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import click
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train import CONFIGS, build  # noqa: E402
from torch_utils.ops import bias_act  # noqa: E402

Step = Callable[[], None]
SHAPES = [((16, 128, 32, 32), 128), ((16, 256, 16, 16), 256), ((16, 256, 8, 8), 256)]  # (x shape, out channels)


def ref32_discriminator() -> torch.nn.Module:
    torch.manual_seed(0)
    _, loss, _ = build(CONFIGS["ref32"], torch.device("cpu"), adaptivemix=False, fp16=False)
    return loss.D.requires_grad_(True)


def joint_features() -> list[tuple[str, Step, Step]]:
    """One F pass of 32 images against two of 16: with D's weight gradients (as in Dmain) and with only the
    input's gradient (as in Gmain, where D's weights are frozen)."""
    D = ref32_discriminator()
    cases = []
    for label, weights, inputs in (("weight grads (Dmain)", True, False), ("input grads (Gmain)", False, True)):
        x = torch.randn(16, 3, 32, 32, requires_grad=inputs)

        def two_calls(weights=weights, x=x):
            D.requires_grad_(weights)
            (D.features(x * 0.3)[0].sum() + D.features(x)[0].sum()).backward()

        def one_call(weights=weights, x=x):
            D.requires_grad_(weights)
            D.features(torch.cat([x * 0.3, x]))[0].sum().backward()

        cases.append((label, one_call, two_calls))
    return cases


def bias_fold() -> list[tuple[str, Step, Step]]:
    """conv2d then bias_act(b, lrelu) against conv2d(bias=b) then bias_act(None, lrelu)."""
    cases = []
    for shape, cout in SHAPES:
        x = torch.randn(shape, requires_grad=True)
        w = (torch.randn(cout, shape[1], 3, 3) * 0.03).requires_grad_(True)
        b = torch.randn(cout, requires_grad=True)

        def separate(x=x, w=w, b=b):
            y = bias_act.bias_act(F.conv2d(x, w, padding=1), b, act="lrelu", gain=2**0.5, clamp=256)
            y.backward(torch.ones_like(y))

        def folded(x=x, w=w, b=b):
            y = bias_act.bias_act(F.conv2d(x, w, b, padding=1), None, act="lrelu", gain=2**0.5, clamp=256)
            y.backward(torch.ones_like(y))

        cases.append((f"x {list(shape)}", separate, folded))
    return cases


def fused_modconv() -> list[tuple[str, Step, Step]]:
    """Modulated, demodulated 3x3 conv: (x * s) conv w * d against one grouped conv with per-sample weights."""
    cases = []
    for shape, _ in SHAPES:
        n, c, r, _ = shape
        x = torch.randn(shape, requires_grad=True)
        w = torch.randn(c, c, 3, 3, requires_grad=True)
        s = torch.randn(n, c, requires_grad=True)

        def separate(x=x, w=w, s=s):
            d = (w[None] * s[:, None, :, None, None]).square().sum([2, 3, 4]).add(1e-8).rsqrt()
            y = F.conv2d(x * s[:, :, None, None], w, padding=1) * d[:, :, None, None]
            y.backward(torch.ones_like(y))

        def grouped(x=x, w=w, s=s, n=n, c=c, r=r):
            ww = w[None] * s[:, None, :, None, None]
            ww = ww * ww.square().sum([2, 3, 4]).add(1e-8).rsqrt()[:, :, None, None, None]
            y = F.conv2d(x.reshape(1, n * c, r, r), ww.reshape(n * c, c, 3, 3), padding=1, groups=n)
            y.backward(torch.ones_like(y))

        cases.append((f"x {list(shape)}", separate, grouped))
    return cases


def channels_last() -> list[tuple[str, Step, Step]]:
    """D forward and backward (batch 32) with contiguous activations against channels-last ones."""
    import training.networks_discriminator as nd

    original = nd.block_precision
    state = {"channels_last": False}

    def block_precision(*args):
        dtype, memory_format = original(*args)
        return dtype, (torch.channels_last if state["channels_last"] else memory_format)

    nd.block_precision = block_precision  # This process only runs this case.
    D = ref32_discriminator()
    x = torch.randn(32, 3, 32, 32)

    def step(flag):
        state["channels_last"] = flag
        D.head(D.features(x), None).sum().backward()

    return [("D, batch 32", lambda: step(False), lambda: step(True))]


CASES = {
    "joint-features": (joint_features, "one call", "two calls"),
    "bias-fold": (bias_fold, "bias in bias_act", "bias in conv2d"),
    "fused-modconv": (fused_modconv, "x * styles", "grouped weights"),
    "channels-last": (channels_last, "contiguous", "channels-last"),
}


def median_ms(step: Step, other: Step, rounds: int) -> tuple[float, float]:
    """Median ms of `step` and of `other`, run alternately `rounds` times after one warm-up call each."""
    step(), other()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for i, fn in enumerate((step, other)):
            start = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


@click.command()
@click.option("--case", "case", required=True, type=click.Choice(list(CASES)))
@click.option("--threads", default=1, type=int, help="torch CPU threads")
@click.option("--rounds", default=5, type=int, help="alternating timings of each form; medians reported")
def main(case: str, threads: int, rounds: int) -> None:
    torch.set_num_threads(threads)
    make, name_a, name_b = CASES[case]
    print(f"{case}: CPU, {threads} thread(s), torch {torch.__version__}, median of {rounds} alternating rounds")
    for label, step_a, step_b in make():
        a, b = median_ms(step_a, step_b, rounds)
        print(f"  {label:<24} {name_a} {a:8.1f} ms   {name_b} {b:8.1f} ms   ratio {b / a:.3f}", flush=True)


if __name__ == "__main__":
    main()
