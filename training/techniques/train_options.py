"""train.py's technique options (`--fm-weight`, `--label-smoothing`, `--bures-weight`, `--bures-alt`,
`--hist-avg-weight`, `--mbdisc`): validation and where each lands in the training options.

The loss terms go to `loss_kwargs` (the `StyleGAN2Loss` constructor); minibatch discrimination is a layer of D's
epilogue (`D_kwargs.epilogue_kwargs`). It joins StyleGAN2's minibatch-std layer rather than replacing it:
minibatch-std gives D one overall-spread statistic per group that every StyleGAN2 preset is tuned with, while
minibatch discrimination adds per-sample closeness to the rest of the batch; keeping minibatch-std keeps the
baseline intact, so a comparison shows what minibatch discrimination adds.
"""

from __future__ import annotations

from typing import Any

MBDISC_KERNELS = 100  # B of Salimans et al.'s MNIST model.
MBDISC_KERNEL_DIM = 5  # C.


def apply_technique_options(
    args: Any,
    fm_weight: float | None = None,
    label_smoothing: float | None = None,
    bures_weight: float | None = None,
    bures_alt: bool = False,
    hist_avg_weight: float | None = None,
    mbdisc: bool = False,
) -> str:
    """Validate the options, write them into `args` (`loss_kwargs`, `D_kwargs`); return the run-description suffix.

    Raises ValueError with a one-line message naming the option and the fix.
    """
    desc = ""
    for name, value in (
        ("--fm-weight", fm_weight),
        ("--bures-weight", bures_weight),
        ("--hist-avg-weight", hist_avg_weight),
    ):
        if value is not None and not value >= 0:
            raise ValueError(f"{name} must be >= 0 (0 = off), got {value}")
    if fm_weight:
        args.loss_kwargs.fm_weight = float(fm_weight)
        desc += f"-fm{fm_weight:g}"
    if label_smoothing is not None:
        if not 0.5 < label_smoothing <= 1:
            raise ValueError(
                f"--label-smoothing is the real target alpha and must be in (0.5, 1] (0.9 is usual), got {label_smoothing}"
            )
        if label_smoothing < 1:
            args.loss_kwargs.label_smoothing = float(label_smoothing)
            desc += f"-ls{label_smoothing:g}"
    if bures_alt and bures_weight:
        raise ValueError("--bures-alt=1 is the parameter-free alternative to --bures-weight: give one of them")
    if bures_weight:
        args.loss_kwargs.bures_weight = float(bures_weight)
        desc += f"-bures{bures_weight:g}"
    if bures_alt:
        args.loss_kwargs.bures_alt = True
        desc += "-altbures"
    if hist_avg_weight:
        args.loss_kwargs.hist_avg_weight = float(hist_avg_weight)
        desc += f"-histavg{hist_avg_weight:g}"
    if mbdisc:
        args.D_kwargs.epilogue_kwargs.mbdisc_kernels = MBDISC_KERNELS
        args.D_kwargs.epilogue_kwargs.mbdisc_kernel_dim = MBDISC_KERNEL_DIM
        desc += "-mbdisc"
    return desc


def describe_techniques(args: Any) -> str:
    """One line for the --dry-run summary: the active techniques and their settings, or 'none'."""
    loss = args.get("loss_kwargs", {})
    parts = []
    if loss.get("fm_weight"):
        parts.append(f"feature matching x{loss['fm_weight']:g}")
    if loss.get("label_smoothing", 1.0) < 1:
        parts.append(f"one-sided label smoothing alpha={loss['label_smoothing']:g}")
    if loss.get("bures_weight"):
        parts.append(f"Bures x{loss['bures_weight']:g}")
    if loss.get("bures_alt"):
        parts.append("Alt-Bures (by parity: odd G updates on the Bures term alone)")
    if loss.get("hist_avg_weight"):
        parts.append(f"historical averaging x{loss['hist_avg_weight']:g}")
    kernels = args.get("D_kwargs", {}).get("epilogue_kwargs", {}).get("mbdisc_kernels", 0)
    if kernels:
        parts.append(
            f"minibatch discrimination B={kernels} C={args.D_kwargs.epilogue_kwargs.mbdisc_kernel_dim} (with minibatch-std)"
        )
    return ", ".join(parts) if parts else "none"
