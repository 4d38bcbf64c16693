"""Native PyTorch FID Inception-v3 (the TF "inception-2015-12-05" graph; docs/metrics.md).

`InceptionV3FID` has exactly the `state_dict` layout of the converted weight file
`pt_inception-2015-12-05-6726825d.pth` (pytorch-fid / torch-fidelity), so that file loads into it
directly. Inputs are uint8 RGB batches of any size; they are resized to 299x299 with the TF-1.x bilinear
rule (`tf1_bilinear_resize`) and mapped to [-1, 1) by (x - 128) / 128 before the network.

`forward` accepts the keyword arguments of the TorchScript detector `inception-2015-12-05.pt`
(`return_features=True` -> pool3 features, `no_output_bias=True` -> softmax of the unbiased logits), so the
metrics can use either detector through the same call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 299
BN_EPS = 0.001
NUM_CLASSES = 1008
NUM_FEATURES = 2048

# ----------------------------------------------------------------------------
# Input pipeline.


def _tf1_axis_taps(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (lo, hi) and float32 weights w along one axis for the TF-1.x rule s = j * (n_in / n_out)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    s = torch.arange(n_out, dtype=torch.float32) * scale
    lo = torch.floor(s)
    w = s - lo
    lo = lo.to(torch.int64).clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo.to(device), hi.to(device), w.to(device)


def tf1_bilinear_resize(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF-1.x `resize_bilinear` (align_corners=False, no half-pixel centres, no antialiasing).

    x: float32 [N, C, H, W] -> float32 [N, C, size, size]. Output index j samples the source coordinate
    j * (n_in / n_out) per axis; bit-exact with TF when computed in float32 in this lerp order.
    """
    _, _, h, w = x.shape
    if h == size and w == size:
        return x
    lo_y, hi_y, w_y = _tf1_axis_taps(h, size, x.device)
    lo_x, hi_x, w_x = _tf1_axis_taps(w, size, x.device)
    top_rows = x.index_select(2, lo_y)
    bottom_rows = x.index_select(2, hi_y)
    w_x = w_x.to(x.dtype)
    top = top_rows.index_select(3, lo_x)
    top = top + (top_rows.index_select(3, hi_x) - top) * w_x
    bottom = bottom_rows.index_select(3, lo_x)
    bottom = bottom + (bottom_rows.index_select(3, hi_x) - bottom) * w_x
    return top + (bottom - top) * w_y.to(x.dtype)[:, None]


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] (0..255) -> network input float32 [N, 3, 299, 299] in [-1, 0.9921875]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"Inception expects images [N, 3, H, W], got shape {list(images.shape)}; repeat grayscale to 3 channels first"
        )
    x = tf1_bilinear_resize(images.to(torch.float32))
    return (x - 128) / 128


# ----------------------------------------------------------------------------
# Layers.


class InferenceBatchNorm(nn.Module):
    """BatchNorm in inference form with stored statistics: (x - mean) / sqrt(var + eps) * weight + bias.

    Holds exactly `weight`, `bias`, `running_mean`, `running_var` (no `num_batches_tracked`).
    """

    def __init__(self, num_channels: int, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )


class BasicConv2d(nn.Module):
    """conv (no bias) -> inference BatchNorm (eps 0.001) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = InferenceBatchNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool; padded cells are excluded from the divisor (TF 'SAME' pooling)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 -> 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionB(nn.Module):
    """Mixed_6a: 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2 -> 768 channels at 17x17."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3dbl, bp], dim=1)


class InceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 branches of width c7 -> 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            b7dbl = layer(b7dbl)
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b7, b7dbl, bp], dim=1)


class InceptionD(nn.Module):
    """Mixed_7a: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2 -> 1280 channels at 8x8."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(nn.Module):
    """Mixed_7b/7c: 1x1 | 1x1-(1x3,3x1) | 1x1-3x3-(1x3,3x1) | pool-1x1 -> 2048 channels.

    pool = 'avg' (Mixed_7b, padding excluded) or 'max' (Mixed_7c, 3x3 stride 1 pad 1).
    """

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl)], dim=1)
        pooled = _avg_pool_3x3(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, b3dbl, bp], dim=1)


# ----------------------------------------------------------------------------
# Network.


class InceptionV3FID(nn.Module):
    """The FID Inception-v3 with the layout of `pt_inception-2015-12-05-6726825d.pth` (472 tensors).

    Construct, then `load_state_dict(torch.load(path, weights_only=True))`. Weights start uninitialised-ish
    (PyTorch defaults); only loaded weights give meaningful features.
    """

    input_size = INPUT_SIZE

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(NUM_FEATURES, NUM_CLASSES)
        self.eval()

    _STAGES = (
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "MaxPool_1",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "MaxPool_2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load the weight file's dict; `*.num_batches_tracked` entries (if the file has them) are ignored."""
        state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> pool3 features float32 [N, 2048] (FID/KID feature)."""
        x = preprocess(images)
        for name in self._STAGES:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def logits(self, images: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> logits float32 [N, 1008]; bias=False omits fc.bias (used by IS)."""
        pool3 = self.features(images)
        return F.linear(pool3, self.fc.weight, self.fc.bias if bias else None)

    def forward(
        self, images: torch.Tensor, return_features: bool = False, no_output_bias: bool = False
    ) -> torch.Tensor:
        """TorchScript-detector call convention: pool3 features, or softmax probabilities [N, 1008]."""
        if return_features:
            return self.features(images)
        return torch.softmax(self.logits(images, bias=not no_output_bias), dim=1)
