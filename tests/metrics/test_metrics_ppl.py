"""Perceptual path length on stand-in generators whose path lengths are known by construction."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import torch

from metrics import formulas, metric_utils, ppl

DIM = 48  # z_dim = w_dim = 3 * 4 * 4: the image is the (scaled) w vector itself.


class SphereGenerator(torch.nn.Module):
    """mapping(z) = sqrt(D) * z / |z| (the usual 2nd-moment normalisation); image = w / sqrt(D) reshaped.

    So the image is the unit direction u of z. In W space at t = 0 the path length is |u1 - u0|^2, whose mean
    is 2 (E[u0.u1] = 0); along a Z-space slerp the image moves on the unit sphere at speed theta (the angle
    between z0 and z1), so the path length is theta^2.
    """

    z_dim = DIM
    c_dim = 0
    w_dim = DIM
    num_ws = 2
    img_channels = 3

    def __init__(self, img_resolution: int = 4):
        super().__init__()
        self.img_resolution = img_resolution
        self.register_buffer("noise_const", torch.zeros([1]))

    def mapping(self, z, c):
        w = z * (z.square().mean(dim=1, keepdim=True)).rsqrt()
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode, force_fp32):
        assert noise_mode == "const" and force_fp32
        img = (ws[:, 0] / math.sqrt(DIM)).reshape(-1, 3, 4, 4)
        factor = self.img_resolution // 4
        return img.repeat(1, 1, factor, factor)  # Tiled: every 4x4 window holds each value once.


class IdentityDistance(torch.nn.Module):
    """Stand-in for the LPIPS network: the embedding is the image mapped back to [-1, 1]."""

    def forward(self, img, resize_images, return_lpips):
        assert resize_images is False and return_lpips is True
        return (img.flatten(1) - 127.5) / 127.5


@pytest.fixture(autouse=True)
def _trust_this_module(monkeypatch):
    """The label stand-in below is named by class name, which the project resolves only in trusted modules."""
    monkeypatch.setenv("GAN_TRUSTED_MODULES", __name__)


class _Labels:
    """Dataset stand-in for label sampling: unconditional."""

    def __init__(self):
        pass

    def __len__(self):
        return 10

    def get_label(self, idx):
        return np.zeros([0], dtype=np.float32)


def _opts():
    return metric_utils.MetricOptions(
        G=SphereGenerator(), dataset_kwargs=dict(class_name=f"{__name__}._Labels"), device="cpu"
    )


def _run(
    sampling: str, space: str, crop: bool = False, img_resolution: int = 4, num_samples: int = 2000, seed: int = 0
) -> np.ndarray:
    torch.manual_seed(seed)
    np.random.seed(seed)
    sampler = ppl.PPLSampler(
        SphereGenerator(img_resolution),
        {},
        epsilon=1e-4,
        space=space,
        sampling=sampling,
        crop=crop,
        distance_net=IdentityDistance(),
    )
    return ppl.sample_distances(_opts(), sampler, num_samples=num_samples, batch_size=100)


def _trimmed_mean_theta_squared(dim: int) -> float:
    """E[theta^2 | q01 <= theta <= q99] for the angle theta between two random directions in `dim` dimensions.

    theta has density proportional to sin(theta)^(dim - 2) on [0, pi] (numerical integration).
    """
    density = lambda t: math.sin(t) ** (dim - 2)  # noqa: E731
    total = scipy.integrate.quad(density, 0, math.pi)[0]
    cdf = lambda x: scipy.integrate.quad(density, 0, x)[0] / total  # noqa: E731
    lo = scipy.optimize.brentq(lambda x: cdf(x) - 0.01, 0, math.pi)
    hi = scipy.optimize.brentq(lambda x: cdf(x) - 0.99, 0, math.pi)
    mass = scipy.integrate.quad(density, lo, hi)[0]
    return scipy.integrate.quad(lambda t: t * t * density(t), lo, hi)[0] / mass


def test_w_space_endpoint_path_length_is_chord_length():
    dist = _run(sampling="end", space="w")
    assert dist.shape == (2000,)
    # Per sample |u1 - u0|^2 = 2 - 2 cos(theta) lies in [0, 4] and has mean 2; cos(theta) is symmetric.
    assert dist.min() >= 0 and dist.max() <= 4
    value = float(formulas.ppl_from_distances(dist))
    assert value == pytest.approx(2.0, abs=0.05)  # ~7 standard errors (std of 2 cos(theta) = 2 / sqrt(48)).


@pytest.mark.parametrize("sampling", ["end", "full"])
def test_z_space_slerp_path_length_is_angle_squared(sampling):
    dist = _run(sampling=sampling, space="z")
    expected = _trimmed_mean_theta_squared(DIM)
    assert expected == pytest.approx((math.pi / 2) ** 2, rel=0.05)
    assert formulas.ppl_from_distances(dist) == pytest.approx(expected, rel=0.01)


def test_crop_keeps_a_quarter_of_the_pixels():
    # The 4x4 image is tiled 4x4 times (16x16); the crop keeps rows [6, 14) and columns [4, 12): 2x2 tiles,
    # so each value appears 4 times instead of 16, with identical random draws.
    full = _run(sampling="end", space="w", img_resolution=16, num_samples=200)
    cropped = _run(sampling="end", space="w", crop=True, img_resolution=16, num_samples=200)
    np.testing.assert_allclose(cropped, full / 4, rtol=1e-3)


def test_compute_ppl_uses_the_detector_override(tmp_path, monkeypatch):
    calls = []

    def fake_detector(opts, url_or_path):
        calls.append(url_or_path)
        return IdentityDistance()

    monkeypatch.setattr(metric_utils, "get_feature_detector", fake_detector)
    opts = metric_utils.MetricOptions(
        G=SphereGenerator(),
        dataset_kwargs=dict(class_name=f"{__name__}._Labels"),
        device="cpu",
        detector="my-detector.pt",
        num_images=100,
    )
    torch.manual_seed(1)
    value = ppl.compute_ppl(opts, num_samples=50000, epsilon=1e-4, space="w", sampling="end", crop=False, batch_size=50)
    assert calls == ["my-detector.pt"]
    assert value == pytest.approx(2.0, abs=0.2)


def test_slerp_stays_on_the_great_circle():
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 3.0, 0.0]])
    mid = ppl.slerp(a, b, torch.tensor([[0.5]]))
    torch.testing.assert_close(mid, torch.tensor([[math.sqrt(0.5), math.sqrt(0.5), 0.0]]))
    torch.testing.assert_close(
        ppl.slerp(a, b, torch.tensor([[1.0]])), torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6, rtol=0
    )
