"""The StyleGAN2 discriminator, split into a feature extractor and a head (for AdaptiveMix).

Layer structure, parameter names, fp16/clamping rules and initialisation follow the original StyleGAN2-ADA
discriminator (docs/networks.md). The split puts everything up to the 4x4 epilogue in F and the epilogue in J,
so AdaptiveMix can mix and compare features at the input of the head.

`D(img, c) == D.head(D.features(img, c), c)`, bit for bit:
* `D.features(img, c)` runs the blocks b{res} ... b8 and returns `(x, img4)`: x is the epilogue input
  [N, C4, 4, 4] (taken before minibatch-std, in the dtype of block b8), img4 the image downsampled to
  [N, img_channels, 4, 4] for the 'skip' architecture and None otherwise. `c` is ignored.
* `D.head(features, c)` maps `(x, img4)` (or a bare x for 'orig'/'resnet') to logits [N, 1] float32: the
  label mapping (conditional D) and the epilogue b4 (skip fromrgb, minibatch-std over the given batch, conv,
  fc, out, projection onto the label embedding). Any feature tensor of that shape works, e.g. mixed features.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch

from torch_utils import misc
from torch_utils.ops import upfirdn2d
from training.networks_generator import channels_per_resolution, check_architecture, resolution_log2
from training.networks_layers import (
    DEFAULT_RESAMPLE_FILTER,
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    block_precision,
)
from training.techniques.minibatch_discrimination import MinibatchDiscrimination

DiscriminatorFeatures = tuple[torch.Tensor, torch.Tensor | None]


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of D: [fromrgb], conv0, conv1 (2x down), [resnet skip].

    `forward(x, img)`: x [N, in, res, res] or None (first block), img [N, img_channels, res, res] or None.
    Returns (x [N, out, res/2, res/2] in the block dtype, img downsampled for 'skip' else None).
    Layers with index < `freeze_layers` (counted over all blocks from `first_layer_idx`) are frozen.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ):
        super().__init__()
        check_architecture(architecture)
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 or tmp_channels ({tmp_channels}), got {in_channels}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.freeze_layers = freeze_layers
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.num_layers = 0

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, trainable=self._next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, trainable=self._next_trainable(), **common)
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            down=2,
            resample_filter=resample_filter,
            trainable=self._next_trainable(),
            **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                1,
                bias=False,
                down=2,
                resample_filter=resample_filter,
                channels_last=self.channels_last,
                trainable=self._next_trainable(),
            )

    def _next_trainable(self) -> bool:
        """Whether the next layer created is trainable (its global index is >= freeze_layers)."""
        layer_idx = self.first_layer_idx + self.num_layers
        self.num_layers += 1
        return layer_idx >= self.freeze_layers

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = x.device if x is not None else img.device
        dtype, memory_format = block_precision(self.use_fp16, self.channels_last, force_fp32, device)
        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(torch.nn.Module):
    """Appends `num_channels` feature maps holding the std of features over sample groups.

    x: [N, C, H, W] -> [N, C + num_channels, H, W]. Group size G = min(group_size, N) (N if None); sample i
    belongs to group i mod (N / G), i.e. groups are strided. N must be divisible by G, C by num_channels.
    """

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, channels, height, width = x.shape
        group = min(self.group_size, batch_size) if self.group_size is not None else batch_size
        num_features = self.num_channels
        if batch_size % group != 0:
            raise ValueError(
                f"minibatch-std group size {group} does not divide the batch size {batch_size}; "
                "use a batch size that is a multiple of mbstd_group_size"
            )
        if channels % num_features != 0:
            raise ValueError(f"mbstd_num_channels={num_features} does not divide the channel count {channels}")
        y = x.reshape(group, -1, num_features, channels // num_features, height, width)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, num_features, 1, 1).repeat(group, 1, height, width)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head of D: [skip fromrgb], minibatch-std, conv, fc, out, label projection.

    `forward(x [N, in, 4, 4], img [N, img_channels, 4, 4] or None, cmap [N, cmap_dim] or None)` -> [N, 1]
    float32 logits. Always runs in float32.

    With `mbdisc_kernels` B > 0, minibatch discrimination (Salimans et al. 2016) joins minibatch-std: the fc
    output [N, in] gains B cross-sample closeness values (kernel size `mbdisc_kernel_dim`) before `out`.
    """

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
        mbdisc_kernels: int = 0,
        mbdisc_kernel_dim: int = 5,
    ):
        super().__init__()
        check_architecture(architecture)
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.mbdisc = (
            MinibatchDiscrimination(in_channels, mbdisc_kernels, mbdisc_kernel_dim) if mbdisc_kernels > 0 else None
        )
        self.out = FullyConnectedLayer(in_channels + mbdisc_kernels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        del force_fp32  # The epilogue always runs in float32.
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            if img is None:
                raise ValueError("the 'skip' discriminator head needs the 4x4 image: pass features as (x, img4)")
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        if self.mbdisc is not None:
            x = self.mbdisc(x)
        x = self.out(x)

        if self.cmap_dim > 0:
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, cmap_dim={self.cmap_dim}"


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator with the AdaptiveMix split into `features` and `head`.

    `forward(img [N, img_channels, res, res], c [N, c_dim] or None, force_fp32=False)` -> logits [N, 1].
    `init_kwargs` holds the constructor arguments (used to rebuild the network).
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        block_kwargs: dict | None = None,
        mapping_kwargs: dict | None = None,
        epilogue_kwargs: dict | None = None,
    ):
        super().__init__()
        block_kwargs = block_kwargs if block_kwargs is not None else {}
        mapping_kwargs = mapping_kwargs if mapping_kwargs is not None else {}
        epilogue_kwargs = epilogue_kwargs if epilogue_kwargs is not None else {}
        self.init_kwargs = copy.deepcopy(
            dict(
                c_dim=c_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                architecture=architecture,
                channel_base=channel_base,
                channel_max=channel_max,
                num_fp16_res=num_fp16_res,
                conv_clamp=conv_clamp,
                cmap_dim=cmap_dim,
                block_kwargs=block_kwargs,
                mapping_kwargs=mapping_kwargs,
                epilogue_kwargs=epilogue_kwargs,
            )
        )
        check_architecture(architecture)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = resolution_log2(img_resolution, minimum=8)
        self.img_channels = img_channels
        self.architecture = architecture
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = channels_per_resolution(self.block_resolutions + [4], channel_base, channel_max)
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        shared = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels_dict[res] if res < img_resolution else 0,
                channels_dict[res],
                channels_dict[res // 2],
                resolution=res,
                first_layer_idx=layer_idx,
                use_fp16=(res >= fp16_resolution),
                **block_kwargs,
                **shared,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs
            )
        self.b4 = DiscriminatorEpilogue(channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **shared)

    def features(self, img: torch.Tensor, c: torch.Tensor | None = None, **block_kwargs: Any) -> DiscriminatorFeatures:
        """F: the blocks b{res} ... b8. Returns (x [N, C4, 4, 4], img4 [N, img_channels, 4, 4] or None).

        `c` is accepted for symmetry with `head` and ignored; `block_kwargs` is e.g. `force_fp32=True`.
        """
        del c
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        return x, img

    def head(self, features: DiscriminatorFeatures | torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """J: label mapping + epilogue. `features` is `(x, img4)` from `features()`, or a bare x [N, C4, 4, 4]
        for the 'orig'/'resnet' architectures. Returns logits [N, 1] float32."""
        if isinstance(features, torch.Tensor):
            x, img = features, None
        else:
            x, img = features
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, **block_kwargs: Any) -> torch.Tensor:
        return self.head(self.features(img, c, **block_kwargs), c)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, architecture={self.architecture}"
