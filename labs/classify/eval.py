"""Evaluation of a trained lab classifier: (adversarial) accuracy and OOD detection.

Accuracy under attack follows the paper's robustness tables: the share of test images whose adversarial
version (FGSM or PGD, L-inf; CW, L2; pixels in [0, 1]) is still classified correctly. OOD detection fits one class
line per predicted class on the training features (`adaptivemix.ood`) and compares the in-distribution test
scores with those of each OOD set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adaptivemix.ood import (
    angle_score,
    class_representatives,
    detection_metrics,
    msp_score,
)
from dnnlib.progress import ProgressBar
from labs.classify.attacks import carlini_wagner_l2, fgsm, pgd
from labs.classify.methods import ImageClassifier

ATTACKS = ("none", "fgsm", "pgd", "cw")
SCORES = ("adaptivemix", "msp")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.buffers()).device


def _batches(images: torch.Tensor, batch: int, desc: str, device: torch.device):
    """(start index, [0, 1] float batch on `device`) over uint8 images [N, C, H, W]."""
    with ProgressBar((len(images) + batch - 1) // batch, desc=desc, unit="batch") as progress:
        for start in range(0, len(images), batch):
            yield start, images[start : start + batch].to(device).float().div(255)
            progress.update(1)


def accuracy(
    model: ImageClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: str = "none",
    eps: float = 0.0,
    step_size: float = 0.0,
    steps: int = 1,
    batch: int = 256,
    seed: int = 0,
    c: float = 0.01,
) -> float:
    """Fraction of images (uint8 [N, C, H, W]) classified correctly after the attack (`c`: CW's constant)."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: choose one of {', '.join(ATTACKS)}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct = 0
    for start, x in _batches(images, batch, f"eval {attack}", _device(model)):
        y = labels[start : start + len(x)].to(x.device)
        if attack == "fgsm":
            x = fgsm(model, x, y, eps)
        elif attack == "pgd":
            x = pgd(model, x, y, eps, step_size, steps, random_start=True, generator=generator)
        elif attack == "cw":
            x = carlini_wagner_l2(model, x, y, c, steps)
        with torch.no_grad():
            correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / len(images)


@torch.no_grad()
def features_and_logits(
    model: ImageClassifier, images: torch.Tensor, batch: int = 256, desc: str = "features"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F(x) [N, D], class scores [N, K]) in eval mode."""
    model.eval()
    feats, logits = [], []
    for _, x in _batches(images, batch, desc, _device(model)):
        v = model.features(x)
        feats.append(v.cpu())
        logits.append(model.head(v).cpu())
    return torch.cat(feats), torch.cat(logits)


def ood_scores(
    model: ImageClassifier, train_images: torch.Tensor, score: str, batch: int = 256
) -> Callable[[torch.Tensor, str], torch.Tensor]:
    """A function images -> OOD scores [N] (larger = more likely OOD) for `score` 'adaptivemix' (Eq. 10,
    class lines fitted on `train_images`) or 'msp' (max softmax probability; `train_images` unused)."""
    if score not in SCORES:
        raise ValueError(f"unknown OOD score {score!r}: choose one of {', '.join(SCORES)}")
    if score == "msp":
        return lambda images, desc: msp_score(features_and_logits(model, images, batch, desc)[1])
    feats, logits = features_and_logits(model, train_images, batch, "train features")
    reps = class_representatives(feats, logits.argmax(dim=1), logits.shape[1])
    return lambda images, desc: angle_score(features_and_logits(model, images, batch, desc)[0], reps)


def ood_report(
    score_fn: Callable[[torch.Tensor, str], torch.Tensor], in_images: torch.Tensor, out_sets: dict[str, torch.Tensor]
) -> dict[str, dict[str, float]]:
    """Metrics per OOD set plus 'mean' (the average of each metric over the sets)."""
    in_scores = score_fn(in_images, "in-dist").numpy()
    report = {name: detection_metrics(in_scores, score_fn(images, name).numpy()) for name, images in out_sets.items()}
    report["mean"] = {key: sum(r[key] for r in report.values()) / len(out_sets) for key in ("auroc", "fpr95", "f1")}
    return report
