"""DCGAN image lab: the AdaptiveMix paper's DCGAN/WGAN experiments (Tables 2 and 4) on any dataset zip.

    python -m labs.dcgan --data=fmnist32.zip --outdir=runs/dcgan-wgan --objective=wgan --kimg=8 --eval-every=2 \\
        --metric-detector=fmnist-detector.pt --metric-data=fmnist32-test.zip [--adaptivemix]

Writes into --outdir: `results.jsonl` (one line per evaluation: kimg, fid, kid, seconds of training), an 8x8
samples grid per evaluation (`fakesNNNNNNN.png`, N = real images shown to D), and `snapshot.pt` (the whole
training state, written atomically after each evaluation; `--resume` continues from it). At the end it prints
mean ± SD FID over the evaluations and the min FID, as the paper's Table 2 does.
"""

from __future__ import annotations

import os

import click

from adaptivemix import FORMS, NOISE_SCALES, NOISE_STD
from labs.common import objectives
from labs.common.data import load_images, stack_images
from labs.common.losses import default_form
from labs.common.snapshot import load_snapshot
from labs.dcgan.eval import Evaluator, summarize_fids
from labs.dcgan.networks import HEADS
from labs.dcgan.train import (
    OBJECTIVE_DEFAULTS,
    SNAPSHOT,
    DCGANRun,
    RunConfig,
    config_from_snapshot,
)

STACK_SEED = 0  # The stacked data set is one fixed draw, the same for every run and seed.


def build_config(o: dict, num_images: int) -> RunConfig:
    """RunConfig from the CLI options, with the objective's defaults for what was not given."""
    objective = o["objective"]
    defaults = OBJECTIVE_DEFAULTS[objective]
    if o["kimg"] is not None and o["epochs"] is not None:
        raise click.UsageError("give --kimg or --epochs, not both")
    kimg = o["kimg"] if o["kimg"] is not None else (o["epochs"] or 0) * num_images / 1000
    if kimg <= 0:
        raise click.UsageError("give the training length: --kimg=FLOAT or --epochs=FLOAT (> 0)")
    form = default_form(objective) if o["adaptivemix_form"] == "auto" else o["adaptivemix_form"]
    head = o["head"]
    if head == "auto":
        head = "mean" if o["adaptivemix"] and form == "paper" and not o["mbdisc"] else "conv"
    if o["label_smoothing"] is not None and objective != "ns":
        raise click.UsageError("--label-smoothing applies to the logistic loss only: use it with --objective=ns")
    losses = {
        "adaptivemix": o["adaptivemix"],
        "adaptivemix_form": form,
        "adaptivemix_weight": o["adaptivemix_weight"],
        "noise_std": o["noise_std"],
        "noise_scale": o["noise_scale"],
        "gp_weight": o["gp_weight"],
        "fm_weight": o["fm_weight"],
        "label_smoothing": o["label_smoothing"] or 1.0,
        "hist_avg_weight": o["hist_avg_weight"],
        "bures_weight": o["bures_weight"],
    }
    return RunConfig(
        objective=objective,
        kimg=kimg,
        batch=o["batch"],
        seed=o["seed"],
        width=o["width"],
        z_dim=o["z_dim"],
        g_norm="vbn" if o["vbn"] else "bn",
        d_norm=defaults["d_norm"],
        head=head,
        mbdisc=o["mbdisc"],
        optimizer=defaults["optimizer"],
        lr=o["lr"] or defaults["lr"],
        betas=defaults["betas"],
        n_critic=o["n_critic"] or defaults["n_critic"],
        clip=defaults["clip"] if o["clip"] is None else o["clip"],
        eval_every=o["eval_every"],
        pack=o["pack"],
        stack=o["stack"],
        losses=losses,
    )


@click.command()
@click.option(
    "--data",
    help="Training images: a zip (or folder) made by dataset_tool.py",
    required=True,
    metavar="ZIP",
)
@click.option(
    "--outdir",
    help="Where results, grids and the snapshot go",
    required=True,
    metavar="DIR",
)
@click.option(
    "--objective",
    help="Learning objective",
    type=click.Choice(objectives.OBJECTIVES),
    default="wgan",
    show_default=True,
)
@click.option(
    "--kimg",
    help="Training length in thousands of real images shown to D",
    type=click.FloatRange(min=0, min_open=True),
)
@click.option(
    "--epochs",
    help="Training length in passes of D over the training set",
    type=click.FloatRange(min=0, min_open=True),
)
@click.option(
    "--batch",
    help="Batch size",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
)
@click.option("--seed", help="Random seed", type=int, default=0, show_default=True)
@click.option(
    "--eval-every",
    help="kimg between evaluations (0 = only at the end)",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
)
@click.option(
    "--metric-detector",
    help="Detector file for FID/KID (e.g. from python -m metrics.domain_detector)",
    metavar="FILE",
)
@click.option(
    "--metric-data",
    help="Real images for the metric statistics [default: --data]",
    metavar="ZIP",
)
@click.option(
    "--metric-real",
    help="Real images used by the metrics",
    type=click.IntRange(min=2),
    default=10000,
    show_default=True,
)
@click.option(
    "--metric-images",
    help="Generated images per evaluation",
    type=click.IntRange(min=2),
    default=2000,
    show_default=True,
)
@click.option(
    "--max-images",
    help="Use a random subset of this many training images (seeded: the same subset for every --seed)",
    type=click.IntRange(min=1),
)
@click.option(
    "--resume",
    help="Continue the run saved in --outdir (its options are kept; --kimg/--epochs may extend it)",
    is_flag=True,
)
@click.option(
    "--adaptivemix",
    help="Add AdaptiveMix's feature-space shrinkage to D (and G)",
    is_flag=True,
)
@click.option(
    "--adaptivemix-form",
    help="paper: Eq. 6, reals mixed with fakes, L2; release: mixed D calls, cosine [default: paper for wgan/wgan-gp, release otherwise]",
    type=click.Choice(("auto",) + FORMS),
    default="auto",
)
@click.option(
    "--adaptivemix-weight",
    help="Weight of the AdaptiveMix shrinkage term",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
)
@click.option(
    "--noise-std",
    help="AdaptiveMix target noise sigma",
    type=click.FloatRange(min=0),
    default=NOISE_STD,
    show_default=True,
)
@click.option(
    "--noise-scale",
    help="absolute: eps ~ N(0, sigma^2) (the paper); relative: N(0, (sigma * rms of each mixed feature)^2), paper form",
    type=click.Choice(NOISE_SCALES),
    default="absolute",
    show_default=True,
)
@click.option(
    "--head",
    help="D's head J [default: mean with paper-form AdaptiveMix (the paper's J), conv otherwise]",
    type=click.Choice(("auto",) + HEADS),
    default="auto",
)
@click.option(
    "--width",
    help="Base channel width w of G and D (paper: 64)",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
)
@click.option(
    "--z-dim",
    help="Latent size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
)
@click.option(
    "--lr",
    help="Learning rate [default: per objective]",
    type=click.FloatRange(min=0, min_open=True),
)
@click.option(
    "--n-critic",
    help="D steps per G step [default: 5 for wgan/wgan-gp, else 1]",
    type=click.IntRange(min=1),
)
@click.option(
    "--clip",
    help="WGAN weight clipping bound (0 = none) [default: 0.01 for wgan, else 0]",
    type=click.FloatRange(min=0),
)
@click.option(
    "--gp-weight",
    help="WGAN-GP penalty weight",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
)
@click.option(
    "--fm-weight",
    help="Feature matching weight in G's loss (0 = off)",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
)
@click.option("--mbdisc", help="Minibatch discrimination in D's head", is_flag=True)
@click.option(
    "--label-smoothing",
    help="One-sided label smoothing target for reals (ns only, e.g. 0.9)",
    type=click.FloatRange(min=0.5, max=1, min_open=True),
)
@click.option(
    "--hist-avg-weight",
    help="Historical averaging weight for both players (0 = off)",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
)
@click.option("--vbn", help="Virtual batch norm in G instead of batch norm", is_flag=True)
@click.option(
    "--pack",
    help="Packing (PacGAN): D judges this many images at once; a batch is --batch packed inputs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
)
@click.option(
    "--stack",
    help="Build each training image from this many dataset images as its channels (3: stacked MNIST, 1000 modes)",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
)
@click.option(
    "--bures-weight",
    help="Bures distance weight in G's loss (0 = off)",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
)
def main(**o):
    """Train the paper's DCGAN with a chosen objective, optionally with AdaptiveMix and Salimans et al.'s techniques."""
    snapshot = os.path.join(o["outdir"], SNAPSHOT)
    if os.path.exists(snapshot) and not o["resume"]:
        raise click.UsageError(
            f"--outdir={o['outdir']} already holds a run; add --resume to continue it or choose another --outdir"
        )
    if o["resume"] and not os.path.exists(snapshot):
        raise click.UsageError(f"--resume: no {SNAPSHOT} in --outdir={o['outdir']}")
    if o["metric_detector"] is not None and not os.path.isfile(o["metric_detector"]):
        raise click.UsageError(
            f"--metric-detector: {o['metric_detector']} does not exist (make one with python -m metrics.domain_detector)"
        )
    try:
        images, _ = load_images(o["data"], max_images=o["max_images"], subset_seed=0)  # One subset for every --seed.
    except (OSError, ValueError) as err:
        raise click.UsageError(f"--data: {err}") from None
    state = load_snapshot(snapshot, RunConfig) if o["resume"] else None
    stack = state["config"].get("stack", 1) if state is not None else o["stack"]
    if stack > 1:
        if o["metric_detector"] is not None:
            raise click.UsageError(
                "--stack: FID/KID need real images of the stacked kind; count modes with python -m labs.modes instead "
                "of --metric-detector"
            )
        images = stack_images(images, stack, seed=STACK_SEED)[0]
    try:
        if state is not None:
            kimg = o["kimg"] if o["epochs"] is None else o["epochs"] * len(images) / 1000
            cfg = config_from_snapshot(state, kimg)
        else:
            cfg = build_config(o, len(images))
        run = DCGANRun(cfg, images)
        if state is not None:
            run.load_state_dict(state)
        evaluator = Evaluator(
            o["outdir"],
            o["metric_detector"],
            o["metric_data"] or o["data"],
            o["metric_real"],
            o["metric_images"],
            cfg.seed,
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    os.makedirs(o["outdir"], exist_ok=True)
    if run.images_seen >= cfg.kimg * 1000:
        print(
            f"The run in {o['outdir']} already reached {run.images_seen / 1000:g} kimg; pass a larger --kimg to train further."
        )
    else:
        print(
            f"Training {cfg.objective}{' + AdaptiveMix (' + cfg.losses['adaptivemix_form'] + ' form)' if cfg.losses['adaptivemix'] else ''} "
            f"on {len(images)} images {tuple(images.shape[1:])} for {cfg.kimg:g} kimg, seed {cfg.seed}"
        )
        run.train(o["outdir"], evaluator)
    summary = summarize_fids(run.results)
    if summary:
        print(summary)
