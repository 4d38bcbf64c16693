"""A trained generator for the command-line tools (generate.py, projector.py, style_mixing.py, training.export):
what goes in (its network pickle, the device, a class label) and what comes out (uint8 images).

Errors are one line: `GeneratorLoadError` for a pickle that cannot be used, `dnnlib.cli.OptionError` for a bad
--device or --class value; the scripts turn them into click errors with `dnnlib.cli.click_errors`.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch

from dnnlib.cli import OptionError
from metrics.metric_utils import images_to_uint8
from training import distributed
from training.checkpoint import load_network_pkl_from_url
from training.networks import Generator

GENERATOR_INTERFACE = ("z_dim", "c_dim")  # What generating from seeds uses, besides forward(z, c, ...).


class GeneratorLoadError(ValueError):
    """A network pickle that cannot be read, or whose G_ema is no generator; the message names the file."""


def resolve_device(name: str) -> torch.device:
    """The --device choice as a torch.device ('auto': CUDA when available); OptionError for 'cuda' without a GPU."""
    try:
        return torch.device(distributed.resolve_device(name))
    except ValueError as err:
        raise OptionError(f"--device={name}: {err}") from None


def load_generator_pkl(network_pkl: str, device: torch.device) -> torch.nn.Module:
    """`G_ema` of a network pickle (path or URL), in eval mode without gradients on `device`.

    G_ema is this project's Generator or a class of a module the user trusts (`dnnlib.trust`) with the same
    interface (`z_dim`, `c_dim`); anything else, or an unreadable pickle, raises GeneratorLoadError.
    """
    print(f'Loading networks from "{network_pkl}"...')
    try:
        G = load_network_pkl_from_url(network_pkl)["G_ema"]
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise GeneratorLoadError(f'cannot load network "{network_pkl}": {error}') from None
    missing = [name for name in GENERATOR_INTERFACE if not hasattr(G, name)]
    if not isinstance(G, Generator) and missing:
        raise GeneratorLoadError(
            f'"{network_pkl}": G_ema is a {type(G).__name__}, not a generator (it lacks {", ".join(missing)})'
        )
    return G.eval().requires_grad_(False).to(device)


def class_label(G: torch.nn.Module, class_idx: int | None, device: torch.device) -> torch.Tensor:
    """The label [1, c_dim]: one-hot at `class_idx` (--class) for a conditional G, zeros [1, 0] otherwise.

    OptionError when a conditional G gets no class or one outside 0..c_dim-1, or an unconditional G gets one.
    """
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise OptionError(f"--class={class_idx}: the network is unconditional (it has no classes); omit --class")
        return label
    if class_idx is None:
        raise OptionError("Must specify class label with --class when using a conditional network")
    if not 0 <= class_idx < G.c_dim:
        raise OptionError(f"--class={class_idx} is out of range: the network has classes 0-{G.c_dim - 1}")
    label[:, class_idx] = 1
    return label


def to_uint8_images(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] images in [-1, 1] -> [N, H, W, C] uint8 (x * 127.5 + 128, clamped to 0..255, truncated)."""
    return images_to_uint8(img).permute(0, 2, 3, 1).cpu().numpy()
