"""torch_utils.misc: shape checks, InfiniteSampler vectors and resume, parameter copies, summary table."""

import itertools

import pytest
import torch

from torch_utils import misc


def test_assert_shape_messages():
    x = torch.zeros(2, 3, 4)
    misc.assert_shape(x, [2, None, 4])
    misc.assert_shape(x, [torch.tensor(2), 3, 4])
    with pytest.raises(AssertionError, match="dimension 1: got 3, expected 5"):
        misc.assert_shape(x, [2, 5, 4])
    with pytest.raises(AssertionError, match="number of dimensions: got 3"):
        misc.assert_shape(x, [2, 3])


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_infinite_sampler_spec_vectors():
    # What the original StyleGAN2-ADA InfiniteSampler yields for dataset length 10, seed 0, window 0.5.
    assert take(misc.InfiniteSampler(range(10)), 25) == [
        2, 8, 4, 9, 1, 6, 2, 3, 0, 9, 7, 8, 1, 5, 6, 4, 3, 8, 2, 1, 9, 6, 7, 5, 8]  # fmt: skip
    assert take(misc.InfiniteSampler(range(10), rank=1, num_replicas=2), 10) == [8, 9, 6, 3, 9, 8, 5, 4, 8, 1]


def test_infinite_sampler_ranks_interleave_one_stream():
    stream = take(misc.InfiniteSampler(range(13), seed=3), 60)
    ranks = [take(misc.InfiniteSampler(range(13), seed=3, rank=r, num_replicas=3), 20) for r in range(3)]
    assert [ranks[i % 3][i // 3] for i in range(60)] == stream


def test_infinite_sampler_resume_continues_stream():
    sampler = misc.InfiniteSampler(range(17), seed=5, rank=1, num_replicas=2)
    full = take(sampler, 40)
    resumed = misc.InfiniteSampler(range(17), seed=5, rank=1, num_replicas=2)
    resumed.load_state_dict(sampler.state_dict(num_yielded=23))
    assert take(resumed, 17) == full[23:]


def test_infinite_sampler_without_shuffle_and_bad_args():
    assert take(misc.InfiniteSampler(range(4), shuffle=False), 6) == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError, match="non-empty"):
        misc.InfiniteSampler([])
    with pytest.raises(ValueError, match="rank"):
        misc.InfiniteSampler(range(3), rank=2, num_replicas=2)


def test_copy_params_and_buffers():
    src = torch.nn.BatchNorm1d(3)
    dst = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        src.weight.normal_()
        src.running_mean.normal_()
    misc.copy_params_and_buffers(src, dst, require_all=True)
    for (name, a), (_, b) in zip(misc.named_params_and_buffers(src), misc.named_params_and_buffers(dst)):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="missing from the source"):
        misc.copy_params_and_buffers(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3), require_all=True)
    with pytest.raises(ValueError, match="shape"):
        misc.copy_params_and_buffers(torch.nn.Linear(3, 4), torch.nn.Linear(3, 3))


def test_print_module_summary_counts(capsys):
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    out = misc.print_module_summary(net, [torch.zeros(3, 4)])
    assert out.shape == (3, 2)
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    assert rows["0"][1] == "25" and rows["2"][1] == "12"
    assert rows["Total"][1] == str(25 + 12)
    assert "[3, 5]" in rows["0"][3] + rows["0"][4] or "[3," in " ".join(rows["0"])


def test_constant_is_cached_and_broadcast():
    a = misc.constant(1.5, shape=[2, 3])
    assert a.shape == (2, 3) and bool((a == 1.5).all())
    assert misc.constant(1.5, shape=[2, 3]) is a
    assert misc.constant([1, 2], dtype=torch.int64).dtype == torch.int64
