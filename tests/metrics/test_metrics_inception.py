"""Native FID Inception: weight-file layout, TF-1.x resize, and outputs against the reference data made with the original TensorFlow graph."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from conftest import REFERENCE_DIR  # noqa: E402

from metrics.inception import InceptionV3FID, preprocess, tf1_bilinear_resize

REFERENCE_DIR = str(REFERENCE_DIR)
LAYOUT_FILE = os.path.join(REFERENCE_DIR, "inception_fid_layout.json")
CASES_FILE = os.path.join(REFERENCE_DIR, "inception_fid_cases.pt")
WEIGHTS_SCRIPT = os.path.join(REFERENCE_DIR, "make_inception_random_weights.py")


@pytest.fixture(scope="module")
def reference_state_dict() -> dict:
    spec = importlib.util.spec_from_file_location("make_inception_random_weights", WEIGHTS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_state_dict(LAYOUT_FILE)


@pytest.fixture(scope="module")
def reference():
    return torch.load(CASES_FILE, weights_only=True)


@pytest.fixture(scope="module")
def net(reference_state_dict):
    net = InceptionV3FID()
    net.load_state_dict(reference_state_dict)
    return net


@pytest.fixture(scope="module")
def outputs(reference, net):
    """Outputs of the native network with the reference weights on every case, with per-stage spatial means."""
    stages = reference["blockmean_modules"].split(",")
    captured = {}
    hooks = [
        getattr(net, name).register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.mean(dim=(2, 3)))
        )
        for name in stages
    ]
    results = {}
    with torch.no_grad():
        for case in reference["cases"].split(","):
            x = reference[f"{case}.input"]
            captured.clear()
            pool3 = net(x, return_features=True)
            logits, logits_unbiased = net.fc(pool3), pool3 @ net.fc.weight.T
            results[case] = dict(
                pool3=pool3,
                net_input=preprocess(x),
                logits=logits,
                logits_unbiased=logits_unbiased,
                probs=torch.softmax(logits, dim=1),
                probs_unbiased=torch.softmax(logits_unbiased, dim=1),
                blockmean=dict(captured),
            )
    for hook in hooks:
        hook.remove()
    return results


@pytest.mark.usefixtures("reference_dir")  # Fails loudly when the data is missing.
def test_state_dict_layout_matches_weight_file():
    with open(LAYOUT_FILE) as f:
        layout = json.load(f)
    state = InceptionV3FID().state_dict()
    assert len(layout) == 472
    assert [name for name, _, _ in layout] == list(state.keys())
    for name, shape, dtype in layout:
        assert list(state[name].shape) == shape, name
        assert str(state[name].dtype) == f"torch.{dtype}", name


@pytest.mark.usefixtures("reference_dir")  # Fails loudly when the data is missing.
def test_load_ignores_num_batches_tracked(reference_state_dict):
    state = dict(reference_state_dict)
    state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.zeros([], dtype=torch.int64)
    InceptionV3FID().load_state_dict(state)  # Strict otherwise: raises on any other extra or missing key.
    del state["fc.bias"]
    with pytest.raises(RuntimeError, match="fc.bias"):
        InceptionV3FID().load_state_dict(state)


@pytest.mark.usefixtures("reference_dir")  # Fails loudly when the data is missing.
@pytest.mark.parametrize("case", ["c64", "c299", "c128x96", "c400x320"])
def test_outputs_match_reference(reference, outputs, case):
    out = outputs[case]
    if f"{case}.net_input" in reference:
        torch.testing.assert_close(out["net_input"], reference[f"{case}.net_input"], rtol=0, atol=1e-4)
    else:
        assert reference[f"{case}.net_input_is_identity"] == 1
        torch.testing.assert_close(out["net_input"], (reference[f"{case}.input"].float() - 128) / 128, rtol=0, atol=0)
    for key in ("pool3", "logits", "logits_unbiased"):
        torch.testing.assert_close(out[key], reference[f"{case}.{key}"], rtol=0, atol=1e-4)
    for key in ("probs", "probs_unbiased"):
        torch.testing.assert_close(out[key], reference[f"{case}.{key}"], rtol=0, atol=1e-5)
    for stage, value in out["blockmean"].items():
        torch.testing.assert_close(value, reference[f"{case}.blockmean.{stage}"], rtol=0, atol=1e-4, msg=stage)
    # The feature taps of the reference: spatial means after the stem pools and Mixed_6e.
    torch.testing.assert_close(out["blockmean"]["MaxPool_1"], reference[f"{case}.feat64"], rtol=0, atol=1e-4)
    torch.testing.assert_close(out["blockmean"]["MaxPool_2"], reference[f"{case}.feat192"], rtol=0, atol=1e-4)
    torch.testing.assert_close(out["blockmean"]["Mixed_6e"], reference[f"{case}.feat768"], rtol=0, atol=1e-4)


@pytest.mark.usefixtures("reference_dir")  # Fails loudly when the data is missing.
def test_public_api_matches_reference(reference, net):
    x = reference["c128x96.input"][:1]
    with torch.no_grad():
        features = net.features(x)
        logits = net.logits(x)
        unbiased = net.logits(x, bias=False)
        probs_unbiased = net(x, no_output_bias=True)
        probs = net(x)
    assert features.shape == (1, 2048) and logits.shape == (1, 1008)
    torch.testing.assert_close(features, reference["c128x96.pool3"][:1], rtol=0, atol=1e-4)
    torch.testing.assert_close(logits, reference["c128x96.logits"][:1], rtol=0, atol=1e-4)
    torch.testing.assert_close(unbiased, reference["c128x96.logits_unbiased"][:1], rtol=0, atol=1e-4)
    torch.testing.assert_close(probs_unbiased, reference["c128x96.probs_unbiased"][:1], rtol=0, atol=1e-5)
    torch.testing.assert_close(probs, reference["c128x96.probs"][:1], rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------
# The TF-1.x resize against explicit loops.


def _resize_loops(image: np.ndarray, size: int) -> np.ndarray:
    """TF-1.x bilinear resize of one [H, W] float32 image by explicit per-pixel loops (float32 arithmetic)."""
    h, w = image.shape
    sy, sx = np.float32(h / size), np.float32(w / size)
    out = np.zeros([size, size], dtype=np.float32)
    for j in range(size):
        y = np.float32(j) * sy
        y0 = int(np.floor(y))
        y1 = min(y0 + 1, h - 1)
        wy = np.float32(y - np.float32(y0))
        for i in range(size):
            x = np.float32(i) * sx
            x0 = int(np.floor(x))
            x1 = min(x0 + 1, w - 1)
            wx = np.float32(x - np.float32(x0))
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * wx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * wx
            out[j, i] = top + (bottom - top) * wy
    return out


@pytest.mark.parametrize("shape, size", [((13, 7), 29), ((40, 52), 17), ((5, 5), 5), ((3, 11), 8)])
def test_tf1_resize_matches_explicit_loops(shape, size):
    rng = np.random.RandomState(sum(shape) + size)
    images = rng.randint(0, 256, size=(2, 3, *shape)).astype(np.float32)
    resized = tf1_bilinear_resize(torch.from_numpy(images), size=size).numpy()
    assert resized.shape == (2, 3, size, size)
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(resized[n, c], _resize_loops(images[n, c], size))


def test_tf1_resize_differs_from_half_pixel_bilinear():
    # The TF-1.x rule samples s = j * scale; PyTorch's align_corners=False samples (j + 0.5) * scale - 0.5.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    ours = tf1_bilinear_resize(x, size=8)
    torch_half_pixel = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
    assert ours[0, 0, 0, 1].item() == pytest.approx(0.5)  # s = 1 * 0.5: halfway between columns 0 and 1.
    assert ours[0, 0, 0, 7].item() == pytest.approx(3.0)  # s = 3.5 clamps to the last column.
    assert not torch.allclose(ours, torch_half_pixel)


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError, match="3 channels"):
        preprocess(torch.zeros([1, 1, 8, 8], dtype=torch.uint8))
