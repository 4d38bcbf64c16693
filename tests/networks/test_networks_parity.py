"""Parity with the original networks: reproduce every output of shared/reference/net_a.pt.

net_a.pt (made with the original code): a conditional G ('skip') and D ('resnet') at 32x32, every tensor
perturbed (so filters are asymmetric), evaluated in training mode (non-fused modconv), float32.
"""

from __future__ import annotations

import pytest
import torch
from conftest import build_reference_networks

IMAGE_TOL = 1e-4  # Max abs diff on images and logits (values reach ~20).


@pytest.fixture(scope="module")
def ref(reference_dir):
    return torch.load(reference_dir / "net_a.pt", weights_only=True)


@pytest.fixture(scope="module")
def nets(ref):
    G, D = build_reference_networks(ref["config"])
    G.load_state_dict(ref["G_state"])
    D.load_state_dict(ref["D_state"])
    return G, D  # Left in training mode, as the reference was evaluated.


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    return (a - b).abs().max().item()


def test_state_dict_layout_matches_reference(ref):
    G, D = build_reference_networks(ref["config"])
    for net, state in ((G, ref["G_state"]), (D, ref["D_state"])):
        ours = net.state_dict()
        assert list(ours) == list(state)  # Same keys in the same order.
        for key, value in state.items():
            assert ours[key].shape == value.shape and ours[key].dtype == value.dtype, key
    assert [name for name, _ in D.named_parameters()] == ref["D_param_names"]


def test_mapping_and_truncation_are_bit_exact(ref, nets):
    G, _ = nets
    z, c = ref["inputs"]["z"], ref["inputs"]["c"]
    out = ref["outputs"]
    with torch.no_grad():
        assert torch.equal(G.mapping(z, c, skip_w_avg_update=True), out["ws"])
        ws = G.mapping(z, c, truncation_psi=0.7, skip_w_avg_update=True)
        assert torch.equal(ws, out["ws_trunc_psi0p7"])
        ws = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2, skip_w_avg_update=True)
        assert torch.equal(ws, out["ws_trunc_psi0p5_cutoff2"])


@pytest.mark.parametrize(
    "name, psi, noise_mode",
    [("img_const_noise", 1, "const"), ("img_trunc_psi0p7", 0.7, "const"), ("img_no_noise", 1, "none")],
)
def test_images(ref, nets, name, psi, noise_mode):
    G, _ = nets
    z, c = ref["inputs"]["z"], ref["inputs"]["c"]
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=psi, skip_w_avg_update=True)
        img = G.synthesis(ws, noise_mode=noise_mode, force_fp32=True)
    assert max_diff(img, ref["outputs"][name]) <= IMAGE_TOL


def test_discriminator_logits_and_features(ref, nets):
    G, D = nets
    z, c, real = ref["inputs"]["z"], ref["inputs"]["c"], ref["inputs"]["real"]
    out = ref["outputs"]
    with torch.no_grad():
        fake = G.synthesis(G.mapping(z, c, skip_w_avg_update=True), noise_mode="const", force_fp32=True)
        assert max_diff(D(fake, c, force_fp32=True), out["D_logits_fake"]) <= IMAGE_TOL
        assert max_diff(D(real, c, force_fp32=True), out["D_logits_real"]) <= IMAGE_TOL
        features, img4 = D.features(real, c, force_fp32=True)
    assert img4 is None  # 'resnet' D carries no image into the epilogue.
    assert max_diff(features, out["D_features_real"]) <= IMAGE_TOL


def test_input_gradient_of_real_logits(ref, nets):
    _, D = nets
    real = ref["inputs"]["real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, ref["inputs"]["c"]).sum(), real)
    assert max_diff(grad, ref["outputs"]["D_grad_real"]) <= 1e-6  # Gradient values reach ~0.02.


def test_w_avg_update(ref):
    G, _ = build_reference_networks(ref["config"])
    G.load_state_dict(ref["G_state"])
    assert torch.equal(G.mapping.w_avg, ref["outputs"]["w_avg_before"])
    G.mapping(ref["inputs"]["z"], ref["inputs"]["c"])  # Training mode: one EMA step with beta = 0.995.
    assert torch.equal(G.mapping.w_avg, ref["outputs"]["w_avg_after_one_update"])


def test_fused_modconv_matches_reference_in_eval_mode(ref, nets):
    G, _ = build_reference_networks(ref["config"])
    G.load_state_dict(ref["G_state"])
    G.eval()  # Eval mode in float32 selects the fused (grouped-conv) modulated convolution.
    z, c = ref["inputs"]["z"], ref["inputs"]["c"]
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
    assert max_diff(img, ref["outputs"]["img_const_noise"]) <= IMAGE_TOL
