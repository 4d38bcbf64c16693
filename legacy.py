"""Loading network pickles (this project's snapshots and the original StyleGAN2-ADA's), safely.

`load_network_pkl(f)` never executes code from the file (see `training/checkpoint.py`). It returns the
snapshot dict with `G`, `D`, `G_ema` (modules), `augment_pipe` (module or None), `training_set_kwargs`
(dict or None) and any further entries. Command line: convert a pickle into this project's format,

    python legacy.py --source=network-snapshot.pkl --dest=converted.pkl [--force-fp16=True]
"""

from __future__ import annotations

import copy
import pickle
import os
from typing import Any, BinaryIO

import click
import torch

import dnnlib
from training.checkpoint import safe_load, save_network_pkl
from training.checkpoint_original import ORIGINAL_GLOBALS, PersistentRecord, build_module, module_from_record

NETWORK_KEYS = ("G", "D", "G_ema")
FP16_SETTINGS = dict(num_fp16_res=4, conv_clamp=256)


def load_network_pkl(f: BinaryIO, force_fp16: bool = False) -> dict[str, Any]:
    """Read a network pickle from the binary file `f` without running code from it.

    Objects of the original's format become this project's modules. Missing `training_set_kwargs` and
    `augment_pipe` become None. With `force_fp16`, G/G_ema/D are rebuilt with `num_fp16_res=4, conv_clamp=256`
    (tensors copied) when that changes their constructor arguments.
    Raises `pickle.UnpicklingError` for disallowed content and ValueError for a pickle of the wrong shape.
    """
    data = safe_load(f, extra_globals=ORIGINAL_GLOBALS)
    if not isinstance(data, dict):
        raise ValueError(f"not a network pickle: expected a dict of networks, got {type(data).__name__}")
    data = {key: module_from_record(v) if isinstance(v, PersistentRecord) else v for key, v in data.items()}
    data.setdefault("training_set_kwargs", None)
    data.setdefault("augment_pipe", None)

    missing = [key for key in NETWORK_KEYS if not isinstance(data.get(key), torch.nn.Module)]
    if missing:
        raise ValueError(f"not a network pickle: {', '.join(missing)} missing or not a network")
    if not isinstance(data["training_set_kwargs"], (dict, type(None))):
        raise ValueError("not a network pickle: training_set_kwargs must be a dict or None")
    if not isinstance(data["augment_pipe"], (torch.nn.Module, type(None))):
        raise ValueError("not a network pickle: augment_pipe must be a module or None")

    if force_fp16:
        for key in NETWORK_KEYS:
            data[key] = with_fp16_settings(data[key])
    return data


def load_network_pkl_from_url(url_or_path: str, force_fp16: bool = False, verbose: bool = True) -> dict[str, Any]:
    """`load_network_pkl` for a local path, `file://` or http(s) URL (downloads cached by `dnnlib.util`)."""
    with dnnlib.util.open_url(url_or_path, verbose=verbose) as f:
        return load_network_pkl(f, force_fp16=force_fp16)


def with_fp16_settings(module: torch.nn.Module) -> torch.nn.Module:
    """`module` rebuilt with the fp16 settings of train.py (4 fp16 resolutions, clamp 256), or as is if
    they are already set. Only G (synthesis kwargs) and D (own kwargs) have them."""
    init_kwargs = getattr(module, "init_kwargs", None)
    if not isinstance(init_kwargs, dict):
        raise ValueError(f"force_fp16: {type(module).__name__} does not record its constructor arguments")
    kwargs = copy.deepcopy(init_kwargs)
    if "synthesis_kwargs" in kwargs:
        kwargs["synthesis_kwargs"] = {**(kwargs["synthesis_kwargs"] or {}), **FP16_SETTINGS}
    else:
        kwargs.update(FP16_SETTINGS)
    if kwargs == init_kwargs:
        return module
    tensors = module.state_dict(keep_vars=True)
    return build_module(type(module), (), kwargs, tensors, training=module.training)


@click.command()
@click.option("--source", help="Input pickle (path or URL)", required=True, metavar="PATH")
@click.option("--dest", help="Output pickle", required=True, metavar="PATH")
@click.option("--force-fp16", help="Rebuild the networks with fp16 settings", type=bool, default=False,
              show_default=True, metavar="BOOL")
def convert_network_pickle(source: str, dest: str, force_fp16: bool) -> None:
    """Convert a network pickle (e.g. one written by the original code) into this project's format."""
    print(f'Loading "{source}"...')
    try:
        data = load_network_pkl_from_url(source, force_fp16=force_fp16)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise click.ClickException(f'cannot load "{source}": {error}') from None
    print(f'Saving "{dest}"...')
    save_network_pkl(os.fspath(dest), data)
    print("Done.")


if __name__ == "__main__":
    convert_network_pickle()
