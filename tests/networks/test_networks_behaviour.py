"""Network behaviour against independent computations: modulated conv (brute force), minibatch-std (loops),
noise modes and their draw order, truncation, the D split features/head, fp16 options on the CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_networks import ARCHS, tiny_discriminator, tiny_generator

from torch_utils.ops import upfirdn2d
from training.networks import MinibatchStdLayer, modulated_conv2d


def perturb_(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter and buffer (noise strengths and biases included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return net


# ----------------------------------------------------------------------------
# modulated_conv2d.


def brute_force_modconv(x, weight, styles, noise, demodulate):
    """Per-sample conv (correlation, padding k//2) with explicitly modulated (and demodulated) weights."""
    outputs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        outputs.append(F.conv2d(x[n : n + 1], w, padding=weight.shape[2] // 2))
    y = torch.cat(outputs)
    return y + noise if noise is not None else y


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("with_noise", [True, False])
@pytest.mark.parametrize("kernel", [1, 3])
def test_modulated_conv2d_matches_brute_force(demodulate, fused, with_noise, kernel):
    gen = torch.Generator().manual_seed(kernel)
    x = torch.randn([3, 5, 6, 6], generator=gen, dtype=torch.float64)
    weight = torch.randn([4, 5, kernel, kernel], generator=gen, dtype=torch.float64)
    styles = torch.randn([3, 5], generator=gen, dtype=torch.float64)
    noise = torch.randn([3, 1, 6, 6], generator=gen, dtype=torch.float64) if with_noise else None
    y = modulated_conv2d(x, weight, styles, noise=noise, padding=kernel // 2, demodulate=demodulate,
                         fused_modconv=fused)  # fmt: skip
    expected = brute_force_modconv(x, weight, styles, noise, demodulate)
    assert torch.allclose(y, expected, rtol=1e-10, atol=1e-10)


def test_modulated_conv2d_upsampling_fused_equals_non_fused():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn([2, 4, 5, 5], generator=gen)
    weight = torch.randn([3, 4, 3, 3], generator=gen)
    styles = torch.randn([2, 4], generator=gen)
    kwargs = dict(up=2, padding=1, resample_filter=upfirdn2d.setup_filter([1, 2, 3, 1]), flip_weight=False)
    fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kwargs)
    plain = modulated_conv2d(x, weight, styles, fused_modconv=False, **kwargs)
    assert fused.shape == (2, 3, 10, 10)
    assert torch.allclose(fused, plain, rtol=1e-5, atol=1e-5)


def test_modulated_conv2d_float16_prenormalization_only_rescales():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([2, 8, 6, 6], generator=gen)
    weight = torch.randn([4, 8, 3, 3], generator=gen) * 30  # Large values: overflow without pre-normalization.
    styles = torch.randn([2, 8], generator=gen) * 300
    expected = brute_force_modconv(x.double(), weight.double(), styles.double(), None, True)
    for fused in (True, False):
        y = modulated_conv2d(x.half(), weight, styles, padding=1, fused_modconv=fused)
        assert y.dtype == torch.float16 and torch.isfinite(y).all()
        assert torch.allclose(y.double(), expected, rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------
# Minibatch standard deviation.


def brute_force_mbstd(x, group_size, num_channels):
    N, C, H, W = x.shape
    G = N if group_size is None else min(group_size, N)
    n, c = N // G, C // num_channels
    stats = torch.zeros([N, num_channels, H, W], dtype=x.dtype)
    for j in range(n):
        members = [g * n + j for g in range(G)]  # Strided groups.
        for f in range(num_channels):
            block = x[members, f * c : (f + 1) * c]  # [G, c, H, W]
            sigma = ((block - block.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt()
            for i in members:
                stats[i, f] = sigma.mean()
    return torch.cat([x, stats], dim=1)


@pytest.mark.parametrize("group_size, num_channels, batch", [(4, 1, 8), (2, 2, 6), (None, 4, 5), (16, 1, 4)])
def test_minibatch_std_matches_loops(group_size, num_channels, batch):
    x = torch.randn([batch, 8, 4, 4], generator=torch.Generator().manual_seed(batch), dtype=torch.float64)
    y = MinibatchStdLayer(group_size, num_channels)(x)
    assert torch.allclose(y, brute_force_mbstd(x, group_size, num_channels), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------
# Noise modes, truncation.


def test_random_noise_draw_order_per_layer():
    """'random' draws randn([N, 1, r, r]) per layer in execution order b4.conv1, b8.conv0, b8.conv1, ...
    (the original's order); writing those draws into noise_const must reproduce it with 'const' (batch of one)."""
    G = perturb_(tiny_generator("skip")).eval()
    z = torch.randn([1, 8])
    torch.manual_seed(5)
    with torch.no_grad():
        img_random = G(z, None, noise_mode="random")
    torch.manual_seed(5)
    with torch.no_grad():
        for res in G.synthesis.block_resolutions:
            block = getattr(G.synthesis, f"b{res}")
            for layer in ([block.conv0] if res > 4 else []) + [block.conv1]:
                layer.noise_const.copy_(torch.randn([1, 1, res, res]).reshape(res, res))
        img_const = G(z, None, noise_mode="const")
        img_none = G(z, None, noise_mode="none")
    assert torch.equal(img_random, img_const)
    assert not torch.allclose(img_none, img_const)
    with torch.no_grad():
        for name, buffer in G.named_buffers():
            if name.endswith("noise_const"):
                buffer.zero_()
        assert torch.allclose(G(z, None, noise_mode="const"), img_none, atol=1e-6)


def test_truncation_closed_form_and_w_avg_rules():
    G = perturb_(tiny_generator("skip", c_dim=3))
    z, c = torch.randn([4, 8]), torch.eye(3)[[0, 1, 2, 0]]
    w_avg = G.mapping.w_avg.clone()
    ws = G.mapping(z, c, skip_w_avg_update=True)
    assert torch.equal(G.mapping.w_avg, w_avg)  # skip_w_avg_update leaves it alone.
    assert ws.shape == (4, G.num_ws, 8) and torch.equal(ws, ws[:, :1].expand_as(ws))
    trunc = G.mapping(z, c, truncation_psi=0.6, truncation_cutoff=3, skip_w_avg_update=True)
    assert torch.allclose(trunc[:, :3], w_avg + 0.6 * (ws[:, :3] - w_avg), atol=1e-6)
    assert torch.equal(trunc[:, 3:], ws[:, 3:])
    G.mapping(z, c)  # Training mode: w_avg <- mean + beta (w_avg - mean).
    assert torch.allclose(G.mapping.w_avg, ws[:, 0].mean(0) + 0.995 * (w_avg - ws[:, 0].mean(0)), atol=1e-6)
    updated = G.mapping.w_avg.clone()
    G.eval()(z, c)
    assert torch.equal(G.mapping.w_avg, updated)  # No update in eval mode.


# ----------------------------------------------------------------------------
# Split discriminator: D(img, c) == D.head(D.features(img, c), c).


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("c_dim", [0, 3])
@pytest.mark.parametrize("training", [True, False])
def test_split_discriminator_is_bit_exact(arch, c_dim, training):
    D = perturb_(tiny_discriminator(arch, c_dim=c_dim)).train(training)
    img = torch.randn([4, 3, 16, 16])
    c = torch.eye(3)[[0, 1, 2, 1]] if c_dim else None
    features = D.features(img, c)
    x, img4 = features
    assert x.shape == (4, 16, 4, 4) and x.dtype == torch.float32
    if arch == "skip":
        assert img4.shape == (4, 3, 4, 4)
    else:
        assert img4 is None
    assert torch.equal(D(img, c), D.head(features, c))


@pytest.mark.parametrize("arch", ARCHS)
def test_head_accepts_mixed_features_and_passes_gradients(arch):
    D = perturb_(tiny_discriminator(arch, c_dim=3))
    c = torch.eye(3)[[0, 1, 2, 1]]
    xa, img_a = D.features(torch.randn([4, 3, 16, 16]), c)
    xb, _ = D.features(torch.randn([4, 3, 16, 16]), c)
    mixed = (0.3 * xa + 0.7 * xb).detach().requires_grad_(True)
    logits = D.head((mixed, img_a), c)
    assert logits.shape == (4, 1)
    (grad,) = torch.autograd.grad(logits.sum(), mixed)
    assert grad.shape == mixed.shape and grad.abs().sum() > 0
    if arch == "skip":
        with pytest.raises(ValueError, match="4x4 image"):
            D.head(mixed, c)
    else:
        assert torch.equal(D.head(mixed, c), logits)  # A bare tensor works without the image.


# ----------------------------------------------------------------------------
# fp16 options are no-ops on the CPU.


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("training", [True, False])
def test_fp16_options_are_no_ops_on_cpu(arch, training):
    G32 = perturb_(tiny_generator(arch, conv_clamp=256)).train(training)
    G16 = tiny_generator(arch, conv_clamp=256, num_fp16_res=4, fp16_channels_last=True).train(training)
    G16.load_state_dict(G32.state_dict())
    D32 = perturb_(tiny_discriminator(arch, conv_clamp=256)).train(training)
    D16 = tiny_discriminator(arch, conv_clamp=256, num_fp16_res=4, block_kwargs=dict(fp16_channels_last=True))
    D16.load_state_dict(D32.state_dict())
    D16.train(training)
    assert G16.synthesis.b16.use_fp16 and D16.b16.use_fp16
    z = torch.randn([2, 8])
    with torch.no_grad():
        img32 = G32.synthesis(G32.mapping(z, None, skip_w_avg_update=True), noise_mode="const")
        for force_fp32 in (False, True):
            img16 = G16.synthesis(G16.mapping(z, None, skip_w_avg_update=True), noise_mode="const",
                                  force_fp32=force_fp32)  # fmt: skip
            assert img16.dtype == torch.float32 and torch.equal(img16, img32)
            assert torch.equal(D16(img32, None, force_fp32=force_fp32), D32(img32, None))
            x16, _ = D16.features(img32, None, force_fp32=force_fp32)
            assert x16.dtype == torch.float32 and x16.is_contiguous()


def test_fp16_code_path_emulated_on_cpu(monkeypatch):
    """The CUDA-only float16 path (casts, pre-normalization, clamps, channels-last), forced on the CPU by
    pretending the device is CUDA: close to the float32 result, float32 images and logits."""
    import training.networks_discriminator as networks_discriminator
    import training.networks_generator as networks_generator
    from training.networks_layers import block_precision

    def as_if_cuda(use_fp16, channels_last, force_fp32, device):
        return block_precision(use_fp16, channels_last, force_fp32, torch.device("cuda"))

    monkeypatch.setattr(networks_generator, "block_precision", as_if_cuda)
    monkeypatch.setattr(networks_discriminator, "block_precision", as_if_cuda)
    G = perturb_(tiny_generator("skip", conv_clamp=256, num_fp16_res=4, fp16_channels_last=True))
    D = perturb_(tiny_discriminator("skip", conv_clamp=256, num_fp16_res=4, block_kwargs=dict(fp16_channels_last=True)))
    z = torch.randn([4, 8])
    for training in (True, False):
        G.train(training)
        with torch.no_grad():
            ws = G.mapping(z, None, skip_w_avg_update=True)
            img16 = G.synthesis(ws, noise_mode="const")
            img32 = G.synthesis(ws, noise_mode="const", force_fp32=True)
        assert img16.dtype == torch.float32
        assert (img16 - img32).abs().max() <= 0.01 * img32.abs().max()
    x16, img4 = D.features(img32, None)
    assert x16.dtype == torch.float16 and img4.dtype == torch.float16  # b8 runs in float16 here.
    logits16, logits32 = D(img32, None), D(img32, None, force_fp32=True)
    assert logits16.dtype == torch.float32
    assert (logits16 - logits32).abs().max() <= 0.01 * logits32.abs().max() + 1e-3
    D(G(z, None), None).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters())
