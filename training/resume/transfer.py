"""`--resume=PKL`: starting a new run from a network pickle's weights (transfer learning), as StyleGAN2-ADA does.

Unlike an exact resume, the run is new (its own directory, options and counters from zero); only the tensors of
G, D and G_ema whose names match are copied. Adaptation is faster (`P_KIMG_TRANSFER`) and the EMA has no
ramp-up, as in the original.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import click

import dnnlib
from training.loop_defaults import P_KIMG_TRANSFER

if TYPE_CHECKING:
    import torch

RESUME_SPECS = {
    name: "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/" + file
    for name, file in {
        "ffhq256": "ffhq-res256-mirror-paper256-noaug.pkl",
        "ffhq512": "ffhq-res512-mirror-stylegan2-noaug.pkl",
        "ffhq1024": "ffhq-res1024-mirror-stylegan2-noaug.pkl",
        "celebahq256": "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl",
        "lsundog256": "lsundog-res256-paper256-kimg100000-noaug.pkl",
    }.items()
}


def apply_transfer(args: dnnlib.EasyDict, resume: str | None) -> str:
    """Set the loop's options for `--resume=PKL` (a path, URL or RESUME_SPECS name); return the run description
    suffix. An exact resume from a training state never reaches here (train.py handles it)."""
    if resume is None:
        return ""
    if resume == "noresume":
        return "-noresume"
    if resume in RESUME_SPECS:
        args.resume_pkl = RESUME_SPECS[resume]
        desc = f"-resume{resume}"
    else:
        args.resume_pkl = resume
        desc = "-resumecustom"
    args.ada_kimg = P_KIMG_TRANSFER
    args.ema_rampup = None
    if "apa_kwargs" in args:
        args.apa_kwargs.kimg = P_KIMG_TRANSFER
    return desc


def check_transfer_pickle(resume_pkl: str) -> None:
    """Load `--resume=PKL` once (safely) so that a bad file is refused before the run directory exists."""
    from training.checkpoint import load_network_pkl_from_url

    try:
        load_network_pkl_from_url(resume_pkl, verbose=False)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise click.UsageError(f"--resume={resume_pkl}: not a usable network pickle ({reason})") from None


def copy_from_network_pkl(resume_pkl: str, modules: dict[str, torch.nn.Module]) -> None:
    """Copy matching tensors by name from a network pickle into `modules` (G, D, G_ema)."""
    from torch_utils import misc
    from training.checkpoint import load_network_pkl_from_url

    print(f'Resuming from "{resume_pkl}"')
    resume_data = load_network_pkl_from_url(resume_pkl)
    for name, module in modules.items():
        misc.copy_params_and_buffers(resume_data[name], module, require_all=False)
