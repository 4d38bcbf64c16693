"""Mean ± SD tables (Markdown) over the runs of the classification lab.

    python -m labs.classify.report RUNS_DIR [--by=orth_scale,noise_std,...] [--out=TABLES.md]

Every folder under RUNS_DIR with a classifier.pt and results.jsonl is one run; runs are grouped by method
(and by the values of the `--by` training settings, e.g. `--by=noise_std` for a sigma sweep).
`--paired="A:B;C:D"` adds, for each pair of groups, the mean ± SD, paired-t 95 % CI and p over their common seeds of the per-seed
accuracy differences A - B (the groups as the tables name them), and, for every OOD score both groups were
evaluated with, of the differences of the OOD metrics' mean over the OOD sets (AUROC, FPR95, best F1).
Each run contributes its latest result per evaluation (attack and its settings; OOD score and set). SD is the
sample standard deviation over the runs of a method (n - 1 in the denominator).
"""

from __future__ import annotations

import json
import os

import click
import numpy as np

from dnnlib.atomic import write_text
from labs.classify.methods import METHODS
from labs.classify.train import CHECKPOINT_NAME, RESULTS_NAME, load_checkpoint
from training.paired_stats import PairedDifference, paired_difference


def _eval_key(record: dict) -> str:
    if record["attack"] == "none":
        return "clean"
    if record["attack"] == "cw":
        return f"CW-{record['steps']} c={record['c']:g}"
    eps = f"{record['eps'] * 255:.3g}/255"
    return f"FGSM {eps}" if record["attack"] == "fgsm" else f"PGD-{record['steps']} {eps}"


def _column_order(key: str) -> tuple:
    """clean, then FGSM, then PGD by number of steps, then CW by number of steps."""
    kind, _, rest = key.partition(" ")
    name, _, steps = kind.partition("-")
    return ("clean", "FGSM", "PGD", "CW").index(name), int(steps or 0), rest


def _group(config: dict, by: tuple[str, ...]) -> str:
    """'method' or 'method, key=value, ...' for the settings in `by` (a missing one reads as '-'; the
    orthogonal head's settings only for the methods that have that head)."""
    keys = [k for k in by if config["method"].startswith("orth") or not k.startswith("orth_")]
    return ", ".join([config["method"], *(f"{key}={config.get(key, '-')}" for key in keys)])


def collect(runs_dir: str, by: tuple[str, ...] = ()) -> dict[str, list[dict[str, float]]]:
    """{group (see `_group`): [one dict per run: column name -> value]}."""
    table: dict[str, list[dict[str, float]]] = {}
    for name in sorted(os.listdir(runs_dir)):
        folder = os.path.join(runs_dir, name)
        if not os.path.isfile(os.path.join(folder, CHECKPOINT_NAME)):
            continue
        config, _, _ = load_checkpoint(os.path.join(folder, CHECKPOINT_NAME))
        row: dict[str, float] = {"train s": 0.0, "seed": config["seed"]}
        with open(os.path.join(folder, RESULTS_NAME), encoding="utf-8") as f:
            for record in map(json.loads, f):
                if record["kind"] == "train":
                    row["train s"] += record["sec"]
                elif record["kind"] == "eval":
                    row[_eval_key(record)] = 100 * record["accuracy"]
                elif record["kind"] == "ood":
                    for set_name, metrics in record["sets"].items():
                        for metric, value in metrics.items():
                            row[f"{record['score']}|{set_name}|{metric}"] = value
        table.setdefault(_group(config, by), []).append(row)
    return table


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return f"{np.mean(values):.{digits}f} ± {sd:.{digits}f}"


def render(table: dict[str, list[dict[str, float]]]) -> str:
    methods = sorted(table, key=lambda g: (METHODS.index(g.split(",")[0]), g))
    keys = sorted({k for rows in table.values() for row in rows for k in row})
    acc_cols = [k for k in keys if "|" not in k and k not in ("train s", "seed")]
    acc_cols = sorted(acc_cols, key=_column_order)
    lines = [
        "| method | runs | " + " | ".join(f"{c} acc. %" for c in acc_cols) + " | train s |",
        "|---" * (3 + len(acc_cols)) + "|",
    ]
    for m in methods:
        rows = table[m]
        cells = [_cell([r[c] for r in rows if c in r], 2) for c in [*acc_cols, "train s"]]
        lines.append(f"| {m} | {len(rows)} | " + " | ".join(cells) + " |")
    ood_keys = [k.split("|") for k in keys if "|" in k]
    sets = sorted({s for _, s, _ in ood_keys}, key=lambda s: (s == "mean", s))
    metrics = (("auroc", "AUROC"), ("fpr95", "FPR95 (lower is better)"), ("f1", "best F1")) if sets else ()
    for metric, label in metrics:
        lines += [
            "",
            f"OOD {label}:",
            "",
            "| method | score | " + " | ".join(sets) + " |",
            "|---" * (2 + len(sets)) + "|",
        ]
        for m in methods:
            for score in sorted({sc for sc, _, _ in ood_keys}):
                cells = [
                    _cell([r[f"{score}|{s}|{metric}"] for r in table[m] if f"{score}|{s}|{metric}" in r], 3)
                    for s in sets
                ]
                lines.append(f"| {m} | {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


OOD_PAIRED = (("auroc", "AUROC"), ("fpr95", "FPR95"), ("f1", "best F1"))  # Of the mean over the OOD sets.


def _paired_cell(d: PairedDifference, digits: int = 2) -> str:
    """'mean ± SD [95 % CI low, high] p=P' of the per-seed differences (SD, CI and p need two seeds)."""
    if d.n == 0:
        return "–"
    if d.n == 1:
        return f"{d.mean:.{digits}f}"
    f = f"{{:.{digits}f}}"
    return f"{f.format(d.mean)} ± {f.format(d.sd)} [{f.format(d.ci_low)}, {f.format(d.ci_high)}] p={d.p:.2g}"


def _paired(rows_a: dict, rows_b: dict, seeds: list, column: str) -> PairedDifference:
    """`paired_difference` of `column` over the seeds in which both groups have it."""
    common = [s for s in seeds if column in rows_a[s] and column in rows_b[s]]
    return paired_difference([rows_a[s][column] for s in common], [rows_b[s][column] for s in common])


def render_paired(table: dict[str, list[dict[str, float]]], pairs: list[tuple[str, str]]) -> str:
    """Per-seed differences A - B of every accuracy column, and of the OOD metrics' mean over the sets for each
    score both groups have, over the seeds both groups ran: mean ± SD, the paired-t 95 % CI and p
    (`training.paired_stats.paired_difference`)."""
    lines = []
    for a, b in pairs:
        missing = [g for g in (a, b) if g not in table]
        if missing:
            raise ValueError(f"--paired: no runs in group {missing[0]!r}; groups are {', '.join(sorted(table))}")
        rows_a, rows_b = ({r["seed"]: r for r in table[g]} for g in (a, b))
        seeds = sorted(set(rows_a) & set(rows_b))
        cols = sorted(
            {
                k
                for r in (*rows_a.values(), *rows_b.values())
                for k in r
                if "|" not in k and k not in ("train s", "seed")
            },
            key=_column_order,
        )
        seed_text = ", ".join(str(int(s)) for s in seeds)
        lines += [
            f"| {a} − {b} | seeds | " + " | ".join(f"{c} Δ points" for c in cols) + " |",
            "|---" * (2 + len(cols)) + "|",
            f"| paired | {seed_text} | "
            + " | ".join(_paired_cell(_paired(rows_a, rows_b, seeds, c)) for c in cols)
            + " |",
            "",
        ]
        scores = sorted(
            {k.split("|")[0] for r in rows_a.values() for k in r if k.endswith("|mean|auroc")}
            & {k.split("|")[0] for r in rows_b.values() for k in r if k.endswith("|mean|auroc")}
        )
        for score in scores:
            cells = [_paired_cell(_paired(rows_a, rows_b, seeds, f"{score}|mean|{m}"), 3) for m, _ in OOD_PAIRED]
            lines += [
                f"| {a} − {b}, OOD score {score} | seeds | " + " | ".join(f"{t} Δ" for _, t in OOD_PAIRED) + " |",
                "|---" * (2 + len(OOD_PAIRED)) + "|",
                f"| paired | {seed_text} | " + " | ".join(cells) + " |",
                "",
            ]
    return "\n".join(lines)


@click.command()
@click.argument("runs_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--by", default="", metavar="KEY[,KEY...]", help="Also group by these training settings")
@click.option("--paired", default="", metavar="A:B[;C:D...]", help="Paired per-seed differences A - B of two groups")
@click.option("--out", metavar="FILE", help="Also write the tables to this file")
def main(runs_dir: str, by: str, paired: str, out: str | None) -> None:
    """Print mean ± SD tables of all runs under RUNS_DIR."""
    try:
        table = collect(runs_dir, tuple(k for k in by.split(",") if k))
        text = render(table)
        pairs = [tuple(p.split(":")) for p in paired.split(";") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--paired={paired!r}: give pairs of groups as A:B, separated by ';'")
        if pairs:
            text += "\nPaired differences:\n\n" + render_paired(table, pairs)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err).splitlines()[0]) from err
    if out:
        write_text(out, text)
    print(text, end="")


if __name__ == "__main__":
    main()
