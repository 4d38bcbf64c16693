"""APA: replacement of D's reals by generated images, and its p adjustment."""

from __future__ import annotations

import pytest
import torch

from training.apa import PseudoAugment, draw_replacement_mask, mix_pseudo_real
from training.augment import AUGPIPE_PRESETS, AugmentPipe


def _batch(seed: int, N: int = 8) -> torch.Tensor:
    return torch.rand([N, 3, 8, 8], generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _apa(p: float, **kwargs) -> PseudoAugment:
    pipe = AugmentPipe(**AUGPIPE_PRESETS["bgc"])
    pipe.p.fill_(p)
    return PseudoAugment(pipe, **kwargs)


def test_p_zero_replaces_nothing_but_still_draws() -> None:
    real = _batch(0)
    apa = _apa(0.0)
    assert apa.pseudo_data is None  # nothing stored yet: fine while nothing is replaced
    torch.manual_seed(1)
    assert apa.replace_reals(real) is real
    after = torch.rand([3])
    torch.manual_seed(1)
    torch.rand([real.shape[0], 1, 1, 1])  # the one uniform per sample APA draws
    assert torch.equal(after, torch.rand([3]))


@pytest.mark.parametrize("p", [1.0, 1.7])
def test_p_one_or_more_replaces_everything(p: float) -> None:
    real, fake = _batch(0), _batch(1)
    apa = _apa(p)
    apa.store(fake)
    assert torch.equal(apa.replace_reals(real), fake)


def test_partial_replacement_follows_the_draws() -> None:
    N = 16
    real, fake = _batch(0, N), _batch(1, N)
    apa = _apa(0.4)
    apa.store(fake)
    torch.manual_seed(2)
    mixed = apa.replace_reals(real)
    torch.manual_seed(2)
    replaced = (torch.rand([N, 1, 1, 1]) < 0.4).flatten()
    assert 0 < int(replaced.sum()) < N
    for n in range(N):
        assert torch.equal(mixed[n], fake[n] if replaced[n] else real[n])


def test_store_keeps_a_detached_copy() -> None:
    fake = _batch(1).requires_grad_(True) * 2  # has a graph
    apa = _apa(1.0)
    apa.store(fake)
    assert apa.pseudo_data.grad_fn is None and not apa.pseudo_data.requires_grad
    assert torch.equal(apa.pseudo_data, fake.detach())


def test_pure_functions_and_errors() -> None:
    mask = draw_replacement_mask(4, torch.tensor(1.0), "cpu")
    assert mask.shape == (4, 1, 1, 1) and mask.dtype == torch.bool and bool(mask.all())
    assert not bool(draw_replacement_mask(4, 0.0, "cpu").any())
    real = _batch(0, 4)
    with pytest.raises(ValueError, match="Gmain"):
        mix_pseudo_real(real, None, mask)
    with pytest.raises(ValueError, match="same size"):
        mix_pseudo_real(real, _batch(1, 2), mask)


def test_shares_p_with_the_augment_pipe() -> None:
    apa = _apa(0.0, target=0.6, interval=4, kimg=500)
    assert apa.p is apa.augment_pipe.p
    apa.accumulate(torch.ones([4, 1]))
    assert apa.step(batch_idx=4, batch_size=64)
    assert float(apa.augment_pipe.p) == pytest.approx(4 * 64 / 500_000, abs=1e-7)


def test_p_adjustment_with_its_own_target() -> None:
    """Hand computation: t = 0.8, B = 32, interval 4, kimg 100 -> step 1.28e-3."""
    apa = PseudoAugment(None, target=0.8, interval=4, kimg=100, p=0.01)
    step = 4 * 32 / 100_000
    apa.accumulate(torch.tensor([1.0, 2.0, -1.0, 3.0, 0.5]))  # Dmain: r = 3/5
    apa.accumulate(torch.tensor([[4.0], [2.0]]))  # Dreg: over both, r_t = 5/7 < 0.8
    assert not apa.step(batch_idx=3, batch_size=32)
    assert apa.step(batch_idx=4, batch_size=32)
    assert float(apa.p) == pytest.approx(0.01 - step, abs=1e-7)
    apa.accumulate(torch.ones([5]))  # r_t = 1 > 0.8
    apa.step(batch_idx=8, batch_size=32)
    assert float(apa.p) == pytest.approx(0.01, abs=1e-7)
    for batch_idx in range(12, 60, 4):  # 12 all-negative updates of 1.28e-3: p falls and stops at 0
        apa.accumulate(-torch.ones([5]))
        apa.step(batch_idx, batch_size=32)
    assert float(apa.p) == 0.0

    resumed = PseudoAugment(None, target=0.8, interval=4, kimg=100)
    resumed.load_state_dict(apa.state_dict())
    assert float(resumed.p) == float(apa.p) and resumed.pseudo_data is None


def test_mixed_batch_gradient_for_r1() -> None:
    """R1 is taken w.r.t. the mixed batch: gradients reach replaced and kept samples alike."""
    real, fake = _batch(0, 4), _batch(1, 4)
    apa = _apa(0.5)
    apa.store(fake)
    torch.manual_seed(3)
    mixed = apa.replace_reals(real).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixed.square().sum(), mixed)
    assert torch.equal(grad, 2 * mixed.detach())
