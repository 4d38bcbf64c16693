"""The added loss terms of the techniques, composed once for every GAN trainer (train.py's StyleGAN2 loss, the labs).

A trainer computes its adversarial loss and D's features; `TechniqueTerms` adds, per player:

- G: `fm_weight * ||mean f(real) - mean f(fake)||^2` (feature matching) + `bures_weight * B(C_real, C_fake)^2`
  (Bures diversity matching) + `hist_avg_weight * ||theta_G - mean of past theta_G||^2` (historical averaging);
- D: `hist_avg_weight * ||theta_D - mean of past theta_D||^2`;
- either: `adaptivemix_weight * shrinkage` for the AdaptiveMix term the trainer's D call produced.

Each method returns the weighted total and the unweighted terms by name ('feature_matching', 'bures', 'hist_avg')
for the trainer's logs. The history term joins once per update: pass `last_round=False` for the earlier rounds
of an accumulated update, and call `end_update(player)` after the player's optimiser step, so the parameters
the penalty was taken at join the mean. A new technique that adds a term to a player's loss is added here.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from training.techniques.bures import bures_distance_squared
from training.techniques.feature_matching import feature_matching_loss
from training.techniques.historical_averaging import HistoricalAverage

PLAYERS = ("G", "D")
Term = torch.Tensor | float  # A scalar tensor, or 0 when no term is active.


class TechniqueTerms:
    """Weighted technique terms of both players; all weights 0 = no term.

    Args:
        G_params, D_params: each player's parameters (averaged when `hist_avg_weight > 0`).
        fm_weight, bures_weight: weights of G's feature-statistics terms.
        hist_avg_weight: weight of each player's historical-averaging penalty.
        adaptivemix_weight: weight of the AdaptiveMix shrinkage term.
    """

    def __init__(
        self,
        G_params: Iterable[torch.Tensor],
        D_params: Iterable[torch.Tensor],
        fm_weight: float = 0.0,
        bures_weight: float = 0.0,
        hist_avg_weight: float = 0.0,
        adaptivemix_weight: float = 1.0,
    ):
        for name, value in (
            ("fm_weight", fm_weight),
            ("bures_weight", bures_weight),
            ("hist_avg_weight", hist_avg_weight),
            ("adaptivemix_weight", adaptivemix_weight),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {value}")
        self.fm_weight = float(fm_weight)
        self.bures_weight = float(bures_weight)
        self.hist_avg_weight = float(hist_avg_weight)
        self.adaptivemix_weight = float(adaptivemix_weight)
        self.hist: dict[str, HistoricalAverage] = {}  # Player -> running mean of its parameters.
        if self.hist_avg_weight > 0:
            self.hist = {"G": HistoricalAverage(G_params), "D": HistoricalAverage(D_params)}

    @property
    def needs_features(self) -> bool:
        """Whether G's terms need D's features of reals and fakes."""
        return self.fm_weight > 0 or self.bures_weight > 0

    def adaptivemix(self, shrinkage: torch.Tensor) -> torch.Tensor:
        """`adaptivemix_weight * shrinkage` (any shape: a per-sample term [N] or its mean)."""
        return shrinkage * self.adaptivemix_weight

    def generator(
        self, real_feat: torch.Tensor | None, fake_feat: torch.Tensor | None, last_round: bool = True
    ) -> tuple[Term, dict[str, torch.Tensor]]:
        """G's added scalar (feature terms, then the history term) and its unweighted terms.

        real_feat [N, ...] (detached inside the terms), fake_feat [M, ...] with gradient; both may be None when
        `needs_features` is False.
        """
        total: Term = 0
        terms: dict[str, torch.Tensor] = {}
        if self.needs_features:
            if self.fm_weight > 0:
                terms["feature_matching"] = feature_matching_loss(real_feat, fake_feat)
                total = total + terms["feature_matching"] * self.fm_weight
            if self.bures_weight > 0:
                terms["bures"] = bures_distance_squared(real_feat, fake_feat)
                total = total + terms["bures"] * self.bures_weight
        hist, hist_terms = self.history("G", last_round)
        terms.update(hist_terms)
        return total + hist, terms

    def discriminator(self, last_round: bool = True) -> tuple[Term, dict[str, torch.Tensor]]:
        """D's added scalar (the history term) and its unweighted terms."""
        return self.history("D", last_round)

    def history(self, player: str, last_round: bool = True) -> tuple[Term, dict[str, torch.Tensor]]:
        """`hist_avg_weight * ||theta - mean||^2` of `player` on the last round of its update (else 0)."""
        if player not in PLAYERS:
            raise ValueError(f"unknown player {player!r}: expected one of {', '.join(PLAYERS)}")
        if player not in self.hist or not last_round:
            return 0, {}
        penalty = self.hist[player].penalty()
        return penalty * self.hist_avg_weight, {"hist_avg": penalty}

    def end_update(self, player: str) -> None:
        """After `player`'s optimiser step: its parameters join its running mean (no-op without history)."""
        if player in self.hist:
            self.hist[player].update()

    def state_dict(self) -> dict:
        """Player -> its running mean's state (empty without history)."""
        return {player: h.state_dict() for player, h in self.hist.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the running means; ValueError naming the players the state lacks."""
        missing = sorted(set(self.hist) - set(state))
        if missing:
            raise ValueError(
                f"the training state has no historical average of {', '.join(missing)}: it was saved "
                "without historical averaging; resume with the options it was trained with"
            )
        for player, hist in self.hist.items():
            hist.load_state_dict(state[player])
