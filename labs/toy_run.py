"""One toy 2D GAN run: configuration, training loop, metrics and its picture."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import PIL.Image
import torch

from labs import objectives as objective_losses
from labs.dcgan_losses import DCGANLosses, LossSettings, default_amix_form
from labs.toy_data import make_dataset, toy_metrics
from labs.toy_networks import ToyDiscriminator, ToyGenerator
from labs.toy_render import grid_points, render_panel
from training.techniques.bures import alt_bures_term, bures_distance_squared

OBJECTIVES = ("std", "wgan", "wgan-gp", "hinge")
TECHNIQUES = ("adaptivemix", "amix-paper", "amix-release", "fm", "mbdisc", "ls", "ha", "vbn", "bures", "alt-bures")
VARIANTS = ("plain", "adaptivemix", "fm", "mbdisc", "ls", "ha", "vbn", "bures", "alt-bures", "adaptivemix+bures")
NUM_EVAL = 2500
MAP_SIZE = 96
CLIP = 0.01


def technique_set(variant: str) -> set[str]:
    """The techniques of a variant name ('plain' -> empty); ValueError for an unknown name."""
    if variant == "plain":
        return set()
    parts = set(variant.split("+"))
    unknown = sorted(parts - set(TECHNIQUES))
    if unknown:
        raise ValueError(
            f"unknown technique {unknown[0]!r} in variant {variant!r}: use plain or a '+'-join of "
            f"{', '.join(TECHNIQUES)}"
        )
    if len(parts & {"adaptivemix", "amix-paper", "amix-release"}) > 1:
        raise ValueError(f"variant {variant!r} names more than one AdaptiveMix form")
    if {"bures", "alt-bures"} <= parts:
        raise ValueError(f"variant {variant!r}: choose bures (weighted) or alt-bures (alternating), not both")
    return parts


def check_variant(variant: str, objective: str, strict: bool = True) -> bool:
    """Whether `variant` applies to `objective` (label smoothing is for the logistic loss `std` only).

    With `strict`, a variant that does not apply raises a ValueError saying why; unknown names always raise.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown toy objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if "ls" in technique_set(variant) and objective != "std":
        if strict:
            raise ValueError(f"variant {variant!r}: one-sided label smoothing needs the logistic loss, --objective=std")
        return False
    return True


@dataclass
class ToyConfig:
    dataset: str
    objective: str
    variant: str
    seed: int
    steps: int = 400
    batch: int = 128
    n_critic: int = 1
    lr: float = 1e-3
    fm_weight: float = 1.0
    bures_weight: float = 1.0
    ls_alpha: float = 0.9
    ha_weight: float = 0.01
    mbdisc_kernels: int = 16
    mbdisc_dim: int = 5
    noise_std: float = 0.05

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.objective}-{self.variant}-s{self.seed}"

    def validate(self) -> None:
        make_dataset(self.dataset)
        check_variant(self.variant, self.objective, strict=True)

    @property
    def amix_form(self) -> str | None:
        t = technique_set(self.variant)
        if "amix-paper" in t:
            return "paper"
        if "amix-release" in t:
            return "release"
        return default_amix_form(objective_losses_name(self.objective)) if "adaptivemix" in t else None


def objective_losses_name(objective: str) -> str:
    """The labs.objectives name of a toy objective (`std` is the non-saturating `ns`)."""
    return "ns" if objective == "std" else objective


class ToyRun:
    """Networks, optimisers and losses of one config; `train()` runs it."""

    def __init__(self, cfg: ToyConfig):
        cfg.validate()
        self.cfg = cfg
        t = technique_set(cfg.variant)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.data = make_dataset(cfg.dataset)
        self.G = ToyGenerator(vbn="vbn" in t, seed=cfg.seed)
        head = "mean" if cfg.amix_form == "paper" else "linear"
        self.D = ToyDiscriminator(
            head=head, mbdisc_kernels=cfg.mbdisc_kernels if "mbdisc" in t else 0, mbdisc_dim=cfg.mbdisc_dim
        )
        betas = (0.5, 0.9)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        settings = LossSettings(
            objective=objective_losses_name(cfg.objective),
            adaptivemix=cfg.amix_form is not None,
            amix_form=cfg.amix_form or "paper",
            noise_std=cfg.noise_std,
            fm_weight=cfg.fm_weight if "fm" in t else 0.0,
            label_smoothing=cfg.ls_alpha if "ls" in t else 1.0,
            hist_avg_weight=cfg.ha_weight if "ha" in t else 0.0,
            bures_weight=cfg.bures_weight if "bures" in t else 0.0,
        )
        self.losses = DCGANLosses(settings, self.G, self.D)
        self.alt_bures = "alt-bures" in t
        self.g_steps = 0

    def real_batch(self) -> torch.Tensor:
        return torch.from_numpy(self.data.sample(self.cfg.batch, self.rng))

    def d_step(self) -> None:
        with torch.no_grad():
            fake = self.G(torch.randn(self.cfg.batch, self.G.z_dim))
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        self.losses.d_loss(self.real_batch(), fake).backward()
        self.opt_D.step()
        if self.cfg.objective == "wgan":
            objective_losses.clip_weights(self.D, CLIP)
        if self.losses.hist_D is not None:
            self.losses.hist_D.update()

    def g_step(self) -> None:
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        real, fake = self.real_batch(), self.G(torch.randn(self.cfg.batch, self.G.z_dim))
        if self.alt_bures and alt_bures_term(self.g_steps) == "bures":
            with torch.no_grad():
                feat_r = self.D.features(real)
            # The same term as the weighted `bures` variant, without the weight.
            loss = bures_distance_squared(feat_r, self.D.features(fake))
        else:
            loss = self.losses.g_loss(real, fake)
        loss.backward()
        self.opt_G.step()
        if self.losses.hist_G is not None:
            self.losses.hist_G.update()
        self.g_steps += 1

    def train(self) -> None:
        for _ in range(self.cfg.steps):
            for _ in range(self.cfg.n_critic):
                self.d_step()
            self.g_step()

    @torch.no_grad()
    def samples(self, n: int = NUM_EVAL) -> np.ndarray:
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(10_000 + self.cfg.seed))
        return self.G(z).numpy().astype(np.float32)

    @torch.no_grad()
    def confidence_map(self, size: int = MAP_SIZE) -> np.ndarray:
        """D's output over the panel's pixel grid, [size, size] in [0, 1]: sigmoid of the logit for `std`
        (twice J(F(x)) in the release form, its logit for an unmixed input), min-max scaled otherwise."""
        points = torch.from_numpy(grid_points(size))
        scores = torch.cat(
            [self.D(points[i : i + self.cfg.batch]).flatten() for i in range(0, len(points), self.cfg.batch)]
        )
        if self.cfg.amix_form == "release":
            scores = scores * 2
        if self.cfg.objective == "std":
            values = torch.sigmoid(scores)
        else:
            values = (scores - scores.min()) / (scores.max() - scores.min()).clamp(min=1e-12)
        return values.view(size, size).numpy()


def run_toy(cfg: ToyConfig) -> tuple[dict, np.ndarray, PIL.Image.Image]:
    """Train one config; returns (result line, final samples [2500, 2], Fig. 3-like panel)."""
    run = ToyRun(cfg)
    run.train()
    samples = run.samples()
    metrics = toy_metrics(samples, run.data)
    data_points = run.data.sample(500, np.random.default_rng(1))
    panel = render_panel(run.confidence_map(), data_points, samples[:1000])
    result = {"run": cfg.name, **asdict(cfg), **metrics}
    return result, samples, panel
