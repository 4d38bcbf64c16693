"""Network structure: the original's state_dict tables, initialization and random-draw order, every
architecture x conditioning x channel-count combination forward/backward, Freeze-D, argument checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from training.networks import Discriminator, Generator

ARCHS = ("orig", "skip", "resnet")
MAPPING_LR = 0.01


def tiny_generator(arch="skip", c_dim=0, img_channels=3, res=16, **synthesis_kwargs):
    kwargs = dict(channel_base=128, channel_max=16, architecture=arch, **synthesis_kwargs)
    return Generator(8, c_dim, 8, res, img_channels, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=kwargs)


def tiny_discriminator(arch="resnet", c_dim=0, img_channels=3, res=16, **kwargs):
    kwargs = dict(dict(channel_base=128, channel_max=16, mapping_kwargs=dict(num_layers=2)), **kwargs)
    return Discriminator(c_dim, res, img_channels, architecture=arch, **kwargs)


# ----------------------------------------------------------------------------
# state_dict tables of the original (key names, shapes, order) for z = w = 512, c = 10, 32x32 RGB, 2 mapping
# layers, fp16 settings.


def spec_generator(arch: str, c_dim: int = 10) -> Generator:
    synthesis = dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256, architecture=arch)
    return Generator(512, c_dim, 512, 32, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=synthesis)


def spec_discriminator(arch: str, c_dim: int = 10, channel_base: int = 16384) -> Discriminator:
    return Discriminator(
        c_dim, 32, 3, architecture=arch, channel_base=channel_base, channel_max=512, num_fp16_res=4,
        conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=32),
    )  # fmt: skip


def num_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_spec_table_generator_skip():
    G = spec_generator("skip")
    state = G.state_dict()
    assert len(state) == 77 and num_params(G) == 20_215_315
    assert list(state)[:13] == [
        "synthesis.b4.const", "synthesis.b4.resample_filter", "synthesis.b4.conv1.weight",
        "synthesis.b4.conv1.noise_strength", "synthesis.b4.conv1.bias", "synthesis.b4.conv1.resample_filter",
        "synthesis.b4.conv1.noise_const", "synthesis.b4.conv1.affine.weight", "synthesis.b4.conv1.affine.bias",
        "synthesis.b4.torgb.weight", "synthesis.b4.torgb.bias", "synthesis.b4.torgb.affine.weight",
        "synthesis.b4.torgb.affine.bias",
    ]  # fmt: skip
    assert list(state)[-7:] == [
        "mapping.w_avg", "mapping.embed.weight", "mapping.embed.bias", "mapping.fc0.weight", "mapping.fc0.bias",
        "mapping.fc1.weight", "mapping.fc1.bias",
    ]  # fmt: skip
    assert state["synthesis.b4.conv1.noise_strength"].shape == ()
    assert state["synthesis.b8.conv0.noise_const"].shape == (8, 8)
    assert state["mapping.fc0.weight"].shape == (512, 1024)
    assert state["synthesis.b32.torgb.weight"].shape == (3, 512, 1, 1)
    assert all(t.dtype == torch.float32 for t in state.values())


def test_spec_table_discriminator_resnet():
    D = spec_discriminator("resnet")
    state = D.state_dict()
    assert len(state) == 55 and num_params(D) == 23_876_096
    assert list(state)[:12] == [
        "b32.resample_filter", "b32.fromrgb.weight", "b32.fromrgb.bias", "b32.fromrgb.resample_filter",
        "b32.conv0.weight", "b32.conv0.bias", "b32.conv0.resample_filter", "b32.conv1.weight", "b32.conv1.bias",
        "b32.conv1.resample_filter", "b32.skip.weight", "b32.skip.resample_filter",
    ]  # fmt: skip
    assert list(state)[-7:] == [
        "b4.conv.weight", "b4.conv.bias", "b4.conv.resample_filter", "b4.fc.weight", "b4.fc.bias",
        "b4.out.weight", "b4.out.bias",
    ]  # fmt: skip
    assert state["b4.conv.weight"].shape == (512, 513, 3, 3)
    assert state["b4.fc.weight"].shape == (512, 8192)
    assert state["b4.out.weight"].shape == (512, 512)
    assert state["mapping.fc7.weight"].shape == (512, 512)
    assert "mapping.w_avg" not in state


def test_spec_table_other_architectures():
    for arch, keys in (("orig", 65), ("resnet", 71)):
        state = spec_generator(arch).state_dict()
        assert len(state) == keys
        torgb = [k for k in state if ".torgb." in k]
        assert {k.split(".")[1] for k in torgb} == {"b32"}
    resnet_keys = set(spec_generator("resnet").state_dict())
    assert {"synthesis.b8.skip.weight", "synthesis.b32.skip.resample_filter"} <= resnet_keys
    skip_d = spec_discriminator("skip").state_dict()
    assert len(skip_d) == 58
    assert not any(".skip." in k for k in skip_d)
    assert all(f"b{r}.fromrgb.weight" in skip_d for r in (32, 16, 8, 4))
    orig_d = spec_discriminator("orig", channel_base=32768)
    assert len(orig_d.state_dict()) == 49 and num_params(orig_d) == 23_089_664


def test_spec_table_unconditional():
    G_state = spec_generator("skip", c_dim=0).state_dict()
    assert not any(k.startswith("mapping.embed") for k in G_state)
    assert G_state["mapping.fc0.weight"].shape == (512, 512)
    D_state = spec_discriminator("resnet", c_dim=0).state_dict()
    assert not any(k.startswith("mapping.") for k in D_state)
    assert D_state["b4.out.weight"].shape == (1, 512) and D_state["b4.out.bias"].shape == (1,)


@pytest.mark.parametrize("res, num_ws", [(4, 2), (32, 8), (256, 14)])
def test_num_ws(res, num_ws):
    for arch in ARCHS:
        G = Generator(4, 0, 4, res, 3, synthesis_kwargs=dict(channel_base=1024, channel_max=4, architecture=arch))
        assert G.num_ws == G.mapping.num_ws == num_ws


# ----------------------------------------------------------------------------
# Initialization: the same randn calls with the same shapes, in the same order as the original (weights N(0, 1) /
# lr_multiplier, in module construction order), so one seed builds the same network.


def generator_draw_order(G: Generator) -> list[str]:
    keys = []
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        prefix = f"synthesis.b{res}"
        if res == 4:
            keys.append(f"{prefix}.const")
        for conv in (["conv0"] if res > 4 else []) + ["conv1"]:
            keys += [f"{prefix}.{conv}.affine.weight", f"{prefix}.{conv}.weight", f"{prefix}.{conv}.noise_const"]
        if hasattr(block, "torgb"):
            keys += [f"{prefix}.torgb.affine.weight", f"{prefix}.torgb.weight"]
        if block.architecture == "resnet" and res > 4:
            keys.append(f"{prefix}.skip.weight")
    keys += (["mapping.embed.weight"] if G.c_dim > 0 else []) + [f"mapping.fc{i}.weight" for i in range(2)]
    return keys


def discriminator_draw_order(D: Discriminator, num_mapping_layers: int) -> list[str]:
    keys = []
    for res in D.block_resolutions:
        if res == D.img_resolution or D.architecture == "skip":
            keys.append(f"b{res}.fromrgb.weight")
        keys += [f"b{res}.conv0.weight", f"b{res}.conv1.weight"]
        if D.architecture == "resnet":
            keys.append(f"b{res}.skip.weight")
    if D.c_dim > 0:
        keys += ["mapping.embed.weight"] + [f"mapping.fc{i}.weight" for i in range(num_mapping_layers)]
    keys += ["b4.fromrgb.weight"] if D.architecture == "skip" else []
    keys += ["b4.conv.weight", "b4.fc.weight", "b4.out.weight"]
    return keys


def replay_draws(seed: int, *nets: tuple[dict, list[str]]) -> dict[str, torch.Tensor]:
    """The values the original's draw order gives for (state, keys) of consecutively built networks: one
    torch.randn(shape) per key, divided by the lr multiplier for the mapping fc layers."""
    torch.manual_seed(seed)
    draws = {}
    for state, keys in nets:
        draws = {}
        for key in keys:
            value = torch.randn(state[key].shape)
            draws[key] = value / MAPPING_LR if key.startswith("mapping.fc") else value
    return draws  # Those of the last network.


@pytest.mark.parametrize("arch", ARCHS)
def test_generator_initialization_order(arch):
    torch.manual_seed(123)
    G = tiny_generator(arch, c_dim=3)
    state = G.state_dict()
    draws = replay_draws(123, (state, generator_draw_order(G)))
    for key, value in state.items():
        if key in draws:
            assert torch.equal(value, draws[key]), key
        elif key.endswith("affine.bias"):
            assert torch.equal(value, torch.ones_like(value)), key
        elif key.endswith("resample_filter"):
            taps = torch.tensor([1.0, 3, 3, 1])
            assert torch.equal(value, torch.outer(taps, taps) / 64), key
        else:  # Biases, noise strengths, w_avg and the mapping biases start at zero.
            assert torch.equal(value, torch.zeros_like(value)), key


@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_initialization_order_follows_generator(arch):
    torch.manual_seed(7)
    G = tiny_generator("skip", c_dim=3)  # The training loop builds G first; D's draws follow.
    D = tiny_discriminator(arch, c_dim=3)
    state = D.state_dict()
    draws = replay_draws(
        7, (G.state_dict(), generator_draw_order(G)), (state, discriminator_draw_order(D, num_mapping_layers=2))
    )
    for key, value in state.items():
        if key in draws:
            assert torch.equal(value, draws[key]), key
        elif not key.endswith("resample_filter"):
            assert torch.equal(value, torch.zeros_like(value)), key


# ----------------------------------------------------------------------------
# Every architecture x conditioning x channel count builds and runs forward and backward.


@pytest.mark.parametrize("arch, c_dim, img_channels", list(itertools.product(ARCHS, (0, 3), (1, 3))))
def test_forward_backward_all_combinations(arch, c_dim, img_channels):
    torch.manual_seed(0)
    G = tiny_generator(arch, c_dim=c_dim, img_channels=img_channels)
    D = tiny_discriminator(arch, c_dim=c_dim, img_channels=img_channels)
    with torch.no_grad():  # Non-zero noise strengths so that every parameter gets a gradient.
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.1)
    z = torch.randn([4, G.z_dim])
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float() if c_dim else None
    img = G(z, c, noise_mode="random")
    assert img.shape == (4, img_channels, 16, 16) and img.dtype == torch.float32
    logits = D(img, c)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    for net in (G, D):
        for name, param in net.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "res, map_layers, mbstd",
    [(8, 1, dict(mbstd_group_size=None, mbstd_num_channels=2)), (32, 3, dict(mbstd_num_channels=0)),
     (64, 2, dict(mbstd_group_size=2, mbstd_num_channels=4))],
)  # fmt: skip
def test_other_resolutions_mapping_depths_and_mbstd(res, map_layers, mbstd):
    G = Generator(8, 2, 8, res, 3, mapping_kwargs=dict(num_layers=map_layers),
                  synthesis_kwargs=dict(channel_base=64, channel_max=8))  # fmt: skip
    D = Discriminator(2, res, 3, channel_base=64, channel_max=8, epilogue_kwargs=mbstd,
                      mapping_kwargs=dict(num_layers=map_layers))  # fmt: skip
    c = torch.eye(2)[[0, 1, 1, 0]]
    img = G(torch.randn([4, 8]), c)
    assert img.shape == (4, 3, res, res)
    assert D.b4.conv.weight.shape[1] == D.b4.in_channels + mbstd["mbstd_num_channels"]
    D(img, c).sum().backward()
    assert G.mapping.fc0.weight.grad is not None


# ----------------------------------------------------------------------------
# Freeze-D and argument checks.


def test_freeze_layers_turns_weights_into_buffers():
    D = tiny_discriminator("resnet", res=32, block_kwargs=dict(freeze_layers=3))
    free = tiny_discriminator("resnet", res=32)
    assert list(D.state_dict()) != list(free.state_dict())  # Same keys, buffers first in frozen layers.
    assert sorted(D.state_dict()) == sorted(free.state_dict())
    assert list(dict(D.b32.conv0.named_buffers())) == ["resample_filter", "weight", "bias"]
    frozen = {n for n, _ in free.named_parameters()} - {n for n, _ in D.named_parameters()}
    # Freeze-D counts layers from the input: b32 fromrgb 0, conv0 1, conv1 2, skip 3 (skips are numbered last).
    assert frozen == {f"b32.{layer}.{p}" for layer in ("fromrgb", "conv0", "conv1") for p in ("weight", "bias")}


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: tiny_generator("stylegan"), "architecture"),
        (lambda: tiny_discriminator("dense"), "architecture"),
        (lambda: tiny_generator(res=24), "power of two"),
        (lambda: tiny_discriminator(res=4), "power of two"),
        (lambda: tiny_generator(res=256), "channel_base"),
    ],
)
def test_bad_arguments_give_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_noise_mode_and_batch_size():
    G = tiny_generator()
    with pytest.raises(ValueError, match="noise_mode"):
        G(torch.randn([2, 8]), None, noise_mode="fixed")
    D = tiny_discriminator(epilogue_kwargs=dict(mbstd_group_size=4))
    with pytest.raises(ValueError, match="group size"):
        D(torch.randn([6, 3, 16, 16]), None)
