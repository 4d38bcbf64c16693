"""AdaptiveMix beyond GANs: image classification, adversarial robustness and OOD detection.

    python -m labs.classify train --data=ZIP --method=orth-adaptivemix --backbone=small-cnn --epochs=N --seed=S --outdir=DIR
    python -m labs.classify eval  --network=DIR/classifier.pt --data=ZIP --attack=none|fgsm|pgd --eps=8/255 --steps=10
    python -m labs.classify eval  --network=DIR/classifier.pt --data=ZIP --attack=cw --c=0.01 --steps=100
    python -m labs.classify ood   --network=DIR/classifier.pt --train-data=ZIP --in-data=ZIP --out-data=ZIP[,ZIP...] \\
                                  --score=adaptivemix|msp

`eval` ends with `accuracy <percent>%`; `ood` ends with `AUROC <x> FPR95 <y> F1 <z>` (fractions, the mean over
the OOD sets; OOD is the positive class). Every command appends its result to results.jsonl beside the
checkpoint. Zips come from dataset_tool.py (labels from dataset.json); see docs/classification.md.
"""

from __future__ import annotations

import os
from fractions import Fraction

import click

from adaptivemix import NOISE_STD
from labs.classify.backbones import BACKBONES
from labs.classify.eval import ATTACKS, SCORES, accuracy, ood_report, ood_scores
from labs.classify.methods import METHODS, ORTH_HEADS, ORTH_SCALE
from labs.classify.train import append_result, check_images, load_checkpoint, train
from labs.common.data import load_images
from training.distributed import DEVICE_CHOICES, resolve_device


class FractionType(click.ParamType):
    """A non-negative number written as a decimal or a fraction such as 8/255."""

    name = "NUM"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            number = float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number such as 0.03 or 8/255", param, ctx)
        if number < 0:
            self.fail(f"{value!r} must be >= 0", param, ctx)
        return number


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err).splitlines()[0] if str(err) else type(err).__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Classification, adversarial robustness and OOD detection with AdaptiveMix."""


@cli.command("train")
@click.option("--data", required=True, metavar="ZIP", help="Labelled training zip (dataset_tool.py)")
@click.option("--method", type=click.Choice(METHODS), required=True)
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default="small-cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--outdir", required=True, metavar="DIR", help="Run folder (classifier.pt, results.jsonl)")
@click.option("--batch", type=click.IntRange(min=2), default=128, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="SGD learning rate (x0.2 after 50 % and 75 % of the epochs)",
)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Beta(alpha, alpha) of the mixing weight",
)
@click.option(
    "--noise-std", type=click.FloatRange(min=0), default=NOISE_STD, show_default=True, help="AdaptiveMix target noise"
)
@click.option(
    "--orth-head",
    type=click.Choice(ORTH_HEADS),
    default="paper",
    show_default=True,
    help="paper: trainable cosine head (Eq. 7-9); release: frozen |cosine| head",
)
@click.option(
    "--orth-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=ORTH_SCALE,
    show_default=True,
    help="s of the orthogonal head's scores s * cos (1: the paper's literal Eq. 8)",
)
@click.option("--max-images", type=click.IntRange(min=2), default=None, help="Train on a seeded random subset")
@click.option("--augment", is_flag=True, help="Random crops of the 4-pixel zero-padded image and left-right flips")
@click.option("--resume", is_flag=True, help="Continue the run in --outdir from its classifier.pt")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
def train_cmd(
    data,
    method,
    backbone,
    epochs,
    seed,
    outdir,
    batch,
    lr,
    weight_decay,
    alpha,
    noise_std,
    orth_head,
    orth_scale,
    max_images,
    augment,
    resume,
    device,
) -> None:
    """Train a classifier with one of the methods."""
    config = {
        "data": os.path.abspath(data),
        "method": method,
        "backbone": backbone,
        "epochs": epochs,
        "seed": seed,
        "batch": batch,
        "lr": lr,
        "weight_decay": weight_decay,
        "alpha": alpha,
        "noise_std": noise_std,
        "orth_head": orth_head,
        "orth_scale": orth_scale,
        "max_images": max_images,
        "augment": augment,
    }
    try:
        train(config, outdir, resume, device)
    except (OSError, ValueError) as err:
        raise _fail(err) from err
    print(f"saved {os.path.join(outdir, 'classifier.pt')}")


def _load(network: str, data: str, labels: bool, max_images: int | None, seed: int, device: str):
    config, model, _ = load_checkpoint(network)
    model.to(resolve_device(device))
    images, y = load_images(data, use_labels=labels, max_images=max_images, subset_seed=seed)
    check_images(images, config, data)
    return config, model, images, y


@cli.command("eval")
@click.option("--network", required=True, metavar="CKPT", help="classifier.pt of a train run")
@click.option("--data", required=True, metavar="ZIP", help="Labelled test zip")
@click.option("--attack", type=click.Choice(ATTACKS), default="none", show_default=True)
@click.option("--eps", type=FractionType(), default="8/255", show_default=True, help="L-inf radius, pixels in [0, 1]")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="PGD or CW iterations")
@click.option("--step-size", type=FractionType(), default=None, help="PGD step [default: 2.5 * eps / steps]")
@click.option("--c", "cw_c", type=FractionType(), default="0.01", show_default=True, help="CW's constant c")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Evaluate a seeded random subset")
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Subset and PGD random start")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
def eval_cmd(network, data, attack, eps, steps, step_size, cw_c, max_images, batch, seed, device) -> None:
    """Accuracy on clean or attacked test images."""
    step_size = 2.5 * eps / steps if step_size is None else step_size
    try:
        _, model, images, labels = _load(network, data, True, max_images, seed, device)
        acc = accuracy(model, images, labels, attack, eps, step_size, steps, batch, seed, cw_c)
    except (OSError, ValueError) as err:
        raise _fail(err) from err
    record = {"kind": "eval", "data": os.path.abspath(data), "attack": attack, "images": len(images), "accuracy": acc}
    if attack in ("fgsm", "pgd"):
        record.update(eps=eps, **({"steps": steps, "step_size": step_size} if attack == "pgd" else {}))
    elif attack == "cw":
        record.update(c=cw_c, steps=steps)
    append_result(os.path.dirname(os.path.abspath(network)), record)
    print(f"accuracy {100 * acc:.2f}%")


@cli.command("ood")
@click.option("--network", required=True, metavar="CKPT")
@click.option("--train-data", required=True, metavar="ZIP", help="Training zip (class lines of the adaptivemix score)")
@click.option("--in-data", required=True, metavar="ZIP", help="In-distribution test zip")
@click.option("--out-data", required=True, metavar="ZIP[,ZIP...]", help="OOD zip(s), comma-separated")
@click.option("--score", type=click.Choice(SCORES), default="adaptivemix", show_default=True)
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Cap on each set (seeded random subset)")
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
def ood_cmd(network, train_data, in_data, out_data, score, max_images, batch, seed, device) -> None:
    """OOD detection: AUROC, FPR at 95 % TPR and best F1 (OOD = positive)."""
    out_paths = [p for p in out_data.split(",") if p]
    try:
        config, model, in_images, _ = _load(network, in_data, False, max_images, seed, device)
        train_images = None
        if score == "adaptivemix":
            train_images, _ = load_images(train_data, max_images=max_images, subset_seed=seed)
            check_images(train_images, config, train_data)
        out_sets = {}
        for path in out_paths:
            images, _ = load_images(path, max_images=max_images, subset_seed=seed)
            check_images(images, config, path)
            out_sets[os.path.splitext(os.path.basename(path))[0]] = images
        report = ood_report(ood_scores(model, train_images, score, batch), in_images, out_sets)
    except (OSError, ValueError) as err:
        raise _fail(err) from err
    append_result(
        os.path.dirname(os.path.abspath(network)),
        {"kind": "ood", "score": score, "in_data": os.path.abspath(in_data), "sets": report},
    )
    for name, m in report.items():
        if name != "mean":
            print(f"{name}: AUROC {m['auroc']:.4f} FPR95 {m['fpr95']:.4f} F1 {m['f1']:.4f}")
    m = report["mean"]
    print(f"AUROC {m['auroc']:.4f} FPR95 {m['fpr95']:.4f} F1 {m['f1']:.4f}")
