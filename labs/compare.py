"""Compare runs on the same seeds: per group the final, best and equal-time metric, per pair of groups the per-seed
differences with mean ± SD, a 95 % confidence interval and a two-sided paired p-value.

    python -m labs.compare /work/runs/noaug-plain-s* /work/runs/noaug-amix-s*
    python -m labs.compare out/dcgan-ns-s0 out/dcgan-ns-amix-s0 ...     # lab folders with results.jsonl
    python -m labs.compare out/toy-grid                                 # one labs.toy results.jsonl, many runs
    python -m labs.compare runs/noaug-*/0*/ --step-cost=adaptivemix=True:1.55   # equal compute, not wall clock

RUN_DIR is a `train.py` run folder, a labs.dcgan / labs.ssl / labs.toy folder with results.jsonl, or a folder
holding such folders. Runs are grouped by their options with the seed left out and paired by seed; the
statistics are those of `training.paired_stats` and the grouping that of `training.report_compare`, the same
code as the HTML report of `python -m training.report RUN_DIR... --out=report.html`.

`--step-cost=OPTION=VALUE:FACTOR` (repeatable) says that runs with that option value cost FACTOR times a plain
run per unit of progress (a measured ratio, e.g. AdaptiveMix's s/kimg over plain's from benchmarks/train.py);
the equal-time column then compares the runs at equal compute (progress x cost) instead of equal wall-clock,
which a shared machine or a paused run makes meaningless.
"""

from __future__ import annotations

import click

from training.report_compare import costed_runs, format_text
from training.report_runs import read_runs


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option(
    "--step-cost",
    "step_costs",
    multiple=True,
    metavar="OPTION=VALUE:FACTOR",
    help="Runs with this option value cost FACTOR x per unit of progress; equal time becomes equal compute",
)
def main(run_dirs: tuple[str, ...], step_costs: tuple[str, ...]) -> None:
    """Print the comparison of the runs under RUN_DIR... (grouped by options minus seed, paired by seed)."""
    try:
        runs, clock = costed_runs(read_runs(list(run_dirs)), list(step_costs))
    except (ValueError, OSError) as err:
        raise click.UsageError(str(err)) from None
    print(format_text(runs, clock))


if __name__ == "__main__":
    main()
