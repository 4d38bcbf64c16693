"""Speed of the toy lab's PacGAN protocol: milliseconds per G step of each variant, and the minutes of one run at
the preset's budget (8,000 steps), on one thread, against the lab's earlier form in the same process.

    python benchmarks/toy.py                                   # the variants of docs/experiments.md's 2D tables
    python benchmarks/toy.py --variants=plain,pack4 --steps=300 --rounds=5

The earlier form (what the lab ran before it was tuned for this protocol): maxout as `amax` over the pieces
(its backward builds an equality mask over all pieces; `max` routes each gradient through the saved index),
Adam's per-tensor update loop instead of the fused kernel, and minibatch discrimination's pairwise L1 distances
through the [B, N, N, C] differences in forward and autograd's backward instead of `PairwiseL1`. Both forms train the same networks on the same
batches; each round times `--steps` steps of every variant in both forms, alternating, after one untimed round.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext

import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from labs.toy import networks  # noqa: E402
from labs.toy.run import PRESETS, ToyConfig, ToyRun  # noqa: E402
from training.techniques import minibatch_discrimination  # noqa: E402

VARIANTS = "plain,adaptivemix,bures,adaptivemix+bures,mbdisc,pack2,pack4"


class DirectL1:
    """Pairwise L1 distances [B, N, N] of m [B, N, C] through the differences, autograd's backward."""

    @staticmethod
    def apply(m: torch.Tensor) -> torch.Tensor:
        return (m[:, :, None] - m[:, None]).abs().sum(dim=3)


@contextmanager
def earlier_form():
    """Maxout.forward as amax over the pieces and minibatch discrimination's direct L1 while inside."""
    project_forward, project_l1 = networks.Maxout.forward, minibatch_discrimination.PairwiseL1

    def amax_forward(self, x):
        return self.linear(x).unflatten(1, (-1, self.pieces)).amax(dim=2)

    networks.Maxout.forward, minibatch_discrimination.PairwiseL1 = amax_forward, DirectL1
    try:
        yield
    finally:
        networks.Maxout.forward, minibatch_discrimination.PairwiseL1 = project_forward, project_l1


def make_run(dataset: str, variant: str, earlier: bool) -> ToyRun:
    run = ToyRun(ToyConfig(dataset, "ns", variant, 0))
    if earlier:
        cfg = run.cfg
        run.opt_G = torch.optim.Adam(run.G.parameters(), lr=cfg.lr, betas=cfg.betas, foreach=False)
        run.opt_D = torch.optim.Adam(run.D.parameters(), lr=cfg.lr, betas=cfg.betas, foreach=False)
    return run


def time_steps(run: ToyRun, steps: int, earlier: bool) -> float:
    """Milliseconds per G step (with its D step) over `steps` steps."""
    run.cfg.steps = steps
    with earlier_form() if earlier else nullcontext():
        start = time.perf_counter()
        run.train()
        return (time.perf_counter() - start) / steps * 1000


@click.command()
@click.option("--variants", default=VARIANTS, show_default=True, help="Comma-separated toy variants")
@click.option("--dataset", default="pacgan-grid", show_default=True, help="pacgan-grid or pacgan-ring")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True, help="Steps per timing")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Alternating rounds")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads")
def main(variants: str, dataset: str, steps: int, rounds: int, threads: int) -> None:
    """Time each variant in the project's form and the earlier form, alternating."""
    torch.set_num_threads(threads)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    budget = PRESETS["pacgan"][0]
    runs = {(v, e): make_run(dataset, v, e) for v in names for e in (False, True)}
    times: dict = {key: [] for key in runs}
    for r in range(rounds + 1):
        for (variant, earlier), run in runs.items():
            ms = time_steps(run, steps, earlier)
            if r > 0:  # Round 0 warms up allocator and kernels.
                times[(variant, earlier)].append(ms)
        print(f"round {r}/{rounds} done", file=sys.stderr)
    print(f"{dataset}, {threads} thread(s), median of {rounds} rounds of {steps} steps; minutes for {budget} steps")
    print(f"{'variant':<20} {'ms/step':>8} {'min/run':>8} {'earlier ms':>11} {'min/run':>8} {'ratio':>6}")
    for variant in names:
        now, before = (statistics.median(times[(variant, e)]) for e in (False, True))
        print(
            f"{variant:<20} {now:8.1f} {now * budget / 60000:8.2f} {before:11.1f} {before * budget / 60000:8.2f}"
            f" {now / before:6.2f}"
        )


if __name__ == "__main__":
    main()
