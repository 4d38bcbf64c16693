"""One toy 2D GAN run: configuration, training loop, metrics and D's confidence map for its picture."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from adaptivemix import NOISE_STD
from labs.common import objectives as objective_losses
from labs.common.losses import DCGANLosses, LossSettings, default_form
from labs.toy.data import make_dataset, toy_metrics
from labs.toy.networks import build_toy_networks
from labs.toy.render import grid_points
from training.techniques.bures import bures_distance_squared
from training.techniques.packing import pack

OBJECTIVES = ("ns", "wgan", "wgan-gp", "hinge")  # Names of labs.common.objectives.
TECHNIQUES = ("adaptivemix", "amix-paper", "amix-release", "fm", "mbdisc", "ls", "ha", "vbn", "bures", "alt-bures")
VARIANTS = (
    "plain",
    "adaptivemix",
    "fm",
    "mbdisc",
    "ls",
    "ha",
    "vbn",
    "bures",
    "alt-bures",
    "adaptivemix+bures",
    "pack2",
    "pack4",
)
PACK = re.compile(r"pack([1-9][0-9]*)")  # `packM`: D judges M points at once (PacGAN).
# Each preset's defaults: (G steps, batch, Adam lr, Adam betas). `pacgan`: PacGAN's optimiser and batch; its steps
# are where the plain GAN stopped improving in this lab's learning curves (docs/experiments.md).
PRESETS = {"lab": (400, 128, 1e-3, (0.5, 0.9)), "pacgan": (8000, 100, 1e-4, (0.8, 0.999))}
NUM_EVAL = 2500
MAP_SIZE = 96
CLIP = 0.01


def technique_set(variant: str) -> set[str]:
    """The techniques of a variant name ('plain' -> empty); ValueError for an unknown name."""
    if variant == "plain":
        return set()
    parts = set(variant.split("+"))
    unknown = sorted(p for p in parts - set(TECHNIQUES) if not PACK.fullmatch(p))
    if unknown:
        raise ValueError(
            f"unknown technique {unknown[0]!r} in variant {variant!r}: use plain or a '+'-join of "
            f"{', '.join(TECHNIQUES)}, packM (M >= 1)"
        )
    if len(parts & {"adaptivemix", "amix-paper", "amix-release"}) > 1:
        raise ValueError(f"variant {variant!r} names more than one AdaptiveMix form")
    if {"bures", "alt-bures"} <= parts:
        raise ValueError(f"variant {variant!r}: choose bures (weighted) or alt-bures (alternating), not both")
    if sum(bool(PACK.fullmatch(p)) for p in parts) > 1:
        raise ValueError(f"variant {variant!r} names more than one packing degree")
    return parts


def pack_degree(variant: str) -> int:
    """M of the variant's `packM` technique, 1 without one."""
    return next((int(m.group(1)) for p in technique_set(variant) if (m := PACK.fullmatch(p))), 1)


def check_variant(variant: str, objective: str, strict: bool = True) -> bool:
    """Whether `variant` applies to `objective` (label smoothing is for the logistic loss `ns` only).

    With `strict`, a variant that does not apply raises a ValueError saying why; unknown names always raise.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown toy objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if "ls" in technique_set(variant) and objective != "ns":
        if strict:
            raise ValueError(f"variant {variant!r}: one-sided label smoothing needs the logistic loss, --objective=ns")
        return False
    return True


@dataclass
class ToyConfig:
    dataset: str
    objective: str
    variant: str
    seed: int
    arch: str = "auto"  # 'lab', 'pacgan', or 'auto': pacgan for the pacgan-* data sets, lab otherwise.
    steps: int | None = None  # None: the preset's default (PRESETS), as batch and lr.
    batch: int | None = None
    n_critic: int = 1
    lr: float | None = None
    fm_weight: float = 1.0
    bures_weight: float = 1.0
    label_smoothing: float = 0.9  # The real target alpha of the `ls` technique.
    hist_avg_weight: float = 0.01  # Weight of the `ha` technique.
    mbdisc_kernels: int = 16
    mbdisc_dim: int = 5
    noise_std: float = NOISE_STD
    curve_every: int = 0  # G steps between learning-curve points (0: none).
    betas: tuple = field(init=False, default=())

    def __post_init__(self) -> None:
        if self.arch == "auto":
            self.arch = "pacgan" if self.dataset.startswith("pacgan-") else "lab"
        if self.arch not in PRESETS:
            raise ValueError(f"unknown toy network preset {self.arch!r}: choose auto, {', '.join(PRESETS)}")
        steps, batch, lr, self.betas = PRESETS[self.arch]
        self.steps = steps if self.steps is None else self.steps
        self.batch = batch if self.batch is None else self.batch
        self.lr = lr if self.lr is None else self.lr

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.objective}-{self.variant}-s{self.seed}"

    @property
    def pack(self) -> int:
        return pack_degree(self.variant)

    def validate(self) -> None:
        make_dataset(self.dataset)
        check_variant(self.variant, self.objective, strict=True)
        if self.arch == "pacgan" and "vbn" in technique_set(self.variant):
            raise ValueError("virtual batch norm (vbn) is for the lab's generator: use --arch=lab")

    @property
    def adaptivemix_form(self) -> str | None:
        """The variant's AdaptiveMix form, None without AdaptiveMix."""
        t = technique_set(self.variant)
        if "amix-paper" in t:
            return "paper"
        if "amix-release" in t:
            return "release"
        return default_form(self.objective) if "adaptivemix" in t else None


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
        self.G, self.D = build_toy_networks(
            cfg.arch,
            head="mean" if cfg.adaptivemix_form == "paper" else "linear",
            vbn="vbn" in t,
            seed=cfg.seed,
            pack=cfg.pack,
            mbdisc_kernels=cfg.mbdisc_kernels if "mbdisc" in t else 0,
            mbdisc_dim=cfg.mbdisc_dim,
        )
        # fused: Adam's element-wise update in one kernel per step instead of a dozen small ops per tensor.
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=cfg.betas, fused=True)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=cfg.betas, fused=True)
        settings = LossSettings(
            objective=cfg.objective,
            adaptivemix=cfg.adaptivemix_form is not None,
            adaptivemix_form=cfg.adaptivemix_form or "paper",
            noise_std=cfg.noise_std,
            fm_weight=cfg.fm_weight if "fm" in t else 0.0,
            label_smoothing=cfg.label_smoothing if "ls" in t else 1.0,
            hist_avg_weight=cfg.hist_avg_weight if "ha" in t else 0.0,
            bures_weight=cfg.bures_weight if "bures" in t else 0.0,
        )
        self.losses = DCGANLosses(settings, self.G, self.D)
        self.alt_bures = "alt-bures" in t
        self.g_steps = 0
        self.curve: list[dict] = []

    def real_batch(self) -> torch.Tensor:
        """`batch` packed real samples [batch, 2 pack] (batch x pack points, `pack` consecutive ones per sample)."""
        return pack(torch.from_numpy(self.data.sample(self.cfg.batch * self.cfg.pack, self.rng)), self.cfg.pack)

    def fake_batch(self) -> torch.Tensor:
        """`batch` packed generated samples [batch, 2 pack], with gradient to G."""
        return pack(self.G(torch.randn(self.cfg.batch * self.cfg.pack, self.G.z_dim)), self.cfg.pack)

    def d_step(self) -> None:
        with torch.no_grad():
            fake = self.fake_batch()
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        self.losses.d_loss(self.real_batch(), fake).backward()
        self.opt_D.step()
        if self.cfg.objective == "wgan":
            objective_losses.clip_weights(self.D, CLIP)
        self.losses.end_update("D")

    def g_step(self) -> None:
        """One G iteration: an update on the GAN loss, then with Alt-Bures a second update on the Bures term
        alone (the weighted variant's term without the weight), on fresh batches (`training.techniques.bures`)."""
        self.D.requires_grad_(False)
        self._g_update(self.losses.g_loss)
        if self.alt_bures:
            self._g_update(lambda real, fake: bures_distance_squared(self.D.features(real), self.D.features(fake)))
        self.g_steps += 1

    def _g_update(self, loss_fn) -> None:
        """One optimiser step of G on `loss_fn(real batch, fake batch)`."""
        self.opt_G.zero_grad(set_to_none=True)
        loss_fn(self.real_batch(), self.fake_batch()).backward()
        self.opt_G.step()
        self.losses.end_update("G")

    def train(self) -> None:
        """`steps` G steps, each after `n_critic` D steps; with `curve_every`, metrics every that many G steps
        go to `self.curve` ({'step', 'modes', 'hq_pct', 'kl'})."""
        every = self.cfg.curve_every
        for _ in range(self.cfg.steps):
            for _ in range(self.cfg.n_critic):
                self.d_step()
            self.g_step()
            if every and (self.g_steps % every == 0 or self.g_steps == self.cfg.steps):
                m = toy_metrics(self.samples(), self.data, with_mmd=False)
                self.curve.append({"step": self.g_steps, **{k: m[k] for k in ("modes", "hq_pct", "kl")}})

    @torch.no_grad()
    def samples(self, n: int = NUM_EVAL) -> np.ndarray:
        """n generated points [n, 2] from fixed latents; G in eval mode (batch norm with its running statistics)
        and without touching the training RNGs."""
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(10_000 + self.cfg.seed))
        training = self.G.training
        self.G.eval()
        try:
            return self.G(z).numpy().astype(np.float32)
        finally:
            self.G.train(training)

    @torch.no_grad()
    def confidence_map(self, size: int = MAP_SIZE) -> np.ndarray:
        """D's output over the panel's pixel grid, [size, size] in [0, 1]: sigmoid of the logit for `ns`
        (twice J(F(x)) in the release form, its logit for an unmixed input), min-max scaled otherwise. A packed
        D is shown its score for `pack` copies of each point."""
        points = torch.from_numpy(grid_points(size, self.data.extent)).repeat(1, self.cfg.pack)
        scores = torch.cat(
            [self.D(points[i : i + self.cfg.batch]).flatten() for i in range(0, len(points), self.cfg.batch)]
        )
        if self.cfg.adaptivemix_form == "release":
            scores = scores * 2
        if self.cfg.objective == "ns":
            values = torch.sigmoid(scores)
        else:
            values = (scores - scores.min()) / (scores.max() - scores.min()).clamp(min=1e-12)
        return values.view(size, size).numpy()


def run_toy(cfg: ToyConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """Train one config; returns (result line, final samples [2500, 2], D's confidence map [MAP_SIZE, MAP_SIZE])."""
    run = ToyRun(cfg)
    run.train()
    samples = run.samples()
    metrics = toy_metrics(samples, run.data)
    result = {"run": cfg.name, **asdict(cfg), "pack": cfg.pack, **metrics}
    if run.curve:
        result["curve"] = run.curve
    return result, samples, run.confidence_map()
