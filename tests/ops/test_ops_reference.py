"""Every case of the reference ops_1.pt (made by the original's 'ref' paths) is reproduced.

Finding about the data: the upfirdn2d cases with a 1-D `f` of 4 taps ([1, 3, 3, 1]) were made with
`setup_filter(f)`, i.e. the normalized 4x4 outer product (passing the raw taps as a separable filter is off by
a factor of up to 64). The 5x5 filters are stored after `setup_filter` and are passed as they are. The
conv2d_resample cases store the taps as a list, passed through `setup_filter`.
"""

import pytest
import torch

from torch_utils.ops import bias_act, conv2d_resample, upfirdn2d

NUM_CASES = 31


@pytest.fixture(scope="module")
def cases(reference_dir):
    """The list of case dicts (`reference_dir` comes from tests/conftest.py and fails if the data is missing)."""
    return torch.load(reference_dir / "ops_1.pt", weights_only=True)


def _run(case: dict) -> torch.Tensor:
    if case["op"] == "upfirdn2d":
        f = case["f"] if case["f"].ndim == 2 else upfirdn2d.setup_filter(case["f"])
        return upfirdn2d.upfirdn2d(
            case["x"], f, up=case["up"], down=case["down"], padding=case["padding"],
            flip_filter=case["flip_filter"], gain=case["gain"], impl="ref",
        )  # fmt: skip
    if case["op"] == "bias_act":
        return bias_act.bias_act(
            case["x"],
            case["b"],
            act=case["act"],
            alpha=case["alpha"],
            gain=case["gain"],
            clamp=case["clamp"],
            impl="ref",
        )
    if case["op"] == "conv2d_resample":
        return conv2d_resample.conv2d_resample(
            case["x"], case["w"], f=upfirdn2d.setup_filter(case["f"]), up=case["up"], down=case["down"],
            padding=case["padding"], groups=case["groups"], flip_weight=case["flip_weight"],
        )  # fmt: skip
    raise AssertionError(f"unknown op {case['op']}")


def test_reference_file_has_all_cases(cases):
    ops = [case["op"] for case in cases]
    assert len(cases) == NUM_CASES
    assert ops.count("upfirdn2d") == 6 and ops.count("bias_act") == 18 and ops.count("conv2d_resample") == 7


@pytest.mark.parametrize("index", range(NUM_CASES))
def test_reference_case(cases, index):
    case = cases[index]
    y = _run(case)
    expected = case["y"]
    assert y.shape == expected.shape and y.dtype == expected.dtype
    scale = max(expected.abs().max().item(), 1.0)
    assert (y - expected).abs().max().item() <= 1e-5 * scale
