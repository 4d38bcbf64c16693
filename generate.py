"""Generate images with a trained generator (`G_ema` of a network pickle).

Examples:

    python generate.py --outdir=out --seeds=0-3,7 --network=network-snapshot.pkl
    python generate.py --outdir=out --seeds=0-9 --class=2 --trunc=0.7 --network=https://example.com/net.pkl
    python generate.py --outdir=out --projected-w=projected_w.npz --network=net.pkl

Writes `seed0000.png` ... (or `proj00.png` ... for projected ws). Latents: z = RandomState(seed).randn(1, z_dim).
"""

from __future__ import annotations

import os

import click
import numpy as np
import torch

import dnnlib
from dnnlib import atomic, trust
from dnnlib.cli import click_errors
from dnnlib.images import save_png
from dnnlib.seeds import SeedList
from training import distributed
from training.generator_io import GeneratorLoadError, class_label, load_generator_pkl, resolve_device, to_uint8_images
from training.options import FINITE_FLOAT


def save_image(pixels: np.ndarray, path: str) -> None:
    """Save a [H, W, C] uint8 image as PNG atomically; a bad shape or a failed write is one error line."""
    with click_errors(ValueError, atomic.WriteError):
        save_png(pixels, path)


@click.command()
@click.option("--network", "network_pkl", help="Network pickle path or URL", required=True, metavar="PATH")
@click.option("--seeds", type=SeedList(), help="List of random seeds, e.g. 0-3,7")
@click.option("--trunc", "truncation_psi", type=FINITE_FLOAT, help="Truncation psi", default=1, show_default=True)
@click.option("--class", "class_idx", type=int, help="Class label (required for conditional networks)")
@click.option(
    "--noise-mode",
    help="Noise mode",
    type=click.Choice(["const", "random", "none"]),
    default="const",
    show_default=True,
)
@click.option(
    "--projected-w",
    help="Projection result file (.npz with w [n, num_ws, w_dim])",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
)
@click.option("--outdir", help="Where to save the output images", required=True, metavar="DIR")
@click.option(
    "--device",
    "device_name",
    type=click.Choice(distributed.DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where to run the generator",
)
@click.option(
    "--trust-module",
    help="Module whose network classes the pickle may name (your own networks); repeatable "
    "[default: $GAN_TRUSTED_MODULES]",
    metavar="NAME",
    multiple=True,
)
def generate_images(
    network_pkl: str,
    seeds: list[int] | None,
    truncation_psi: float,
    class_idx: int | None,
    noise_mode: str,
    projected_w: str | None,
    outdir: str,
    device_name: str,
    trust_module: tuple[str, ...],
) -> None:
    """Generate images using a pretrained network pickle."""
    if projected_w is None and not seeds:
        raise click.UsageError("--seeds option is required when not using --projected-w")
    with click_errors():
        trust.trust_module_option(trust_module)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise click.UsageError(f"--outdir={outdir} is a file, not a folder; choose another name")
    with click_errors(GeneratorLoadError):
        device = resolve_device(device_name)
        G = load_generator_pkl(network_pkl, device)
        label = class_label(G, class_idx, device) if projected_w is None else None
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as err:
        raise click.ClickException(atomic.describe_write_error(outdir, err)) from None
    atomic.remove_temp_files(outdir, dead_writers_only=True)  # What a killed generate.py left half-written.

    if projected_w is not None:
        if seeds:
            print("warn: --seeds is ignored when using --projected-w")
        print(f'Generating images from projected W "{projected_w}"')
        try:
            with np.load(projected_w) as data:
                ws = data["w"]
                noise = {k.removeprefix("noise."): data[k] for k in data.files if k.startswith("noise.")}
        except (OSError, KeyError, ValueError, EOFError) as error:  # EOFError: an empty file.
            reason = dnnlib.util.load_error_reason(error)
            raise click.UsageError(f"--projected-w must be an .npz file holding 'w' ({reason})") from None
        if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
            raise click.UsageError(f"--projected-w holds w of shape {ws.shape}; expected [n, {G.num_ws}, {G.w_dim}]")
        buffers = dict(G.synthesis.named_buffers())
        for name, value in noise.items():  # Constant noise maps optimised by projector.py.
            if name not in buffers or tuple(buffers[name].shape) != value.shape:
                raise click.UsageError(
                    f"--projected-w holds noise map {name!r} of shape {value.shape} that this network lacks"
                )
            buffers[name].copy_(torch.from_numpy(value))
        ws = torch.tensor(ws, device=device, dtype=torch.float32)
        with torch.no_grad():
            for idx, w in enumerate(ws):
                img = G.synthesis(w.unsqueeze(0), noise_mode=noise_mode)
                save_image(to_uint8_images(img)[0], os.path.join(outdir, f"proj{idx:02d}.png"))
        return

    for idx, seed in enumerate(seeds):
        print(f"Generating image for seed {seed} ({idx}/{len(seeds)}) ...")
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device)
        torch.manual_seed(seed)  # Makes --noise-mode=random reproducible.
        with torch.no_grad():
            img = G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode)
        save_image(to_uint8_images(img)[0], os.path.join(outdir, f"seed{seed:04d}.png"))


if __name__ == "__main__":
    with dnnlib.util.sigterm_as_interrupt():  # SIGTERM then removes the temp file of a write in progress.
        generate_images()
