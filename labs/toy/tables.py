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


# PacGAN (Lin et al. 2018), Table 1: mean of 10 trials on its 2D protocol, (method, modes, HQ %, reverse KL).
PUBLISHED = {
    "pacgan-ring": [("GAN (PacGAN Table 1)", 6.3, 98.2, 0.45), ("PacGAN4 (PacGAN Table 1)", 7.8, 95.9, 0.07)],
    "pacgan-grid": [("GAN (PacGAN Table 1)", 17.3, 94.8, 0.70), ("PacGAN4 (PacGAN Table 1)", 24.8, 93.6, 0.04)],
}


def format_published_comparison(results: list[dict], objective: str = "ns") -> str:
    """For each data set with published numbers: our variants under `objective` (mean ± SD and the number of
    seeds) above the published rows, columns modes / HQ % / KL ('' without such a data set)."""
    blocks = []
    for dataset, published in PUBLISHED.items():
        ours = [r for r in results if r["dataset"] == dataset and r["objective"] == objective]
        if not ours:
            continue
        lines = [
            f"### {dataset}: this lab ({objective}) beside the published numbers",
            "",
            "| method | seeds | modes | HQ % | KL |",
            "|---|---|---|---|---|",
        ]
        for variant in dict.fromkeys(r["variant"] for r in ours):
            runs = [r for r in ours if r["variant"] == variant]
            cells = [mean_sd([r[key] for r in runs], fmt) for key, _, fmt in METRICS if key != "mmd"]
            lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
        for method, modes, hq, kl in published:
            lines.append(f"| {method} | 10 | {modes:.1f} | {hq:.1f} | {kl:.2f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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
