"""A small convolutional classifier used as an offline "domain detector" for the metrics, and its file format.

A detector file is a plain dict saved with `torch.save` and read with `torch.load(weights_only=True)`, so
loading one never executes code:
    {'format': DETECTOR_FORMAT, 'config': {...constructor kwargs...}, 'state_dict': {...}, 'info': {...}}

`DomainClassifier.forward` follows the call convention of the original's TorchScript detectors (uint8 RGB
[N, 3, H, W] in 0..255, any size; grayscale repeated to 3 channels before the call):
    model(images)                                  -> softmax class probabilities [N, K] (IS)
    model(images, return_features=True)            -> penultimate-layer features [N, hidden] (FID, KID, PR)
    model(images, resize_images=False, return_lpips=True)
                                                   -> LPIPS-like embedding [N, D] (PPL)
The embedding concatenates every conv layer's activations, unit-normalised over channels per pixel and
scaled by 1/sqrt(H*W), so the squared Euclidean distance between two embeddings is
sum_layers mean_pixels ||a0 - a1||^2: LPIPS with all channel weights equal to 1 (uncalibrated).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnnlib import atomic

DETECTOR_FORMAT = "gan-metrics-domain-detector/1"
POOLED_SIZE = 4  # The last conv map is average-pooled to POOLED_SIZE x POOLED_SIZE before the feature layer.


class DomainClassifier(nn.Module):
    """conv3x3-ReLU blocks (avg-pool 2 between them) -> avg-pool to 4x4 -> fc-ReLU (features) -> bias-free fc.

    Input: images [N, C, H, W] with values 0..255 (uint8 or float), C = 1 or 3; 3-channel input is averaged
    to gray for a 1-channel model and gray is repeated for a 3-channel model. With resize_images (default)
    the input is resized to `resolution` (bilinear, antialiased) first.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        resolution: int = 32,
        channels: tuple[int, ...] = (16, 32, 64),
        hidden: int = 128,
    ):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.config = dict(
            num_classes=int(num_classes),
            in_channels=in_channels,
            resolution=int(resolution),
            channels=[int(c) for c in channels],
            hidden=int(hidden),
        )
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.fc = nn.Linear(channels[-1] * POOLED_SIZE**2, hidden)
        self.out = nn.Linear(hidden, num_classes, bias=False)

    @property
    def input_size(self) -> int:
        """Square size images are resized to before the network."""
        return self.config["resolution"]

    def _input(self, images: torch.Tensor, resize_images: bool) -> torch.Tensor:
        x = images.to(torch.float32)
        in_channels = self.config["in_channels"]
        if x.shape[1] == 3 and in_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1 and in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != in_channels:
            raise ValueError(f"domain detector expects 1 or 3 channels, got images of shape {list(images.shape)}")
        res = self.config["resolution"]
        if resize_images and x.shape[2:] != (res, res):
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
        return x / 127.5 - 1

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        acts = []
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = F.relu(conv(x))
            acts.append(x)
        return acts

    def forward(
        self,
        images: torch.Tensor,
        return_features: bool = False,
        no_output_bias: bool = False,
        resize_images: bool = True,
        return_lpips: bool = False,
    ) -> torch.Tensor:
        """See the module docstring; `no_output_bias` is accepted for call compatibility (the last layer has no bias)."""
        del no_output_bias
        acts = self._activations(self._input(images, resize_images))
        if return_lpips:
            parts = [F.normalize(a, dim=1, eps=1e-10).flatten(1) / (a.shape[2] * a.shape[3]) ** 0.5 for a in acts]
            return torch.cat(parts, dim=1)
        features = F.relu(self.fc(F.adaptive_avg_pool2d(acts[-1], POOLED_SIZE).flatten(1)))
        if return_features:
            return features
        return torch.softmax(self.out(features), dim=1)


def to_file_dict(model: DomainClassifier, info: dict[str, Any]) -> dict[str, Any]:
    """The plain dict stored in a detector file (tensors on CPU)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"format": DETECTOR_FORMAT, "config": dict(model.config), "state_dict": state, "info": dict(info)}


def is_file_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == DETECTOR_FORMAT


def from_file_dict(obj: dict[str, Any]) -> DomainClassifier:
    """Build the classifier from a loaded detector-file dict (strict state_dict match)."""
    if not is_file_dict(obj):
        raise ValueError(f"not a domain detector file (expected format {DETECTOR_FORMAT!r})")
    model = DomainClassifier(**obj["config"])
    model.load_state_dict(obj["state_dict"])
    return model.eval().requires_grad_(False)


def save(model: DomainClassifier, path: str, info: dict[str, Any]) -> None:
    """Write the detector file atomically (`dnnlib.atomic`)."""
    with atomic.atomic_path(path) as tmp_path:
        torch.save(to_file_dict(model, info), tmp_path)


def load(path: str) -> DomainClassifier:
    """Read a detector file with torch.load(weights_only=True) (no code execution)."""
    return from_file_dict(torch.load(path, map_location="cpu", weights_only=True))
