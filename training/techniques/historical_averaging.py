"""Historical averaging (Salimans et al. 2016, Sec. 3.3).

Each player's loss gains the penalty

    || theta - (1/t) sum_{i=1}^{t} theta[i] ||^2

where theta[i] are the player's parameters after its past updates i = 1..t. The running mean is kept exactly
in float64 (mean_t = mean_{t-1} + (theta_t - mean_{t-1}) / t), and `state_dict` holds the count and the mean
so that a resumed run continues with the same average.

Use: add `weight * avg.penalty()` to the loss before the optimiser step, then call `avg.update()` after it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class HistoricalAverage:
    """Running mean of a fixed list of parameters and the squared distance to it.

    Args:
        parameters: the tensors to average (their order defines the state's layout).
    """

    def __init__(self, parameters: Iterable[torch.Tensor]):
        self.parameters = [p for p in parameters]
        if not self.parameters:
            raise ValueError("historical averaging needs at least one parameter")
        self.count = 0
        self.mean = [torch.zeros(p.shape, dtype=torch.float64, device=p.device) for p in self.parameters]

    def penalty(self) -> torch.Tensor:
        """sum_p ||p - mean_p||^2 (a scalar in float32, differentiable in the parameters); 0 before any update."""
        device = self.parameters[0].device
        if self.count == 0:
            return torch.zeros([], device=device)
        total = torch.zeros([], device=device, dtype=torch.float32)
        for p, m in zip(self.parameters, self.mean):
            total = total + (p.to(torch.float32) - m.to(torch.float32)).square().sum()
        return total

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameter values into the running mean."""
        self.count += 1
        for p, m in zip(self.parameters, self.mean):
            m.add_((p.detach().to(torch.float64) - m) / self.count)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": [m.clone() for m in self.mean]}

    def load_state_dict(self, state: dict) -> None:
        means = state["mean"]
        if len(means) != len(self.mean) or any(a.shape != b.shape for a, b in zip(means, self.mean)):
            raise ValueError("historical averaging state does not match the parameters (different network?)")
        self.count = int(state["count"])
        for m, saved in zip(self.mean, means):
            m.copy_(saved.to(m.device, torch.float64))
