"""TechniqueTerms, the one composition of the techniques' added loss terms, against direct computation; and the
old-name mapping of saved configurations."""

import numpy as np
import pytest
import scipy.linalg
import torch

from training.saved_names import current_names, with_added_fields
from training.techniques.composition import TechniqueTerms


def _players():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)


def _bures_squared(real: np.ndarray, fake: np.ndarray) -> float:
    """tr C_r + tr C_g - 2 tr sqrtm(C_r^1/2 C_g C_r^1/2) of the centred, unit-trace covariances (scipy)."""

    def cov(x):
        x = x - x.mean(0)
        x = x / np.sqrt((x**2).sum())
        return x.T @ x

    c_r, c_g = cov(real), cov(fake)
    root = scipy.linalg.sqrtm(c_r).real
    return float(np.trace(c_r) + np.trace(c_g) - 2 * np.trace(scipy.linalg.sqrtm(root @ c_g @ root).real))


def test_generator_terms_are_the_weighted_sum_of_the_direct_terms():
    G, D = _players()
    terms = TechniqueTerms(G.parameters(), D.parameters(), fm_weight=0.5, bures_weight=2.0, hist_avg_weight=0.1)
    real, fake = torch.randn(6, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    theta0 = [p.detach().clone() for p in G.parameters()]
    terms.end_update("G")  # The mean is now theta0.
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.3)
    total, parts = terms.generator(real, fake.requires_grad_(True))
    fm = float(((real.mean(0) - fake.detach().mean(0)) ** 2).sum())
    bures = _bures_squared(real.numpy(), fake.detach().numpy())
    hist = sum(float(((p.detach() - t) ** 2).sum()) for p, t in zip(G.parameters(), theta0))
    assert parts["feature_matching"].item() == pytest.approx(fm, rel=1e-5)
    assert parts["bures"].item() == pytest.approx(bures, rel=1e-4, abs=1e-6)
    assert parts["hist_avg"].item() == pytest.approx(hist, rel=1e-5) and hist == pytest.approx(0.09 * 8, rel=1e-5)
    assert total.item() == pytest.approx(0.5 * fm + 2.0 * bures + 0.1 * hist, rel=1e-4)
    total.backward()
    assert fake.grad is not None and all(p.grad is not None for p in G.parameters())


def test_history_joins_only_on_the_last_round_and_per_player():
    G, D = _players()
    terms = TechniqueTerms(G.parameters(), D.parameters(), hist_avg_weight=1.0)
    assert not terms.needs_features
    total, parts = terms.generator(None, None)
    assert total.item() == 0 and parts["hist_avg"].item() == 0  # Reported, and 0, before any update.
    terms.end_update("D")
    with torch.no_grad():
        for p in D.parameters():
            p.add_(1.0)
    assert terms.discriminator(last_round=False) == (0, {})
    total, parts = terms.discriminator()
    assert total.item() == pytest.approx(sum(p.numel() for p in D.parameters()))  # ||+1 per entry||^2
    assert set(parts) == {"hist_avg"} and terms.hist["G"].count == 0 and terms.hist["D"].count == 1


def test_all_off_adds_nothing_and_adaptivemix_is_weighted():
    G, D = _players()
    terms = TechniqueTerms(G.parameters(), D.parameters(), adaptivemix_weight=0.25)
    assert terms.generator(None, None) == (0, {}) and terms.discriminator() == (0, {})
    assert terms.hist == {} and terms.state_dict() == {}
    shrink = torch.tensor([1.0, -2.0])
    torch.testing.assert_close(terms.adaptivemix(shrink), torch.tensor([0.25, -0.5]))


def test_state_round_trip_and_a_state_without_history_is_refused():
    G, D = _players()
    terms = TechniqueTerms(G.parameters(), D.parameters(), hist_avg_weight=0.5)
    terms.end_update("G")
    terms.end_update("G")
    other = TechniqueTerms(G.parameters(), D.parameters(), hist_avg_weight=0.5)
    other.load_state_dict(terms.state_dict())
    assert other.hist["G"].count == 2 and other.hist["D"].count == 0
    with pytest.raises(ValueError, match="no historical average of D, G"):
        other.load_state_dict({})


@pytest.mark.parametrize("name", ["fm_weight", "bures_weight", "hist_avg_weight", "adaptivemix_weight"])
def test_negative_weights_are_refused(name):
    G, D = _players()
    with pytest.raises(ValueError, match=f"{name} must be >= 0"):
        TechniqueTerms(G.parameters(), D.parameters(), **{name: -1.0})


def test_old_names_of_saved_configurations_map_to_todays():
    old = {
        "objective": "std",
        "ls_alpha": 0.9,
        "ha_weight": 0.01,
        "losses": {"amix_form": "paper", "ada_weight": 2.0, "noise_std": 0.05},
        "ada_distance": "mse",
    }
    assert current_names(old) == {
        "objective": "ns",
        "label_smoothing": 0.9,
        "hist_avg_weight": 0.01,
        "losses": {"adaptivemix_form": "paper", "adaptivemix_weight": 2.0, "noise_std": 0.05},
        "adaptivemix_distance": "mse",
    }
    assert current_names({"objective": "wgan", "run": "grid9-std-plain-s0"})["objective"] == "wgan"


def test_options_added_later_are_filled_with_the_value_older_runs_used():
    old = {"objective": "wgan", "seed": 0, "losses": {"adaptivemix": False, "noise_std": 0.05}}
    new = {
        "objective": "wgan",
        "seed": 1,
        "pack": 1,
        "stack": 1,
        "losses": {**old["losses"], "noise_scale": "absolute"},
    }
    assert with_added_fields("dcgan", old) == dict(new, seed=0)
    packed = dict(new, pack=2, losses={**new["losses"], "noise_scale": "relative"})
    assert with_added_fields("dcgan", packed) == packed  # Values present are kept.
    assert with_added_fields("toy", old) == old  # Nothing listed for that lab.
    assert "pack" not in old and with_added_fields("dcgan", {}) == {}  # Input unchanged; unknown stays unknown.
