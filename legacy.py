"""Loading network pickles (this project's snapshots and the original StyleGAN2-ADA's), safely.

A thin re-export of the loader in `training/checkpoint.py`, kept for users' scripts written for the original
(`import legacy; legacy.load_network_pkl(f)`); the project's own code imports `training.checkpoint`.
`load_network_pkl(f)` never executes code from the file. It returns the
snapshot dict with `G`, `D`, `G_ema` (modules), `augment_pipe` (module or None), `training_set_kwargs`
(dict or None) and any further entries. Command line: convert a pickle into this project's format,

    python legacy.py --source=network-snapshot.pkl --dest=converted.pkl [--force-fp16=True]
"""

from __future__ import annotations

import os
import pickle

import click

from training.checkpoint import (
    FP16_SETTINGS,
    NETWORK_KEYS,
    load_network_pkl,
    load_network_pkl_from_url,
    save_network_pkl,
    with_fp16_settings,
)

__all__ = [
    "FP16_SETTINGS",
    "NETWORK_KEYS",
    "load_network_pkl",
    "load_network_pkl_from_url",
    "with_fp16_settings",
    "convert_network_pickle",
]


@click.command()
@click.option("--source", help="Input pickle (path or URL)", required=True, metavar="PATH")
@click.option("--dest", help="Output pickle", required=True, metavar="PATH")
@click.option(
    "--force-fp16",
    help="Rebuild the networks with fp16 settings",
    type=bool,
    default=False,
    show_default=True,
    metavar="BOOL",
)
def convert_network_pickle(source: str, dest: str, force_fp16: bool) -> None:
    """Convert a network pickle (e.g. one written by the original code) into this project's format."""
    print(f'Loading "{source}"...')
    try:
        data = load_network_pkl_from_url(source, force_fp16=force_fp16)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        raise click.ClickException(f'cannot load "{source}": {error}') from None
    print(f'Saving "{dest}"...')
    try:
        save_network_pkl(os.fspath(dest), data)
    except OSError as error:  # dnnlib.atomic.WriteError: one line, and no partial file left.
        raise click.ClickException(str(error)) from None
    print("Done.")


if __name__ == "__main__":
    convert_network_pickle()
