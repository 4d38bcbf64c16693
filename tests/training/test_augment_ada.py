"""AdaController: the p adjustment p <- max(p + sign(r_t - target) * batch * interval / (kimg * 1000), 0) against hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.augment import AUGPIPE_PRESETS, AdaController, AugmentPipe

STEP_B64 = 4 * 64 / 500_000  # batch 64, interval 4, 500 kimg: 5.12e-4 per update


def _controller(p: float, **kwargs) -> AdaController:
    pipe = AugmentPipe(**AUGPIPE_PRESETS["bgc"])
    pipe.p.fill_(p)
    return AdaController(pipe, **kwargs)


def _logits(*signs: float) -> torch.Tensor:
    return torch.tensor(signs, dtype=torch.float32).reshape(-1, 1) * 3.5


def test_step_size_and_direction() -> None:
    ada = _controller(0.5, target=0.6, interval=4, kimg=500)
    ada.accumulate(_logits(1, 1, 1, 1))  # r_t = 1 > 0.6: p goes up
    ada.update(batch_size=64)
    assert ada.last_rt == 1.0
    assert float(ada.p) == pytest.approx(0.5 + STEP_B64, abs=1e-7)
    assert ada.p is ada.owner.p and ada.p.dtype == torch.float32

    ada.accumulate(_logits(1, -1, -1))  # Dmain round
    ada.accumulate(_logits(1, -1))  # Dreg round: both count, r_t = -1/5
    ada.update(batch_size=64)
    assert ada.last_rt == pytest.approx(-0.2)
    assert float(ada.p) == pytest.approx(0.5, abs=1e-7)


def test_sign_of_zero_and_exact_target() -> None:
    ada = _controller(0.3, target=0.6)
    ada.accumulate(_logits(1, 1, 1, 1, -1))  # r_t = 3/5 == target: sign 0
    ada.update(batch_size=32)
    assert float(ada.p) == float(torch.tensor(0.3))  # unchanged, bit for bit
    ada.accumulate(torch.zeros([10, 1]))  # sign(0) = 0 counts as a sample: r_t = 0 < 0.6
    ada.update(batch_size=32)
    assert ada.last_rt == 0.0 and float(ada.p) == pytest.approx(0.3 - 4 * 32 / 500_000, abs=1e-7)


def test_clamped_at_zero_but_not_at_one() -> None:
    ada = _controller(0.0002, target=0.6)
    ada.accumulate(_logits(-1, -1))
    ada.update(batch_size=64)
    assert float(ada.p) == 0.0
    ada.p.fill_(1.0)
    ada.accumulate(_logits(1, 1))
    ada.update(batch_size=64)
    assert float(ada.p) == pytest.approx(1 + STEP_B64, abs=1e-6)


def test_step_interval_and_reset() -> None:
    ada = _controller(0.0, target=0.6, interval=4, kimg=100)
    updates = []
    for batch_idx in range(1, 13):
        ada.accumulate(_logits(1))
        updates.append(ada.step(batch_idx, batch_size=16))
    assert updates == [i % 4 == 0 for i in range(1, 13)]
    assert float(ada.p) == pytest.approx(3 * 4 * 16 / 100_000, abs=1e-7)
    ada.update(batch_size=16)  # nothing accumulated since the last update: p unchanged
    assert float(ada.p) == pytest.approx(3 * 4 * 16 / 100_000, abs=1e-7)


def test_fixed_p_mode() -> None:
    ada = _controller(0.25, target=None)
    for batch_idx in range(1, 9):
        ada.accumulate(_logits(1, 1))
        assert not ada.step(batch_idx, batch_size=64)
    ada.update(batch_size=64)
    assert float(ada.p) == 0.25


def test_state_dict_resumes_exactly() -> None:
    a = _controller(0.1, target=0.6)
    a.accumulate(_logits(1, 1, -1))
    state = a.state_dict()
    b = _controller(0.9, target=0.6)
    b.load_state_dict(state)
    assert float(b.p) == float(a.p)
    for ada in (a, b):
        ada.accumulate(_logits(1))  # r_t = 2/4 = 0.5 < 0.6 in both
        ada.update(batch_size=64)
    assert float(a.p) == float(b.p) == pytest.approx(0.1 - STEP_B64, abs=1e-7)
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({"p": 0.5})


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="interval"):
        _controller(0, interval=0)
    with pytest.raises(ValueError, match="kimg"):
        _controller(0, kimg=0)
    with pytest.raises(ValueError, match="`p`"):
        AdaController(object())


def _distributed_worker(rank: int, world_size: int, tmp_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_dir}/init", rank=rank, world_size=world_size)
    try:
        ada = _controller(0.5, target=0.6)
        # Rank 0 alone would raise p (r_t = 1); over both ranks r_t = (4 - 6) / 10 < 0.6.
        ada.accumulate(_logits(1, 1, 1, 1) if rank == 0 else _logits(-1, -1, -1, -1, -1, -1))
        ada.update(batch_size=64)
        torch.save(dict(p=float(ada.p), rt=ada.last_rt), f"{tmp_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_accumulators_are_summed_over_ranks(tmp_path) -> None:
    mp.start_processes(_distributed_worker, args=(2, str(tmp_path)), nprocs=2, start_method="fork")
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["p"] == pytest.approx(0.5 - STEP_B64, abs=1e-7)
        assert result["rt"] == pytest.approx(-0.2)
