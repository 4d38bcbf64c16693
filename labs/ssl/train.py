"""Training run of the semi-supervised GAN lab (Salimans et al. 2016, Sec. 5), resumable per epoch.

One epoch = ceil(U / B) steps over the U unlabelled images (the pool, see `recipe` below, or a seeded subset of
`unlabelled` of it), batch B. Each step:
  D: supervised loss on B labelled images (drawn from the labelled subset, reshuffled whenever used up)
     + unsupervised real loss on B unlabelled images + unsupervised fake loss on B images G(z), z ~ U(0, 1)
     [+ adaptivemix_weight * AdaptiveMix shrinkage on the unlabelled batch];
  G: feature matching ||mean F(x_unl) - mean F(G(z))||^2 on D's 250-d features (fresh z).
With `gan=False` (the supervised-only baseline) only the supervised loss trains D, for the same number of steps
on the same labelled images. Test error (argmax of the K logits, D in eval mode: no noise) after every epoch.

AdaptiveMix here mixes unlabelled images within their batch (as the authors' classifier does):
x_hat_i = lam x_i + (1 - lam) x_pi(i), and the shrinkage distance `adaptivemix_distance` compares F(x_hat) with the
detached lam F(x) + (1 - lam) F(x_pi) + eps, eps ~ N(0, 0.05^2):
  mse       the authors' classification form: every F output is first scaled to unit L2 norm
            (`adaptivemix.mixing.unit_features`, as `labs.classify` does), then the mean squared difference;
  mse-raw   the same squared distance on the raw features (an ablation: it grows with the feature scale, and on
            this D, with noise of sigma 0.5 after every layer, it ran away in every measured run);
  cosine    the negative cosine on the raw features (the GAN release's distance; scale-free; the default).

`recipe='salimans'` adds what Salimans et al.'s text gives beyond the lab's defaults: "We use weight
normalization [20]", whose paper initialises weight-normed layers from data (`ssl_networks.data_dependent_init`:
D on one batch of unlabelled images, G's output layer on one batch of z, both before the first step), and "The
remaining training images are provided without labels" (the unlabelled pool excludes the labelled images; the
'lab' recipe uses every image). Batch composition: "Assuming half of our data set consists of real data and half
of it is generated", so each D step sees as many generated as unlabelled real images (B each; both recipes);
the text does not say how many labelled images a step uses (B here). Their text names no learning rate, schedule
or optimiser ("All code and hyperparameters may be found at" their repository, which this clean-room lab does not
read), so both recipes keep Adam (beta1 0.5) at a constant `lr`: the simplest reading.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from adaptivemix import NOISE_STD, AdaptiveMixDiscriminatorCall
from adaptivemix.mixing import unit_features
from dnnlib import atomic
from dnnlib.progress import ProgressBar
from labs.common.data import BatchStream
from labs.common.snapshot import LabSnapshot
from labs.ssl.losses import (
    select_labelled,
    supervised_loss,
    unsupervised_fake_loss,
    unsupervised_real_loss,
)
from labs.ssl.networks import SSLDiscriminator, SSLGenerator
from training.techniques.feature_matching import feature_matching_loss

SNAPSHOT = "snapshot.pt"
RESULTS = "results.jsonl"
SSL_DISTANCES = ("cosine", "mse", "mse-raw")
RECIPES = ("lab", "salimans")


@dataclasses.dataclass
class SSLConfig:
    """A run's configuration (stored in the snapshot; a resumed run keeps it, except `epochs`)."""

    labels_per_class: int
    epochs: int
    seed: int = 0
    batch: int = 100
    lr: float = 0.003
    gan: bool = True
    adaptivemix: bool = False
    adaptivemix_weight: float = 1.0
    adaptivemix_distance: str = "cosine"
    noise_std: float = NOISE_STD
    unlabelled: int | None = None  # Size of the unlabelled subset; None = the whole pool.
    recipe: str = "lab"  # 'salimans': data-dependent init, unlabelled pool without the labelled images.


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 in [0, 1]."""
    return images.to(torch.float32) / 255


class SSLRun(LabSnapshot):
    """Everything of one run over train images/labels and test images/labels (uint8 images, int64 labels)."""

    STATEFUL = ("D", "G", "opt_D", "opt_G", "lab_stream", "unl_stream")
    VALUES = {"epoch": int, "train_seconds": float, "results": list}

    def __init__(
        self,
        cfg: SSLConfig,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
    ):
        self.cfg = cfg
        images, labels = train
        if test[0].shape[1:] != images.shape[1:]:
            raise ValueError(f"test images are {tuple(test[0].shape[1:])}, training images {tuple(images.shape[1:])}")
        if cfg.adaptivemix_distance not in SSL_DISTANCES:
            raise ValueError(
                f"unknown AdaptiveMix distance {cfg.adaptivemix_distance!r}: choose one of {', '.join(SSL_DISTANCES)}"
            )
        if cfg.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {cfg.recipe!r}: choose one of {', '.join(RECIPES)}")
        num_classes = int(max(labels.max(), test[1].max())) + 1
        self.labelled = select_labelled(labels, cfg.labels_per_class, cfg.seed)
        pool = torch.arange(len(images))
        if cfg.recipe == "salimans":
            pool = pool[~torch.isin(pool, self.labelled)]
        if cfg.unlabelled is not None:
            pool = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed + 1))]
            pool = pool[: cfg.unlabelled]
        self.unlabelled = pool
        self.images, self.labels, self.test = images, labels, test
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        shape = tuple(images.shape[1:])
        self.D = SSLDiscriminator(shape[0] * shape[1] * shape[2], num_classes)
        self.G = SSLGenerator(shape)
        if cfg.recipe == "salimans":
            first = torch.randperm(len(self.unlabelled), generator=torch.Generator().manual_seed(cfg.seed + 4))
            self.D.init_from_data(to_unit(images[self.unlabelled[first[: cfg.batch]]]))
            self.G.init_from_data(torch.rand([cfg.batch, self.G.z_dim]))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.amix = AdaptiveMixDiscriminatorCall(
            noise_std=cfg.noise_std, distance="cosine" if cfg.adaptivemix_distance == "cosine" else "mse"
        )
        self.lab_stream = BatchStream(len(self.labelled), cfg.batch, cfg.seed + 2)
        self.unl_stream = BatchStream(len(self.unlabelled), cfg.batch, cfg.seed + 3)
        self.steps_per_epoch = math.ceil(len(self.unlabelled) / cfg.batch)
        self.epoch = 0
        self.train_seconds = 0.0
        self.results: list[dict] = []
        self.stats: dict[str, float] = {}

    def step(self) -> None:
        cfg = self.cfg
        lab = self.labelled[self.lab_stream.next()]
        x_lab, y_lab = to_unit(self.images[lab]), self.labels[lab]
        self.D.train()
        self.G.train()
        self.opt_D.zero_grad(set_to_none=True)
        loss_sup = supervised_loss(self.D(x_lab), y_lab)
        loss = loss_sup
        if cfg.gan:
            x_unl = to_unit(self.images[self.unlabelled[self.unl_stream.next()]])
            with torch.no_grad():
                fake = self.G(torch.rand([cfg.batch, self.G.z_dim]))
            feat_unl = self.D.features(x_unl)
            loss_real = unsupervised_real_loss(self.D.head(feat_unl))
            loss_fake = unsupervised_fake_loss(self.D(fake))
            loss = loss + loss_real + loss_fake
            self.stats.update({"real": loss_real.item(), "fake": loss_fake.item()})
            if cfg.adaptivemix:
                shrink = self.shrinkage(x_unl, feat_unl)
                loss = loss + cfg.adaptivemix_weight * shrink
                self.stats["adaptivemix"] = shrink.item()
        loss.backward()
        self.opt_D.step()
        self.stats["sup"] = loss_sup.item()
        if cfg.gan:
            self.D.requires_grad_(False)
            self.opt_G.zero_grad(set_to_none=True)
            with torch.no_grad():
                feat_real = self.D.features(x_unl)
            fm = feature_matching_loss(
                feat_real,
                self.D.features(self.G(torch.rand([cfg.batch, self.G.z_dim]))),
            )
            fm.backward()
            self.opt_G.step()
            self.D.requires_grad_(True)
            self.stats["fm"] = fm.item()

    def shrinkage(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """AdaptiveMix term (a scalar, batch mean) of images x [N, C, H, W] mixed within their batch, given their
        features feat = F(x) [N, 250]; 'mse' compares unit-norm features (see the module docstring)."""
        if self.cfg.adaptivemix_distance == "mse":
            unit = unit_features(feat)
            return self.amix.cross_shrinkage(lambda z: unit_features(self.D.features(z)), x, unit, x, unit).mean()
        return self.amix.cross_shrinkage(self.D.features, x, feat, x, feat).mean()

    @torch.no_grad()
    def test_error(self, batch_size: int = 1000) -> float:
        """Percentage of test images whose argmax over the K logits (no noise) is not the label."""
        self.D.eval()
        images, labels = self.test
        wrong = sum(
            int((self.D(to_unit(x)).argmax(dim=1) != y).sum())
            for x, y in zip(images.split(batch_size), labels.split(batch_size))
        )
        return 100.0 * wrong / len(labels)

    def train(self, outdir: str, log: Callable[[str], None] = print) -> list[dict]:
        """Train to cfg.epochs; after each epoch write results.jsonl and the snapshot, and log one line."""
        with ProgressBar(
            self.cfg.epochs * self.steps_per_epoch,
            desc="ssl",
            unit="step",
            min_interval=1.0,
        ) as bar:
            bar.update(self.epoch * self.steps_per_epoch)
            while self.epoch < self.cfg.epochs:
                start = time.perf_counter()
                for _ in range(self.steps_per_epoch):
                    self.step()
                    bar.update()
                self.train_seconds += time.perf_counter() - start
                self.epoch += 1
                line = {
                    "epoch": self.epoch,
                    "test_error": self.test_error(),
                    "seconds": round(self.train_seconds, 2),
                    **{k: round(v, 5) for k, v in sorted(self.stats.items())},
                }
                self.results.append(line)
                atomic.write_text(
                    os.path.join(outdir, RESULTS),
                    "".join(json.dumps(r) + "\n" for r in self.results),
                )
                self.save(os.path.join(outdir, SNAPSHOT))
                log(
                    f"epoch {self.epoch} test error {line['test_error']:.2f}% seconds {line['seconds']:.1f} | "
                    + " ".join(f"{k} {v:.4g}" for k, v in sorted(self.stats.items()))
                )
        return self.results
