"""train.py option processing: validation, presets (`--cfg`), run description and the loop's keyword arguments.

`build_training_options(...)` mirrors StyleGAN2-ADA's `train.py` step by step (same option names, defaults,
checks and run-description suffixes) and adds this project's options (AdaptiveMix, APA, devices, the `tiny`
preset, exact resume). Every problem is raised as a `click.UsageError` whose one-line message names the
option and the fix.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import click

import dnnlib
from adaptivemix import DEFAULT_FORM, NOISE_STD, WEIGHT
from training.loop_defaults import NUM_WORKERS, P_INTERVAL, P_KIMG, RANDOM_SEED, SNAP_TICKS
from training.resume.transfer import apply_transfer
from training.techniques.train_options import apply_technique_options

# StyleGAN2-ADA's presets: reference GPU count, kimg, minibatch, minibatch-std group, feature-map scale
# (channel_base = fmaps * 32768), learning rate, R1 gamma, G EMA half-life (kimg), EMA ramp-up, mapping layers;
# plus the CPU demo preset `tiny`.
CFG_SPECS = {
    "paper256": dict(
        ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8
    ),
    "paper512": dict(
        ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8
    ),
    "paper1024": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8),
    "stylegan2": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8),
    "cifar": dict(
        ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2
    ),
}
CFG_CHOICES = ["auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar", "tiny"]
# The tiny preset: the CPU demo (scripts/demo.sh), tuned for sample quality per CPU second on 32x32
# Fashion-MNIST (measurements in docs/performance.md). channel_base 1024 and channel_max 64 give 32 feature
# maps at 32x32 and 64 below, and z = w = 64: a G+D step about 4x cheaper than with 128 maps everywhere (most
# of the work is the convolutions at the top resolution). Path-length regularization and style mixing are off
# (as in the cifar preset): they shape the latent space and cost time without making the first samples
# better. R1 gamma follows the `auto` formula 0.0002 * res**2 / mb.
TINY = dict(
    mb=16,
    mbstd=4,
    channel_base=1024,
    channel_max=64,
    z_dim=64,
    w_dim=64,
    map=2,
    lrate=0.0025,
    ema=1.0,
    ramp=0.05,
    kimg=20,
    kimg_per_tick=0.5,
    pl_weight=0,
    style_mixing_prob=0,
)
AUGPIPE_CHOICES = ["blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"]

# Defaults of train.py's options that the training loop does not have (the loop's own are in
# training/loop_defaults.py): the one place they are written. train.py's help texts and the option processing
# below read them.
AUG = "ada"  # --aug.
AUGPIPE = "bgc"  # --augpipe.
ADA_TARGET = 0.6  # --target: ADA's target for E[sign(D(real))].
APA_TARGET = 0.6  # --apa-target.


def auto_preset(res: int, gpus: int) -> dict[str, Any]:
    """The `auto` preset's formulas for a dataset resolution and GPU count."""
    mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    return dict(
        ref_gpus=gpus,
        kimg=25000,
        mb=mb,
        mbstd=min(mb // gpus, 4),
        fmaps=1 if res >= 512 else 0.5,
        lrate=0.002 if res >= 1024 else 0.0025,
        gamma=0.0002 * (res**2) / mb,
        ema=mb * 10 / 32,
        ramp=0.05,
        map=2,
    )


# Highest sane value of each numeric option: far above any real use, low enough that a typo (--kimg=1e30,
# --batch=10000000) is refused at start instead of failing hours later or never ending.
UPPER_LIMITS: dict[str, float] = {
    "gpus": 1024,
    "snap": 1_000_000,
    "seed": 2**31 - 1,  # NumPy seeds must be below 2**32; each rank seeds with seed * gpus + rank.
    "subset": 2**31 - 1,
    "gamma": 1e6,
    "kimg": 1e6,
    "batch": 65536,
    "tick": 1e5,
    "noise_std": 1e3,
    "adaptivemix_weight": 1e6,
    "fm_weight": 1e6,
    "bures_weight": 1e6,
    "hist_avg_weight": 1e6,
    "freezed": 64,
    "workers": 256,
    "metric_images": 10_000_000,
}


def flag(name: str) -> str:
    """The command-line spelling of option `name` (`metric_images` -> `--metric-images`)."""
    return "--" + name.replace("_", "-")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_upper_limits(values: dict[str, Any]) -> None:
    """Refuse any numeric option above its UPPER_LIMITS entry (None = not given) in one line; also a negative seed."""
    for name, limit in UPPER_LIMITS.items():
        value = values.get(name)
        if value is not None and value > limit:
            raise _error(f"{flag(name)}={_number(value)} is too large: at most {_number(limit)}")
    if values.get("seed") is not None and values["seed"] < 0:
        raise _error(f"--seed must be between 0 and {UPPER_LIMITS['seed']}")


def parse_comma_list(value: str | None) -> list[str]:
    if value is None or value.lower() in ("", "none"):
        return []
    return value.split(",")


def _error(message: str) -> click.UsageError:
    return click.UsageError(message)


class FiniteFloat(click.ParamType):
    """A float option that refuses nan and inf (which every range check would let through)."""

    name = "float"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


def probe_dataset(data: str, use_labels: bool) -> tuple[dnnlib.EasyDict, str, Any]:
    """training_set_kwargs for `data`, its description name, and the dataset (one-line error on failure).

    Labels are read only for a conditional run, so an unused, broken dataset.json never blocks training.
    """
    kwargs = dnnlib.EasyDict(
        class_name="training.dataset.ImageFolderDataset", path=data, use_labels=use_labels, max_size=None, xflip=False
    )
    try:
        dataset = dnnlib.util.construct_class_by_name(**kwargs)
        kwargs.resolution = dataset.resolution
        kwargs.use_labels = dataset.has_labels
        kwargs.max_size = len(dataset)
    except (OSError, ValueError) as err:
        raise _error(f"--data: {err}") from None
    return kwargs, dataset.name, dataset


def build_training_options(
    outdir: str,
    data: str,
    gpus: int = 1,
    snap: int = SNAP_TICKS,
    metrics: list[str] | None = None,
    seed: int = RANDOM_SEED,
    cond: bool = False,
    subset: int | None = None,
    mirror: bool = False,
    cfg: str = "auto",
    gamma: float | None = None,
    kimg: float | None = None,
    batch: int | None = None,
    aug: str | None = None,
    p: float | None = None,
    target: float | None = None,
    augpipe: str | None = None,
    resume: str | None = None,
    freezed: int = 0,
    fp32: bool = False,
    nhwc: bool = False,
    nobench: bool = False,
    allow_tf32: bool = False,
    workers: int | None = None,
    adaptivemix: bool | None = None,
    noise_std: float | None = None,
    adaptivemix_form: str = DEFAULT_FORM,
    adaptivemix_weight: float = WEIGHT,
    apa: bool = False,
    apa_target: float | None = None,
    with_dataaug: bool = False,
    device: str = "cpu",
    tick: float | None = None,
    deterministic: bool = False,
    metric_detector: str | None = None,
    detector_dir: str | None = None,
    metric_images: int | None = None,
    fm_weight: float | None = None,
    label_smoothing: float | None = None,
    bures_weight: float | None = None,
    bures_alt: bool = False,
    hist_avg_weight: float | None = None,
    mbdisc: bool = False,
    metric_data: str | None = None,
) -> tuple[dnnlib.EasyDict, str]:
    """Validate the options and return (keyword arguments of `training_loop`, run description)."""
    check_upper_limits(locals())
    args = dnnlib.EasyDict()
    if gpus < 1 or gpus & (gpus - 1):
        raise _error("--gpus must be a power of two")
    args.num_gpus = gpus
    if snap < 1:
        raise _error("--snap must be at least 1")
    args.image_snapshot_ticks = args.network_snapshot_ticks = snap
    args.metrics = check_metrics(metrics if metrics is not None else [])
    args.random_seed = seed

    args.training_set_kwargs, desc, dataset = probe_dataset(data, use_labels=cond)
    args.metric_kwargs = metric_kwargs(
        args.metrics,
        metric_detector,
        detector_dir,
        metric_images,
        metric_data,
        dataset.resolution,
        dataset.num_channels,
    )
    args.data_loader_kwargs = dnnlib.EasyDict(pin_memory=(device == "cuda"), num_workers=NUM_WORKERS, prefetch_factor=2)
    if cond:
        if not args.training_set_kwargs.use_labels:
            raise _error("--cond=True requires labels specified in dataset.json")
        desc += "-cond"
    else:
        args.training_set_kwargs.use_labels = False
    if subset is not None:
        max_size = args.training_set_kwargs.max_size
        if not 1 <= subset <= max_size:
            raise _error(f"--subset must be between 1 and {max_size}")
        desc += f"-subset{subset}"
        if subset < max_size:
            args.training_set_kwargs.max_size = subset
            args.training_set_kwargs.random_seed = seed
    if mirror:
        desc += "-mirror"
        args.training_set_kwargs.xflip = True

    res = args.training_set_kwargs.resolution
    desc += f"-{cfg}" + (str(gpus) if cfg == "auto" else "")
    apply_preset(args, cfg, res, gpus)

    if gamma is not None:
        if gamma < 0:
            raise _error("--gamma must be non-negative")
        desc += f"-gamma{gamma:g}"
        args.loss_kwargs.r1_gamma = gamma
    if kimg is not None:
        if not kimg > 0:
            raise _error("--kimg must be positive (thousands of real images to train for)")
        desc += f"-kimg{kimg:g}"
        args.total_kimg = kimg
    if batch is not None:
        if not (batch >= 1 and batch % gpus == 0):
            raise _error("--batch must be at least 1 and divisible by --gpus")
        desc += f"-batch{batch}"
        args.batch_size = batch
        args.batch_gpu = batch // gpus
    if tick is not None:
        if not tick > 0:
            raise _error("--tick must be positive (kimg between status lines)")
        args.kimg_per_tick = tick

    desc += _apply_augmentation(args, aug, p, target, augpipe)
    desc += _apply_apa(args, apa, apa_target, with_dataaug, target)
    _apply_adaptivemix(args, adaptivemix, noise_std, adaptivemix_form, adaptivemix_weight)
    try:
        desc += apply_technique_options(
            args, fm_weight, label_smoothing, bures_weight, bures_alt, hist_avg_weight, mbdisc
        )
    except ValueError as err:
        raise _error(str(err)) from None
    desc += apply_transfer(args, resume)

    if freezed < 0:
        raise _error("--freezed must be non-negative")
    if freezed > 0:
        desc += f"-freezed{freezed}"
        args.D_kwargs.block_kwargs.freeze_layers = freezed
    if fp32:
        args.G_kwargs.synthesis_kwargs.num_fp16_res = args.D_kwargs.num_fp16_res = 0
        args.G_kwargs.synthesis_kwargs.conv_clamp = args.D_kwargs.conv_clamp = None
    if nhwc:
        args.G_kwargs.synthesis_kwargs.fp16_channels_last = args.D_kwargs.block_kwargs.fp16_channels_last = True
    if nobench:
        args.cudnn_benchmark = False
    if allow_tf32:
        args.allow_tf32 = True
    if workers is not None:
        if workers < 1:
            raise _error("--workers must be at least 1")
        args.data_loader_kwargs.num_workers = workers
    args.device = device
    if deterministic:
        args.deterministic = True
    return args, desc


def check_metrics(metrics: list[str]) -> list[str]:
    if not metrics:
        return []
    from metrics import metric_main

    invalid = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if invalid:
        valid = ", ".join(metric_main.list_valid_metrics())
        raise _error(f"--metrics: unknown metric {invalid[0]!r}; choose from: none, {valid}")
    return metrics


def metric_kwargs(
    metrics: list[str],
    detector: str | None,
    detector_dir: str | None,
    num_images: int | None,
    metric_data: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
) -> dnnlib.EasyDict:
    """MetricOptions arguments for every metric of a run (detector, detector_dir, num_images, real_dataset_kwargs).

    `metric_data`: the dataset the real statistics come from instead of the training set; it must hold images of
    the training data's `resolution` and `channels`.
    """
    kwargs = dnnlib.EasyDict()
    for name, value in [
        ("--metric-detector", detector),
        ("--detector-dir", detector_dir),
        ("--metric-images", num_images),
        ("--metric-data", metric_data),
    ]:
        if value is not None and not metrics:
            raise _error(f"{name} needs --metrics (it configures the metrics computed at snapshots)")
    if num_images is not None and num_images < 1:
        raise _error("--metric-images must be at least 1")
    if detector is not None:
        kwargs.detector = detector
    if detector_dir is not None:
        kwargs.detector_dir = detector_dir
    if num_images is not None:
        kwargs.num_images = num_images
    if metric_data is not None:
        kwargs.real_dataset_kwargs = metric_dataset_kwargs(metric_data, resolution, channels)
    return kwargs


def metric_dataset_kwargs(path: str, resolution: int | None, channels: int | None) -> dnnlib.EasyDict:
    """Dataset kwargs of `--metric-data` (all images, no flips, no labels), after checking that it opens and that
    its images have the training data's resolution and channel count."""
    kwargs = dnnlib.EasyDict(
        class_name="training.dataset.ImageFolderDataset", path=path, use_labels=False, max_size=None, xflip=False
    )
    try:
        dataset = dnnlib.util.construct_class_by_name(**kwargs)
        shape = dataset.image_shape
    except (OSError, ValueError, KeyError) as err:
        raise _error(f"--metric-data: {err}") from None
    if (resolution is not None and shape[1:] != [resolution, resolution]) or (
        channels is not None and shape[0] != channels
    ):
        raise _error(
            f"--metric-data={path} holds {shape[2]}x{shape[1]} images with {shape[0]} channel(s), the training data "
            f"{resolution}x{resolution} with {channels}: give a dataset of the same resolution and channels"
        )
    kwargs.resolution = dataset.resolution
    return kwargs


def apply_preset(args: dnnlib.EasyDict, cfg: str, res: int, gpus: int) -> None:
    """Write preset `cfg`'s networks, optimizers, loss, duration, minibatch and EMA for resolution `res` into args."""
    if cfg == "tiny":
        spec = dict(TINY, ref_gpus=gpus, gamma=0.0002 * (res**2) / TINY["mb"], fmaps=None)
    elif cfg == "auto":
        spec = auto_preset(res, gpus)
    else:
        spec = CFG_SPECS[cfg]
    channel_base = spec.get("channel_base") or int(spec["fmaps"] * 32768)
    channel_max = spec.get("channel_max", 512)
    z_dim, w_dim = spec.get("z_dim", 512), spec.get("w_dim", 512)
    args.G_kwargs = dnnlib.EasyDict(
        class_name="training.networks.Generator",
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_kwargs=dnnlib.EasyDict(num_layers=spec["map"]),
        synthesis_kwargs=dnnlib.EasyDict(
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=4, conv_clamp=256
        ),
    )
    args.D_kwargs = dnnlib.EasyDict(
        class_name="training.networks.Discriminator",
        block_kwargs=dnnlib.EasyDict(),
        mapping_kwargs=dnnlib.EasyDict(),
        epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=spec["mbstd"]),
        channel_base=channel_base,
        channel_max=channel_max,
        num_fp16_res=4,
        conv_clamp=256,
    )
    # fused=True: Adam's update of each tensor in one pass (CPU and CUDA) instead of six; the same formula, its
    # rounding may differ in the last bit. Runs whose options lack it (older runs) resume with the loop form.
    for key in ("G_opt_kwargs", "D_opt_kwargs"):
        args[key] = dnnlib.EasyDict(
            class_name="torch.optim.Adam", lr=spec["lrate"], betas=[0, 0.99], eps=1e-8, fused=True
        )
    args.loss_kwargs = dnnlib.EasyDict(class_name="training.loss.StyleGAN2Loss", r1_gamma=spec["gamma"])
    for key in ("pl_weight", "style_mixing_prob"):  # only presets that change the loss's defaults name them
        if key in spec:
            args.loss_kwargs[key] = spec[key]
    args.total_kimg = spec["kimg"]
    args.batch_size = spec["mb"]
    args.batch_gpu = spec["mb"] // spec["ref_gpus"]
    args.ema_kimg = spec["ema"]
    args.ema_rampup = spec["ramp"]
    if "kimg_per_tick" in spec:
        args.kimg_per_tick = spec["kimg_per_tick"]
    if cfg == "cifar":
        args.loss_kwargs.pl_weight = 0
        args.loss_kwargs.style_mixing_prob = 0
        args.D_kwargs.architecture = "orig"


def _apply_augmentation(
    args: dnnlib.EasyDict, aug: str | None, p: float | None, target: float | None, augpipe: str | None
) -> str:
    desc = ""
    if aug is None:
        aug = AUG
    else:
        desc += f"-{aug}"
    if aug == "ada":
        args.ada_target = ADA_TARGET
    elif aug == "fixed":
        if p is None:
            raise _error("--aug=fixed requires specifying --p")
    elif aug != "noaug":
        raise _error(f"--aug={aug} not supported")
    if p is not None:
        if aug != "fixed":
            raise _error("--p can only be specified with --aug=fixed")
        if not 0 <= p <= 1:
            raise _error("--p must be between 0 and 1")
        desc += f"-p{p:g}"
        args.augment_p = p
    if target is not None:
        if aug != "ada":
            raise _error("--target can only be specified with --aug=ada")
        if not 0 <= target <= 1:
            raise _error("--target must be between 0 and 1")
        desc += f"-target{target:g}"
        args.ada_target = target
    if augpipe is not None and aug == "noaug":
        raise _error("--augpipe cannot be specified with --aug=noaug")
    augpipe = augpipe if augpipe is not None else AUGPIPE
    if augpipe != AUGPIPE:
        desc += f"-{augpipe}"
    if aug != "noaug":
        from training.augment import AUGPIPE_PRESETS

        args.augment_kwargs = dnnlib.EasyDict(class_name="training.augment.AugmentPipe", **AUGPIPE_PRESETS[augpipe])
    return desc


def _apply_apa(
    args: dnnlib.EasyDict, apa: bool, apa_target: float | None, with_dataaug: bool, ada_target: float | None
) -> str:
    """APA options. With --with-dataaug, the augmentation pipe also runs on D's inputs with APA's p (one p,
    adapted by APA from --apa-target), as in the Deceive D paper's "APA + data augmentation"."""
    if not apa:
        if apa_target is not None:
            raise _error("--apa-target can only be specified with --apa=1")
        if with_dataaug:
            raise _error("--with-dataaug=1 needs --apa=1 (it applies the augmentation pipe with APA's p)")
        return ""
    target = APA_TARGET if apa_target is None else apa_target
    if not 0 <= target <= 1:
        raise _error("--apa-target must be between 0 and 1")
    args.apa_kwargs = dnnlib.EasyDict(target=target, interval=P_INTERVAL, kimg=P_KIMG, with_dataaug=bool(with_dataaug))
    desc = "-apa" + (f"-apatarget{target:g}" if apa_target is not None else "")
    if with_dataaug:
        if "augment_kwargs" not in args:
            raise _error("--with-dataaug=1 cannot be specified with --aug=noaug (it needs the augmentation pipe)")
        if "augment_p" in args:
            raise _error("--with-dataaug=1 cannot be specified with --aug=fixed: APA adapts the shared p")
        if ada_target is not None:
            raise _error("--target cannot be specified with --with-dataaug=1: the shared p follows --apa-target")
        args.pop("ada_target", None)
        desc += "-wdataaug"
    return desc


def _apply_adaptivemix(
    args: dnnlib.EasyDict, adaptivemix: bool | None, noise_std: float | None, form: str, weight: float
) -> None:
    """AdaptiveMix's settings go to the loss's constructor (`loss_kwargs`), under the options' own names."""
    if not adaptivemix:
        if noise_std is not None:
            raise _error("--noise-std needs --adaptivemix=1")
        return
    noise_std = NOISE_STD if noise_std is None else noise_std
    if noise_std < 0:
        raise _error("--noise-std must be non-negative")
    if weight < 0:
        raise _error("--adaptivemix-weight must be non-negative")
    args.loss_kwargs.update(adaptivemix=True, adaptivemix_form=form, adaptivemix_weight=weight, noise_std=noise_std)


def next_run_dir(outdir: str, desc: str) -> str:
    """`<outdir>/<id:05d>-<desc>` with id one above the highest existing numbered subdirectory."""
    prev_ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r"^\d+", name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                prev_ids.append(int(match.group()))
    run_id = max(prev_ids, default=-1) + 1
    return os.path.join(outdir, f"{run_id:05d}-{desc}")
