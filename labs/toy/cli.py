"""Toy 2D lab: see AdaptiveMix and the seed papers' techniques work on 2D mixtures (the paper's Fig. 3).

    python -m labs.toy --dataset=grid9 --objective=ns --variant=adaptivemix --seed=0 --outdir=out/toy
    python -m labs.toy --dataset=all --objective=all --variant=all --seed=0-2 --steps=1000 --outdir=out/grid
    python -m labs.toy --runs=pacgan-grid:ns:plain,pack2,pack4:0-9 --outdir=out/pacgan --jobs=2  # the published protocol

Every list option (comma-separated, or 'all') spans a grid: datasets x objectives x variants x seeds
(`--runs=DATASETS:OBJECTIVES:VARIANTS:SEEDS` says the same in one option). Each run appends one line to
`OUTDIR/results.jsonl`, saves its final 2500 generated points as `OUTDIR/samples-<run>.npy` ([N, 2] float32)
and D's confidence map as `OUTDIR/confidence-<run>.npy`, and draws a panel `OUTDIR/fig-<run>.png` (D's
confidence map, data in white, samples in red); a grid also writes `OUTDIR/figure-<dataset>.png` (rows:
objectives, columns: variants, first seed) and prints mean +- SD tables. A run already in OUTDIR with the same
configuration is read back instead of rerun, so the same command resumes an interrupted grid. `--jobs=N` trains N
runs at once, in N processes of one thread each: the numbers are those of `--jobs=1`.

Network presets (`--arch`): `lab` (small MLPs, Adam 1e-3, batch 128, 400 steps) for grid9/ring8/circles and
`pacgan` (PacGAN's networks and optimiser: G 4 x 400 ReLU + batch norm from z ~ N(0, I_2), D 3 maxout layers
of 200 units x 5 pieces, Adam 1e-4 with beta1 = 0.8, batch 100) for pacgan-ring/pacgan-grid; `--steps`,
`--batch` and `--lr` override a preset. `--curve-every=K` adds a learning curve (metrics every K G steps).

Objectives: `ns` (the non-saturating GAN of Fig. 3), `wgan` (weight clipping at 0.01), `wgan-gp` (penalty
weight 10), `hinge`. A variant is 'plain' or techniques joined by '+':
`adaptivemix` (the paper's WGAN form, Eq. 6, for wgan/wgan-gp: J = mean of features, reals mixed with fakes,
L2 shrinkage; the release form for ns/hinge: partners from the same batch, negative cosine),
`amix-paper` / `amix-release` (force a form), `fm` (feature matching), `mbdisc` (minibatch discrimination),
`ls` (one-sided label smoothing, ns only), `ha` (historical averaging), `vbn` (virtual batch norm in G),
`bures` (Bures diversity matching), `alt-bures` (G alternates GAN loss and Bures term), `packM` (PacGAN
packing: D judges M points at once; `--pack=M` joins it to every variant).
Losses, AdaptiveMix and the technique terms are those of the DCGAN lab (`labs.common.losses`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict

import click
import numpy as np
import torch

from adaptivemix import NOISE_STD
from dnnlib.atomic import atomic_path
from dnnlib.seeds import parse_range
from labs.toy.data import DATASETS, make_dataset
from labs.toy.render import save_grid_figure, save_run_figure
from labs.toy.run import OBJECTIVES, PRESETS, VARIANTS, ToyConfig, check_variant, run_toy
from labs.toy.tables import format_published_comparison, format_tables


def parse_list(text: str, choices: tuple[str, ...], what: str) -> list[str]:
    """'all' or a comma-separated list of names; a ValueError names the first unknown one."""
    if text == "all":
        return list(choices)
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{what} is empty")
    return items


def append_jsonl(path: str, record: dict) -> None:
    """Append one JSON line, rewriting the file atomically (results files are small)."""
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(old + json.dumps(record) + "\n")


def run_grid(configs: list[ToyConfig], outdir: str, log=print, jobs: int = 1) -> list[dict]:
    """Run every config, writing results, samples and panels to `outdir`; returns the result lines in config order.

    A config whose result line (same configuration), samples and confidence map are already in `outdir` is read
    back, not rerun, so an interrupted grid resumes where it stopped. Runs use one CPU thread each (the networks
    are too small to gain from more, and threads waiting on each other slow them down several times on a busy
    machine); with `jobs` > 1 that many worker processes train at once. Every run is seeded and single-threaded,
    so its numbers do not depend on `jobs`; result lines are appended as runs finish.
    """
    os.makedirs(outdir, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_all(configs, outdir, log, jobs)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: ToyConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """run_toy with its wall-clock seconds in the result line (a worker process's task)."""
    torch.set_num_threads(1)
    start = time.time()
    result, samples, confidence = run_toy(cfg)
    result["seconds"] = round(time.time() - start, 2)
    # As results.jsonl stores it (tuples become lists), so that fresh and read-back lines are alike.
    return json.loads(json.dumps(result)), samples, confidence


def _done_before(cfg: ToyConfig, outdir: str) -> tuple[dict, np.ndarray, np.ndarray] | None:
    """The result, samples and confidence map of an earlier run of exactly `cfg` in `outdir`, None if absent."""
    path = os.path.join(outdir, "results.jsonl")
    files = [os.path.join(outdir, f"{kind}-{cfg.name}.npy") for kind in ("samples", "confidence")]
    if not os.path.exists(path) or not all(os.path.exists(f) for f in files):
        return None
    wanted = json.loads(json.dumps(asdict(cfg)))  # Tuples as lists, as the file has them.
    for line in open(path, encoding="utf-8"):
        record = json.loads(line)
        if all(record.get(key) == value for key, value in wanted.items()):
            return record, np.load(files[0]), np.load(files[1])
    return None


def _run_all(configs: list[ToyConfig], outdir: str, log, jobs: int) -> list[dict]:
    figures = figures_available(log)
    outcomes: dict[int, tuple[dict, np.ndarray, np.ndarray]] = {}
    todo = []
    for i, cfg in enumerate(configs):
        earlier = _done_before(cfg, outdir)
        if earlier is None:
            todo.append(i)
        else:
            outcomes[i] = earlier
            log(f"[{len(outcomes)}/{len(configs)}] {cfg.name}: done before, read back from {outdir}")
    for i, outcome in _trained(configs, todo, jobs):
        _save_run(configs[i], outcome, outdir, figures)
        outcomes[i] = outcome
        result = outcome[0]
        log(
            f"[{len(outcomes)}/{len(configs)}] {configs[i].name}: modes {result['modes']}/{result['num_modes']}, "
            f"HQ {result['hq_pct']:.1f}%, KL {result['kl']:.3f}, MMD {result['mmd']:.4f} ({result['seconds']:.1f}s)"
        )
    if figures:
        panels = {
            (cfg.dataset, cfg.objective, cfg.variant, cfg.seed): (outcomes[i][2], outcomes[i][1])
            for i, cfg in enumerate(configs)
        }
        write_figures(configs, panels, outdir)
    return [outcomes[i][0] for i in range(len(configs))]


def _trained(configs: list[ToyConfig], todo: list[int], jobs: int):
    """(index, (result, samples, confidence)) for each config in `todo`, as runs finish."""
    tasks = [(i, configs[i]) for i in todo]
    if jobs == 1 or len(tasks) <= 1:
        yield from map(_train_indexed, tasks)
        return
    # Spawned workers: fresh interpreters, so no thread-pool state is inherited from this process.
    with multiprocessing.get_context("spawn").Pool(min(jobs, len(tasks))) as pool:
        yield from pool.imap_unordered(_train_indexed, tasks)


def _train_indexed(task: tuple[int, ToyConfig]) -> tuple[int, tuple[dict, np.ndarray, np.ndarray]]:
    return task[0], _train(task[1])


def _save_run(cfg: ToyConfig, outcome: tuple[dict, np.ndarray, np.ndarray], outdir: str, figures: bool) -> None:
    """One finished run's files: samples and confidence map (.npy), panel (PNG), and its results.jsonl line."""
    result, samples, confidence = outcome
    for kind, array in (("samples", samples), ("confidence", confidence)):
        with atomic_path(os.path.join(outdir, f"{kind}-{cfg.name}.npy"), suffix=".npy") as tmp:
            np.save(tmp, array)
    if figures:
        data = make_dataset(cfg.dataset)
        title = f"{cfg.name}: {result['modes']}/{result['num_modes']} modes, {result['hq_pct']:.1f}% HQ"
        path = os.path.join(outdir, f"fig-{cfg.name}.png")
        save_run_figure(path, confidence, data.extent, data_points(data), samples, title)
    append_jsonl(os.path.join(outdir, "results.jsonl"), result)


def figures_available(log) -> bool:
    """Whether matplotlib can be imported; says once how to turn the figures on when it cannot."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("figures are off: matplotlib is not installed (pip install matplotlib, or the [plots] extra)")
        return False
    return True


def data_points(data) -> np.ndarray:
    """The 500 data points drawn in every figure of a data set (a fixed draw)."""
    return data.sample(500, np.random.default_rng(1))


def write_figures(configs: list[ToyConfig], panels: dict, outdir: str) -> None:
    """figure-<dataset>.png: rows = objectives, columns = variants, the first seed of each cell."""
    seed = min(cfg.seed for cfg in configs)
    objectives = list(dict.fromkeys(cfg.objective for cfg in configs))
    variants = list(dict.fromkeys(cfg.variant for cfg in configs))
    for dataset in dict.fromkeys(cfg.dataset for cfg in configs):
        data = make_dataset(dataset)
        grid = [[panels.get((dataset, obj, var, seed)) for var in variants] for obj in objectives]
        title = f"{dataset}, seed {seed}: D's confidence, data (white), generated points (red)"
        path = os.path.join(outdir, f"figure-{dataset}.png")
        save_grid_figure(path, grid, objectives, variants, data.extent, data_points(data), title)


def with_adaptivemix(variant: str) -> str:
    """The variant with AdaptiveMix joined: 'plain' -> 'adaptivemix', 'fm' -> 'adaptivemix+fm' (unchanged if present)."""
    if variant == "plain":
        return "adaptivemix"
    if "adaptivemix" in variant.split("+") or variant.startswith("amix-"):
        return variant
    return f"adaptivemix+{variant}"


def with_pack(variant: str, m: int) -> str:
    """The variant with packing of m joined: 'plain' -> 'pack2', 'fm' -> 'fm+pack2'; m = 1 leaves it as is."""
    if m == 1:
        return variant
    if any(part.startswith("pack") for part in variant.split("+")):
        raise ValueError(f"--pack={m}: variant {variant!r} already names a packing degree")
    return f"pack{m}" if variant == "plain" else f"{variant}+pack{m}"


def build_configs(datasets, objectives, variants, seeds, **settings) -> list[ToyConfig]:
    """The grid's configs; variants that do not apply to an objective (label smoothing off `ns`) are left out."""
    configs = []
    for dataset in datasets:
        for objective in objectives:
            for variant in variants:
                if not check_variant(variant, objective, strict=False):
                    continue
                configs += [
                    ToyConfig(dataset=dataset, objective=objective, variant=variant, seed=s, **settings) for s in seeds
                ]
    return configs


@click.command()
@click.option("--dataset", default="grid9", show_default=True, help=f"Data set(s): {', '.join(DATASETS)} or all")
@click.option("--objective", default="ns", show_default=True, help=f"Objective(s): {', '.join(OBJECTIVES)} or all")
@click.option(
    "--variant", default="plain", show_default=True, help="Variant(s): plain or techniques joined by '+', or all"
)
@click.option("--seed", "seeds", default="0", show_default=True, help="Seed(s), e.g. 0-2")
@click.option(
    "--adaptivemix", is_flag=True, help="Add AdaptiveMix to every variant (plain -> adaptivemix, fm -> adaptivemix+fm)"
)
@click.option("--pack", type=click.IntRange(min=1), default=1, show_default=True, help="Join packM to every variant")
@click.option("--runs", help="Whole grid in one option: DATASETS:OBJECTIVES:VARIANTS:SEEDS (overrides the four above)")
@click.option(
    "--arch",
    type=click.Choice(["auto", *PRESETS]),
    default="auto",
    show_default=True,
    help="Network preset: pacgan for the pacgan-* data sets, lab otherwise",
)
@click.option("--steps", type=click.IntRange(min=1), help="G steps per run [preset: lab 400, pacgan 8000]")
@click.option("--batch", type=click.IntRange(min=2), help="Batch size (D's inputs per step) [preset: 128, 100]")
@click.option("--n-critic", type=click.IntRange(min=1), default=1, show_default=True, help="D steps per G step")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [preset: 1e-3, 1e-4]")
@click.option(
    "--curve-every", type=click.IntRange(min=0), default=0, show_default=True, help="Learning curve: G steps per point"
)
@click.option(
    "--fm-weight", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Feature matching weight (fm)"
)
@click.option(
    "--bures-weight", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Bures weight (bures)"
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0.5, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Real target alpha (ls)",
)
@click.option(
    "--hist-avg-weight",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Historical averaging weight (ha)",
)
@click.option(
    "--mbdisc-kernels", type=click.IntRange(min=1), default=16, show_default=True, help="Minibatch discr. B (mbdisc)"
)
@click.option(
    "--mbdisc-dim", type=click.IntRange(min=1), default=5, show_default=True, help="Minibatch discr. C (mbdisc)"
)
@click.option(
    "--noise-std", type=click.FloatRange(min=0), default=NOISE_STD, show_default=True, help="AdaptiveMix target noise"
)
@click.option("--outdir", required=True, help="Where results.jsonl, samples and figures go")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs trained at once, one process and one thread each (results do not depend on it)",
)
def main(dataset, objective, variant, seeds, adaptivemix, pack, runs, outdir, jobs, **settings):
    """Train toy 2D GANs and report modes covered, % high-quality samples, mode KL and MMD."""
    try:
        if runs:
            parts = runs.split(":")
            if len(parts) != 4:
                raise ValueError(f"--runs must be DATASETS:OBJECTIVES:VARIANTS:SEEDS, got {runs!r}")
            dataset, objective, variant, seeds = parts
        datasets = parse_list(dataset, DATASETS, "dataset")
        objectives = parse_list(objective, OBJECTIVES, "objective")
        variants = parse_list(variant, VARIANTS, "variant")
        if adaptivemix:
            variants = list(dict.fromkeys(with_adaptivemix(v) for v in variants))
        variants = list(dict.fromkeys(with_pack(v, pack) for v in variants))
        try:
            seed_list = parse_range(seeds)
        except ValueError as error:
            raise ValueError(f"--seed: {error}") from None
        configs = build_configs(datasets, objectives, variants, seed_list, **settings)
        for cfg in configs:
            cfg.validate()
        for var in variants:  # A variant asked for explicitly must apply to at least one objective.
            if not any(check_variant(var, obj, strict=False) for obj in objectives):
                check_variant(var, objectives[0], strict=True)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    results = run_grid(configs, outdir, jobs=jobs)
    print(format_tables(results))
    published = format_published_comparison(results)
    if published:
        print("\n" + published)
