"""Train a small domain classifier on a labelled dataset and save it as a metrics detector file.

    python -m metrics.domain_detector --data=fmnist32.zip --out=fmnist-detector.pt

The file (see metrics.domain_classifier) is then usable by every metric:
    python calc_metrics.py --network=net.pkl --detector=fmnist-detector.pt --metrics=fid50k_full,is50k

A held-out split (`--holdout`, drawn with `--seed`) measures the classifier's accuracy, which is printed and
stored in the file's `info`.
"""

from __future__ import annotations

import time

import click
import torch

import dnnlib
from dnnlib.progress import ProgressBar
from metrics import domain_classifier


def load_labelled_images(path: str, max_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """All images uint8 [N, C, H, W], class indices int64 [N] and the dataset name of a labelled dataset."""
    dataset = dnnlib.util.construct_class_by_name(
        class_name="training.dataset.ImageFolderDataset", path=path, use_labels=True, max_size=max_images
    )
    if not dataset.has_onehot_labels:
        raise click.UsageError(
            f'--data: "{path}" has no class labels; a domain detector needs a dataset.json with integer labels'
        )
    loader = torch.utils.data.DataLoader(dataset, batch_size=500, num_workers=2)
    images, labels = [], []
    with ProgressBar(len(dataset), desc="loading", unit="img") as progress:
        for x, c in loader:
            images.append(x)
            labels.append(c.argmax(dim=1))
            progress.update(len(x))
    return torch.cat(images), torch.cat(labels), dataset.name


def split_holdout(num_items: int, holdout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, held-out) index split; the held-out part has round(holdout * N) >= 1 items."""
    num_holdout = max(1, round(holdout * num_items))
    if num_holdout >= num_items:
        raise click.UsageError(f"--holdout={holdout} leaves no training images out of {num_items}")
    perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    return perm[num_holdout:], perm[:num_holdout]


@torch.no_grad()
def accuracy(
    model: domain_classifier.DomainClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> float:
    """Fraction of images whose most probable class is the label."""
    model.eval()
    correct = sum(
        int((model(x).argmax(dim=1) == y).sum()) for x, y in zip(images.split(batch_size), labels.split(batch_size))
    )
    return correct / len(labels)


def train(
    model: domain_classifier.DomainClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> None:
    """Adam (learning rate decaying linearly to 0) + cross-entropy of the softmax output, shuffled minibatches."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    num_steps = epochs * -(-len(labels) // batch_size)
    step = 0
    model.train()
    progress = ProgressBar(num_steps, desc="training", unit="step")
    for _ in range(epochs):
        for idx in torch.randperm(len(labels), generator=generator).split(batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr * (1 - step / num_steps)  # Linear decay to zero.
            probs = model(images[idx])
            loss = torch.nn.functional.nll_loss(torch.log(probs.clamp(min=1e-12)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            progress.update()
    progress.close()
    model.eval()


@click.command()
@click.option("--data", help="Labelled dataset (zip or folder made by dataset_tool.py)", metavar="PATH", required=True)
@click.option("--out", help="Detector file to write", metavar="FILE", required=True)
@click.option("--epochs", help="Training epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--batch", "batch_size", help="Minibatch size", type=click.IntRange(min=1), default=128, show_default=True
)
@click.option(
    "--lr", help="Adam learning rate", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True
)
@click.option(
    "--holdout",
    help="Fraction of images held out to measure accuracy",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
)
@click.option("--seed", help="Seed of the split, initialisation and shuffling", type=int, default=0, show_default=True)
@click.option("--max-images", help="Use a random subset of this many images", type=click.IntRange(min=2), metavar="INT")
@click.option("--channels", help="Conv widths, comma-separated", default="16,32,64", show_default=True)
@click.option(
    "--hidden",
    help="Width of the feature (penultimate) layer",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
)
def main(data, out, epochs, batch_size, lr, holdout, seed, max_images, channels, hidden):
    """Train a small classifier on a labelled dataset and save it as a metrics detector file."""
    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise click.UsageError(f"--channels must be comma-separated integers, got {channels!r}") from None
    try:
        images, labels, name = load_labelled_images(data, max_images)
    except OSError as err:
        raise click.UsageError(f"--data: {err}") from None
    train_idx, holdout_idx = split_holdout(len(labels), holdout, seed)
    torch.manual_seed(seed)
    num_classes = int(labels.max()) + 1
    model = domain_classifier.DomainClassifier(
        num_classes, in_channels=images.shape[1], resolution=images.shape[2], channels=widths, hidden=hidden
    )

    start = time.time()
    train(model, images[train_idx], labels[train_idx], epochs, batch_size, lr, seed)
    train_seconds = time.time() - start
    holdout_accuracy = accuracy(model, images[holdout_idx], labels[holdout_idx])
    train_accuracy = accuracy(model, images[train_idx], labels[train_idx])

    info = dict(
        dataset=name,
        num_classes=num_classes,
        num_train=len(train_idx),
        num_holdout=len(holdout_idx),
        epochs=epochs,
        seed=seed,
        train_accuracy=train_accuracy,
        holdout_accuracy=holdout_accuracy,
        train_seconds=train_seconds,
    )
    domain_classifier.save(model, out, info)
    print(
        f"Trained on {len(train_idx)} images of {name} in {dnnlib.util.format_time(train_seconds)}: "
        f"train accuracy {train_accuracy:.4f}, held-out accuracy {holdout_accuracy:.4f} ({len(holdout_idx)} images)"
    )
    print(f'Saved "{out}"')


if __name__ == "__main__":
    main()
