"""Pictures of training: a run's `progress.png` and a comparison report of many runs.

    python -m training.report RUN_DIR                       # (re)draw RUN_DIR/progress.png, also for an old run
    python -m training.report RUN_DIR... --out=report.html  # one self-contained HTML file comparing the runs
    python -m training.report RUN_DIR... --figure=fig.png --metrics=fid50k_full,conf10k_ratio   # one PNG

A RUN_DIR is a `train.py` run folder, a lab folder with results.jsonl (labs.dcgan, labs.ssl, labs.toy), or a
folder holding such folders. The training loop calls `ProgressFigure.update()` after every snapshot, so every
run folder carries a current progress.png. Figures need matplotlib (`pip install -e .[plots]`); without it
training runs as before and says once that figures are off.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Sequence

import click

from dnnlib import atomic
from training.report_runs import Run, is_train_run, read_lab_folder, read_runs, read_train_run

PROGRESS_NAME = "progress.png"
PLOTS_OFF = (
    "progress.png is off: matplotlib is not installed (turn figures on with `pip install -e .[plots]` "
    "or `pip install matplotlib`)"
)


def plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_progress_for(run: Run) -> str:
    """Draw `run`'s progress figure into its folder as progress.png (atomically); returns the path."""
    from training.report_plots import progress_figure

    path = os.path.join(run.path, PROGRESS_NAME)
    atomic.write_bytes(path, progress_figure(run))
    return path


def write_progress(run_dir: str) -> str:
    """Read the run folder `run_dir` (train.py run, labs.dcgan or labs.ssl folder) and write its progress.png."""
    runs = [read_train_run(run_dir)] if is_train_run(run_dir) else read_lab_folder(run_dir)
    if len(runs) != 1:
        raise ValueError(f"{run_dir} holds {len(runs)} toy runs (one point each): compare them with --out=report.html")
    return write_progress_for(runs[0])


class ProgressFigure:
    """The training loop's hook (rank 0): `update()` rewrites progress.png and never raises; a failure is one
    warning line, and without matplotlib it says once that figures are off and does nothing.

    Drawing takes a second or two of CPU. So that it never costs more than a tenth of the training time, a
    snapshot that comes sooner than ten drawing times after the previous figure is skipped (only tiny test runs
    snapshot that often); the last snapshot of a run (`final=True`) is always drawn.
    """

    def __init__(self, run_dir: str, log: Callable[[str], None] = print):
        self.run_dir = run_dir
        self.log = log
        self.enabled = plots_available()
        self.last_end = self.last_cost = 0.0
        if not self.enabled:
            log(PLOTS_OFF)

    def update(self, final: bool = False) -> None:
        if not self.enabled:
            return
        start = time.monotonic()
        if not final and self.last_end > 0 and start - self.last_end < 10 * self.last_cost:
            return
        try:
            write_progress(self.run_dir)
        except Exception as err:  # A figure must never stop training.
            self.log(f"warning: {PROGRESS_NAME} not updated ({type(err).__name__}: {err})")
        self.last_end = time.monotonic()
        self.last_cost = self.last_end - start


def write_report(paths: list[str], out: str, step_costs: Sequence[str] = ()) -> str:
    """Compare the runs under `paths` in one HTML file `out`; returns the plain-text summary. `step_costs`
    ('OPTION=VALUE:FACTOR', as `labs.compare --step-cost`) put equal time on a clock of progress x cost."""
    from training.report_compare import costed_runs, format_text
    from training.report_html import build_report

    runs, clock = costed_runs(read_runs(paths), list(step_costs))
    atomic.write_text(out, build_report(runs, clock if step_costs else None))
    return format_text(runs, clock)


def write_metrics_figure(
    paths: list[str],
    out: str,
    metrics: list[str],
    labels: list[str] | None = None,
    step_costs: Sequence[str] = (),
) -> None:
    """The `metrics` of all runs under `paths` against progress, grouped as in the report, as one PNG `out`;
    `labels` names the groups in order (A, B, ...) instead of their differing options; with `step_costs`
    (as `write_report`'s) each metric is also drawn against cost-weighted progress (equal compute)."""
    from training import report_compare as rc
    from training.report_plots import metrics_figure

    runs, clock = rc.costed_runs(read_runs(paths), list(step_costs))
    missing = [m for m in metrics if not any(m in r.metrics for r in runs)]
    if missing:
        known = ", ".join(rc.metric_names(runs)) or "none"
        raise ValueError(f"--metrics: no run has {', '.join(missing)} (these runs have: {known})")
    groups = rc.group_runs(runs)
    keys = rc.differing_options(groups)
    names = {g.label: rc.describe_group(g, keys, width=60) for g in groups}
    if labels is not None:
        if len(labels) != len(groups):
            listed = "; ".join(names.values())
            raise ValueError(f"--labels: {len(labels)} labels for {len(groups)} groups ({listed})")
        names = {g.label: f"{g.label}: {text}" for g, text in zip(groups, labels)}
    atomic.write_bytes(out, metrics_figure(groups, names, metrics, clock if step_costs else None))


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option("--out", metavar="HTML", help="Write a comparison report of all runs to this HTML file")
@click.option("--figure", metavar="PNG", help="Write the --metrics of all runs against progress to this PNG")
@click.option("--metrics", metavar="LIST", help="Comma-separated metric names for --figure (e.g. fid50k_full)")
@click.option("--labels", metavar="TEXT;TEXT", help="--figure's group names in order (A, B, ...), ';'-separated")
@click.option(
    "--step-cost",
    "step_costs",
    multiple=True,
    metavar="OPTION=VALUE:FACTOR",
    help="Runs with this option value cost FACTOR x per unit of progress: --out's equal time is equal compute, "
    "--figure adds each metric against cost-weighted progress",
)
def main(
    run_dirs: tuple[str, ...],
    out: str | None,
    figure: str | None,
    metrics: str | None,
    labels: str | None,
    step_costs: tuple[str, ...],
) -> None:
    """Draw progress.png for each RUN_DIR, or with --out compare all runs in one HTML file."""
    if not plots_available():
        raise click.ClickException("figures need matplotlib: pip install -e .[plots] (or pip install matplotlib)")
    if (figure is None) != (metrics is None):
        raise click.UsageError("--figure and --metrics go together: --figure=fig.png --metrics=fid50k_full")
    if step_costs and out is None and figure is None:
        raise click.UsageError("--step-cost changes the comparison: add --out=report.html or --figure=fig.png")
    try:
        if figure is not None:
            names = labels.split(";") if labels is not None else None
            write_metrics_figure(list(run_dirs), figure, [m for m in metrics.split(",") if m], names, step_costs)
            print(f"wrote {figure}")
            return
        if out is not None:
            print(write_report(list(run_dirs), out, list(step_costs)))
            print(f"wrote {out}")
            return
        for run in read_runs(list(run_dirs)):
            if run.kind == "toy":
                print(f"skipped {run.name}: a toy run is one point (compare toy runs with --out=report.html)")
                continue
            print(f"wrote {write_progress_for(run)}")
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from None


if __name__ == "__main__":
    main()
