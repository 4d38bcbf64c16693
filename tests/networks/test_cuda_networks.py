"""G and D with float16 blocks on a real GPU agree with their float32 selves (skipped without CUDA).

On the CPU the fp16 blocks are a no-op, so only a GPU exercises them. Mixed precision rounds every
activation of the fp16 blocks to 11 significant bits and clamps them at `conv_clamp`, so the comparison is
relative to the output's scale: the images and logits of the fp16 networks must stay within 2% of the
fp32 networks' (RMS error over RMS value), the loose end of what mixed precision gives on these shapes.
"""

import pytest
import torch

from training.networks import Discriminator, Generator

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def relative_rms_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.float(), expected.float()
    return float((actual - expected).square().mean().sqrt() / expected.square().mean().sqrt().clamp_min(1e-12))


@pytest.mark.parametrize("res", [32, 64])
def test_fp16_generator_and_discriminator_match_fp32(res):
    device = torch.device("cuda")
    torch.manual_seed(0)
    kwargs = dict(channel_base=4096, channel_max=256, conv_clamp=256)
    networks = {}
    for fp16_res in (0, 4):
        torch.manual_seed(0)
        G = (
            Generator(
                z_dim=64,
                c_dim=0,
                w_dim=64,
                img_resolution=res,
                img_channels=3,
                synthesis_kwargs=dict(num_fp16_res=fp16_res, **kwargs),
            )
            .to(device)
            .eval()
        )
        D = (
            Discriminator(c_dim=0, img_resolution=res, img_channels=3, num_fp16_res=fp16_res, **kwargs)
            .to(device)
            .eval()
        )
        networks[fp16_res] = (G, D)
    G32, D32 = networks[0]
    G16, D16 = networks[4]
    G16.load_state_dict(G32.state_dict())
    D16.load_state_dict(D32.state_dict())
    z = torch.randn([8, 64], device=device)
    c = torch.zeros([8, 0], device=device)
    with torch.no_grad():
        img32 = G32(z, c, noise_mode="const")
        img16 = G16(z, c, noise_mode="const")
        assert img16.dtype == torch.float32 and torch.isfinite(img16).all()
        assert relative_rms_error(img16, img32) < 2e-2
        logits32 = D32(img32, c)
        logits16 = D16(img32, c)
    assert torch.isfinite(logits16).all()
    assert relative_rms_error(logits16, logits32) < 2e-2


def test_fp16_training_step_gives_finite_gradients():
    device = torch.device("cuda")
    torch.manual_seed(0)
    D = Discriminator(
        c_dim=0, img_resolution=32, img_channels=3, channel_base=4096, channel_max=256, num_fp16_res=4, conv_clamp=256
    ).to(device)
    img = torch.randn([8, 3, 32, 32], device=device, requires_grad=True)
    logits = D(img, torch.zeros([8, 0], device=device))
    (grad,) = torch.autograd.grad(logits.sum(), [img], create_graph=True)  # R1's double backward through fp16 blocks.
    grad.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)
