"""The reports' figures (matplotlib, imported here only): one run's progress figure and the curves of many runs
overlaid by group. Figures are drawn with matplotlib's object API (no pyplot state), so they can be drawn from
any thread, and returned as PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

import numpy as np

from training.image_grid import load_thumbnail
from training.report_compare import Group, lower_is_better
from training.report_runs import Curve, Run

# The per-tick statistics of a train.py run, by panel: (title, y label, [(statistic, legend label)]).
STAT_PANELS = [
    ("G and D loss", "loss (per-tick mean)", [("Loss/G/loss", "G loss"), ("Loss/D/loss", "D loss")]),
    ("D outputs", "logit (per-tick mean)", [("Loss/scores/real", "D(real)"), ("Loss/scores/fake", "D(fake)")]),
    (
        "Augmentation probability",
        "p / r_t",
        [
            ("Progress/augment", "ADA p (or fixed p)"),
            ("Progress/apa", "APA p"),
            ("Loss/signs/real", "r_t = E[sign D(real)]"),
        ],
    ),
    (
        "AdaptiveMix and technique terms",
        "term (per-tick mean)",
        [
            ("Loss/adaptivemix", "AdaptiveMix shrinkage"),
            ("Loss/G/feature_matching", "feature matching"),
            ("Loss/G/bures", "Bures distance"),
            ("Loss/G/hist_avg", "G historical averaging"),
            ("Loss/D/hist_avg", "D historical averaging"),
        ],
    ),
    (
        "Regularisers",
        "penalty (per-tick mean)",
        [("Loss/r1_penalty", "R1 penalty"), ("Loss/pl_penalty", "path-length penalty")],
    ),
    ("Speed", "s/kimg", [("Timing/sec_per_kimg", "seconds per kimg")]),
]
# Statistics shown elsewhere or derived from ones shown (the weighted regulariser terms, fake signs).
_NOT_TERMS = {"Loss/G/reg", "Loss/D/reg", "Loss/signs/fake"}
TIME_NOTE = "ticks only: no start-up, snapshots, metrics"


def time_axis(hours: Iterable[np.ndarray]) -> tuple[float, str]:
    """(factor, label) for a training-time axis: minutes when every time is under an hour, else hours."""
    finite = [h[np.isfinite(h)] for h in hours]
    longest = max((float(h.max()) for h in finite if len(h)), default=0.0)
    return (1.0, f"training time [h] ({TIME_NOTE})") if longest >= 1 else (60.0, f"training time [min] ({TIME_NOTE})")


def _figure(width: float, height: float):
    """A figure without a layout engine (the margins are set by each caller's grid: half the drawing time)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80)


def _margins(height: float) -> dict:
    """Fixed margins in inches (1 in at the top for the title, 0.6 in at the bottom) as figure fractions."""
    return dict(left=0.06, right=0.98, top=1 - 0.9 / height, bottom=0.6 / height, wspace=0.25, hspace=0.55)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _scale(ax, values: Iterable[np.ndarray]) -> None:
    """Log y when every value is positive and they span more than a factor of 20."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.array([])])
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_yscale("log")


def stat_panels(run: Run) -> list[tuple[str, str, list[tuple[str, Curve]]]]:
    """(title, y label, [(legend, curve)]) for every panel with data; statistics not named in STAT_PANELS that
    are losses join the terms panel, and a lab's statistics form one panel."""
    named = {name for _, _, items in STAT_PANELS for name, _ in items}
    panels = []
    for title, ylabel, items in STAT_PANELS:
        lines = [(label, run.stats[name]) for name, label in items if name in run.stats]
        if title.startswith("AdaptiveMix"):
            lines += [(n, c) for n, c in run.stats.items() if n.startswith("Loss/") and n not in named | _NOT_TERMS]
        if lines:
            panels.append((title, ylabel, lines))
    if run.kind != "train" and run.stats:
        panels.append(("Training statistics", "value", list(run.stats.items())))
    return panels


def progress_figure(run: Run) -> bytes:
    """One run: every metric against progress and training time, the training statistics, the latest grid."""
    metric_rows = list(run.metrics.items())
    stats = stat_panels(run)
    if run.kind == "train":
        stats = [p for p in stats if p[0] != "Speed"] + [p for p in stats if p[0] == "Speed"]
    rows = max(len(metric_rows), 1) + math.ceil(len(stats) / 2)
    has_grid = run.grid is not None
    height = 2.7 * rows + 1.2
    fig = _figure(19 if has_grid else 12, height)
    grid = fig.add_gridspec(
        rows, 3 if has_grid else 2, width_ratios=[1, 1, 1.25] if has_grid else [1, 1], **_margins(height)
    )
    fig.suptitle(f"{run.name}  ({run.status}; {_last_progress(run)})", fontsize=13)
    if not metric_rows:
        ax = fig.add_subplot(grid[0, 0:2])
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No metrics yet: train.py --metrics=..., or calc_metrics.py --network=<snapshot> on a snapshot of this run",
            ha="center",
            va="center",
            fontsize=11,
        )
    for row, (name, curve) in enumerate(metric_rows):
        better = "lower" if lower_is_better(name) else "higher"
        factor, time_label = time_axis([curve.hours])
        for col, (xs, xlabel) in enumerate([(curve.x, run.unit), (curve.hours * factor, time_label)]):
            ax = fig.add_subplot(grid[row, col])
            ax.plot(xs, curve.y, marker="o", markersize=3, label=name)
            _scale(ax, [curve.y])
            ax.set(xlabel=xlabel, ylabel=name, title=f"{name} ({better} is better)")
            ax.grid(alpha=0.3)
            if len(curve.y):
                i = int(np.nanargmin(curve.y) if better == "lower" else np.nanargmax(curve.y))
                ax.plot(xs[i], curve.y[i], "*", color="C3", markersize=10, label=f"best {curve.y[i]:.4g}")
                ax.legend(fontsize=8)
    first = max(len(metric_rows), 1)
    for k, (title, ylabel, lines) in enumerate(stats):
        ax = fig.add_subplot(grid[first + k // 2, k % 2])
        for label, curve in lines:
            ax.plot(curve.x, curve.y, label=label, linewidth=1)
        if title not in ("D outputs", "Augmentation probability", "AdaptiveMix and technique terms"):
            _scale(ax, [c.y for _, c in lines])
        ax.set(xlabel=run.unit, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if has_grid:
        ax = fig.add_subplot(grid[:, 2])
        ax.imshow(np.asarray(load_thumbnail(run.grid, 640)), interpolation="antialiased")
        ax.set_axis_off()
        ax.set_title(f"latest fakes: {run.grid.rsplit('/', 1)[-1]}")
    return _png(fig)


def _last_progress(run: Run) -> str:
    curves = [c for c in (*run.stats.values(), *run.metrics.values()) if len(c.x)]
    if not curves:
        return "no ticks yet"
    x = max(float(c.x[-1]) for c in curves)
    hours = max(float(np.nanmax(c.hours)) if np.isfinite(c.hours).any() else 0.0 for c in curves)
    return f"{x:g} {run.unit}, {hours:.2f} h of training"


# ----------------------------------------------------------------------------
# Many runs.


def group_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and sample SD of several curves [(x, y)] on the x values all of them cover (each run linearly
    interpolated there); None when fewer than two curves overlap."""
    curves = [(x, y) for x, y in curves if len(x) >= 2 and np.isfinite(x).all()]
    if len(curves) < 2:
        return None
    low = max(float(x.min()) for x, _ in curves)
    high = min(float(x.max()) for x, _ in curves)
    grid = np.unique(np.concatenate([x[(x >= low) & (x <= high)] for x, _ in curves]))
    if len(grid) < 2:
        return None
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0, ddof=1)


def _overlay(ax, groups: list[Group], names: dict[str, str], get, time_factor: float | None) -> list[np.ndarray]:
    """Draw every run's curve (against progress, or against training time times `time_factor`), and each
    group's mean ± SD band; returns the y arrays drawn."""
    drawn = []
    for i, group in enumerate(groups):
        color = f"C{i % 10}"
        curves = []
        for run in group.runs:
            curve = get(run)
            if curve is None or not len(curve.y):
                continue
            x = curve.x if time_factor is None else curve.hours * time_factor
            curves.append((x, curve.y))
            drawn.append(curve.y)
            ax.plot(
                x,
                curve.y,
                color=color,
                alpha=0.3 if len(group.runs) > 1 else 1,
                linewidth=1,
                marker="o" if len(curve.y) == 1 else None,
                label=None if len(group.runs) > 1 else names[group.label],
            )
        band = group_band(curves)
        if band is not None:
            grid, mean, sd = band
            ax.plot(grid, mean, color=color, linewidth=2, label=f"{names[group.label]} (mean ± SD, {len(curves)} runs)")
            ax.fill_between(grid, mean - sd, mean + sd, color=color, alpha=0.2)
        elif len(group.runs) > 1 and curves:
            ax.plot([], [], color=color, label=names[group.label])
    return drawn


def comparison_figure(groups: list[Group], names: dict[str, str], metric: str, clock: str | None = None) -> bytes:
    """`metric` of every run against progress and against training time (or, with `clock`, against the runs'
    cost-weighted progress of `report_compare.with_step_costs`, in the unit `clock` names); groups coloured,
    seeds thin, group mean ± SD bold with a band."""
    unit = groups[0].runs[0].unit
    fig = _figure(15, 5)
    axes = fig.subplots(1, 2, gridspec_kw=_margins(5))
    better = "lower" if lower_is_better(metric) else "higher"
    if clock is None:
        factor, time_label = time_axis([r.metrics[metric].hours for g in groups for r in g.runs if metric in r.metrics])
    else:
        factor, time_label = 1.0, clock
    for ax, time_factor in zip(axes, (None, factor)):
        drawn = _overlay(ax, groups, names, lambda r: r.metrics.get(metric), time_factor)
        _scale(ax, drawn)
        ax.set(
            xlabel=unit if time_factor is None else time_label, ylabel=metric, title=f"{metric} ({better} is better)"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def _two_column_panels(count: int):
    """A 15-inch-wide figure with `count` panels two a row (3.6 in each row); unused cells are switched off.
    Returns (figure, the `count` axes in reading order)."""
    rows = math.ceil(count / 2)
    height = 3.6 * rows + 1
    fig = _figure(15, height)
    axes = np.atleast_1d(fig.subplots(rows, 2, gridspec_kw=_margins(height))).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return fig, axes[:count]


def metrics_figure(groups: list[Group], names: dict[str, str], metrics: list[str], clock: str | None = None) -> bytes:
    """One panel per metric, every run against progress (groups coloured, seeds thin, group mean ± SD bold with
    a band), two panels a row: for docs, where the runs' wall clocks are not comparable. With `clock` (runs from
    `report_compare.with_step_costs`), each metric is a row: against progress, then against the cost-weighted
    progress that `clock` names (equal compute)."""
    panels = [(metric, clocked) for metric in metrics for clocked in ((False, True) if clock else (False,))]
    fig, axes = _two_column_panels(len(panels))
    for ax, (metric, clocked) in zip(axes, panels):
        drawn = _overlay(ax, groups, names, lambda r, m=metric: r.metrics.get(m), 1.0 if clocked else None)
        _scale(ax, drawn)
        better = "lower" if lower_is_better(metric) else "higher"
        xlabel = clock if clocked else groups[0].runs[0].unit
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{metric} ({better} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def stats_comparison_figure(groups: list[Group], names: dict[str, str]) -> bytes | None:
    """G loss, D loss, augmentation p and s/kimg of every train.py run, overlaid by group (None without them)."""
    wanted = [
        ("Loss/G/loss", "G loss"),
        ("Loss/D/loss", "D loss"),
        ("Progress/augment", "augmentation p"),
        ("Timing/sec_per_kimg", "s/kimg"),
    ]
    present = [(n, t) for n, t in wanted if any(n in r.stats for g in groups for r in g.runs)]
    if not present:
        return None
    fig, axes = _two_column_panels(len(present))
    for ax, (name, title) in zip(axes, present):
        _overlay(ax, groups, names, lambda r, n=name: r.stats.get(n), None)
        ax.set(xlabel=groups[0].runs[0].unit, ylabel=title, title=f"{title} (per-tick mean)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)
