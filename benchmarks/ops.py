"""Forward+backward time of the custom ops at StyleGAN2 shapes: reference path, torch.compile of it, CUDA kernels.

Usage: python benchmarks/ops.py [--device cpu|cuda] [--iters N] [--quick] [--compile | --no-compile]

Prints one row per op and implementation with the median time per iteration (forward plus backward w.r.t.
the input) and the ratio to the reference path measured in the same run (< 1 is faster). `--quick` uses
small shapes and skips torch.compile unless `--compile` is given (under a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils import custom_ops  # noqa: E402
from torch_utils.ops import bias_act, conv2d_resample, upfirdn2d  # noqa: E402


@contextlib.contextmanager
def reference_forced() -> Iterator[None]:
    """Force the reference paths everywhere (ops called without an `impl`, e.g. inside conv2d_resample)."""
    old = os.environ.get(custom_ops.REFERENCE_ENV)
    os.environ[custom_ops.REFERENCE_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[custom_ops.REFERENCE_ENV]
        else:
            os.environ[custom_ops.REFERENCE_ENV] = old


def make_cases(
    quick: bool, device: torch.device
) -> list[tuple[str, list[int], Callable[[torch.Tensor, str], torch.Tensor]]]:
    """(name, input shape, op(x, impl)) for each benchmarked call."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    gen = torch.Generator().manual_seed(0)

    def weight(out_ch: int, in_ch: int, k: int) -> torch.Tensor:
        return (torch.randn(out_ch, in_ch, k, k, generator=gen) / (in_ch * k * k) ** 0.5).to(device)

    c_big, c_small, s_small, s_big, n = (512, 128, 32, 128, 16) if not quick else (32, 16, 16, 32, 2)
    bias = torch.randn(c_big, generator=gen).to(device)
    w_up, w_down, w_skip = weight(c_big, c_big, 3), weight(c_big, c_big, 3), weight(c_big, c_big, 1)

    def conv(w: torch.Tensor, **kwargs) -> Callable[[torch.Tensor, str], torch.Tensor]:
        # conv2d_resample has no `impl`: its upfirdn2d calls use the kernels unless reference_forced() is active.
        return lambda x, impl: conv2d_resample.conv2d_resample(x, w, f=f, **kwargs)

    return [
        (
            "upsample2d (upfirdn2d up 2)",
            [n, c_big, s_small, s_small],
            lambda x, impl: upfirdn2d.upsample2d(x, f, impl=impl),
        ),
        (
            "downsample2d (upfirdn2d down 2)",
            [n, c_big, s_small, s_small],
            lambda x, impl: upfirdn2d.downsample2d(x, f, impl=impl),
        ),
        (
            "upsample2d (upfirdn2d up 2)",
            [n, c_small, s_big, s_big],
            lambda x, impl: upfirdn2d.upsample2d(x, f, impl=impl),
        ),
        (
            "downsample2d (upfirdn2d down 2)",
            [n, c_small, s_big, s_big],
            lambda x, impl: upfirdn2d.downsample2d(x, f, impl=impl),
        ),
        (
            "bias_act lrelu",
            [n, c_big, 2 * s_small, 2 * s_small],
            lambda x, impl: bias_act.bias_act(x, bias, act="lrelu", impl=impl),
        ),
        (
            "bias_act lrelu clamp 256",
            [n, c_big, 2 * s_small, 2 * s_small],
            lambda x, impl: bias_act.bias_act(x, bias, act="lrelu", clamp=256, impl=impl),
        ),
        ("conv2d_resample 3x3 up 2 (G conv0)", [n, c_big, s_small, s_small], conv(w_up, up=2, padding=1)),
        ("conv2d_resample 3x3 down 2 (D conv1)", [n, c_big, s_small, s_small], conv(w_down, down=2, padding=1)),
        ("conv2d_resample 1x1 down 2 (D skip)", [n, c_big, s_small, s_small], conv(w_skip, down=2)),
    ]


def time_call(fn: Callable[[], None], iters: int, device: torch.device, warmup: int = 2) -> float:
    """Median seconds per call of `fn` (after `warmup` untimed calls)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        y = op(x)
        y.backward(torch.ones_like(y))
        x.grad = None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per row (median reported)")
    parser.add_argument("--quick", action="store_true", help="small shapes, for a quick check on a CPU")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile rows (default: on unless --quick)",
    )
    args = parser.parse_args()
    use_compile = args.compile if args.compile is not None else not args.quick
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if args.iters < 1:
        parser.error("--iters must be >= 1")

    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, iters {args.iters}, {'quick' if args.quick else 'full'} shapes"
    )
    print(f"{'op':40s} {'input shape':22s} {'impl':8s} {'ms/iter':>10s} {'vs ref':>8s}")
    if not use_compile:
        print("(torch.compile rows skipped: --quick or --no-compile)")
    kernels_used = device.type == "cuda" and not custom_ops.reference_forced()
    for name, shape, op in make_cases(args.quick, device):
        x = torch.randn(shape, device=device, requires_grad=True)
        with reference_forced():
            ref_seconds = time_call(forward_backward(lambda t, op=op: op(t, "ref"), x), args.iters, device)
            rows = [("ref", ref_seconds)]
            if use_compile:
                try:
                    torch.compiler.reset()  # one compiled function per row; avoids hitting the recompile limit
                    compiled = torch.compile(lambda t, op=op: op(t, "ref"), dynamic=False)
                    rows.append(("compile", time_call(forward_backward(compiled, x), args.iters, device)))
                except Exception as error:  # noqa: BLE001 - report and go on
                    print(
                        f"  (torch.compile skipped for {name}: {type(error).__name__}: {str(error).splitlines()[0][:120]})"
                    )
        if kernels_used:
            rows.append(("cuda", time_call(forward_backward(lambda t, op=op: op(t, "cuda"), x), args.iters, device)))
        for impl, seconds in rows:
            print(
                f"{name:40s} {str(shape):22s} {impl:8s} {seconds * 1e3:10.3f} {seconds / ref_seconds:8.2f}", flush=True
            )


if __name__ == "__main__":
    main()
