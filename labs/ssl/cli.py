"""Semi-supervised GAN lab (Salimans et al. 2016, Sec. 5) on any labelled dataset zip, with or without AdaptiveMix.

    python -m labs.ssl --data=fmnist32.zip --test-data=fmnist32-test.zip --labels-per-class=10 --epochs=20 \\
        --outdir=runs/ssl [--adaptivemix [--adaptivemix-distance=mse] | --no-gan] [--recipe=salimans]

D is a K+1-class classifier (K logits and a fixed zero logit for "generated") trained on N labelled images per
class plus the unlabelled rest; G is trained by feature matching. `--no-gan` trains the same classifier on
the same labelled images only. Prints and writes `results.jsonl` (test error after each epoch); a snapshot
(`snapshot.pt`, atomic) after each epoch lets `--resume` continue. The last line is `test error <percent>%`.
"""

from __future__ import annotations

import os

import click

from labs.common.data import load_images
from labs.common.snapshot import load_snapshot
from labs.ssl.train import RECIPES, SNAPSHOT, SSL_DISTANCES, SSLConfig, SSLRun
from training.saved_names import RENAMED_FIELDS


def _load(option: str, path: str):
    try:
        return load_images(path, use_labels=True, desc=option.lstrip("-"))
    except (OSError, ValueError) as err:
        raise click.UsageError(f"{option}: {err}") from None


@click.command()
@click.option(
    "--data",
    help="Labelled training images: a zip made by dataset_tool.py",
    required=True,
    metavar="ZIP",
)
@click.option("--test-data", help="Labelled test images (same size)", required=True, metavar="ZIP")
@click.option(
    "--outdir",
    help="Where results.jsonl and the snapshot go",
    required=True,
    metavar="DIR",
)
@click.option(
    "--labels-per-class",
    help="Labelled images per class (paper: 10, i.e. 100 labels on MNIST)",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
)
@click.option(
    "--epochs",
    help="Passes over the unlabelled images [default: 10; on --resume the run's own]",
    type=click.IntRange(min=1),
)
@click.option(
    "--seed",
    help="Random seed (also picks the labelled images)",
    type=int,
    default=0,
    show_default=True,
)
@click.option(
    "--batch",
    help="Batch size (labelled, unlabelled and generated alike)",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
)
@click.option(
    "--lr",
    help="Adam learning rate of D and G",
    type=click.FloatRange(min=0, min_open=True),
    default=0.003,
    show_default=True,
)
@click.option(
    "--unlabelled",
    help="Use a seeded random subset of this many training images as unlabelled data [default: all]",
    type=click.IntRange(min=1),
)
@click.option(
    "--no-gan",
    help="Supervised-only baseline: the same classifier on the labelled images only",
    is_flag=True,
)
@click.option(
    "--adaptivemix",
    help="Add AdaptiveMix's shrinkage term on D's features (unlabelled images mixed in their batch)",
    is_flag=True,
)
@click.option(
    "--adaptivemix-weight",
    help="Weight of the AdaptiveMix term",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
)
@click.option(
    "--adaptivemix-distance",
    help="AdaptiveMix distance: cosine; mse (the authors' classification form, on unit-norm features); "
    "mse-raw (ablation: the squared distance on raw features)",
    type=click.Choice(SSL_DISTANCES),
    default="cosine",
    show_default=True,
)
@click.option(
    "--recipe",
    help="salimans: also initialise weight norm from data and keep labelled images out of the unlabelled pool",
    type=click.Choice(RECIPES),
    default="lab",
    show_default=True,
)
@click.option(
    "--resume",
    help="Continue the run saved in --outdir (its options are kept; --epochs may extend it)",
    is_flag=True,
)
def main(
    data,
    test_data,
    outdir,
    labels_per_class,
    epochs,
    seed,
    batch,
    lr,
    unlabelled,
    no_gan,
    adaptivemix,
    adaptivemix_weight,
    adaptivemix_distance,
    recipe,
    resume,
):
    """Train Salimans et al.'s semi-supervised GAN (or its supervised-only baseline) and report the test error."""
    snapshot = os.path.join(outdir, SNAPSHOT)
    if os.path.exists(snapshot) and not resume:
        raise click.UsageError(
            f"--outdir={outdir} already holds a run; add --resume to continue it or choose another --outdir"
        )
    if resume and not os.path.exists(snapshot):
        raise click.UsageError(f"--resume: no {SNAPSHOT} in --outdir={outdir}")
    if no_gan and adaptivemix:
        raise click.UsageError("--adaptivemix acts on the GAN's unlabelled batches: drop --no-gan to use it")
    state = load_snapshot(snapshot, SSLConfig, renamed=RENAMED_FIELDS) if resume else None
    if state is not None:
        cfg = SSLConfig(**dict(state["config"], epochs=epochs or state["config"]["epochs"]))
    else:
        cfg = SSLConfig(
            labels_per_class=labels_per_class,
            epochs=epochs or 10,
            seed=seed,
            batch=batch,
            lr=lr,
            gan=not no_gan,
            adaptivemix=adaptivemix,
            adaptivemix_weight=adaptivemix_weight,
            adaptivemix_distance=adaptivemix_distance,
            unlabelled=unlabelled,
            recipe=recipe,
        )
    train, test = _load("--data", data), _load("--test-data", test_data)
    try:
        run = SSLRun(cfg, train, test)
        if state is not None:
            run.load_state_dict(state)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    os.makedirs(outdir, exist_ok=True)
    mode = "supervised only" if not cfg.gan else "semi-supervised GAN" + (" + AdaptiveMix" if cfg.adaptivemix else "")
    print(
        f"{mode}: {cfg.labels_per_class} labels per class ({len(run.labelled)} labelled, {len(run.unlabelled)} unlabelled), "
        f"{len(test[1])} test images, {cfg.epochs} epochs of {run.steps_per_epoch} steps, seed {cfg.seed}"
    )
    run.train(outdir)
    print(f"test error {run.results[-1]['test_error']:.2f}%")
