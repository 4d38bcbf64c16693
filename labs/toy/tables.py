"""Mean +- SD tables (Markdown) of toy-lab result lines, one block per data set."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

METRICS = (
    ("modes", "modes covered", "{:.1f}"),
    ("hq_pct", "% high quality", "{:.1f}"),
    ("kl", "reverse KL of the mode histogram to uniform", "{:.2f}"),
    ("mmd", "MMD^2 x 1e3", "{:.2f}"),
)


def mean_sd(values: list[float], fmt: str) -> str:
    """'m ± s' (population SD over seeds; just 'm' for one value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(values.mean())} ± {fmt.format(values.std())}"


def format_tables(results: list[dict]) -> str:
    """For each data set and metric: rows = variants, columns = objectives, cells = mean ± SD over seeds."""
    cells: dict = defaultdict(list)
    for r in results:
        cells[(r["dataset"], r["objective"], r["variant"])].append(r)
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    blocks = []
    for dataset in datasets:
        objectives = list(dict.fromkeys(r["objective"] for r in results if r["dataset"] == dataset))
        variants = list(dict.fromkeys(r["variant"] for r in results if r["dataset"] == dataset))
        num_modes = next(r["num_modes"] for r in results if r["dataset"] == dataset)
        seeds = sorted({r["seed"] for r in results if r["dataset"] == dataset})
        for key, label, fmt in METRICS:
            if any(key not in r for r in results if r["dataset"] == dataset):
                continue  # Result lines written before the metric existed.
            scale = 1e3 if key == "mmd" else 1.0
            title = f"{dataset} ({num_modes} modes), {label}, mean ± SD over seeds {', '.join(map(str, seeds))}"
            lines = [
                f"### {title}",
                "",
                "| variant | " + " | ".join(objectives) + " |",
                "|---|" + "---|" * len(objectives),
            ]
            for variant in variants:
                row = []
                for objective in objectives:
                    runs = cells.get((dataset, objective, variant))
                    row.append(mean_sd([r[key] * scale for r in runs], fmt) if runs else "n/a")
                lines.append(f"| {variant} | " + " | ".join(row) + " |")
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
