"""Building blocks shared by G and D: modulated convolution, the equalized-lr layers and the mapping network.

Every trainable weight is stored as N(0, 1) / lr_multiplier and scaled at run time by lr_multiplier / sqrt(fan_in)
("equalized learning rate"), so the stored values, `state_dict` keys and random-draw order match the original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from torch_utils import misc, profiling
from torch_utils.ops import bias_act, conv2d_resample, fma, normalize_2nd_moment, upfirdn2d

DEFAULT_RESAMPLE_FILTER = (1, 3, 3, 1)


def activation_gain(activation: str) -> float:
    """Default output gain of a `bias_act` activation (sqrt(2) for lrelu/relu/swish, else 1)."""
    if activation not in bias_act.activation_funcs:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(bias_act.activation_funcs)}")
    return float(bias_act.activation_funcs[activation].def_gain)


def match_memory_format(weight: torch.Tensor, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The conv weight in NHWC layout when the layer runs channels-last on CUDA, else unchanged."""
    if channels_last and x.is_cuda:
        return weight.contiguous(memory_format=torch.channels_last)
    return weight


def block_precision(
    use_fp16: bool, channels_last: bool, force_fp32: bool, device: torch.device
) -> tuple[torch.dtype, torch.memory_format]:
    """Activation dtype and memory format of a G/D block.

    float16 only for fp16 blocks on CUDA without `force_fp32`; on the CPU everything runs in float32, so the
    fp16 options are no-ops there. Channels-last only together with float16.
    """
    fp16 = use_fp16 and not force_fp32 and device.type == "cuda"
    dtype = torch.float16 if fp16 else torch.float32
    memory_format = torch.channels_last if (fp16 and channels_last) else torch.contiguous_format
    return dtype, memory_format


@profiling.scope("modulated_conv2d")
def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Convolution whose input channels are scaled per sample by `styles`, optionally demodulated.

    Computes `y[n, o] = d[n, o] * conv(x[n] * styles[n], weight)[o] + noise` with
    `d[n, o] = rsqrt(sum_{i,a,b} (weight[o, i, a, b] * styles[n, i])^2 + 1e-8)` (d = 1 without demodulation).
    x: [N, I, H, W] float32/16; weight: [O, I, kh, kw] float32; styles: [N, I] float32;
    noise: None or broadcastable to the output ([N, 1, H', W'] or [H', W']). Returns [N, O, H', W'] in x.dtype.
    `fused_modconv=True` runs one grouped conv with per-sample weights; False scales the activations instead.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    # Keep float16 activations in range: these scales cancel in the demodulation (up to its epsilon).
    if x.dtype == torch.float16 and demodulate:
        weight_scale = (1 / math.sqrt(in_channels * kh * kw)) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        weight = weight * weight_scale
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:
        # sum_{i,a,b} (weight[o,i,a,b] * styles[n,i])^2 = sum_i styles[n,i]^2 * sum_{a,b} weight[o,i,a,b]^2: one small
        # matmul instead of materialising the [N, O, I, kh, kw] per-sample weights (and their backward).
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate and noise is not None:
            return fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    sample_weights = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        sample_weights = sample_weights * dcoefs.reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    sample_weights = sample_weights.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample.conv2d_resample(
        x,
        sample_weights.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch_size,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer `y = act(x W^T * gain_w + b * gain_b)` with equalized learning rate.

    x: [N, in_features] -> [N, out_features], in x.dtype. `weight` is stored as N(0,1) / lr_multiplier.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1,
        bias_init: float = 0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        activation_gain(activation)  # Validates the name early.
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_gain
        bias = self.bias
        if bias is not None:
            bias = bias.to(x.dtype)
            if self.bias_gain != 1:
                bias = bias * self.bias_gain
        if self.activation == "linear" and bias is not None:
            return torch.addmm(bias.unsqueeze(0), x, weight.t())
        x = x.matmul(weight.t())
        return bias_act.bias_act(x, bias, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Conv + optional FIR up/down-sampling + bias + activation + clamp, equalized learning rate.

    x: [N, in, H, W] -> [N, out, H*up/down, W*up/down], in x.dtype. With `trainable=False` (Freeze-D) the
    weight and bias are buffers of the same names. `forward(x, gain)` multiplies the activation gain and the
    clamp by `gain`. Layers with `up > 1` compute a true convolution (flip_weight = (up == 1)), all others a
    correlation: the original does the same, and trained weights depend on it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.channels_last = channels_last
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_gain(activation)

        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_value) if bias else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_value)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        weight = match_memory_format((self.weight * self.weight_gain).to(x.dtype), x, self.channels_last)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample.conv2d_resample(
            x,
            weight,
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, bias, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape)
        return f"weight={shape}, activation={self.activation}, up={self.up}, down={self.down}"


class MappingNetwork(torch.nn.Module):
    """Maps latents z [N, z_dim] and labels c [N, c_dim] to intermediate latents w.

    Output: [N, num_ws, w_dim] (each w repeated), or [N, w_dim] when `num_ws` is None; float32.
    Tracks the running mean `w_avg` (in training mode, unless `skip_w_avg_update`) and applies truncation
    `w_avg + psi * (w - w_avg)` to all ws, or to the first `truncation_cutoff` ones.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MappingNetwork needs num_layers >= 1, got {num_layers}")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs a mapping network that tracks w_avg (set num_ws and w_avg_beta)")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
