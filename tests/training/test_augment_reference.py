"""AugmentPipe against the original pipe's outputs (reference/augment_1.pt) and the original's filter constants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE_DIR

from training.augment import AUGPIPE_PRESETS, AugmentPipe

REFERENCE = REFERENCE_DIR / "augment_1.pt"


def _cases() -> list[dict | None]:
    """The reference cases; a single None (reported as a failure) when the file is missing."""
    return torch.load(REFERENCE, weights_only=True) if REFERENCE.is_file() else [None]


@pytest.mark.parametrize(
    "case", _cases(), ids=lambda c: f"{c['preset']}-C{c['x'].shape[1]}-seed{c['seed']}" if c else "missing"
)
def test_reference_case(case: dict | None) -> None:
    if case is None:
        pytest.fail(f"{REFERENCE} not found: tests/data/reference/ is part of the repository (or unset REFERENCE_DIR)")
    assert AUGPIPE_PRESETS[case["preset"]] == case["kwargs"]
    pipe = AugmentPipe(**case["kwargs"]).train().requires_grad_(False)
    pipe.p.copy_(torch.as_tensor(case["p"]))
    q = case["debug_percentile"]
    torch.manual_seed(case["seed"])
    y = pipe(case["x"]) if q < 0 else pipe(case["x"], debug_percentile=q)
    max_diff = float((y - case["y"]).abs().max())
    print(f"{case['preset']} C={case['x'].shape[1]} p={case['p']} q={q}: max |diff| = {max_diff:.3g}")
    assert y.shape == case["y"].shape and y.dtype == torch.float32
    assert max_diff <= 1e-5


def test_presets_table() -> None:
    blit = {"xflip", "rotate90", "xint"}
    geom = {"scale", "rotate", "aniso", "xfrac"}
    color = {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    expected = {
        "blit": blit,
        "geom": geom,
        "color": color,
        "filter": {"imgfilter"},
        "noise": {"noise"},
        "cutout": {"cutout"},
        "bg": blit | geom,
        "bgc": blit | geom | color,
        "bgcf": blit | geom | color | {"imgfilter"},
        "bgcfn": blit | geom | color | {"imgfilter", "noise"},
        "bgcfnc": blit | geom | color | {"imgfilter", "noise", "cutout"},
    }
    assert set(AUGPIPE_PRESETS) == set(expected)
    for name, ops in expected.items():
        assert AUGPIPE_PRESETS[name] == {op: 1 for op in ops}, name


def test_buffers_and_parameters() -> None:
    pipe = AugmentPipe(**AUGPIPE_PRESETS["bgc"])
    assert list(pipe.parameters()) == []
    assert list(pipe.state_dict()) == ["p", "Hz_geom", "Hz_fbank"]
    assert pipe.p.shape == () and pipe.p.dtype == torch.float32 and float(pipe.p) == 1.0
    assert pipe.init_kwargs["xflip"] == 1 and pipe.init_kwargs["imgfilter_bands"] == [1, 1, 1, 1]
    assert isinstance(pipe.xflip, float) and isinstance(pipe.imgfilter_bands, list)

    # Hz_geom: sym6 rounded to float32 and divided by its float32 sum (the original's float32 values).
    spec_values = [
        0.010892349,
        0.0024683059,
        -0.0834316,
        -0.03416156,
        0.34722894,
        0.5569464,
        0.23895217,
        -0.05136248,
        -0.014891874,
        0.03162528,
        0.001249961,
        -0.0055159335,
    ]
    assert pipe.Hz_geom.shape == (12,) and pipe.Hz_geom.dtype == torch.float32
    np.testing.assert_allclose(pipe.Hz_geom.numpy(), spec_values, rtol=1e-6, atol=1e-9)


def test_imgfilter_bank_structure() -> None:
    bank = AugmentPipe().Hz_fbank.double().numpy()
    assert bank.shape == (4, 43)
    np.testing.assert_allclose(bank.sum(axis=1), [1, 0, 0, 0], atol=1e-6)
    impulse = np.zeros(43)
    impulse[21] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-6)
    # Row 3 is H2 = (h_hi * reverse(h_hi)) / 2 at taps 18..24, zero elsewhere.
    h = np.array([-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025])
    h_hi = h * np.array([1, -1, 1, -1])
    np.testing.assert_allclose(bank[3, 18:25], np.convolve(h_hi, h_hi[::-1]) / 2, atol=1e-7)
    assert np.all(bank[3, :18] == 0) and np.all(bank[3, 25:] == 0)
    np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-7)  # symmetric taps


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="imgfilter_bands"):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1, 1])
    with pytest.raises(ValueError, match="4-D"):
        AugmentPipe(xflip=1)(torch.zeros([3, 8, 8]))
    with pytest.raises(ValueError, match="debug_percentile"):
        AugmentPipe(xflip=1)(torch.zeros([1, 3, 8, 8]), debug_percentile=1.0)
    with pytest.raises(ValueError, match="larger than 21"):
        AugmentPipe(imgfilter=1)(torch.zeros([1, 3, 16, 32]))
