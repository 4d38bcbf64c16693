"""Compare runs: group them by their options minus the seed, summarise each metric per run and per group, and
pair groups by seed.

Per run and metric: `final` = mean of the last three evaluations (fewer if the run has fewer), `best` = the
lowest value for metrics where lower is better (FID, KID, MMD, error), else the highest, and `equal_time` =
mean of the last three evaluations at or before the common training time T (the smallest last-evaluation time
among all runs that have the metric), so that a slower method is compared after the same compute. For each
pair of groups and each of these three measures, the per-seed differences (second group minus first) go
through `paired_difference`. With step costs (`with_step_costs`, `python -m labs.compare --step-cost`), the
clock of `equal_time` is progress times the run's cost per unit instead of wall-clock hours: the measure
becomes equal compute, for runs whose wall clocks are not comparable (a shared machine, pauses, other
hardware). The evaluation of the untrained start (`train.py`'s first snapshot: progress below
1 % of the run's last evaluation) is left out of all three when the run has later ones: it says nothing about
the method and would dominate a mean of three.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any

import numpy as np

from training.paired_stats import PairedDifference, paired_difference
from training.report_runs import Run

LAST_N = 3
START_FRACTION = 0.01  # Evaluations before 1 % of a run's last evaluation's progress are of the untrained start.
MEASURES = ("final", "best", "equal_time")
_LOWER_IS_BETTER = re.compile(r"fid|kid|fd_|mmd|error|ppl|loss", re.IGNORECASE)
MAX_ALL_PAIRS_GROUPS = 8  # With more groups, only pairs of groups that differ in one option are compared.


def lower_is_better(metric: str) -> bool:
    return bool(_LOWER_IS_BETTER.search(metric))


@dataclasses.dataclass
class Group:
    label: str  # 'A', 'B', ...
    options: dict[str, Any]  # The shared options (flattened).
    runs: list[Run]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with equal kind and options (seed and bookkeeping aside) form a group, in order of first appearance."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = repr((run.kind, sorted(run.options.items(), key=lambda kv: kv[0])))
        if key not in groups:
            groups[key] = Group(chr(ord("A") + len(groups)) if len(groups) < 26 else f"G{len(groups)}", run.options, [])
        groups[key].runs.append(run)
    return list(groups.values())


def differing_options(groups: list[Group]) -> list[str]:
    """Option names whose value (or presence) is not the same in every group, sorted."""
    names = sorted({k for g in groups for k in g.options})
    missing = object()
    return [k for k in names if len({repr(g.options.get(k, missing)) for g in groups}) > 1]


def describe_group(group: Group, keys: list[str], width: int = 70) -> str:
    """'A: noise_std=0.05, variant=release' from the differing options (last part of each name, each
    'name=value' once; shortened to `width` characters)."""
    parts = dict.fromkeys(f"{k.rsplit('.', 1)[-1]}={group.options[k]}" for k in keys if k in group.options)
    text = ", ".join(parts)
    text = text if len(text) <= width else text[: width - 3] + "..."
    return f"{group.label}: {text or group.runs[0].name}"


# ----------------------------------------------------------------------------
# Per-run summaries.


@dataclasses.dataclass
class RunSummary:
    final: float
    best: float
    best_at: float  # Progress (run's unit) of the best value.
    equal_time: float
    evaluations: int


def common_time(runs: list[Run], metric: str) -> float:
    """T: the smallest last-evaluation training time [h] among the runs that have `metric` (NaN if unknown)."""
    ends = [float(r.metrics[metric].hours[-1]) for r in runs if metric in r.metrics and len(r.metrics[metric].y)]
    return min(ends) if ends and not any(math.isnan(e) for e in ends) else float("nan")


def summarize_run(run: Run, metric: str, time_h: float) -> RunSummary | None:
    """The run's final, best and equal-time values of `metric` (None if the run has no such evaluation)."""
    curve = run.metrics.get(metric)
    if curve is None or not len(curve.y):
        return None
    ok = ~np.isnan(curve.y)
    if not ok.any():
        return None
    trained = ok & (curve.x >= START_FRACTION * curve.x[ok][-1])
    keep = trained if trained.any() else ok  # The untrained start's evaluation counts only when it is the only one.
    y, x, hours = curve.y[keep], curve.x[keep], curve.hours[keep]
    i = int(np.argmin(y) if lower_is_better(metric) else np.argmax(y))
    before = y[hours <= time_h + 1e-9] if not math.isnan(time_h) else np.array([])
    equal = float(before[-LAST_N:].mean()) if len(before) else float("nan")
    return RunSummary(float(y[-LAST_N:].mean()), float(y[i]), float(x[i]), equal, int(ok.sum()))


def parse_step_cost(spec: str) -> tuple[str, str, float]:
    """'adaptivemix=True:1.55' -> ('adaptivemix', 'True', 1.55): runs whose option `adaptivemix` (the full
    flattened name or its last part) reads `True` cost 1.55x a plain run per unit of progress."""
    match = re.fullmatch(r"([^=:]+)=([^:]*):([0-9.eE+-]+)", spec)
    factor = float(match.group(3)) if match and re.fullmatch(r"[0-9.eE+-]+", match.group(3)) else float("nan")
    if not match or not factor > 0:
        raise ValueError(f"step cost {spec!r}: write OPTION=VALUE:FACTOR with FACTOR > 0, e.g. adaptivemix=True:1.55")
    return match.group(1), match.group(2), factor


def run_step_cost(run: Run, costs: list[tuple[str, str, float]]) -> float:
    """The product of the factors whose option the run has with that value (1 when none matches)."""
    factor = 1.0
    for name, value, cost in costs:
        if any((key == name or key.rsplit(".", 1)[-1] == name) and str(v) == value for key, v in run.options.items()):
            factor *= cost
    return factor


def with_step_costs(runs: list[Run], costs: list[tuple[str, str, float]]) -> list[Run]:
    """Copies of `runs` whose metric clocks (`Curve.hours`) are progress x `run_step_cost`, in the runs' unit
    of progress at cost 1 (e.g. plain-run kimg), so that `equal_time` compares equal compute."""
    out = []
    for run in runs:
        factor = run_step_cost(run, costs)
        metrics = {k: dataclasses.replace(c, hours=c.x * factor) for k, c in run.metrics.items()}
        out.append(dataclasses.replace(run, metrics=metrics))
    return out


def costed_runs(runs: list[Run], step_costs: list[str]) -> tuple[list[Run], str]:
    """(runs, clock unit) for the command lines' `--step-cost OPTION=VALUE:FACTOR` list: the runs unchanged and
    'h of training' without costs, else `with_step_costs` and 'kimg at cost 1 (--step-cost)' (the runs' unit)."""
    costs = [parse_step_cost(spec) for spec in step_costs]
    if not costs:
        return runs, "h of training"
    units = "/".join(sorted({run.unit for run in runs}))
    return with_step_costs(runs, costs), f"{units} at cost 1 (--step-cost)"


def metric_names(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(m for r in runs for m in r.metrics))


# ----------------------------------------------------------------------------
# Pairs of groups.


@dataclasses.dataclass
class PairComparison:
    first: Group
    second: Group
    metric: str
    seeds: list[int]  # The paired seeds, in order.
    differences: dict[str, list[float]]  # Measure -> per-seed second - first.
    stats: dict[str, PairedDifference]
    unpaired: list[str]  # 'seed 3 only in A', 'seed 1 in B has no fid'.


def _by_seed(group: Group, metric: str, time_h: float, notes: list[str]) -> dict[int, RunSummary]:
    out: dict[int, RunSummary] = {}
    for run in group.runs:
        summary = summarize_run(run, metric, time_h)
        if run.seed is None:
            notes.append(f"{run.name} in {group.label} has no seed")
        elif summary is None:
            notes.append(f"seed {run.seed} in {group.label} has no {metric}")
        elif run.seed in out:
            notes.append(f"seed {run.seed} twice in {group.label} (kept the first run)")
        else:
            out[run.seed] = summary
    return out


def compare_pair(first: Group, second: Group, metric: str, time_h: float) -> PairComparison:
    """Per-seed differences second - first of each measure, and their paired statistics."""
    notes: list[str] = []
    a, b = _by_seed(first, metric, time_h, notes), _by_seed(second, metric, time_h, notes)
    seeds = sorted(set(a) & set(b))
    seeds_a, seeds_b = set(first.seeds) - {None}, set(second.seeds) - {None}
    for seed in sorted(seeds_a ^ seeds_b):
        notes.append(f"seed {seed} only in {first.label if seed in seeds_a else second.label}")
    differences, stats = {}, {}
    for measure in MEASURES:
        pairs = [(getattr(b[s], measure), getattr(a[s], measure)) for s in seeds]
        pairs = [(x, y) for x, y in pairs if not (math.isnan(x) or math.isnan(y))]
        differences[measure] = [x - y for x, y in pairs]
        stats[measure] = paired_difference([x for x, _ in pairs], [y for _, y in pairs])
    return PairComparison(first, second, metric, seeds, differences, stats, notes)


def group_pairs(groups: list[Group], metric: str | None = None) -> list[tuple[Group, Group]]:
    """All pairs of groups (of those with `metric` in some run, when given), or with more than
    MAX_ALL_PAIRS_GROUPS such groups the pairs that differ in one option."""
    if metric is not None:
        groups = [g for g in groups if any(metric in r.metrics for r in g.runs)]
    pairs = list(itertools.combinations(groups, 2))
    if len(groups) <= MAX_ALL_PAIRS_GROUPS:
        return pairs
    missing = object()

    def differ(g: Group, h: Group) -> int:
        keys = set(g.options) | set(h.options)
        return sum(repr(g.options.get(k, missing)) != repr(h.options.get(k, missing)) for k in keys)

    return [(g, h) for g, h in pairs if differ(g, h) == 1]


# ----------------------------------------------------------------------------
# Text.


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def mean_sd(values: list[float]) -> str:
    """'m ± s (n)' with the sample SD; just 'm' for one value, '-' for none."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return _fmt(values[0])
    return f"{_fmt(float(np.mean(values)))} ± {_fmt(float(np.std(values, ddof=1)))} (n={len(values)})"


def group_table_rows(groups: list[Group], metric: str, time_h: float) -> list[list[str]]:
    """Rows [group, seeds, final, best, equal-time] with mean ± SD over the group's runs."""
    rows = []
    for group in groups:
        summaries = [s for r in group.runs if (s := summarize_run(r, metric, time_h)) is not None]
        if not summaries:
            continue
        seeds = ",".join(str(s) for s in group.seeds)
        rows.append([group.label, seeds] + [mean_sd([getattr(s, m) for s in summaries]) for m in MEASURES])
    return rows


def run_table_rows(groups: list[Group], metric: str, time_h: float) -> list[list[str]]:
    """Rows [group, run, seed, status, evaluations, final, best (at), equal-time]."""
    rows = []
    for group in groups:
        for run in group.runs:
            s = summarize_run(run, metric, time_h)
            if s is None:
                continue
            best = f"{_fmt(s.best)} (at {s.best_at:g} {run.unit})"
            rows.append(
                [
                    group.label,
                    run.name,
                    str(run.seed),
                    run.status,
                    str(s.evaluations),
                    _fmt(s.final),
                    best,
                    _fmt(s.equal_time),
                ]
            )
    return rows


def pair_lines(pair: PairComparison) -> list[str]:
    """Per measure: per-seed differences, then mean ± SD, CI, p and the bootstrap CI."""
    better = "lower" if lower_is_better(pair.metric) else "higher"
    lines = [f"{pair.second.label} - {pair.first.label} ({pair.metric}, {better} is better), seeds {pair.seeds}:"]
    for measure in MEASURES:
        diffs = ", ".join(_fmt(d) for d in pair.differences[measure])
        lines.append(f"  {measure:<10s} [{diffs}] -> {pair.stats[measure].describe('{:.4g}')}")
    lines += [f"  ({note})" for note in pair.unpaired]
    return lines


def format_text(runs: list[Run], clock: str = "h of training") -> str:
    """The whole comparison as plain text (what `python -m labs.compare` prints); `clock` names the unit of the
    equal-time clock (hours, or progress at cost 1 after `with_step_costs`)."""
    groups = group_runs(runs)
    keys = differing_options(groups)
    out = ["Groups (runs with the same options, seed aside):"]
    out += [f"  {describe_group(g, keys)}  [{len(g.runs)} runs]" for g in groups]
    for metric in metric_names(runs):
        time_h = common_time(runs, metric)
        better = "lower" if lower_is_better(metric) else "higher"
        out += [
            "",
            f"== {metric} ({better} is better; final = mean of the last {LAST_N} evaluations; "
            f"equal time = at T = {_fmt(time_h)} {clock})",
        ]
        out.append(_table(["group", "seeds", "final", "best", "equal time"], group_table_rows(groups, metric, time_h)))
        out.append(
            _table(
                ["group", "run", "seed", "status", "evals", "final", "best", "equal time"],
                run_table_rows(groups, metric, time_h),
            )
        )
        for first, second in group_pairs(groups, metric):
            out += pair_lines(compare_pair(first, second, metric, time_h))
    out += [f"note: {n}" for n in dict.fromkeys(n for run in runs for n in run.notes)]
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    return "\n".join(lines)
