"""The comparison report as one self-contained HTML file: figures and grids are inline PNGs (base64)."""

from __future__ import annotations

import base64
import html
import io
import time

from training import report_compare as rc
from training import report_plots
from training.image_grid import load_thumbnail
from training.report_runs import Run

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1300px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 90%; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
img { max-width: 100%; }
.grids { display: flex; flex-wrap: wrap; gap: 1em; }
.grids figure { margin: 0; max-width: 400px; }
pre { background: #f7f7f7; padding: 0.5em; font-size: 85%; }
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _grid_png(path: str, side: int = 384) -> bytes:
    buf = io.BytesIO()
    load_thumbnail(path, side).save(buf, format="PNG")
    return buf.getvalue()


def options_table(groups: list[rc.Group], keys: list[str]) -> str:
    """Rows: the options that differ between groups; columns: the groups."""
    if not keys:
        return "<p>All groups share every option (seed aside).</p>"
    rows = [[k] + [str(g.options.get(k, "(absent)")) for g in groups] for k in keys]
    return _table(["option"] + [f"group {g.label}" for g in groups], rows)


def pair_table(pair: rc.PairComparison) -> str:
    rows = []
    for measure in rc.MEASURES:
        s = pair.stats[measure]
        diffs = ", ".join(f"{d:.4g}" for d in pair.differences[measure])
        rows.append(
            [
                measure,
                diffs,
                rc.mean_sd(pair.differences[measure]),
                f"[{s.ci_low:.4g}, {s.ci_high:.4g}]",
                f"{s.p:.3g}",
                f"[{s.boot_low:.4g}, {s.boot_high:.4g}]",
                str(s.n),
            ]
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in pair.unpaired)
    title = f"{pair.second.label} − {pair.first.label}, seeds {', '.join(map(str, pair.seeds)) or 'none'}"
    return (
        f"<h4>{html.escape(title)}</h4>"
        + _table(
            [
                "measure",
                "per-seed differences",
                "mean ± SD",
                "95 % CI (paired t)",
                "p (two-sided)",
                "95 % CI (bootstrap)",
                "pairs",
            ],
            rows,
        )
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def build_report(runs: list[Run], clock: str | None = None) -> str:
    """The report's HTML text; `clock` names the unit of equal time when `runs` come from
    `report_compare.with_step_costs` (None: wall-clock hours)."""
    groups = rc.group_runs(runs)
    keys = rc.differing_options(groups)
    names = {g.label: rc.describe_group(g, keys, width=60) for g in groups}
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run comparison</title><style>{STYLE}</style>"
        f"</head><body><h1>Run comparison</h1><p>{len(runs)} runs in {len(groups)} groups, written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Final = mean of the last {rc.LAST_N} evaluations; "
        f"best = the best evaluation; equal time = mean of the last {rc.LAST_N} evaluations at or before the "
        "common training time T (the shortest run's last evaluation); the untrained start's evaluation is left out "
        "of all three. Differences are second group minus first, paired by seed.</p>",
        "<h2>Groups</h2>",
        _table(
            ["group", "runs (seed, status)"],
            [[names[g.label], "; ".join(f"{r.name} (seed {r.seed}, {r.status})" for r in g.runs)] for g in groups],
        ),
        "<h3>Options that differ between groups</h3>",
        options_table(groups, keys),
    ]
    for metric in rc.metric_names(runs):
        time_h = rc.common_time(runs, metric)
        better = "lower" if rc.lower_is_better(metric) else "higher"
        parts += [
            f"<h2>{html.escape(metric)} ({better} is better)</h2>",
            _img(report_plots.comparison_figure(groups, names, metric, clock), f"{metric} curves"),
            f"<p>Equal time T = {time_h:.3g} {html.escape(clock or 'h of training')}.</p>",
            "<h4>Per group (mean ± SD over its runs)</h4>",
            _table(["group", "seeds", "final", "best", "equal time"], rc.group_table_rows(groups, metric, time_h)),
            "<h4>Per run</h4>",
            _table(
                ["group", "run", "seed", "status", "evaluations", "final", "best", "equal time"],
                rc.run_table_rows(groups, metric, time_h),
            ),
        ]
        pairs = rc.group_pairs(groups, metric)
        if sum(any(metric in r.metrics for r in g.runs) for g in groups) > rc.MAX_ALL_PAIRS_GROUPS:
            parts.append("<p>Many groups: only pairs of groups that differ in one option are compared.</p>")
        parts += [pair_table(rc.compare_pair(a, b, metric, time_h)) for a, b in pairs]
    stats_png = report_plots.stats_comparison_figure(groups, names)
    if stats_png is not None:
        parts += ["<h2>Training statistics</h2>", _img(stats_png, "training statistics")]
    with_grids = [r for r in runs if r.grid is not None]
    if with_grids:
        parts.append("<h2>Latest grids</h2><div class='grids'>")
        for run in with_grids:
            caption = f"{run.name} (group {next(g.label for g in groups if any(run is r for r in g.runs))}): {run.grid}"
            parts.append(
                f"<figure>{_img(_grid_png(run.grid), run.name)}<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    notes = list(dict.fromkeys(n for r in runs for n in r.notes))
    if notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
