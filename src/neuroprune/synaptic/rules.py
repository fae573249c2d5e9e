"""What to prune: the low-activity rule, a pure function of activity, counters and mask.

The rule never sees the step count (that is the schedule's business) and never touches
a module: it maps tensors to tensors, so it is tested on hand-built activity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class LowActivityRule:
    """Prune a connection after ``patience`` consecutive checks at which it was weak.

    A live connection is weak at a check when its activity is below
    ``alpha * mean(activity of the layer's live connections)``. Its counter goes up by
    one at a weak check and back to 0 at any other; at ``patience`` it is pruned.

    Args:
        alpha: relative threshold (> 0). 0.5 means "under half the layer's mean activity".
        patience: consecutive weak checks before pruning (>= 1).
        min_fan_in: every output unit keeps at least this many live inputs (0 disables).
        max_fraction_per_check: at most this share of a layer's live connections is
            pruned at one check (the weakest first); 1.0 disables the guard.
    """

    alpha: float = 0.5
    patience: int = 3
    min_fan_in: int = 1
    max_fraction_per_check: float = 0.1

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ConfigError(f"patience must be an integer >= 1, got {self.patience!r}")
        if not isinstance(self.min_fan_in, int) or self.min_fan_in < 0:
            raise ConfigError(f"min_fan_in must be an integer >= 0, got {self.min_fan_in!r}")
        if not 0 < self.max_fraction_per_check <= 1:
            raise ConfigError(f"max_fraction_per_check must be in (0, 1], got {self.max_fraction_per_check!r}")

    def __call__(
        self, activity: torch.Tensor, counters: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one check to one layer.

        Args:
            activity: per-connection activity, the weight's shape (out, in, ...).
            counters: consecutive weak checks so far, same shape, integer.
            mask: 1 for live connections, 0 for pruned ones, same shape.

        Returns:
            ``(counters, mask)``: new tensors; pruned connections have counter 0 and mask 0.
        """
        live = mask.bool()
        if not live.any():
            return torch.zeros_like(counters), mask.clone()
        counters = self.count(activity, counters, mask)
        candidates = self.candidates(counters, mask)
        candidates = self.limit_per_layer(candidates, activity, live)
        candidates = self.keep_min_fan_in(candidates, activity, live)
        new_mask = mask * ~candidates
        # a connection that waited only because of a guard keeps its count and goes at a later check
        counters = torch.where(candidates, torch.zeros_like(counters), counters)
        return counters, new_mask

    def count(self, activity: torch.Tensor, counters: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Consecutive weak checks including this one: +1 where weak now, 0 elsewhere."""
        live = mask.bool()
        if not live.any():
            return torch.zeros_like(counters)
        mean_live = (activity * mask).sum() / mask.sum()  # arithmetic: activity[live] would copy the live entries
        weak = live & (activity < self.alpha * mean_live)
        return torch.where(weak, counters + 1, torch.zeros_like(counters))

    def candidates(self, counters: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Live connections weak at ``patience`` consecutive checks (bool)."""
        return mask.bool() & (counters >= self.patience)

    def limit_per_layer(self, candidates: torch.Tensor, activity: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """The weakest ``candidates``, at most ``max_fraction_per_check`` of the layer's live items."""
        budget = int(self.max_fraction_per_check * int(live.sum()))
        n = int(candidates.sum())
        if n <= budget:
            return candidates
        return _weakest(candidates, activity, budget)

    def keep_min_fan_in(self, candidates: torch.Tensor, activity: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """``candidates`` less those that would leave a unit with under ``min_fan_in`` live inputs."""
        if self.min_fan_in == 0:
            return candidates
        # (out, fan_in): a unit's inputs are everything in its row (all kernel taps for a conv)
        cand = candidates.reshape(candidates.shape[0], -1)
        live_per_unit = live.reshape(live.shape[0], -1).sum(dim=1)
        allowed = (live_per_unit - self.min_fan_in).clamp(min=0)  # (out,)
        short = torch.nonzero(cand.sum(dim=1) > allowed).flatten()
        if len(short) == 0:
            return candidates  # the common case: no unit would fall below min_fan_in
        # only the units that would fall short are ranked: keep their strongest candidates
        rows = cand[short]
        score = torch.where(rows, activity.reshape(cand.shape)[short],
                            torch.full_like(rows, float("inf"), dtype=activity.dtype))
        rank = score.argsort(dim=1).argsort(dim=1)  # 0 = weakest candidate of the unit
        keep = cand.clone()
        keep[short] = rows & (rank < allowed[short].unsqueeze(1))
        return keep.reshape(candidates.shape)


def _weakest(candidates: torch.Tensor, activity: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` candidates with the lowest activity."""
    chosen = torch.zeros_like(candidates)
    if count <= 0:
        return chosen
    flat_scores = torch.where(candidates, activity, torch.full_like(activity, float("inf"))).flatten()
    chosen.view(-1)[flat_scores.topk(count, largest=False).indices] = True
    return chosen
