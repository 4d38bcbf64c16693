"""Project an image into the generator's W space (the StyleGAN2 projector).

    python projector.py --network=net.pkl --target=garment.png --outdir=out --num-steps=1000 --seed=303
    python generate.py --network=net.pkl --projected-w=out/projected_w.npz --outdir=out

Optimises one w [w_dim] (broadcast to all layers) and the constant noise maps so that G.synthesis(w) matches
the target under an LPIPS distance (VGG16 `return_lpips=True` embeddings, squared Euclidean distance):
* start: w = w_avg, the mean of 10 000 mapped z ~ N(0, I); the noise maps drawn from N(0, I);
* per step t = step / num_steps: Gaussian noise of std w_std * 0.05 * max(0, 1 - t / 0.75)^2 is added to w
  (w_std = the RMS distance of the mapped samples to w_avg); Adam (betas 0.9, 0.999) with learning rate
  0.1 * ramp, ramp = (0.5 - 0.5 cos(pi * min(1, (1 - t) / 0.25))) * min(1, t / 0.05);
* loss = LPIPS distance + 1e5 * noise regulariser: for every noise map, at every scale down to 8x8 (2x2
  average pooling between scales), the squared mean of its product with itself shifted by one pixel,
  horizontally and vertically (penalises spatially correlated noise that would encode the image);
* after each step every noise map is renormalised to zero mean and unit variance.
Images larger than 256 are area-downsampled to 256 before the distance, as in the original.

Writes `target.png` (the target centre-cropped and resized to the generator's resolution), `proj.png`,
`projected_w.npz` (`w` [1, num_ws, w_dim] plus the optimised noise maps as `noise.<buffer name>`, which
generate.py applies) and, with --save-video, `proj.mp4` (target | projection per step; needs imageio with
its ffmpeg plugin). The VGG16 file is found like the metrics' detectors (--detector-dir, $GAN_DETECTOR_DIR,
cache, download) and can be replaced with --vgg (e.g. a domain detector file, offline; a TorchScript file of
your own needs --trust-detector, since its graph is code).
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import time

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from dnnlib.atomic import atomic_path
from dnnlib.cli import click_errors
from dnnlib.images import save_png
from dnnlib.progress import ProgressBar
from metrics import detectors
from training.distributed import DEVICE_CHOICES
from training.generator_io import GeneratorLoadError, class_label, load_generator_pkl, resolve_device, to_uint8_images

NOISE_PREFIX = "noise."


def load_target(path: str, resolution: int, channels: int) -> np.ndarray:
    """The target as uint8 [H, W, channels]: centre-cropped to a square and resized (Lanczos) to `resolution`."""
    try:
        image = PIL.Image.open(path)
        image = image.convert("L" if channels == 1 else "RGB")
    except OSError as err:
        raise click.UsageError(f'--target: cannot read image "{path}": {err}') from None
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize(
        (resolution, resolution), PIL.Image.LANCZOS
    )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def noise_regulariser(noise_maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and scales (down to 8x8) of the squared mean products with 1-pixel shifts (x and y)."""
    loss = torch.zeros([], device=noise_maps[0].device)
    for noise in noise_maps:
        noise = noise[None, None]
        while True:
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return loss


def learning_rate(t: float, initial: float = 0.1, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """initial * cosine ramp-down over the last `rampdown` of the run * linear ramp-up over the first `rampup`."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial * ramp * min(1.0, t / rampup)


def _lpips_input(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] or 0..255 images -> 0..255 RGB, area-downsampled to 256 when larger."""
    if images.shape[2] > 256:
        images = F.interpolate(images, size=(256, 256), mode="area")
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


def project(
    G: torch.nn.Module,
    target: torch.Tensor,
    distance_net: torch.nn.Module,
    num_steps: int = 1000,
    label: torch.Tensor | None = None,
    w_avg_samples: int = 10000,
    initial_noise_factor: float = 0.05,
    noise_ramp_length: float = 0.75,
    regularize_noise_weight: float = 1e5,
    on_step=None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Optimise w for target uint8 [C, H, W]; returns (ws of every step [num_steps, num_ws, w_dim], noise maps).

    Uses the global torch RNG (seed it first). G is copied; its noise buffers are optimised on the copy.
    on_step(step, dist, loss) is called after every step.
    """
    G = copy.deepcopy(G).eval().requires_grad_(False)
    device = target.device
    label = torch.zeros([1, G.c_dim], device=device) if label is None else label
    with torch.no_grad():
        z = torch.from_numpy(np.random.RandomState(123).randn(w_avg_samples, G.z_dim)).to(device)
        w_samples = G.mapping(z, label.expand(w_avg_samples, -1))[:, :1].to(torch.float64)  # [N, 1, C]
    w_avg = w_samples.mean(dim=0, keepdim=True)  # [1, 1, C]
    w_std = float(((w_samples - w_avg).square().sum() / w_avg_samples) ** 0.5)

    noise_bufs = {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}
    with torch.no_grad():
        target_features = distance_net(
            _lpips_input(target[None].to(torch.float32)), resize_images=False, return_lpips=True
        )

    w_opt = w_avg.to(torch.float32).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt, *noise_bufs.values()], betas=(0.9, 0.999), lr=0.1)
    for buf in noise_bufs.values():
        buf[:] = torch.randn_like(buf)
        buf.requires_grad = True
    w_out = torch.zeros([num_steps, G.w_dim], device=device)
    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t)
        ws = (w_opt + torch.randn_like(w_opt) * w_noise_scale).repeat([1, G.num_ws, 1])
        synth = (G.synthesis(ws, noise_mode="const") + 1) * (255 / 2)
        synth_features = distance_net(_lpips_input(synth), resize_images=False, return_lpips=True)
        dist = (target_features - synth_features).square().sum()
        loss = dist + noise_regulariser(list(noise_bufs.values())) * regularize_noise_weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        w_out[step] = w_opt.detach()[0, 0]
        with torch.no_grad():
            for buf in noise_bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if on_step is not None:
            on_step(step, float(dist.detach()), float(loss.detach()))
    noise = {name: buf.detach().clone() for name, buf in noise_bufs.items()}
    return w_out[:, None].repeat([1, G.num_ws, 1]), noise


def synthesize(G: torch.nn.Module, w: torch.Tensor, noise: dict[str, torch.Tensor]) -> np.ndarray:
    """uint8 [H, W, C] of G.synthesis(w [num_ws, w_dim]) with the given constant noise maps (G is not changed)."""
    G = copy.deepcopy(G)
    buffers = dict(G.synthesis.named_buffers())
    with torch.no_grad():
        for name, value in noise.items():
            buffers[name].copy_(value)
        return to_uint8_images(G.synthesis(w[None], noise_mode="const"))[0]


def write_video(
    path: str, G: torch.nn.Module, ws: torch.Tensor, noise: dict[str, torch.Tensor], target: np.ndarray
) -> None:
    """target | projection side by side for every step, 10 fps, H.264 (imageio's ffmpeg plugin)."""
    import imageio

    with atomic_path(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(tmp, mode="I", fps=10, codec="libx264", bitrate="16M")
        try:
            for w in ws:
                frame = np.concatenate([target, synthesize(G, w, noise)], axis=1)
                writer.append_data(np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame)
        finally:
            writer.close()


def save_projected_w(path: str, w: torch.Tensor, noise: dict[str, torch.Tensor]) -> None:
    """`w` [1, num_ws, w_dim] and every optimised noise map as `noise.<buffer name>`, written atomically."""
    arrays = {"w": w[None].cpu().numpy()} | {NOISE_PREFIX + name: value.cpu().numpy() for name, value in noise.items()}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


@click.command()
@click.option("--network", "network_pkl", help="Network pickle path or URL", required=True, metavar="PATH")
@click.option("--target", "target_fname", help="Target image file to project to", required=True, metavar="FILE")
@click.option(
    "--num-steps", help="Number of optimisation steps", type=click.IntRange(min=1), default=1000, show_default=True
)
@click.option("--seed", help="Random seed", type=int, default=303, show_default=True)
@click.option(
    "--save-video",
    help="Save an mp4 of the optimisation (needs imageio + imageio-ffmpeg)",
    type=bool,
    default=False,
    show_default=True,
    metavar="BOOL",
)
@click.option("--outdir", help="Where to save the output images", required=True, metavar="DIR")
@click.option("--class", "class_idx", type=int, help="Class label (required for conditional networks)")
@click.option(
    "--vgg",
    help="LPIPS network: VGG16 TorchScript file/URL, or a domain detector file",
    default=detectors.VGG16_URL,
    show_default=True,
    metavar="PATH",
)
@click.option(
    "--detector-dir", help=f"Folder of local detector copies  [default: ${detectors.DETECTOR_DIR_ENV}]", metavar="DIR"
)
@click.option(
    "--device",
    "device_name",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where to run",
)
@click.option(
    "--trust-detector",
    help="--vgg file/URL trusted to hold TorchScript (code); repeatable [default: $GAN_TRUSTED_DETECTORS]",
    metavar="PATH",
    multiple=True,
)
def main(
    network_pkl,
    target_fname,
    num_steps,
    seed,
    save_video,
    outdir,
    class_idx,
    vgg,
    detector_dir,
    device_name,
    trust_detector,
):
    """Project an image into W and save the result."""
    detectors.trust_detectors(trust_detector)
    if save_video and (
        importlib.util.find_spec("imageio") is None or importlib.util.find_spec("imageio_ffmpeg") is None
    ):
        raise click.UsageError(
            "--save-video needs imageio and its ffmpeg plugin: pip install imageio imageio-ffmpeg (or run without --save-video)"
        )
    if not os.path.isfile(target_fname):
        raise click.UsageError(f'--target: no such file "{target_fname}"')
    np.random.seed(seed)
    torch.manual_seed(seed)
    with click_errors(GeneratorLoadError):
        device = resolve_device(device_name)
        G = load_generator_pkl(network_pkl, device)
        label = class_label(G, class_idx, device)
    target = load_target(target_fname, G.img_resolution, G.img_channels)  # Before the (maybe downloaded) VGG.
    with click_errors(OSError, ValueError):
        distance_net = detectors.get_detector(vgg, device, detector_dir)

    start = time.time()
    with ProgressBar(num_steps, desc="projecting", unit="step") as progress:
        ws, noise = project(
            G,
            torch.from_numpy(target.copy()).permute(2, 0, 1).to(device),
            distance_net,
            num_steps=num_steps,
            label=label,
            on_step=lambda step, dist, loss: progress.update(1),
        )
    print(f"Projected in {time.time() - start:.1f} s")

    os.makedirs(outdir, exist_ok=True)
    if save_video:
        write_video(os.path.join(outdir, "proj.mp4"), G, ws, noise, target)
    save_png(target, os.path.join(outdir, "target.png"))
    save_png(synthesize(G, ws[-1], noise), os.path.join(outdir, "proj.png"))
    save_projected_w(os.path.join(outdir, "projected_w.npz"), ws[-1], noise)
    print(f'Saved target.png, proj.png and projected_w.npz in "{outdir}"')


if __name__ == "__main__":
    main()
