"""Perceptual Path Length (Karras et al. 2019): the mean of d(G(t), G(t + eps)) / eps^2 over random latent
paths (lerp in W, slerp in Z), with the lowest and highest 1% of distances left out.

The distance is the VGG16 LPIPS distance of the TorchScript `vgg16.pt` (`return_lpips=True`), or, with a
domain detector (`opts.detector`), that detector's uncalibrated LPIPS-like distance
(metrics.domain_classifier). Any module taking `(img, resize_images=False, return_lpips=True)` and returning
per-image embeddings works: the distance is the squared Euclidean distance of the embeddings.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from metrics import detectors, formulas, metric_utils
from metrics.inception import InceptionV3FID


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of the directions of a and b [N, D] at t [N, 1]; returns unit vectors."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


class PPLSampler(torch.nn.Module):
    """One batch of scaled path distances: for labels c [B, c_dim] returns dist [B] = ||e(t) - e(t+eps)||^2 / eps^2."""

    def __init__(
        self,
        G: torch.nn.Module,
        G_kwargs: dict,
        epsilon: float,
        space: str,
        sampling: str,
        crop: bool,
        distance_net: torch.nn.Module,
    ):
        super().__init__()
        if space not in ("z", "w"):
            raise ValueError(f"space must be 'z' or 'w', got {space!r}")
        if sampling not in ("full", "end"):
            raise ValueError(f"sampling must be 'full' or 'end', got {sampling!r}")
        self.G = copy.deepcopy(G)
        self.G_kwargs = G_kwargs
        self.epsilon = epsilon
        self.space = space
        self.sampling = sampling
        self.crop = crop
        self.distance_net = distance_net

    def _endpoints(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Broadcast ws [B, num_ws, w_dim] at t and t + eps along random paths."""
        t = torch.rand([c.shape[0]], device=c.device) * (1 if self.sampling == "full" else 0)
        z0, z1 = torch.randn([c.shape[0] * 2, self.G.z_dim], device=c.device).chunk(2)
        if self.space == "w":
            w0, w1 = self.G.mapping(torch.cat([z0, z1]), torch.cat([c, c])).chunk(2)
            t = t[:, None, None]
            return w0.lerp(w1, t), w0.lerp(w1, t + self.epsilon)
        t = t[:, None]
        zt0 = slerp(z0, z1, t)
        zt1 = slerp(z0, z1, t + self.epsilon)
        return self.G.mapping(torch.cat([zt0, zt1]), torch.cat([c, c])).chunk(2)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        wt0, wt1 = self._endpoints(c)
        for name, buf in self.G.named_buffers():
            if name.endswith(".noise_const"):
                buf.copy_(torch.randn_like(buf))
        img = self.G.synthesis(torch.cat([wt0, wt1]), noise_mode="const", force_fp32=True, **self.G_kwargs)
        if self.crop:
            if img.shape[2] != img.shape[3]:
                raise ValueError(f"PPL crop needs square images, got {img.shape[2]}x{img.shape[3]}")
            s = img.shape[2] // 8
            img = img[:, :, s * 3 : s * 7, s * 2 : s * 6]
        factor = self.G.img_resolution // 256
        if factor > 1:
            n, ch, h, w = img.shape
            img = img.reshape([n, ch, h // factor, factor, w // factor, factor]).mean([3, 5])
        img = (img + 1) * (255 / 2)
        if img.shape[1] == 1:
            img = img.repeat([1, 3, 1, 1])
        e0, e1 = self.distance_net(img, resize_images=False, return_lpips=True).chunk(2)
        return (e0 - e1).square().sum(dim=1) / self.epsilon**2


def sample_distances(
    opts: metric_utils.MetricOptions, sampler: PPLSampler, num_samples: int, batch_size: int
) -> np.ndarray | None:
    """Run the sampler until num_samples distances are gathered (rank order per step); None on ranks != 0."""
    labels = metric_utils.iterate_random_labels(opts, batch_size)
    progress = opts.progress.sub(tag="ppl sampling", num_items=num_samples)
    dist = []
    with torch.no_grad():
        for batch_start in range(0, num_samples, batch_size * opts.num_gpus):
            progress.update(batch_start)
            x = sampler(next(labels))
            for src in range(opts.num_gpus):
                y = x.clone()
                if opts.num_gpus > 1:
                    torch.distributed.broadcast(y, src=src)
                dist.append(y)
    progress.update(num_samples)
    if opts.rank != 0:
        return None
    return torch.cat(dist)[:num_samples].cpu().numpy()


def compute_ppl(
    opts: metric_utils.MetricOptions,
    num_samples: int,
    epsilon: float,
    space: str,
    sampling: str,
    crop: bool,
    batch_size: int,
) -> float:
    """Perceptual path length in `space` ('z' or 'w'), at path endpoints ('end') or anywhere ('full')."""
    detector_url = opts.detector_for(detectors.VGG16_URL)
    distance_net = metric_utils.get_feature_detector(opts, detector_url)
    if isinstance(distance_net, InceptionV3FID):
        raise ValueError(
            f'PPL needs an LPIPS-style distance, which the Inception network "{detector_url}" lacks; use vgg16.pt or a domain detector'
        )
    sampler = PPLSampler(opts.G, opts.G_kwargs, epsilon, space, sampling, crop, distance_net)
    sampler.G.eval().requires_grad_(False).to(opts.device)
    dist = sample_distances(opts, sampler, opts.capped(num_samples), batch_size)
    opts.provenance.num_gen = opts.capped(num_samples)  # Path samples (image pairs).
    if dist is None:
        return float("nan")
    return formulas.ppl_from_distances(dist)
